import dataclasses
import json
import re
from types import SimpleNamespace

import pytest
import torch

from helpers import QUIET, run_pytest
from sst2mlp import contract
from sst2mlp.contract import QuietGateInfo
from sst2mlp.measure.machine import update_machine_info
from sst2mlp.measure.timing import CyclingInputs, Timing
from sst2mlp.reference.model import ModelConfig
from sst2mlp.reference.training import accuracy
from sst2mlp.suite.case import BenchmarkCase
from sst2mlp.suite.models import trainer_of
from sst2mlp.suite.options import SuiteOptions
from sst2mlp.suite.session import Suite

TINY_GRID = ("--sst2-layers=1,2", "--sst2-widths=8", "--sst2-vocabs=15", "--sst2-train-rounds=2", "--sst2-latency-rounds=50",
             "--sst2-min-time=0.01", *QUIET)


def test_vocabulary_larger_than_the_training_words_fails_with_one_clear_message(tiny_glue, run_pytest_here):
    run = run_pytest_here("benchmarks/", f"--sst2-data={tiny_glue}", "--sst2-layers=1", "--sst2-widths=8", "--sst2-vocabs=10,500",
                     "--sst2-impls=dense", "-k", "training", *QUIET)
    assert run.returncode == 4  # stopped once, before any benchmark
    assert run.stdout.count("--sst2-vocabs: vocabulary size 500 exceeds the 20 distinct words of the training split") == 1
    assert "features.py" not in run.stdout  # the message, not a traceback into the library


def test_grid_options_select_benchmarks_with_readable_ids(run_pytest_here):
    run = run_pytest_here(
        "benchmarks/", "--collect-only", "-q", "--sst2-layers=1", "--sst2-widths=8,16", "--sst2-vocabs=10",
        "--sst2-threads=1,2", "--sst2-impls=sparse,int8", "--sst2-train-impls=sparse", "-k", "inference or training",
    )
    ids = [line.split("::")[1] for line in run.stdout.splitlines() if "::" in line]
    # configuration by configuration (sst2mlp.suite.schedule: the larger first), each in pytest's order: training first
    assert ids == [id_ for h in (16, 8) for id_ in (
        [f"test_training[L1-H{h}-V10-T{t}-sparse-B64]" for t in (1, 2)] +
        [f"test_inference[L1-H{h}-V10-T{t}-{impl}-B1]" for t in (1, 2) for impl in ("sparse", "int8")])
    ], run.stdout + run.stderr


def test_machine_info_records_torch_and_drops_the_momentary_clock():
    machine_info = {"cpu": {"brand_raw": "x", "hz_actual": [1, 0], "hz_actual_friendly": "1 GHz", "hz_advertised": [1, 0]}}
    update_machine_info(machine_info, threads=(1, 2), impls=("dense", "fused"), denormals={"mode": "flush", "flush_supported": True})
    assert machine_info["cpu"] == {"brand_raw": "x", "hz_advertised": [1, 0]}
    assert machine_info["torch"]["version"] == torch.__version__
    assert machine_info["torch"]["threads"] == [1, 2]
    assert machine_info["torch"]["blas"] in ("mkl", "open", "openblas", "blis", "accelerate", "eigen")
    assert machine_info["torch"]["cpu_capability"] in ("DEFAULT", "AVX2", "AVX512", "NO AVX", "VSX", "ZVECTOR", "SVE256")
    assert {"-O3", "-march=native"} <= set(machine_info["fused_kernel"]["flags"])  # built for this CPU, optimized
    assert machine_info["denormals"] == {"mode": "flush", "flush_supported": True}


def test_machine_info_describes_the_fused_kernel_only_when_it_runs(monkeypatch):
    machine_info = {}
    update_machine_info(machine_info, threads=(1,), impls=("dense", "int8"), denormals={})
    assert "fused_kernel" not in machine_info
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    update_machine_info(machine_info, threads=(1,), impls=("fused",), denormals={})
    assert machine_info["fused_kernel"]["compiler"] == "/nonexistent/c++"
    assert machine_info["fused_kernel"]["compiler_version"].startswith("unavailable (")


class FakeBenchmark:
    """What the suite's records read of pytest-benchmark's fixture after pedantic: timed, or not (--benchmark-disable)."""

    def __init__(self, group, rounds=None, name="b"):
        self.group, self.name, self.extra_info, self.enabled = group, name, {}, rounds is not None
        self.fullname = f"benchmarks/bench_mlp.py::{name}"
        self.stats = None if rounds is None else SimpleNamespace(stats=SimpleNamespace(data=list(rounds)))


