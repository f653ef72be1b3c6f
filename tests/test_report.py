"""The report on JSON from real runs of the suite (tests/data; make_smoke_runs.py regenerates 0002 and 0003).

0001_smoke.json predates the impl axis (dense only, no `impl` in extra_info);
0002_smoke.json and 0003_smoke.json are two back-to-back smoke runs of the current suite with every
impl and group, sparse training and the reference loop.
"""
import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from sst2mlp.report import FIGURES, ReportError, main, make_report, pareto_front
from sst2mlp.report.figures import draw_figures
from sst2mlp.report.runs import read_run

DATA = Path(__file__).parent / "data"
OLD, NEW, NEW_AGAIN = DATA / "0001_smoke.json", DATA / "0002_smoke.json", DATA / "0003_smoke.json"
IMPLS = ["dense", "sparse", "torchscript", "fused", "int8", "fused-int8", "onnxruntime", "onnxruntime-int8", "openvino",
         "torch-compile", "executorch"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One report of NEW for the tests that only read it (drawing the figures is most of a report's time)."""
    out = tmp_path_factory.mktemp("report")
    return out, make_report([str(NEW)], out)


def read_csv(path):
    with path.open() as file:
        return list(csv.DictReader(file))


def benchmarks(path):
    return json.loads(path.read_text())["benchmarks"]


def row_of(rows, bench):
    """The results row a benchmark belongs to: its configuration, impl and the training of its model."""
    info = bench["extra_info"]
    matches = [r for r in rows if (int(r["num_layers"]), r["impl"], r["trained_impl"]) == (info["num_layers"], info["impl"], info["trained_impl"])]
    assert len(matches) == 1, bench["name"]
    return matches[0]


def test_results_table_holds_every_benchmark_in_the_row_of_its_model(report):
    rows = read_csv(report[0] / "results.csv")
    per_config = [(r["impl"], r["trained_impl"]) for r in rows if r["num_layers"] == "1"]
    assert per_config == [("dense", "dense"), ("sparse", "dense"), ("sparse", "sparse"), *((impl, "dense") for impl in IMPLS[2:]),
                          ("reference-loop", "reference-loop")]
    assert [r["num_layers"] for r in rows] == ["1"] * 13 + ["2"] * 13
    for bench in benchmarks(NEW):
        row, info, stats = row_of(rows, bench), bench["extra_info"], bench["stats"]
        assert (int(row["hidden_size"]), int(row["vocab_size"])) == (128, 1000)
        assert int(row["params"]) == info["params"] and int(row["flops"]) == info["flops"]
        assert float(row["accuracy"]) == pytest.approx(info["accuracy"])
        if "accuracy_seeds" in info:  # training benchmarks and int8: the row's spread is theirs
            assert float(row["accuracy_mean"]) == pytest.approx(sum(info["accuracy_seeds"]) / len(info["accuracy_seeds"]))
            assert int(row["accuracy_seeds"]) == len(info["accuracy_seeds"]) == 3
        assert float(row["effective_flops"]) == pytest.approx(info["effective_flops"])
        if bench["group"] == "inference":
            assert float(row["latency_median_ms"]) == pytest.approx(stats["median"] * 1e3)
            assert float(row["latency_stddev_ms"]) == pytest.approx(stats["stddev"] * 1e3)
            assert float(row["latency_p90_ms"]) == pytest.approx(info["p90"] * 1e3)
        elif bench["group"] == "training":
            assert float(row["training_median_s"]) == pytest.approx(stats["median"])
        elif bench["group"] == "coldstart":
            assert float(row["coldstart_s"]) == pytest.approx(info["coldstart_total_seconds"])
            assert float(row["coldstart_imports_s"]) == pytest.approx(info["coldstart_imports_seconds"])
        else:
            column = "throughput_b64_per_s" if bench["params"]["batch_size"] == 64 else "throughput_dev_per_s"
            assert float(row[column]) == pytest.approx(info["examples_per_second"])


def test_the_sparse_trained_model_is_its_own_row(report):
    """Its accuracy is never paired with the latency of the dense-trained model converted to sparse."""
    rows = {(r["num_layers"], r["impl"], r["trained_impl"]): r for r in read_csv(report[0] / "results.csv")}
    by_name = {b["name"]: b["extra_info"] for b in benchmarks(NEW)}
    sparse_trained, converted = rows[("2", "sparse", "sparse")], rows[("2", "sparse", "dense")]
    assert float(sparse_trained["accuracy"]) == pytest.approx(by_name["test_training[L2-H128-V1000-T1-sparse-B64]"]["accuracy"])
    assert float(converted["accuracy"]) == pytest.approx(by_name["test_inference[L2-H128-V1000-T1-sparse-B1]"]["accuracy"])
    assert sparse_trained["latency_median_ms"] == "" and sparse_trained["training_median_s"] != ""
    assert converted["training_median_s"] == "" and converted["latency_median_ms"] != ""


def test_markdown_marks_unmeasured_cells_and_names_the_machine(report):
    markdown = (report[0] / "results.md").read_text()
    assert json.loads(NEW.read_text())["machine_info"]["cpu_model"].split()[0] in markdown and "torch 2.13.0" in markdown
    header, torchscript = (next(line for line in markdown.splitlines() if marker in line) for marker in ("| num_layers |", "| torchscript |"))
    cells = dict(zip(header.strip("| ").split(" | "), torchscript.strip("| ").split(" | ")))
    assert cells["training_median_s"] == "-" and cells["latency_median_ms"] != "-"  # not measured, not missing
    assert "missing" not in markdown


def test_speedups_are_ratios_within_the_run(report):
    rows = {(r["num_layers"], r["impl"], r["trained_impl"]): r for r in read_csv(report[0] / "speedups.csv")}
    medians = {(b["group"], b["params"]["impl"], b["params"]["num_layers"]): b["stats"]["median"] for b in benchmarks(NEW)}
    expected = medians[("inference", "dense", 1)] / medians[("inference", "torchscript", 1)]
    assert float(rows[("1", "torchscript", "dense")]["latency_speedup_vs_dense"]) == pytest.approx(expected)
    expected = medians[("training", "dense", 1)] / medians[("training", "sparse", 1)]
    assert float(rows[("1", "sparse", "sparse")]["training_speedup_vs_dense"]) == pytest.approx(expected)
    expected = medians[("training", "reference-loop", 2)] / medians[("training", "dense", 2)]
    assert float(rows[("2", "dense", "dense")]["training_speedup_vs_reference_loop"]) == pytest.approx(expected)


def points_per_panel(fig):
    return [[len(line.get_xdata()) for line in ax.get_lines()] for ax in fig.axes]


def test_figures_draw_every_measured_point():
    figures = draw_figures(read_run(NEW), threads=1)
    assert list(figures) == list(FIGURES)
    # the sweeps follow the run's grid: series N=1 and N=2 at k=1000, one width, so one point per series
    assert points_per_panel(figures["hidden_size.png"]) == [[1, 1]] * 3
    assert points_per_panel(figures["num_layers.png"]) == [[2]] * 3  # one series (hidden 128), N=1 and N=2
    assert points_per_panel(figures["vocab_size.png"]) == [[1, 1]] * 3
    assert [line.get_label() for line in figures["hidden_size.png"].axes[0].get_lines()] == ["N=1, k=1000", "N=2, k=1000"]
    assert points_per_panel(figures["all.png"]) == [[2]] * 3
    assert points_per_panel(figures["impls.png"]) == [[2] * len(IMPLS)] * 3
    assert [line.get_label() for line in figures["impls.png"].axes[0].get_lines()] == IMPLS
    assert points_per_panel(figures["footprint.png"]) == [[2] * len(IMPLS)] * 2
    pareto = points_per_panel(figures["pareto.png"])
    assert [panel[:6] for panel in pareto] == [[2] * 6] * 3 and all(1 <= panel[6] <= 12 for panel in pareto)
    # every impl at both configurations in each batch panel, then the three guide lines (100%, 50%, 10% of the floor)
    assert points_per_panel(figures["roofline.png"]) == [[2] * len(IMPLS) + [2, 2, 2]] * 3


def test_a_run_saved_before_the_machine_limits_has_no_roofline_figure():
    assert "roofline.png" not in draw_figures(read_run(OLD), threads=1)


def test_every_figure_is_a_png_file(report):
    out, written = report
    for name in FIGURES:
        path = out / name
        assert path in written
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 1000


def test_two_runs_give_ratios_and_show_missing_configurations(tmp_path, tables_only):
    make_report([str(OLD), str(NEW)], tmp_path)
    rows = {(r["num_layers"], r["impl"], r["trained_impl"]): r for r in read_csv(tmp_path / "comparison.csv")}
    old = {b["name"]: b["stats"]["median"] for b in benchmarks(OLD)}
    new = {b["name"]: b["stats"]["median"] for b in benchmarks(NEW)}
    baseline = rows[("1", "dense", "dense")]
    assert float(baseline["latency_median_ms[0001]"]) == pytest.approx(old["test_inference[L1-H128-V1000-T1]"] * 1e3)
    ratio = new["test_inference[L1-H128-V1000-T1-dense-B1]"] / old["test_inference[L1-H128-V1000-T1]"]
    assert float(baseline["latency_median_ms ratio[0002/0001]"]) == pytest.approx(ratio)
    # sparse ran only in 0002: its row is there, the absent side marked missing
    assert rows[("1", "sparse", "dense")]["latency_median_ms[0001]"] == ""
    assert "missing" in (tmp_path / "comparison.md").read_text()


def test_a_storage_folder_is_read_recursively(tmp_path, tables_only):
    storage = tmp_path / "storage" / "Linux-CPython-3.11-64bit"
    storage.mkdir(parents=True)
    shutil.copy(OLD, storage)
    shutil.copy(NEW, storage)
    written = make_report([str(tmp_path / "storage")], tmp_path / "out")
    assert tmp_path / "out" / "comparison.md" in written


def test_foreign_benchmarks_are_skipped_with_one_warning_naming_them(tmp_path, tables_only):
    document = json.loads(NEW.read_text())
    foreign = dict(document["benchmarks"][0], name="test_other", fullname="other.py::test_other", extra_info={})
    document["benchmarks"].append(foreign)
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(document))
    with pytest.warns(UserWarning, match=r"mixed\.json: skipped 1 benchmark\(s\) .*other\.py::test_other") as record:
        make_report([str(path)], tmp_path / "out")
    assert len([w for w in record if "skipped" in str(w.message)]) == 1
    assert main([str(path), "--out", str(tmp_path / "strict"), "--strict"]) == 2


@pytest.mark.parametrize(
    "content, expected",
    [
        (NEW.read_text()[:5000], r"truncated\.json: not valid JSON \(line \d+, column \d+: .*truncated\?\)"),
        ('{"results": []}', r"truncated\.json: not pytest-benchmark JSON; expected an object with 'machine_info' and a 'benchmarks' list"),
        ("[1, 2]", r"truncated\.json: not pytest-benchmark JSON"),
    ],
    ids=["truncated", "other-json", "json-list"],
)
def test_unreadable_input_exits_nonzero_naming_the_file(tmp_path, capsys, content, expected):
    bad = tmp_path / "truncated.json"
    bad.write_text(content)
    assert main([str(bad), "--out", str(tmp_path / "out")]) == 2
    assert re.search(expected, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_missing_input_and_empty_folder(tmp_path, capsys):
    assert main([str(tmp_path / "nope.json"), "--out", str(tmp_path / "out")]) == 2
    assert "nope.json: no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "empty: no pytest-benchmark JSON files in this folder" in capsys.readouterr().err


def test_existing_outputs_are_not_overwritten_without_asking(tmp_path, tables_only, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.md").write_text("keep me")
    assert main([str(NEW), "--out", str(out)]) == 2
    assert "results.md; pass --overwrite" in capsys.readouterr().err
    assert (out / "results.md").read_text() == "keep me"
    assert main([str(NEW), "--out", str(out), "--overwrite"]) == 0
    assert (out / "results.md").read_text() != "keep me"


def test_report_writes_only_inside_out(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(NEW, inputs)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    run = subprocess.run([sys.executable, "-m", "sst2mlp.report", str(inputs), "--out", str(tmp_path / "out")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out"
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p == out or not p.is_relative_to(out))
    assert after == sorted([*before, Path("out")])


def test_strict_mode_checks_the_whole_contract(tmp_path, tables_only, capsys):
    assert main([str(NEW), "--out", str(tmp_path / "new"), "--strict"]) == 0
    assert main([str(OLD), "--out", str(tmp_path / "old"), "--strict"]) == 2
    error = capsys.readouterr().err
    assert "0001_smoke.json: benchmarks without the fields the suite writes" in error
    # what the file lacks beyond what the upgrade of an old run fills in (schema.upgrade: impl, effective_flops, ...)
    assert "test_training[L1-H128-V1000-T1]: param impl, param batch_size, seeds, accuracy_seeds" in error


def test_the_report_command_does_not_import_torch():
    code = ("import sys\nfrom sst2mlp.report.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]"


def test_pareto_front():
    points = [(1.0, 0.70), (2.0, 0.80), (3.0, 0.79), (4.0, 0.82), (2.0, 0.75)]
    assert pareto_front(points) == [0, 1, 3]


def test_claims_test_the_axes_the_run_varied_and_the_approximate_impls(report):
    claims = (report[0] / "claims.md").read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in claims.splitlines() if (line.startswith("| ") and " -> " in line) or " vs " in line}
    assert set(rows) >= {"hidden layers 1 -> 2", "int8 vs float32 (the same models)", "fused-int8 vs float32 (the same models)",
                         "sparse-trained vs dense-trained"}
    assert not any(name.startswith(("vocabulary", "hidden size")) for name in rows)  # one value each in this run
    assert "| 2 | 128 | 1,000 | 3 |" in claims  # the smallest detectable difference per configuration, from 3 seeds


def test_a_run_saved_before_seeds_still_reports_and_says_it_has_no_spread(tmp_path, tables_only):
    make_report([str(OLD)], tmp_path)
    assert "recorded one seed per configuration" in (tmp_path / "claims.md").read_text()
    accuracies = {b["extra_info"]["num_layers"]: b["extra_info"]["accuracy"] for b in benchmarks(OLD)}
    markdown = (tmp_path / "results.md").read_text()
    assert all(f"| {accuracy:.4f} (1) |" in markdown for accuracy in accuracies.values())  # one seed: no spread shown


def test_the_runtimes_table_compares_every_impl_at_the_baseline_with_fused_and_the_best_exact_own_impl(report):
    rows = {r["impl"]: r for r in read_csv(report[0] / "runtimes.csv")}
    assert list(rows) == IMPLS  # the smoke run's configuration nearest the baseline: L2-H128-V1000
    by = {(b["group"], b["params"]["impl"], str(b["params"]["batch_size"])): b for b in benchmarks(NEW)
          if b["params"]["num_layers"] == 2}
    fused = by[("inference", "fused", "1")]["stats"]["median"]
    for impl, row in rows.items():
        assert float(row["latency_vs_fused"]) == pytest.approx(by[("inference", impl, "1")]["stats"]["median"] / fused)
        assert float(row["coldstart_s"]) == pytest.approx(by[("coldstart", impl, "1")]["extra_info"]["coldstart_total_seconds"])
    best = max(by[("throughput", impl, "64")]["extra_info"]["examples_per_second"] for impl in ("dense", "sparse", "torchscript", "fused"))
    ort = by[("throughput", "onnxruntime", "64")]["extra_info"]["examples_per_second"]
    assert float(rows["onnxruntime"]["throughput_b64_vs_best_exact"]) == pytest.approx(ort / best)
    assert max(float(row["throughput_b64_vs_best_exact"]) for impl, row in rows.items() if impl in IMPLS[:4]) == pytest.approx(1.0)


def test_the_parity_table_holds_each_impls_worst_agreement_and_logit_difference(report):
    rows = {r["impl"]: r for r in read_csv(report[0] / "parity.csv")}
    assert list(rows) == IMPLS
    infos = [b["extra_info"] for b in benchmarks(NEW) if b["group"] in ("inference", "throughput")]
    for impl, row in rows.items():
        mine = [info for info in infos if info["impl"] == impl]
        assert float(row["lowest_agreement_with_dense"]) == min(info["agreement_with_dense"] for info in mine)
        assert float(row["largest_logit_difference"]) == pytest.approx(max(info["max_logit_difference"] for info in mine))
        assert row["exact"] == ("no" if impl in ("int8", "fused-int8", "onnxruntime-int8") else "yes")
    assert all(float(rows[impl]["largest_logit_difference"]) < 1e-4 for impl in ("sparse", "onnxruntime", "openvino", "executorch"))


def test_the_roofline_table_holds_each_impls_median_floor_and_fraction_per_call_at_the_baseline(report):
    rows = {r["impl"]: r for r in read_csv(report[0] / "roofline.csv")}
    assert list(rows) == IMPLS
    calls = {(b["params"]["impl"], str(b["params"]["batch_size"])): b for b in benchmarks(NEW)
             if b["params"]["num_layers"] == 2 and b["group"] in ("inference", "throughput")}
    for (impl, batch), bench in calls.items():
        prefix, unit, scale = {"1": ("b1", "us", 1e6), "64": ("b64", "us", 1e6), "dev": ("dev", "ms", 1e3)}[batch]
        row, floor = rows[impl], bench["extra_info"]["floor_seconds"]
        assert float(row[f"{prefix}_median_{unit}"]) == pytest.approx(bench["stats"]["median"] * scale)
        assert float(row[f"{prefix}_floor_{unit}"]) == pytest.approx(floor * scale)
        assert float(row[f"{prefix}_fraction_of_floor"]) == pytest.approx(bench["extra_info"]["fraction_of_floor"])


def test_an_old_run_is_upgraded_once_where_it_is_read_and_a_newer_one_is_refused(tmp_path):
    """Runs saved before the schema version (OLD: no impl axis, no trained_impl, py-cpuinfo's CPU) read as the
    current layout; a run saved by a newer suite is refused with one line naming its schema."""
    from sst2mlp import contract
    from sst2mlp.report.runs import read_document

    old = read_document(OLD)
    assert old["machine_info"]["sst2mlp_schema"] == contract.SCHEMA_VERSION and old["machine_info"]["cpu_model"]
    assert all({"impl", "trained_impl", "effective_flops", "dev_examples"} <= set(b["extra_info"]) for b in old["benchmarks"])
    assert json.loads(OLD.read_text())["machine_info"].get("sst2mlp_schema") is None  # the file itself is left alone
    newer = json.loads(NEW.read_text())
    newer["machine_info"]["sst2mlp_schema"] = contract.SCHEMA_VERSION + 1
    (tmp_path / "newer.json").write_text(json.dumps(newer))
    with pytest.raises(ReportError, match=f"saved by a newer sst2mlp \\(schema {contract.SCHEMA_VERSION + 1}\\)"):
        read_document(tmp_path / "newer.json")


def test_a_timing_faster_than_its_floor_is_flagged(tmp_path):
    """A floor is what the machine could not beat: a benchmark below it is named, with its fraction_of_floor."""
    from sst2mlp.report.runs import floors_beaten, load_runs

    document = json.loads(NEW.read_text())
    bench = next(b for b in document["benchmarks"] if b["group"] == "inference" and "floor_seconds" in b["extra_info"])
    bench["extra_info"]["floor_seconds"] = bench["stats"]["median"] * 1.5
    (tmp_path / "beaten.json").write_text(json.dumps(document))
    with pytest.warns(UserWarning, match=r"timing\(s\) faster than the floor"):
        (run,) = load_runs([str(tmp_path / "beaten.json")])
        (saved,) = load_runs([str(NEW)])  # its int8 benchmarks beat floors that counted int8 work at the float rate
    info = bench["extra_info"]
    added = f"{info['impl']} L{info['num_layers']}-H{info['hidden_size']}-V{info['vocab_size']}-T1 B1: 1.50"
    assert added not in floors_beaten(saved) and set(floors_beaten(run)) == {*floors_beaten(saved), added}
    assert all(entry.startswith("int8 ") for entry in floors_beaten(saved))


def test_the_runtimes_table_adds_the_input_preparation_a_request_needs():
    from types import SimpleNamespace

    from sst2mlp.report.runs import Roof
    from sst2mlp.report.tables import with_input_preparation

    row = SimpleNamespace(preparation={"1": 10e-6, "64": 64e-6},
                          roofs={"64": Roof(1e-3, 1e-4, 64, 1e-6), "dev": Roof(1e-2, 1e-3, 872, 1e-6)})
    rec = {"latency_median_ms": 0.02, "throughput_b64_per_s": 64_000.0, "throughput_dev_per_s": 87_200.0}
    out = with_input_preparation(row, rec)
    assert out["latency_with_prep_ms"] == pytest.approx(0.03)  # 20 us + 10 us
    assert out["throughput_b64_with_prep_per_s"] == pytest.approx(64 / (1e-3 + 64e-6))
    assert out["throughput_dev_with_prep_per_s"] is None  # not measured (a run before the suite measured it)


def test_a_compressed_run_reads_as_the_run_and_a_broken_one_is_named(tmp_path, capsys):
    """docs/ keeps runs gzip-compressed: the report (and the gate, through the same reader) reads .json.gz as .json."""
    import gzip

    from sst2mlp.report.runs import find_json_files, read_document

    packed = tmp_path / "runs" / "0001_new.json.gz"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(NEW.read_bytes()))
    assert read_document(packed) == read_document(NEW)
    assert find_json_files([str(packed.parent)]) == [packed]
    assert main([str(packed.parent), "--out", str(tmp_path / "out")]) == 0
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(packed.read_bytes()[:2000])
    assert main([str(cut), "--out", str(tmp_path / "out2")]) == 2
    assert "cut.json.gz: not a whole gzip file" in capsys.readouterr().err
