"""Bad or unusual input, as a new user gives it: one clear error each (issue 10's cases, kept as a regression suite)."""
import errno
import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest

from helpers import QUIET, ROOT, child_env, parse_error, parsed, run_pytest
from sst2mlp import DataError, load_sst2
from sst2mlp.reference.data import resolve_data_dir
from sst2mlp.report import main as report_main
from sst2mlp.suite.plugin import _oversubscribed
from sst2mlp.suite.saving import SaveOptions

NEW = ROOT / "tests" / "data" / "0002_smoke.json"
UNREACHABLE_HUB = "http://127.0.0.1:9"  # connection refused at once, as an offline machine's hub
TINY = ("--sst2-layers=1", "--sst2-widths=8", "--sst2-vocabs=15", "--sst2-train-rounds=1", "--sst2-latency-rounds=20",
        "--sst2-min-time=0.001", *QUIET)


def env_without_data(**extra):
    env = {k: v for k, v in os.environ.items() if k != "SST2_DATA_DIR"}
    return {**env, "HF_ENDPOINT": UNREACHABLE_HUB, **extra}


def write_glue(folder, train, dev):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.tsv").write_bytes(train.encode() if isinstance(train, str) else train)
    (folder / "dev.tsv").write_bytes(dev.encode() if isinstance(dev, str) else dev)
    return folder


# 1. one data error, once, before any benchmark, within seconds ----------------------------------------------------

def test_a_broken_data_folder_stops_the_default_grid_once_before_any_benchmark(tmp_path, run_pytest_here):
    folder = write_glue(tmp_path / "sst2", "sentence\tlabel\na fine film \t1\nbroken row\n", "sentence\tlabel\ngood \t1\n")
    run = run_pytest_here("benchmarks/", f"--sst2-data={folder}")
    output = run.stdout + run.stderr
    assert run.returncode == 4, output[-2000:]
    assert output.count("train.tsv, line 3: expected 2 tab-separated columns") == 1
    assert "passed" not in output and "failed" not in output


def test_offline_without_a_local_copy_stops_before_any_benchmark_and_says_how_to_point_at_one(run_pytest_here):
    run = run_pytest_here("benchmarks/", *TINY, env=env_without_data())
    output = run.stdout + run.stderr
    assert run.returncode == 4 and "passed" not in output, output[-2000:]
    assert output.count("is not reachable") == 1 and "--sst2-data DIR" in output and "SST2_DATA_DIR=DIR" in output


# 2. a bare pytest without data skips the tests that need it, with one reason ----------------------------------------

@pytest.mark.slow
def test_unit_tests_needing_the_real_data_are_skipped_with_one_reason():
    needs_data = "tests/test_training.py::test_short_training_on_real_data_beats_chance"
    run = run_pytest(needs_data, "tests/test_training.py::test_rows_and_labels_must_match", "-rs", "-p", "no:cacheprovider",
                     env=env_without_data())
    assert run.returncode == 0, run.stdout
    assert "1 passed, 1 skipped" in run.stdout and "needs the real SST-2" in run.stdout and "--sst2-data DIR" in run.stdout


# 3. an unreadable file is named ------------------------------------------------------------------------------------

def test_an_unreadable_data_file_is_named(tmp_path, monkeypatch):
    folder = write_glue(tmp_path / "sst2", "sentence\tlabel\ngood \t1\n", "sentence\tlabel\ngood \t1\n")
    real_read_bytes = pathlib.Path.read_bytes

    def read_bytes(path):
        if path.name == "dev.tsv":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_read_bytes(path)

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    with pytest.raises(DataError, match=r"dev\.tsv: cannot read the file \(Permission denied\)"):
        load_sst2(folder)


# 4. a grid that cannot fit in memory is refused before anything is allocated --------------------------------------

def test_a_width_that_cannot_fit_in_memory_is_refused_with_the_estimate(tiny_glue, run_pytest_here):
    run = run_pytest_here("benchmarks/", f"--sst2-data={tiny_glue}", "--sst2-layers=1", "--sst2-widths=100000000",
                     "--sst2-vocabs=15", *QUIET)
    output = run.stdout + run.stderr
    assert run.returncode == 4, output[-2000:]
    assert output.count("configuration L1-H100000000-V15 needs about") == 1 and "GiB are available" in output
    assert "Traceback" not in output and "MemoryError" not in output


# 5. a dev split smaller than a batch -------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_tiny_dev_split_skips_the_batches_it_cannot_fill_and_warns(tiny_glue, run_pytest_here):
    (tiny_glue / "dev.tsv").write_text("sentence\tlabel\nthe film is great fun \t1\n")
    run = run_pytest_here("benchmarks/", f"--sst2-data={tiny_glue}", *TINY, "--sst2-impls=dense", "-k", "throughput", "-rs")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "batch size 64 exceeds the 1 dev examples" in run.stdout and "1 skipped" in run.stdout
    assert "the dev split has only 1 examples: one example moves accuracy by 100.0 points" in run.stdout