def pedantic_rounds(runs, calls: int) -> None:
    """What benchmark.pedantic does with setup and target: `calls` rounds (warm-up included)."""
    for _ in range(calls):
        args, _ = runs.setup()
        runs.run(*args)


def trained_case(suite, config, impl="dense", calls=None):
    """A training benchmark's rounds as pedantic runs them, and its record."""
    runs = suite.training_runs(config, trainer_of(impl), timed=True)
    pedantic_rounds(runs, runs.rounds if calls is None else calls)
    benchmark = FakeBenchmark("training", rounds=[1.0] * (runs.rounds - 1))
    case = BenchmarkCase(suite, config, impl, threads=1)
    return runs, case.training(runs, benchmark)


def test_the_warm_up_training_serves_accuracy_and_inference(tiny_glue):
    suite = Suite(SuiteOptions(data_dir=str(tiny_glue), train_rounds=2, train_impls=("dense",)))
    config = ModelConfig(1, 8, 20)
    runs, record = trained_case(suite, config)
    first = suite.models.model_for(config, trainer_of("dense"))
    assert suite.models.trainings == 3 and first.result is runs.results[0] and record.model.accuracy == first.accuracy
    other = ModelConfig(1, 8, 10)
    suite.models.model_for(other, trainer_of("dense"))
    suite.models.model_for(other, trainer_of("dense"))
    assert suite.models.trainings == 4
    info = inference_record(BenchmarkCase(suite, config, "dense", 1)).model
    assert info.flops == info.effective_flops == (2 * 20 * 8 + 8) + (2 * 8 * 8 + 8) + (2 * 8 + 1) == config.flops
    assert info.params == config.params == (20 + 1) * 8 + (8 + 1) * 8 + 8 + 1
    dev = suite.corpus.features(20).dev
    assert info.accuracy == accuracy(first.model, dev, suite.corpus.dev_labels)
    torchscript = inference_record(BenchmarkCase(suite, config, "torchscript", 1)).model
    fused = inference_record(BenchmarkCase(suite, config, "fused", 1)).model
    sparse = inference_record(BenchmarkCase(suite, config, "sparse", 1)).model
    assert torchscript.accuracy == fused.accuracy == info.accuracy and fused.trained_impl == "dense"
    assert fused.effective_flops < sparse.effective_flops
    assert suite.models.trainings == 4  # every impl is made from the same trained dense model
    _, sparse_training = trained_case(suite, config, "sparse")
    assert suite.models.trainings == 7 and sparse_training.model.trained_impl == "sparse"
    assert sparse_training.model.accuracy == accuracy(suite.models.kept[(config, "sparse")].model, dev, suite.corpus.dev_labels)


def test_a_training_benchmark_describes_its_own_model_when_one_is_kept_already(tiny_glue):
    suite = Suite(SuiteOptions(data_dir=str(tiny_glue), train_rounds=1))
    config = ModelConfig(1, 8, 20)
    kept = suite.models.model_for(config, trainer_of("dense"))  # an inference benchmark ran first
    stand_in = dataclasses.replace(kept, accuracy=-1.0)
    suite.models.kept[(config, "dense")] = stand_in
    runs, record = trained_case(suite, config)
    assert suite.models.kept[(config, "dense")] is stand_in  # the impls keep the model they were made from
    assert record.model.accuracy == record.seeds.accuracy.accuracy_seeds[0] != -1.0  # the benchmark's own round-0 model
    assert record.model.final_loss == runs.results[0].final_loss
    with pytest.raises(ValueError, match="only seed 0's models are kept, got seed 1"):
        suite.models.keep(dataclasses.replace(kept, seed=1))


def test_a_profiling_round_after_the_rounds_is_not_recorded(tiny_glue):
    """--benchmark-cprofile makes pedantic call setup and target once more after the timed rounds."""
    suite = Suite(SuiteOptions(data_dir=str(tiny_glue), train_rounds=2))
    runs, record = trained_case(suite, ModelConfig(1, 8, 20), calls=4)
    assert len(runs.results) == 3 and runs.seeds == [0, 1, 2]
    assert record.seeds.accuracy.seeds == [0, 1, 2] and len(record.epoch_seconds) == 2


def inference_record(case):
    """An untimed inference record of `case` (no rounds: no percentiles, no input preparation)."""
    return case.inference(case.batches(1), Timing())


