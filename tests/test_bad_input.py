"""Bad or unusual input, as a new user gives it: one clear error each (issue 10's cases, kept as a regression suite)."""
import errno
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from helpers import QUIET, ROOT, parse_error, run_pytest
from sst2mlp import DataError, load_sst2
from sst2mlp.data import resolve_data_dir
from sst2mlp.plugin import _oversubscribed
from sst2mlp.report import main as report_main

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

def test_a_broken_data_folder_stops_the_default_grid_once_before_any_benchmark(tmp_path):
    folder = write_glue(tmp_path / "sst2", "sentence\tlabel\na fine film \t1\nbroken row\n", "sentence\tlabel\ngood \t1\n")
    run = run_pytest("benchmarks/", f"--sst2-data={folder}", "-p", "no:cacheprovider")
    output = run.stdout + run.stderr
    assert run.returncode == 4, output[-2000:]
    assert output.count("train.tsv, line 3: expected 2 tab-separated columns") == 1
    assert "passed" not in output and "failed" not in output


def test_offline_without_a_local_copy_stops_before_any_benchmark_and_says_how_to_point_at_one():
    run = run_pytest("benchmarks/", *TINY, env=env_without_data())
    output = run.stdout + run.stderr
    assert run.returncode == 4 and "passed" not in output, output[-2000:]
    assert output.count("is not reachable") == 1 and "--sst2-data DIR" in output and "SST2_DATA_DIR=DIR" in output


# 2. a bare pytest without data skips the tests that need it, with one reason ----------------------------------------

def test_unit_tests_needing_the_real_data_are_skipped_with_one_reason():
    run = run_pytest("tests/test_training.py", "-rs", "-p", "no:cacheprovider", env=env_without_data())
    assert run.returncode == 0, run.stdout
    assert "1 skipped" in run.stdout and "needs the real SST-2" in run.stdout and "--sst2-data DIR" in run.stdout


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

def test_a_width_that_cannot_fit_in_memory_is_refused_with_the_estimate(tiny_glue):
    run = run_pytest("benchmarks/", f"--sst2-data={tiny_glue}", "--sst2-layers=1", "--sst2-widths=100000000",
                     "--sst2-vocabs=15", *QUIET)
    output = run.stdout + run.stderr
    assert run.returncode == 4, output[-2000:]
    assert output.count("configuration L1-H100000000-V15 needs about") == 1 and "GiB are available" in output
    assert "Traceback" not in output and "MemoryError" not in output


# 5. a dev split smaller than a batch -------------------------------------------------------------------------------

def test_a_tiny_dev_split_skips_the_batches_it_cannot_fill_and_warns(tiny_glue):
    (tiny_glue / "dev.tsv").write_text("sentence\tlabel\nthe film is great fun \t1\n")
    run = run_pytest("benchmarks/", f"--sst2-data={tiny_glue}", *TINY, "--sst2-impls=dense", "-rs")
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


def test_report_warnings_show_no_source_locations(tmp_path):
    document = json.loads(NEW.read_text())
    document["benchmarks"].append(dict(document["benchmarks"][0], name="test_other", fullname="other.py::test_other", extra_info={}))
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps(document))
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "sst2mlp.report", str(mixed), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0
    assert run.stderr.startswith("sst2mlp-report: warning:") and ".py:" not in run.stderr.replace("other.py::", "")


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
    other["machine_info"]["cpu_model"] = "AMD EPYC"
    path = tmp_path / "0009_other.json"
    path.write_text(json.dumps(other))
    assert report_main([str(NEW), str(path), "--out", str(tmp_path / "out")]) == 0
    assert "These runs come from different set-ups" in (tmp_path / "out" / "comparison.md").read_text()


# 13. the fused kernel's build: a stale lock, an unwritable folder, no compiler -------------------------------------

def test_a_stale_build_lock_stops_a_real_run_with_one_message(tmp_path):
    """A build killed midway leaves `lock` in the extension's folder, which torch would wait on without end."""
    from sst2mlp.kernel import build_directory

    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    folder = tmp_path / build_directory().name
    folder.mkdir()
    (folder / "lock").write_text("")
    code = "import sst2mlp.kernel as k\nk.LOCK_WAIT_SECONDS = 1\ntry:\n    k.load_extension()\nexcept k.KernelUnavailable as e:\n    print(e)"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert f"the build lock {folder / 'lock'} is still there after 1 s" in run.stdout, run.stdout + run.stderr
    assert "waiting up to 1 s" in run.stderr


def test_a_kernel_that_cannot_be_built_fails_its_benchmarks_with_one_line_each_and_the_others_run(tmp_path, tiny_glue):
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext"), "CXX": "/nonexistent/c++"}
    run = run_pytest("benchmarks/", f"--sst2-data={tiny_glue}", *TINY, "--sst2-impls=dense,fused", "-k", "inference",
                     "--benchmark-disable", env=env)
    assert run.returncode == 1 and re.search(r"\b1 passed\b.* 1 error\b", run.stdout), run.stdout[-3000:]
    assert run.stdout.count("'/nonexistent/c++' was not found") == 1  # once, as the error of the fused benchmark
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