# 6. report outputs that cannot be written ---------------------------------------------------------------------------

def test_report_out_that_is_a_file_or_under_a_file_is_named(tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    for out, reason in ((a_file, "File exists"), (a_file / "report", "Not a directory")):
        assert report_main([str(NEW), "--out", str(out)]) == 2
        error = capsys.readouterr().err
        assert f"cannot write the report to {out}" in error and reason in error and len(error.strip().splitlines()) == 1


def test_report_out_on_a_read_only_file_system_is_named(tmp_path, capsys, monkeypatch):
    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
    assert report_main([str(NEW), "--out", str(tmp_path / "out")]) == 2
    assert "Read-only file system" in capsys.readouterr().err


def test_report_warnings_show_no_source_locations(tmp_path, tables_only, capsys):
    document = json.loads(NEW.read_text())
    document["benchmarks"].append(dict(document["benchmarks"][0], name="test_other", fullname="other.py::test_other", extra_info={}))
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps(document))
    assert report_main([str(mixed), "--out", str(tmp_path / "out")]) == 0
    error = capsys.readouterr().err
    assert error.startswith("sst2mlp-report: warning:") and ".py:" not in error.replace("other.py::", "")


# 7. data files from spreadsheets and editors -------------------------------------------------------------------------

def test_a_byte_order_mark_and_trailing_blank_lines_are_accepted(tmp_path):
    folder = write_glue(tmp_path / "sst2", "\ufeffsentence\tlabel\ngood \t1\nbad \t0\n\n\n", "sentence\tlabel\r\ngood \t1\r\n")
    data = load_sst2(folder)
    assert data.train.sentences == ["good ", "bad "] and data.dev.labels.tolist() == [1]


def test_a_blank_line_inside_is_named_as_blank(tmp_path):
    folder = write_glue(tmp_path / "sst2", "sentence\tlabel\ngood \t1\n\nbad \t0\n", "sentence\tlabel\ngood \t1\n")
    with pytest.raises(DataError, match=r"train\.tsv, line 3: the line is blank"):
        load_sst2(folder)


def test_a_unicode_line_separator_stays_inside_its_sentence(tmp_path):
    folder = write_glue(tmp_path / "sst2", "sentence\tlabel\nfirst\u2028half \t1\nbad \t0\n", "sentence\tlabel\ngood \t1\n")
    assert load_sst2(folder).train.sentences == ["first\u2028half ", "bad "]


# 8. options that take one number, and an empty data folder (see also test_options.py) -----------------------------

@pytest.mark.parametrize("option, expected", [
    ("--sst2-train-rounds=0", "argument --sst2-train-rounds: expected a positive integer such as 4, got '0'"),
    ("--sst2-latency-rounds=x", "argument --sst2-latency-rounds: expected a positive integer such as 4, got 'x'"),
    ("--sst2-data=", "argument --sst2-data: expected a folder path, got an empty string"),
])
def test_single_values_are_asked_for_as_such(option, expected):
    assert expected in parse_error(option)


def test_an_empty_environment_variable_means_unset(monkeypatch):
    monkeypatch.setenv("SST2_DATA_DIR", "")
    assert resolve_data_dir(None) is None


# 9. more threads than cores ----------------------------------------------------------------------------------------

def test_more_threads_than_cores_warns():
    cores = len(os.sched_getaffinity(0))
    assert f"--sst2-threads asks for {cores + 1} threads but this process may use {cores} core(s)" in _oversubscribed((1, cores + 1), cores)
    assert _oversubscribed((1, cores), cores) is None


# 10. comparing runs from different machines ------------------------------------------------------------------------

def test_a_comparison_of_different_machines_says_so(tmp_path, tables_only):
    other = json.loads(NEW.read_text())
    other["machine_info"]["cpu_model"] = "a CPU of another make"
    path = tmp_path / "0009_other.json"
    path.write_text(json.dumps(other))
    assert report_main([str(NEW), str(path), "--out", str(tmp_path / "out")]) == 0
    assert "These runs come from different set-ups" in (tmp_path / "out" / "comparison.md").read_text()


# 13. the fused kernel's build: a stale lock, an unwritable folder, no compiler -------------------------------------

def test_a_stale_build_lock_stops_a_real_run_with_one_message(tmp_path):
    """A build killed midway leaves `lock` in the extension's folder, which torch would wait on without end."""
    from sst2mlp.native.kernel import build_directory

    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    folder = tmp_path / build_directory().name
    folder.mkdir()
    (folder / "lock").write_text("")
    code = "import sst2mlp.native.kernel as k\nk.LOCK_WAIT_SECONDS = 1\ntry:\n    k.load_extension()\nexcept k.KernelUnavailable as e:\n    print(e)"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert f"the build lock {folder / 'lock'} is still there after 1 s" in run.stdout, run.stdout + run.stderr
    assert "waiting up to 1 s" in run.stderr


