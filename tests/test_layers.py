"""The package's layers, as docs/DESIGN.md draws them: each folder imports only its own modules and the layers below
it; the report reads only the base (never the suite, torch or a runtime), and only the suite's top (the agreement
check, which runs the suite and reads its runs) uses the report."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sst2mlp"
LAYERS = ("base", "native", "reference", "impls", "measure", "suite")  # bottom up; `report` reads only `base`
BASE = ("sst2mlp", "sst2mlp.contract", "sst2mlp.stats", "sst2mlp.arguments")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    return "base" if module in BASE else module.split(".")[1]


def allowed(importer_layer: str, target_layer: str) -> bool:
    if importer_layer == "report":
        return target_layer in ("base", "report")
    if target_layer == "report":
        return importer_layer == "suite"
    return LAYERS.index(target_layer) <= LAYERS.index(importer_layer)


def imported(source: str, module: str, is_package: bool) -> set[str]:
    """The sst2mlp modules a source imports, at the top or inside a function (a deferred import is still an edge)."""
    package, found = module if is_package else module.rsplit(".", 1)[0], set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names
                               if (ROOT / f"{base}.{alias.name}".replace(".", "/")).with_suffix(".py").exists()}
    return {name for name in found if name == "sst2mlp" or name.startswith("sst2mlp.")}


def upward_edges(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """Every import, of modules given as name -> (source, is a package), that a layer may not make."""
    edges = []
    for importer, (source, is_package) in sorted(sources.items()):
        for target in sorted(imported(source, importer, is_package)):
            lazy_exports = importer == "sst2mlp" and layer_of(target) == "reference"  # the package's names, imported on use
            if not lazy_exports and not allowed(layer_of(importer), layer_of(target)):
                edges.append(f"{importer} ({layer_of(importer)}) -> {target} ({layer_of(target)})")
    return edges


def test_every_import_points_to_its_own_layer_or_below():
    sources = {module_name(path): (path.read_text(), path.name == "__init__.py") for path in PACKAGE.rglob("*.py")}
    assert len(sources) > 40 and upward_edges(sources) == []


def test_the_check_finds_an_upward_edge_and_a_report_that_reads_the_suite():
    assert upward_edges({"sst2mlp.reference.data": ("from ..suite import session\n", False),
                         "sst2mlp.report.runs": ("def f():\n    import sst2mlp.measure.limits\n", False),
                         "sst2mlp.measure.timing": ("from sst2mlp.impls.registry import Variant\n", False)}) == [
        "sst2mlp.reference.data (reference) -> sst2mlp.suite (suite)",
        "sst2mlp.reference.data (reference) -> sst2mlp.suite.session (suite)",
        "sst2mlp.report.runs (report) -> sst2mlp.measure.limits (measure)"]


def test_design_md_draws_the_same_layers():
    design = (ROOT / "docs" / "DESIGN.md").read_text()
    drawn = re.search(r"^Layers, bottom up: (.+?)\.\s", design, re.M | re.S)
    assert drawn, "docs/DESIGN.md has no 'Layers, bottom up: ...' line"
    assert [name.strip("`/") for name in re.findall(r"`[^`]+`", drawn.group(1))] == [*LAYERS, "report"]