def test_the_record_of_every_group_holds_the_contract_fields(tiny_glue):
    suite = Suite(SuiteOptions(data_dir=str(tiny_glue), train_rounds=1, quiet_wait=0, train_impls=("dense",)))
    config = ModelConfig(1, 8, 20)
    _, training = trained_case(suite, config)
    timing = Timing([1e-6, 2e-6, 3e-6], QuietGateInfo(1.0, 0.0, 0.0))
    case = BenchmarkCase(suite, config, "int8", 1)
    records = {"training": training, "inference": case.inference(case.batches(1), timing),
               "throughput": case.throughput(CyclingInputs(case.variant.variant, case.dev, 4), timing, None)}
    for group, record in records.items():
        benchmark = FakeBenchmark(group)
        suite.write(benchmark, record, timed=True)
        assert set(contract.extra_info_fields(group)) <= set(benchmark.extra_info), group
        assert set(benchmark.extra_info) <= set(contract.extra_info_fields(group, include_optional=True)), group
    assert len(benchmark.extra_info["accuracy_seeds"]) == 2  # int8 carries its own accuracy over the seeds
    incomplete = FakeBenchmark("inference")
    with pytest.raises(RuntimeError, match="left out extra_info fields of the inference group: p50, p90, p99"):
        suite.write(incomplete, inference_record(case), timed=True)