@pytest.mark.slow
def test_a_kernel_that_cannot_be_built_fails_its_benchmarks_with_one_line_each_and_the_others_run(tmp_path, tiny_glue):
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext"), "CXX": "/nonexistent/c++"}
    run = run_pytest("benchmarks/", f"--sst2-data={tiny_glue}", *TINY, "--sst2-impls=dense,fused", "-k", "inference",
                     "--benchmark-disable", env=env)
    assert run.returncode == 1 and re.search(r"\b1 passed\b.* 1 error\b", run.stdout), run.stdout[-3000:]
    errors = run.stdout.split("short test summary info")[0]
    assert errors.count("'/nonexistent/c++' was not found") == 1  # once, as the error of the fused benchmark
    assert len(run.stdout.splitlines()) < 40


# 14. the gate on runs it cannot compare -----------------------------------------------------------------------------

def test_the_gate_fails_when_nothing_was_compared(tmp_path, capsys):
    empty = json.loads(NEW.read_text())
    empty["benchmarks"] = []
    path = tmp_path / "empty.json"
    path.write_text(json.dumps(empty))
    assert report_main(["check", str(NEW), str(path)]) == 2
    assert "have no benchmark in common: nothing to compare" in capsys.readouterr().err


def test_a_median_that_is_not_a_finite_positive_number_is_named_and_fails(tmp_path, capsys):
    broken = json.loads(NEW.read_text())
    name = broken["benchmarks"][5]["name"]
    broken["benchmarks"][5]["stats"]["median"] = float("nan")
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(broken))
    assert report_main(["check", str(NEW), str(path)]) == 1
    output = capsys.readouterr().out
    assert any(line.startswith(name) and line.endswith("invalid median") for line in output.splitlines())
    assert output.strip().splitlines()[-1].startswith("FAIL: 1 invalid median")


@pytest.mark.parametrize("option, expected", [("--threshold=-1", "--threshold: expected a positive fraction"),
                                              ("--threshold=-0.5", "--threshold: expected a positive fraction"),
                                              ("--alpha=2", "--alpha: expected a probability above 0 and below 1"),
                                              ("--alpha=0", "--alpha: expected a probability above 0 and below 1")])
def test_threshold_and_alpha_are_range_checked(option, expected, capsys):
    with pytest.raises(SystemExit) as exit_code:
        report_main(["check", str(NEW), str(NEW), option])
    assert exit_code.value.code == 2 and expected in capsys.readouterr().err


# 15. saving results: checked before the first benchmark; SIGTERM keeps what finished -------------------------------

class Options:
    """pytest's config as SaveOptions.of reads it: getoption by the dest names of pytest-benchmark's options."""

    def __init__(self, **given):
        self.given = given

    def getoption(self, name, default=None):
        return self.given.get(name, default)


