"""One page that holds the whole report and opens offline in any browser: `report.html`, written beside the files it
gathers. The markdown pages the report wrote are converted by Python-Markdown (its `tables` extension) and every
figure is embedded as a data URI, so the page needs no file beside it, no network and no script from elsewhere.

Its one inline script counts, once the page has loaded, the figures the browser decoded and the tables it laid
out, into `data-figures-shown` and `data-tables-shown` on <body>: what tests/test_html_report.py reads from
headless Chromium.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

import markdown

# The order a reader wants: the answer first, then what it rests on, then every row.
PAGES = ("choose.md", "baseline.md", "runtimes.md", "claims.md", "roofline.md", "parity.md", "speedups.md",
         "comparison.md", "results.md")
FIGURE_CAPTIONS = {
    "pareto.png": "Accuracy against latency, executed FLOPs and bytes held, with the models no other beats",
    "impls.png": "Each impl over the grid",
    "footprint.png": "Accuracy and latency against the bytes the weights take",
    "roofline.png": "Each impl's time per example against this machine's floor",
    "hidden_size.png": "The reference report's figure: varying the hidden size",
    "num_layers.png": "The reference report's figure: varying the number of hidden layers",
    "vocab_size.png": "The reference report's figure: varying the vocabulary size",
    "all.png": "The reference report's figure: every configuration",
}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.8em; margin: 1em 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 2em 0; }
figure img { max-width: 100%; }
nav li { display: inline; margin-right: 1em; }
section { border-top: 1px solid #ddd; margin-top: 2em; }
"""
COUNTER = """
window.addEventListener("load", () => {
  const shown = [...document.images].filter((image) => image.complete && image.naturalWidth > 0);
  document.body.dataset.figuresShown = shown.length;
  document.body.dataset.tablesShown = [...document.querySelectorAll("table")].filter((t) => t.rows.length > 1).length;
});
"""


def _figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = html.escape(FIGURE_CAPTIONS.get(path.name, path.stem))
    return (f'<figure id="{path.stem}"><img src="data:image/png;base64,{data}" alt="{caption}">'
            f"<figcaption>{caption} ({html.escape(path.name)})</figcaption></figure>")


def render(out: Path, title: str) -> str:
    """The page for the report in `out`: its markdown pages in PAGES order, the figures after the first page."""
    pages = [out / name for name in PAGES if (out / name).exists()]
    figures = [out / name for name in FIGURE_CAPTIONS if (out / name).exists()]
    blocks = [(page.stem, markdown.markdown(page.read_text(), extensions=["tables"])) for page in pages]
    if figures:
        blocks.insert(min(1, len(blocks)), ("figures", "<h1>Figures</h1>\n" + "\n".join(map(_figure, figures))))
    nav = "<nav><ul>" + "".join(f'<li><a href="#{anchor}">{anchor}</a></li>' for anchor, _ in blocks) + "</ul></nav>"
    sections = [f'<section id="{anchor}">\n{body}\n</section>' for anchor, body in blocks]
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n{nav}\n" + "\n".join(sections) + f"\n<script>{COUNTER}</script>\n</body></html>\n")


def write_html(out: Path, title: str = "sst2mlp report") -> Path:
    path = out / "report.html"
    path.write_text(render(out, title), encoding="utf-8")
    return path
