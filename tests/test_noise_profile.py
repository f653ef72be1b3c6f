"""The machine's noise profile (sst2mlp-report calibrate) and how check reads it, on real smoke runs (tests/data)."""
import json

import pytest
from test_gate import FUSED, changed, write
from test_report import NEW, NEW_AGAIN

from sst2mlp.report.cli import main
from sst2mlp.report.gate import SLOWER, compare
from sst2mlp.report.profile import calibrate, kind, load_profile
from sst2mlp.report.runs import ReportError


def test_a_kinds_allowance_is_the_largest_spread_of_its_benchmarks_raised_to_the_margin(tmp_path):
    baseline = json.loads(NEW.read_text())
    apart = write(tmp_path, "apart.json", changed(baseline, {FUSED}, factor=1.2))
    profile = calibrate([NEW, apart], margin=2)
    fused = kind(next(b for b in baseline["benchmarks"] if b["name"] == FUSED))
    assert fused == "inference/fused/B1"
    assert profile.spreads[fused] == pytest.approx(0.2) and profile.allowances[fused] == pytest.approx(0.44)  # 1.2^2 - 1
    assert profile.allowances["throughput/fused/B64"] == 0.0 and profile.cpu == baseline["machine_info"]["cpu_model"]
    assert [run["file"] for run in profile.runs] == [NEW.name, "apart.json"]


def test_benchmarks_the_gate_cannot_judge_are_left_out_of_the_profile(tmp_path):
    """One timed training round: fewer than 2 samples, no verdict, so its spread must not set an allowance."""
    one_round = json.loads(NEW.read_text())
    for bench in one_round["benchmarks"]:
        if bench["group"] == "training":
            bench["extra_info"]["samples"] = bench["extra_info"]["samples"][:1]
    profile = calibrate([write(tmp_path, "a.json", one_round), write(tmp_path, "b.json", one_round)])
    assert not any(key.startswith("training/") for key in profile.allowances)
    assert any(key.startswith("inference/") for key in profile.allowances)


def test_a_benchmark_measured_while_the_machine_was_slow_does_not_widen_its_kind(tmp_path):
    baseline = json.loads(NEW.read_text())
    slow = write(tmp_path, "slow.json", changed(baseline, {FUSED}, factor=2.0, measured_while_slow=0.9))
    apart = write(tmp_path, "apart.json", changed(baseline, {FUSED}, factor=1.1))
    assert calibrate([NEW, slow, apart]).spreads["inference/fused/B1"] == pytest.approx(0.1)


def test_two_real_runs_give_every_kind_they_share(tmp_path):
    profile = calibrate([NEW, NEW_AGAIN])
    documents = [json.loads(path.read_text()) for path in (NEW, NEW_AGAIN)]
    shared = {kind(b) for b in documents[0]["benchmarks"] if len(b["extra_info"].get("samples") or []) >= 2}
    assert set(profile.allowances) == shared
    assert all(profile.allowances[key] >= profile.spreads[key] for key in shared)


def test_calibrate_writes_a_profile_that_check_reads(tmp_path, capsys):
    profile_path = tmp_path / "profile.json"
    assert main(["calibrate", str(NEW), str(NEW_AGAIN), "--out", str(profile_path)]) == 0
    assert f"wrote {profile_path}" in capsys.readouterr().out
    assert load_profile(profile_path).allowances == calibrate([NEW, NEW_AGAIN]).allowances
    assert main(["check", str(NEW), str(NEW_AGAIN), "--noise-profile", str(profile_path)]) in (0, 1)
    output = capsys.readouterr().out
    assert "p " in output and "allowed: max(threshold, between-run noise)" in output and "fastest block" in output
    with pytest.raises(SystemExit):  # an existing profile is not overwritten unless asked
        main(["calibrate", str(NEW), str(NEW_AGAIN), "--out", str(profile_path)])
    assert "exists; pass --overwrite" in capsys.readouterr().err


def test_calibrate_refuses_one_run_and_runs_of_different_cpus(tmp_path, capsys):
    assert main(["calibrate", str(NEW), "--out", str(tmp_path / "p.json")]) == 2
    assert "at least 2 runs" in capsys.readouterr().err
    other = json.loads(NEW_AGAIN.read_text())
    other["machine_info"]["cpu_model"] = "Some Other CPU"
    assert main(["calibrate", str(NEW), str(write(tmp_path, "other.json", other)), "--out", str(tmp_path / "p.json")]) == 2
    assert "different CPUs" in capsys.readouterr().err and not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("content, expected", [
    (None, "cannot read it"),
    ("{not json", "is not valid JSON"),
    ('{"allowances": {"inference/fused/B1": -0.1}}', "no 'allowances' mapping each kind to a fraction of at least 0"),
    ('[1, 2]', "no 'allowances' mapping"),
])
def test_a_missing_or_malformed_profile_is_one_clear_error(tmp_path, capsys, content, expected):
    path = tmp_path / "profile.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ReportError, match=expected):
        load_profile(path)
    assert main(["check", str(NEW), str(NEW_AGAIN), "--noise-profile", str(path)]) == 2
    error = capsys.readouterr().err
    assert str(path) in error and expected.split()[0] in error


def test_a_profile_from_another_cpu_is_used_with_a_note(tmp_path):
    profile = calibrate([NEW, NEW_AGAIN])
    other = type(profile)(profile.allowances, profile.spreads, "Some Other CPU", profile.margin, profile.runs)
    verdicts, notes = compare(NEW, NEW, profile=other)
    assert any("was measured on Some Other CPU" in note and "sst2mlp-report calibrate" in note for note in notes)
    assert not any(v.verdict == SLOWER for v in verdicts)
    assert not any("was measured on" in note for note in compare(NEW, NEW, profile=profile)[1])


def test_calibrate_update_replaces_the_kinds_its_runs_hold_and_keeps_the_rest(tmp_path):
    baseline = json.loads(NEW.read_text())
    apart = write(tmp_path, "apart.json", changed(baseline, {FUSED}, factor=1.2))
    old = calibrate([NEW, NEW_AGAIN])
    old_path = old.save(tmp_path / "old.json")
    newer = calibrate([NEW, apart])
    updated = load_profile(old_path).updated_by(newer)
    assert updated.allowances == old.allowances | newer.allowances
    assert updated.allowances["inference/fused/B1"] == pytest.approx(0.44)  # the newer runs' spread
    assert updated.runs[: len(old.runs)] == old.runs and updated.runs[-1]["kinds"] == sorted(newer.allowances)
    out = tmp_path / "updated.json"
    assert main(["calibrate", str(NEW), str(apart), "--update", str(old_path), "--out", str(out)]) == 0
    assert load_profile(out).allowances == updated.allowances
    other_cpu = json.loads(NEW.read_text())
    other_cpu["machine_info"]["cpu_model"] = "another CPU"
    runs = [write(tmp_path, name, other_cpu) for name in ("c.json", "d.json")]
    with pytest.raises(ReportError, match="expected runs of the profile's CPU at its margin"):
        load_profile(old_path).updated_by(calibrate(runs))
