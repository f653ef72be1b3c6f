import json
import subprocess
import sys
from pathlib import Path

import pytest

from sst2mlp.model import ModelConfig
from sst2mlp.training import accuracy
from sst2mlp.suite import Suite, SuiteOptions, TrainingRuns, parse_positive_ints, percentiles, update_machine_info

ROOT = Path(__file__).resolve().parents[1]
EXTRA_INFO = ["num_layers", "hidden_size", "vocab_size", "impl", "flops", "effective_flops", "params", "accuracy", "train_accuracy", "threads"]


def run_pytest(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_parse_positive_ints():
    assert parse_positive_ints("1,2, 4", "--sst2-layers") == (1, 2, 4)
    assert parse_positive_ints("10000", "--sst2-vocabs") == (10000,)


@pytest.mark.parametrize("text", ["", "1,,2", "a", "0", "-1", "1.5", "2,2", "\u00b2"])
def test_parse_positive_ints_rejects_malformed_lists(text):
    with pytest.raises(ValueError, match="--sst2-widths"):
        parse_positive_ints(text, "--sst2-widths")


def test_default_grid_is_the_reports_27_configurations():
    grid = SuiteOptions().grid()
    assert len(grid) == 27 and len(set(grid)) == 27
    assert ModelConfig(2, 256, 10000) in grid


@pytest.mark.parametrize(
    "option, expected",
    [
        ("--sst2-layers=1,x", "--sst2-layers expects a comma-separated list of positive integers"),
        ("--sst2-train-rounds=0", "--sst2-train-rounds expects a comma-separated list of positive integers"),
        ("--sst2-train-limit=1,2", "--sst2-train-limit expects one positive integer"),
        ("--sst2-impls=dense,onnx", "--sst2-impls: unknown impl 'onnx'; expected some of dense, sparse, torchscript, fused, int8"),
        ("--sst2-train-impls=int8", "--sst2-train-impls: unknown impl 'int8'; expected some of dense, sparse"),
    ],
)
def test_malformed_option_is_a_usage_error(option, expected):
    run = run_pytest("benchmarks/", "--collect-only", "-q", option)
    assert run.returncode == 4
    assert expected in run.stderr


def test_missing_data_folder_is_a_usage_error(tmp_path):
    run = run_pytest("benchmarks/", "--collect-only", "-q", f"--sst2-data={tmp_path / 'nope'}")
    assert run.returncode == 4
    assert f"SST-2 folder {tmp_path / 'nope'} (from --sst2-data or $SST2_DATA_DIR) does not exist" in run.stderr


def test_vocabulary_larger_than_the_training_words_fails_with_one_clear_message(tiny_glue):
    run = run_pytest("benchmarks/", f"--sst2-data={tiny_glue}", "--sst2-layers=1", "--sst2-widths=8", "--sst2-vocabs=10,500",
                     "--sst2-impls=dense", "-k", "training", "-p", "no:cacheprovider")
    assert run.returncode == 1
    assert "--sst2-vocabs: vocabulary size 500 exceeds the 20 distinct words of the training split" in run.stdout
    assert "features.py" not in run.stdout  # the message, not a traceback into the library


def test_options_are_documented_in_pytest_help():
    help_text = run_pytest("--help").stdout
    for option in ("--sst2-layers", "--sst2-widths", "--sst2-vocabs", "--sst2-impls", "--sst2-train-impls", "--sst2-threads",
                   "--sst2-train-rounds", "--sst2-train-limit", "--sst2-latency-rounds", "--sst2-data"):
        assert option in help_text


def test_grid_options_select_benchmarks_with_readable_ids():
    run = run_pytest(
        "benchmarks/", "--collect-only", "-q", "--sst2-layers=1", "--sst2-widths=8,16", "--sst2-vocabs=10",
        "--sst2-threads=1,2", "--sst2-impls=sparse,int8", "--sst2-train-impls=sparse", "-k", "inference or training",
    )
    ids = [line.split("::")[1] for line in run.stdout.splitlines() if "::" in line]
    assert ids == [f"test_training[L1-H{h}-V10-T{t}-sparse-B64]" for h in (8, 16) for t in (1, 2)] + [
        f"test_inference[L1-H{h}-V10-T{t}-{impl}-B1]" for h in (8, 16) for t in (1, 2) for impl in ("sparse", "int8")
    ], run.stdout + run.stderr


def test_machine_info_records_torch_and_drops_the_momentary_clock():
    machine_info = {"cpu": {"brand_raw": "x", "hz_actual": [1, 0], "hz_actual_friendly": "1 GHz", "hz_advertised": [1, 0]}}
    update_machine_info(machine_info, SuiteOptions(threads=(1, 2)))
    assert machine_info["cpu"] == {"brand_raw": "x", "hz_advertised": [1, 0]}
    import torch

    assert machine_info["torch"]["version"] == torch.__version__
    assert machine_info["torch"]["threads"] == [1, 2]
    assert {"blas", "cpu_capability"} <= set(machine_info["torch"])
    assert machine_info["cpu_model"]
    assert machine_info["fused_kernel"]["flags"] == ["-O3", "-march=native"]
    assert machine_info["fused_kernel"]["compiler_version"]  # e.g. "c++ (Debian 12.2.0-14) 12.2.0"


def test_machine_info_describes_the_fused_kernel_only_when_it_runs(monkeypatch):
    machine_info = {}
    update_machine_info(machine_info, SuiteOptions(impls=("dense", "int8")))
    assert "fused_kernel" not in machine_info
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    update_machine_info(machine_info, SuiteOptions(impls=("fused",)))
    assert machine_info["fused_kernel"]["compiler"] == "/nonexistent/c++"
    assert machine_info["fused_kernel"]["compiler_version"].startswith("unavailable (")


def test_percentiles():
    assert percentiles([float(i) for i in range(101)]) == {"p50": 50.0, "p90": 90.0, "p99": 99.0}


def test_the_warm_up_training_serves_accuracy_and_inference(tiny_glue):
    suite = Suite(SuiteOptions(data_dir=str(tiny_glue)))
    config = ModelConfig(1, 8, 20)
    runs = TrainingRuns(suite, config, sparse=False)
    for _ in range(3):  # what benchmark.pedantic does: setup, run, teardown per round
        args, _ = runs.setup()
        runs.run(*args)
        runs.teardown(*args)
    first = suite.model_for(config)
    assert suite.trainings == 3 and first.result is runs.results[0]
    other = ModelConfig(1, 8, 10)
    suite.model_for(other)
    suite.model_for(other)
    assert suite.trainings == 4
    info = suite.extra_info(config, "dense", threads=1, group="inference")
    assert info["flops"] == info["effective_flops"] == (2 * 20 * 8 + 8) + (2 * 8 * 8 + 8) + (2 * 8 + 1)
    dev = suite.features(20).dev
    assert info["accuracy"] == accuracy(first.model, dev, suite.dev_labels)
    assert suite.extra_info(config, "int8", threads=1, group="inference")["params"] == info["params"]
    assert suite.extra_info(config, "torchscript", threads=1, group="throughput")["accuracy"] == info["accuracy"]
    fused = suite.extra_info(config, "fused", threads=1, group="inference")
    assert fused["accuracy"] == info["accuracy"]
    assert fused["effective_flops"] < suite.extra_info(config, "sparse", threads=1, group="inference")["effective_flops"]
    assert suite.trainings == 4  # every impl is made from the same trained dense model
    sparse_training = suite.extra_info(config, "sparse", threads=1, group="training")
    assert suite.trainings == 5  # the sparse training benchmark describes its own model
    assert sparse_training["accuracy"] == accuracy(suite.model_for(config, sparse=True).model, dev, suite.dev_labels)


def test_smoke_benchmark_saves_params_and_extra_info(tiny_glue, tmp_path):
    out = tmp_path / "run.json"
    run = run_pytest(
        "benchmarks/", f"--sst2-data={tiny_glue}", "--sst2-layers=1,2", "--sst2-widths=8", "--sst2-vocabs=15",
        "--sst2-impls=dense,sparse,fused", "--sst2-train-impls=dense,sparse", "--sst2-train-rounds=2", "--sst2-latency-rounds=50", f"--benchmark-json={out}",
        "-p", "no:cacheprovider",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # 2 configurations x (dense, sparse) x (1 warm-up + 2 timed trainings): nothing trained twice
    assert f"sst2mlp: SST-2 from {tiny_glue}: train 2,000 rows, dev 100 rows; 12 trainings run" in run.stdout
    saved = json.loads(out.read_text())
    benchmarks = {b["name"]: b for b in saved["benchmarks"]}
    expected = [f"test_{g}[L{n}-H8-V15-T1-{impl}-B{b}]" for g, b in (("training", 64), ("inference", 1)) for n in (1, 2) for impl in ("dense", "sparse")]
    expected += [f"test_inference[L{n}-H8-V15-T1-fused-B1]" for n in (1, 2)]
    expected += [f"test_throughput[L{n}-H8-V15-T1-{impl}-B{b}]" for n in (1, 2) for impl in ("dense", "sparse", "fused") for b in (64, "dev")]
    assert sorted(benchmarks) == sorted(expected)
    for bench in benchmarks.values():
        assert set(bench["params"]) == {"num_layers", "hidden_size", "vocab_size", "threads", "impl", "batch_size"}
        info = bench["extra_info"]
        assert set(EXTRA_INFO) <= set(info)
        assert info["impl"] == bench["params"]["impl"]
        if bench["group"] == "training":
            assert bench["stats"]["rounds"] == 2 and len(info["epoch_seconds"]) == 2
            assert all(len(epochs) == 2 for epochs in info["epoch_seconds"])
        elif bench["group"] == "inference":
            assert bench["stats"]["rounds"] == 50
            assert info["p50"] <= info["p90"] <= info["p99"]
        else:
            assert bench["group"] == "throughput"
            assert info["batch_examples"] == (64 if bench["params"]["batch_size"] == 64 else 100)
            assert info["examples_per_second"] == pytest.approx(info["batch_examples"] / bench["stats"]["median"])
    assert saved["machine_info"]["torch"]["threads"] == [1]
    # latency and throughput of every exact impl use the dense training's warm-up model: one accuracy
    accuracy = {b["extra_info"]["accuracy"] for b in saved["benchmarks"] if b["params"]["num_layers"] == 2 and b["group"] != "training"}
    dense_training = benchmarks["test_training[L2-H8-V15-T1-dense-B64]"]["extra_info"]["accuracy"]
    assert accuracy == {dense_training}