def test_a_destination_that_cannot_be_written_is_named(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    assert f"the folder {tmp_path}/missing does not exist" in SaveOptions.of(
        Options(benchmark_json=tmp_path / "missing" / "run.json")).problem()
    assert "is a folder; expected the path of a file" in SaveOptions.of(Options(benchmark_json=tmp_path)).problem()
    storage = f"file://{tmp_path / 'a-file' / 'storage'}"
    assert f"cannot write in {tmp_path / 'a-file'}" in SaveOptions.of(Options(benchmark_autosave=True, benchmark_storage=storage)).problem()
    assert SaveOptions.of(Options(benchmark_autosave=True, benchmark_storage=f"file://{tmp_path / 'new' / 'storage'}")).problem() is None
    assert SaveOptions.of(Options(benchmark_json=tmp_path / "missing" / "run.json", benchmark_disable=True)).problem() is None


@pytest.mark.filterwarnings("ignore:Not saving anything")  # pytest-benchmark's, from the run inside this test
def test_a_run_whose_results_cannot_be_saved_stops_before_any_benchmark(tmp_path, tiny_glue, run_pytest_here):
    run = run_pytest_here("benchmarks/", f"--sst2-data={tiny_glue}", *TINY, f"--benchmark-json={tmp_path / 'missing' / 'run.json'}")
    output = run.stdout + run.stderr
    assert run.returncode == 4 and f"the folder {tmp_path / 'missing'} does not exist" in output, output[-2000:]
    assert "passed" not in output and "Traceback" not in output


@pytest.mark.slow
def test_sigterm_saves_exactly_the_finished_benchmarks_which_the_report_and_the_gate_read(tmp_path, tiny_glue, tables_only, capsys):
    out = tmp_path / "run.json"
    command = [sys.executable, "-m", "pytest", "benchmarks/bench_mlp.py", f"--sst2-data={tiny_glue}", *TINY,
               "--sst2-impls=dense,sparse", "--sst2-min-time=0.5", "-v", "-k", "inference or throughput", f"--benchmark-json={out}"]
    process = subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    passed, lines = [], []
    for line in process.stdout:
        lines.append(line)
        if " PASSED" in line:
            passed.append(line.split("::")[1].split(" ")[0])
            if len(passed) == 2:
                process.send_signal(signal.SIGTERM)  # the third benchmark is under way
                break
    lines += process.stdout.readlines()
    assert process.wait(timeout=120) != 0
    output = "".join(lines)
    saved = json.loads(out.read_text())
    assert sorted(b["name"] for b in saved["benchmarks"]) == sorted(passed), output[-3000:]
    assert f"sst2mlp: the run was interrupted; the 2 finished benchmark(s) are saved in {out}" in output
    assert "Traceback" not in output and "RuntimeError" not in output  # pytest's one line about the interruption only
    assert report_main([str(out), "--out", str(tmp_path / "report")]) == 0
    assert report_main(["check", str(out), str(out)]) == 0
    capsys.readouterr()


# 16. the report on damaged numbers, and a folder that held another report -------------------------------------------

def test_a_nan_in_the_stats_is_named_and_nothing_is_written(tmp_path, capsys):
    document = json.loads(NEW.read_text())
    document["benchmarks"][3]["stats"]["median"] = float("nan")
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(document))
    assert report_main([str(path), "--out", str(tmp_path / "out"), "--strict"]) == 2
    assert f"benchmark {document['benchmarks'][3]['name']} has stats.median = nan" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_overwriting_a_two_run_report_with_one_run_leaves_no_old_comparison(tmp_path, tables_only):
    out = tmp_path / "out"
    assert report_main([str(NEW), str(ROOT / "tests" / "data" / "0003_smoke.json"), "--out", str(out)]) == 0
    assert (out / "comparison.md").exists()
    assert report_main([str(NEW), "--out", str(out)]) == 2  # refused: the folder holds a report
    assert report_main([str(NEW), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "comparison.md").exists() and not (out / "comparison.csv").exists()


# 17. seeds torch cannot take; options whose cost or effect would surprise ------------------------------------------

def test_seeds_beyond_torchs_range_are_refused_by_the_parser():
    assert parsed(f"--sst2-seed={2**64 - 5}").seed == 2**64 - 5  # 5 seeds: the last is 2**64 - 1
    assert "above torch's largest seed 2**64 - 1; expected at most 18446744073709551611" in parse_error(f"--sst2-seed={2**64 - 4}")
    assert "expected at most" in parse_error(f"--sst2-seed={2**64}")


def test_options_whose_cost_or_effect_would_surprise_are_said():
    assert parsed("--sst2-seeds=7", "--sst2-layers=1,2").cost_warnings() == [
        "--sst2-seeds 7 adds 2 untimed training(s) per configuration, 36 in all (the progress estimate does not include them)"]
    assert parsed().cost_warnings() == []
    assert "--benchmark-disable times nothing, so pytest-benchmark saves nothing" in SaveOptions.of(
        Options(benchmark_disable=True, benchmark_json="x.json")).unused()[0]
    assert SaveOptions.of(Options(benchmark_json="x.json")).unused() == []


def test_a_training_split_with_one_class_and_a_folder_with_two_formats_are_said(tmp_path):
    from sst2mlp.suite.corpus import Corpus

    folder = write_glue(tmp_path / "sst2", "sentence\tlabel\ngood \t1\nfine \t1\n", "sentence\tlabel\ngood \t1\nbad \t0\n")
    (folder / "train-00000.parquet").write_bytes(b"")
    notes = Corpus(str(folder)).warnings()
    assert any("holds both GLUE TSV files and parquet files: read train.tsv and dev.tsv" in note for note in notes)
    assert any("the training split has only label 1: every model learns a constant" in note for note in notes)


# 18. parquet files with text labels, or damaged ----------------------------------------------------------------------

def test_parquet_text_labels_and_a_damaged_parquet_file_are_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "sst2"
    folder.mkdir()
    pq.write_table(pa.table({"sentence": ["good", "bad"], "label": ["positive", "negative"]}), folder / "train-00000.parquet")
    pq.write_table(pa.table({"sentence": ["good"], "label": [1]}), folder / "validation-00000.parquet")
    with pytest.raises(DataError, match=r"train-00000\.parquet: column 'label' holds 'positive'; expected the integers 0"):
        load_sst2(folder)
    (folder / "train-00000.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataError, match=r"train-00000\.parquet: cannot read \(.+\); expected readable parquet files"):
        load_sst2(folder)
