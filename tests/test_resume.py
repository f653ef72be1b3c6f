"""A run that fits a small machine: the journal and --sst2-resume, the configuration-by-configuration order that lets
a run release each configuration, the run-wide waiting budget, and the run's own record (sessions, peak memory)."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import QUIET, ROOT, child_env, run_pytest
from sst2mlp.measure.quiet_gate import Canary, QuietGate, WaitBudget
from sst2mlp.reference.model import ModelConfig
from sst2mlp.suite.journal import Journal, JournalError, RunIdentity, merged_run
from sst2mlp.suite.options import SuiteOptions
from sst2mlp.suite.schedule import by_configuration, configuration_of, last_of_configuration, spread

SMALL = ("benchmarks/bench_mlp.py", "--sst2-layers=1,2", "--sst2-widths=8", "--sst2-vocabs=15", "--sst2-impls=dense,sparse,fused",
         "--sst2-train-rounds=1", "--sst2-latency-rounds=50", "--sst2-min-time=0.01", "--sst2-coldstart=off", *QUIET)


def item(nodeid, config=None):
    params = {} if config is None else dict(zip(("num_layers", "hidden_size", "vocab_size"), config))
    return SimpleNamespace(nodeid=nodeid, callspec=SimpleNamespace(params=params))


def test_benchmarks_run_configuration_by_configuration_in_pytests_order_within_each():
    items = [item("train-a", (1, 8, 10)), item("train-b", (2, 8, 10)), item("unit"), item("infer-a", (1, 8, 10)),
             item("infer-b", (2, 8, 10)), item("cold-b", (2, 8, 10))]
    ordered = by_configuration(items)
    assert [i.nodeid for i in ordered] == ["unit", "train-b", "infer-b", "cold-b", "train-a", "infer-a"]  # larger first
    last = last_of_configuration([(i.nodeid, configuration_of(i)) for i in ordered])
    assert last == {"infer-a": ModelConfig(1, 8, 10), "cold-b": ModelConfig(2, 8, 10)}


def test_configurations_run_from_both_ends_of_the_size_range_inwards():
    assert spread(9) == [8, 0, 4, 2, 6, 1, 3, 5, 7] and spread(2) == [1, 0] and spread(1) == [0]
    assert sorted(spread(27)) == list(range(27))
    grid = [ModelConfig(n, h, k) for n in (1, 2, 4) for h in (128, 256, 512) for k in (1000, 5000, 10000)]
    ordered = [configuration_of(i) for i in by_configuration([item(c.id, (c.num_layers, c.hidden_size, c.vocab_size)) for c in grid])]
    assert ordered[:2] == [ModelConfig(4, 512, 10000), ModelConfig(1, 128, 1000)]  # the first tenth spans the grid


def test_the_run_wide_budget_caps_waiting_at_its_share_of_the_run():
    now = [0.0]
    clock = lambda: now[0]

    def sleep(seconds):
        now[0] += seconds
    budget = WaitBudget(0.1, clock=clock)
    slow = Canary(measure=lambda: 2e-6, best=1e-6)  # always at half speed
    now[0] = 100.0  # the run has taken 100 s: 10 s of waiting allowed in all
    gates = [QuietGate(slow, lambda: ((), {}), max_wait=8.0, sleep=sleep, clock=clock, pause=0.01, budget=budget)
             for _ in range(3)]
    for gate in gates:
        gate()
    waited = [gate.waited for gate in gates]
    assert waited[0] == pytest.approx(8.0, abs=0.02)  # its own budget first
    assert sum(waited) <= 0.1 * now[0] + 0.02 and budget.spent == pytest.approx(sum(waited))
    assert gates[2].info()["measured_while_slow"] == 1.0  # measured anyway once the run's budget was spent, and said so


def test_identity_names_each_difference_and_may_allow_another_commit():
    options = SuiteOptions()
    earlier = RunIdentity.current(options, ["a", "b"], {"id": "1" * 40, "dirty": False})
    assert earlier.differences(earlier, any_commit=False) == []
    now = RunIdentity.current(SuiteOptions(min_time=2.0, progress="off"), ["a"], {"id": "2" * 40, "dirty": False})
    found = now.differences(earlier, any_commit=False)
    assert found[0] == "option min_time: 0.5 then, 2.0 now"  # --sst2-progress changes nothing measured
    assert found[1].startswith("the benchmarks selected: 2 then, 1 now (0 added, 1 dropped")
    assert found[2].startswith("commit: 111111111111 then, 222222222222 now")
    assert len(found) == 3 and len(now.differences(earlier, any_commit=True)) == 2
    moved = RunIdentity(**{**earlier.__dict__, "machine": {**earlier.machine, "model": "elsewhere"}})
    assert any(d.startswith("machine model:") for d in moved.differences(earlier, any_commit=True))


def test_a_journal_drops_a_line_cut_short_and_refuses_one_changed_by_hand(tmp_path):
    identity = RunIdentity.current(SuiteOptions(), ["x::a", "x::b"], {"id": None})
    journal = Journal.create(tmp_path, identity)
    journal.append({"fullname": "x::a", "stats": {}}, {"id": "s1", "wall_seconds": 1.0, "peak_rss_bytes": 5})
    with journal.path.open("a") as file:
        file.write('{"benchmark": {"fullname": "x::b"')  # a crash in the middle of a write
    read = Journal.read(journal.path)
    assert read.finished() == {"x::a"} and read.cut_bytes > 0 and read.sessions[0]["ended"] is False
    read.drop_cut_line()
    read.append({"fullname": "x::b", "stats": {}}, {"id": "s2", "wall_seconds": 2.0, "peak_rss_bytes": 6})
    assert Journal.read(journal.path).finished() == {"x::a", "x::b"}
    journal.path.write_text(journal.path.read_text() + "not json\n")
    with pytest.raises(JournalError, match="line 4 is not a journal entry"):
        Journal.read(journal.path)
    with pytest.raises(JournalError, match="is not a sst2mlp-journal/1 header"):
        Journal.read(Path(__file__))


def test_a_resumed_run_saves_every_session_once_in_plan_order():
    plan = ["a", "b", "c"]
    merged = merged_run([{"fullname": "c", "v": 1}, {"fullname": "a", "v": 1}], [{"fullname": "b", "v": 2}], plan)
    assert [(r["fullname"], r["v"]) for r in merged] == [("a", 1), ("b", 2), ("c", 1)]


def _journal_lines(storage: Path) -> int:
    return sum(len(path.read_text().splitlines()) for path in (storage / "partial").glob("*.jsonl"))


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_every_planned_benchmark_once_in_plan_order(tiny_glue, tmp_path):
    data = f"--sst2-data={tiny_glue}"
    planned = run_pytest(*SMALL, data, "-q", "--collect-only")  # the plan: every benchmark, in the order the run takes
    plan = [line for line in planned.stdout.splitlines() if line.startswith("benchmarks/")]
    assert planned.returncode == 0 and len(plan) == 20, planned.stdout + planned.stderr
    storage = tmp_path / "killed"
    command = [sys.executable, "-m", "pytest", "-p", "pytest_benchmark.plugin", *SMALL, data, "-q", "--benchmark-autosave",
               f"--benchmark-storage=file://{storage}"]
    env = {**child_env(), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while _journal_lines(storage) < 6 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    (journal,) = (storage / "partial").glob("*.jsonl")
    kept = Journal.read(journal).finished()
    assert 5 <= len(kept) < 20 and not list(storage.glob("*/*.json"))  # killed midway: only the journal holds them

    refused = run_pytest(*SMALL, data, "-q", "--benchmark-autosave", f"--benchmark-storage=file://{storage}",
                         f"--sst2-resume={journal}", "--sst2-train-rounds=2")
    assert refused.returncode == 4 and "option train_rounds: 1 then, 2 now" in refused.stderr, refused.stderr
    refused = run_pytest(*SMALL, data, "-q", f"--sst2-resume={journal}")
    assert refused.returncode == 4 and "this run saves nothing" in refused.stderr
    resumed = run_pytest(*SMALL, data, "-q", "--benchmark-autosave", f"--benchmark-storage=file://{storage}",
                         f"--sst2-resume={journal}")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{20 - len(kept)} passed" in resumed.stdout
    (saved,) = storage.glob("*/*.json")
    assert [b["fullname"] for b in json.loads(saved.read_text())["benchmarks"]] == plan  # each once, in plan order
    run_info = json.loads(saved.read_text())["machine_info"]["sst2mlp_run"]
    assert [s["ended"] for s in run_info["sessions"]] == [False, True] and run_info["peak_rss_bytes"] > 0
    for command in (["sst2mlp.report.cli", str(storage), "--out", str(tmp_path / "report"), "--strict"],
                    ["sst2mlp.report.cli", "check", str(saved), str(saved)]):
        report = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, env=child_env())
        assert report.returncode == 0, report.stdout + report.stderr


@pytest.mark.slow
def test_a_training_only_run_records_its_training_floor(tiny_glue, tmp_path):
    out = tmp_path / "run.json"
    run = run_pytest(*SMALL, f"--sst2-data={tiny_glue}", "-q", "-k", "training", f"--benchmark-json={out}")
    assert run.returncode == 0, run.stdout + run.stderr
    benchmarks = json.loads(out.read_text())["benchmarks"]
    assert len(benchmarks) == 2 and all(b["extra_info"]["floor_seconds"] > 0 for b in benchmarks)


@pytest.mark.slow
def test_memory_held_between_configurations_does_not_grow_with_their_number(tiny_glue, tmp_path):
    """Each configuration is released after its last benchmark: what the run holds after releasing the third is
    what it held after the first, give or take a quarter of one configuration's working memory (the run's peak above
    what it held after the first). The models are made large enough (3 hidden layers of 1024: 3.2 M parameters per model,
    held in 6 forms, with their trainers) that keeping each configuration would add far more."""
    out = tmp_path / "run.json"
    run = run_pytest("benchmarks/bench_mlp.py", f"--sst2-data={tiny_glue}", "--sst2-layers=3", "--sst2-widths=1024",
                     "--sst2-vocabs=13,14,15", "--sst2-impls=dense,sparse,torchscript,fused,int8,onnxruntime",
                     "--sst2-train-rounds=1", "--sst2-latency-rounds=20", "--sst2-min-time=0.01", "--sst2-coldstart=off",
                     "-k", "not throughput", *QUIET, "-q", f"--benchmark-json={out}")
    assert run.returncode == 0, run.stdout + run.stderr
    (session,) = json.loads(out.read_text())["machine_info"]["sst2mlp_run"]["sessions"]
    held = list(session["rss_after_release_bytes"].values())  # in run order
    working = session["peak_rss_bytes"] - held[0]
    assert len(held) == 3 and working > 100e6 and max(held) - held[0] < working / 4, session  # a leak: +135 MB each


def test_packed_rounds_keep_every_statistic_pytest_benchmark_reports():
    from pytest_benchmark.stats import Stats

    from sst2mlp.suite.journal import pack_rounds

    stats, reference = Stats(), Stats()
    for value in [3e-6, 1e-6, 2e-6, 9e-6, 2.5e-6] * 20:
        stats.update(value)
        reference.update(value)
    pack_rounds(stats)
    assert stats.as_dict() == reference.as_dict() and bool(stats)
    assert stats.data.itemsize == 8 and list(stats.data) == reference.data and "sorted_data" not in stats.__dict__
