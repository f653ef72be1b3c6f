"""The whole report on one page (sst2mlp.report.html): every figure and table of the report, nothing fetched from
elsewhere, and a browser shows them (headless Chromium, Debian's package, which .ci/run installs)."""
import re
import shutil
import subprocess

import pytest
from test_report import NEW, OLD

from sst2mlp.report import FIGURES, make_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    written = make_report([str(OLD), str(NEW)], out)  # two runs: the comparison too
    assert written[-1] == out / "report.html"
    return out, (out / "report.html").read_text()


def test_the_page_holds_every_figure_and_page_of_the_report_and_nothing_from_elsewhere(page):
    out, text = page
    figures = [name for name in FIGURES if (out / name).exists()]
    assert len(figures) >= 7 and text.count('src="data:image/png;base64,') == len(figures)
    markdown_tables = sum(path.read_text().count("\n|---") for path in out.glob("*.md"))
    assert markdown_tables and text.count("<table>") == markdown_tables
    for section in ("choose", "figures", "baseline", "runtimes", "claims", "comparison", "results"):
        assert f'<section id="{section}">' in text and f'href="#{section}"' in text
    assert text.index('id="choose"') < text.index('id="figures"') < text.index('id="results"')  # the answer first
    assert not re.search(r'(src|href)="(https?:)?//', text)  # no network: nothing loaded from elsewhere


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install chromium (.ci/run installs it)")
def test_a_browser_shows_every_figure_and_table_offline(page):
    out, text = page
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          "--dump-dom", (out / "report.html").as_uri()], capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    shown = dict(re.findall(r'data-(figures|tables)-shown="(\d+)"', body.group(0)))
    assert int(shown["figures"]) == text.count("<img ") and int(shown["tables"]) == text.count("<table>")
