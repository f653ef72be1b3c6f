"""The run-to-run agreement check's summary (sst2mlp.suite.agreement) on hand-made saved runs: no benchmark runs."""
import json
from pathlib import Path

import pytest

from helpers import ROOT
from sst2mlp.suite import agreement


def saved_run(path: Path, medians: dict[str, float], slow: tuple[str, ...] = ()) -> Path:
    benchmarks = [{"name": name, "stats": {"median": median}, "extra_info": {"measured_while_slow": 0.5 if name in slow else 0.0}}
                  for name, median in medians.items()]
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": benchmarks}))
    return path


def test_the_summary_counts_agreement_and_marks_medians_measured_while_slow(tmp_path):
    steady = {f"b{i}": 1.0 for i in range(10)}
    runs = [saved_run(tmp_path / "run1.json", steady),
            saved_run(tmp_path / "run2.json", {**steady, "b0": 1.15}),  # 15%: outside 10%, inside 20%
            saved_run(tmp_path / "run3.json", {**steady, "b1": 1.3}, slow=("b1",))]  # 30%, measured while slow
    lines, met = agreement.summary(runs)
    assert not met
    assert lines[-1] == ("8/10 medians within 10% (80%), 9/10 within 20%; worst 30.0%; outside 10%: 1 with every run "
                         "at full speed, 1 with a median marked *")
    assert lines[1].split()[3] == "1300000.0us*" and "*" not in lines[0]


def test_targets_are_met_at_nine_in_ten_within_10_percent_and_all_within_20(tmp_path):
    steady = {f"b{i}": 1.0 for i in range(10)}
    runs = [saved_run(tmp_path / "run1.json", steady), saved_run(tmp_path / "run2.json", {**steady, "b0": 1.19})]
    assert agreement.summary(runs)[1]
    runs.append(saved_run(tmp_path / "run3.json", {**steady, "b1": 1.11}))
    assert not agreement.summary(runs)[1]  # two of ten outside 10%


def test_a_corrupt_saved_run_is_named(tmp_path):
    good = saved_run(tmp_path / "run1.json", {"b": 1.0})
    (tmp_path / "run2.json").write_text('{"machine_info": {}, "benchmarks": [{"name": "b"}]}')
    with pytest.raises(ValueError, match=r"run2.json: expected a pytest-benchmark JSON file .*stats"):
        agreement.summary([good, tmp_path / "run2.json"])
    assert agreement.main(["--summarize", str(tmp_path / "missing")]) == 2


def test_given_options_come_after_the_default_selection_so_that_pytest_keeps_them(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    commands = []
    monkeypatch.setattr(agreement.subprocess, "run", lambda command, **kwargs: commands.append(command) or
                        type("Done", (), {"returncode": 0})())
    monkeypatch.setattr(agreement, "summary", lambda runs, shown: (["ok"], True))
    assert agreement.main(["--runs", "1", "--out", str(tmp_path), "--sst2-quiet-wait=10"]) == 0
    command = commands[0]
    assert command.index("--sst2-quiet-wait=60") < command.index("--sst2-quiet-wait=10")
