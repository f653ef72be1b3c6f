"""The README and docs/ as a newcomer meets them: a short front page, every link resolving, every moved page linked."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted([README, *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")


def links(page: Path) -> list[str]:
    """Relative links of a Markdown page (web addresses left out), code blocks skipped."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_heading_in_the_repository(page):
    broken = []
    for target in links(page):
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        inside = resolved.exists() and ROOT in (resolved, *resolved.parents)
        if not inside or (fragment and resolved.suffix == ".md" and fragment not in anchors(resolved)):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def test_every_docs_page_is_reachable_from_the_readme():
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in links(README)}
    pages = [page for page in (ROOT / "docs").glob("*.md")]
    assert pages and not [page.name for page in pages if page.resolve() not in linked]


def test_the_readme_is_a_front_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 200 and len(text.encode()) <= 14_000
    # a commit hash or a UTC time belongs to a table's "measured on" line, not to the prose
    dated = [line for line in text.splitlines() if re.search(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b|\d\d:\d\d UTC", line)]
    assert all(line.startswith(("Measured on", "*Measured on")) for line in dated), dated


def test_the_readme_baseline_table_is_generated_from_the_committed_full_run():
    """The front page's figures cannot drift from the JSON: the table is the report's rendering of the run."""
    from sst2mlp.report.runs import read_run
    from sst2mlp.report.tables import BASELINE_COLUMNS, markdown_table, runtimes_table

    (saved,) = (ROOT / "docs" / "full-run").glob("*.json.gz")
    table = "\n".join(markdown_table(runtimes_table(read_run(saved)), BASELINE_COLUMNS))
    assert table in README.read_text()


def test_the_readme_runtimes_table_is_generated_from_the_committed_baseline_run():
    from sst2mlp.report.runs import read_run
    from sst2mlp.report.tables import RUNTIME_SUMMARY_COLUMNS, markdown_table, runtimes_table

    (saved,) = (ROOT / "docs" / "baseline-run").glob("*.json.gz")
    table = "\n".join(markdown_table(runtimes_table(read_run(saved)), RUNTIME_SUMMARY_COLUMNS))
    assert table in README.read_text()


def test_every_extra_info_field_is_documented_in_the_metrics_page():
    from sst2mlp import contract

    documented = set(re.findall(r"[a-z0-9_]+", (ROOT / "docs" / "metrics.md").read_text()))
    fields = {name for group in contract.GROUPS for name in contract.extra_info_fields(group, include_optional=True)}
    assert sorted(fields - documented) == []