@pytest.mark.slow
def test_smoke_benchmark_saves_the_contract(tiny_glue, tmp_path):
    """Every group, dense's cold start included (3 processes, warm-up included: the other impls' would add as many)."""
    out = tmp_path / "run.json"
    run = run_pytest("benchmarks/", f"--sst2-data={tiny_glue}", *TINY_GRID, "--sst2-impls=dense,sparse,fused",
                     "--sst2-train-impls=dense,sparse", f"--benchmark-json={out}", "--sst2-progress=on",
                     "--sst2-coldstart-rounds=2", "-k", "not coldstart or dense")
    assert run.returncode == 0, run.stdout + run.stderr
    # the progress display on a plain output (not a terminal): the first line and the last (the rest every 30 s)
    assert "sst2mlp: 0/23 benchmarks done" in run.stdout and "sst2mlp: 23/23 benchmarks done" in run.stdout
    # 2 configurations x (dense, sparse) x (1 warm-up + 2 timed trainings): nothing trained twice
    assert f"sst2mlp: SST-2 from {tiny_glue}: train 2,000 rows, dev 100 rows; 12 trainings run" in run.stdout
    assert f"sst2mlp: results saved in {out}" in run.stdout
    saved = json.loads(out.read_text())
    benchmarks = {b["name"]: b for b in saved["benchmarks"]}
    expected = [f"test_{g}[L{n}-H8-V15-T1-{impl}-B{b}]" for g, b in (("training", 64), ("inference", 1)) for n in (1, 2) for impl in ("dense", "sparse")]
    expected += [f"test_inference[L{n}-H8-V15-T1-fused-B1]" for n in (1, 2)]
    expected += [f"test_throughput[L{n}-H8-V15-T1-{impl}-B{b}]" for n in (1, 2) for impl in ("dense", "sparse", "fused") for b in (64, "dev")]
    expected += ["test_coldstart[L2-H8-V15-T1-dense-B1]"]  # at the configuration nearest the baseline
    assert sorted(benchmarks) == sorted(expected)
    for bench in benchmarks.values():
        assert contract.missing_fields(bench) == [], bench["name"]
        info = bench["extra_info"]
        assert info["impl"] == bench["params"]["impl"]
        if bench["group"] == "training":
            assert info["trained_impl"] == info["impl"]
            assert bench["stats"]["rounds"] == 2 and len(info["epoch_seconds"]) == 2
            assert all(len(epochs) == 2 for epochs in info["epoch_seconds"])
        elif bench["group"] == "coldstart":
            assert bench["stats"]["rounds"] == 2 and len(set(info["coldstart_pids"])) == 2
            assert info["coldstart_total_seconds"] <= bench["stats"]["max"]  # the stamps fall inside the parent's timing
            assert info["kernel_build_seconds"] is None  # fused impls only
        elif bench["group"] == "inference":
            assert info["trained_impl"] == "dense"
            assert bench["stats"]["rounds"] >= 50  # and as many more as 0.01 s of measuring takes
            assert 0 < info["input_preparation_seconds"] < bench["stats"]["max"] * 100  # measured, and of a call's order
            assert info["p50"] <= info["p90"] <= info["p99"]
        else:
            assert info["batch_examples"] == (64 if bench["params"]["batch_size"] == 64 else 100)
            assert info["examples_per_second"] == pytest.approx(info["batch_examples"] / bench["stats"]["median"])
    assert saved["machine_info"]["torch"]["threads"] == [1]
    limits = saved["machine_info"]["limits"]["1"]  # measured before the first timed benchmark
    assert limits["peak_gflops"] > 0 and limits["int8_peak_gflops"] > 0 and min(limits["read_gb_per_s"].values()) > 0
    assert limits["call_floor_seconds"] > 0
    assert limits["peak_gflops"] == max(*limits["matmul_gflops"].values(), limits["fma_peak_gflops"]) and "64x8@8x8" in limits["matmul_gflops"]
    assert limits["int8_peak_gflops"] >= limits["peak_gflops"]
    fused = benchmarks["test_inference[L2-H8-V15-T1-fused-B1]"]
    assert limits["call_floor_seconds"] < fused["stats"]["median"]
    for bench in (b for b in benchmarks.values() if b["group"] != "coldstart"):  # a process start has no roofline
        info = bench["extra_info"]
        assert info["fraction_of_floor"] == pytest.approx(info["floor_seconds"] / bench["stats"]["median"])
        if bench["group"] == "training":  # every step's Adam update at least, the same floor for both trainers
            steps = 2 * -(-info["train_examples"] // 64)
            assert info["floor_seconds"] >= steps * info["adam_step_seconds"] > 0
        else:
            assert info["floor_seconds"] >= limits["call_floor_seconds"]
    trainers = [benchmarks[f"test_training[L2-H8-V15-T1-{impl}-B64]"]["extra_info"] for impl in ("dense", "sparse")]
    assert trainers[0]["floor_seconds"] == pytest.approx(trainers[1]["floor_seconds"])  # one Adam step measured for both
    # latency and throughput of every exact impl use the dense training's warm-up model: one accuracy
    accuracy = {b["extra_info"]["accuracy"] for b in saved["benchmarks"] if b["params"]["num_layers"] == 2 and b["group"] != "training"}
    dense_training = benchmarks["test_training[L2-H8-V15-T1-dense-B64]"]["extra_info"]["accuracy"]
    assert accuracy == {dense_training}


@pytest.mark.slow
def test_benchmark_disable_runs_every_body_once_and_passes(tiny_glue):
    run = run_pytest("benchmarks/", f"--sst2-data={tiny_glue}", *TINY_GRID, "--sst2-train-impls=dense,sparse",
                     "--sst2-impls=dense,fused", "--benchmark-disable", "-rA")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    passed = [line for line in run.stdout.splitlines() if line.startswith("PASSED")]
    # per configuration: 2 trainings, 2 latencies, 4 throughputs; 2 cold starts at the configuration nearest the baseline
    assert len(passed) == 2 * (2 + 2 + 2 * 2) + 2
    # one untimed round per training benchmark; inference reuses the dense trainings
    assert "4 trainings run" in run.stdout and "results saved" not in run.stdout


def test_benchmark_skip_runs_no_benchmark_and_no_training(tiny_glue, run_pytest_here):
    skip = run_pytest_here("benchmarks/", "tests/test_data.py::test_missing_folder_is_named", f"--sst2-data={tiny_glue}",
                      *TINY_GRID, "--benchmark-skip", "-rs")
    assert skip.returncode == 0, skip.stdout + skip.stderr
    counts = re.search(r"(\d+) passed, (\d+) skipped", skip.stdout)
    assert counts and counts.group(1) == "1" and int(counts.group(2)) >= 38 and "trainings run" not in skip.stdout


def test_every_round_has_its_own_seed_and_a_seed_reproduces_its_model(tiny_glue):
    suite = Suite(SuiteOptions(data_dir=str(tiny_glue), train_rounds=2, seed=7, seeds=5, impls=("dense", "int8"),
                               train_impls=("dense",)))
    config = ModelConfig(1, 8, 20)
    runs, record = trained_case(suite, config)
    assert record.seeds.accuracy.seeds == [7, 8, 9, 10, 11] and record.seeds.seed_trained_impls == ["dense"] * 3 + ["sparse"] * 2
    assert suite.models.trainings == 5  # 3 timed-benchmark rounds, 2 untimed extra seeds
    assert len({tuple(r.epoch_losses) for r in runs.results}) == 3  # different weights and shuffling per round
    again = Suite(SuiteOptions(data_dir=str(tiny_glue), train_rounds=2, seed=8, seeds=3, impls=("dense", "int8")))
    runs_again, record_again = trained_case(again, config)
    assert record_again.seeds.accuracy.accuracy_seeds[:2] == record.seeds.accuracy.accuracy_seeds[1:3]  # seeds 8 and 9 reproduce
    assert runs_again.results[0].epoch_losses == runs.results[1].epoch_losses
    assert record.seeds.accuracy.accuracy_ci95[0] <= record.seeds.accuracy.accuracy_mean <= record.seeds.accuracy.accuracy_ci95[1]
    int8 = inference_record(BenchmarkCase(suite, config, "int8", 1)).approximate_seeds
    assert len(int8.accuracy.accuracy_seeds) == 5 and int8.reference_accuracy_seeds == record.seeds.accuracy.accuracy_seeds
