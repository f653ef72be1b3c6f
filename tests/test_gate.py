"""The regression gate (sst2mlp-report check) on real smoke runs (tests/data), with changes injected into copies."""
import copy
import gzip
import json

import pytest
from test_report import NEW, NEW_AGAIN, OLD

from helpers import ROOT
from sst2mlp.report import noise
from sst2mlp.report.cli import main
from sst2mlp.report.gate import FASTER, NO_SAMPLES, NOT_REPRODUCED, SLOW_PHASE, SLOWER, compare, fastest_half, with_slowdown
from sst2mlp.report.profile import DEVELOPMENT_CPU, GROUP_NOISE, PACKAGED, NoiseProfile, kind, load_profile, packaged_profile
from sst2mlp.report.runs import ReportError, measured_while_slow
from sst2mlp.report.schema import upgrade

FUSED = "test_inference[L2-H128-V1000-T1-fused-B1]"
SPARSE = "test_inference[L2-H128-V1000-T1-sparse-B1]"  # the shipped profile's allowance for its kind: 12%


def write(tmp_path, name, document):
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def changed(document, names, factor=None, accuracy_shift=None, measured_while_slow=None):
    """A copy of a run in which the named benchmarks are `factor` times slower (or accuracies shifted, or slow-phase)."""
    document = with_slowdown(document, names, factor) if factor is not None else copy.deepcopy(document)
    for bench in document["benchmarks"]:
        if bench["name"] not in names:
            continue
        if accuracy_shift is not None:
            bench["extra_info"]["accuracy_seeds"] = [a + accuracy_shift for a in bench["extra_info"]["accuracy_seeds"]]
        if measured_while_slow is not None:
            bench["extra_info"]["measured_while_slow"] = measured_while_slow
    return document


def test_a_run_against_itself_passes(tmp_path):
    verdicts, notes = compare(NEW, NEW)
    assert notes == [] and not any(v.fails for v in verdicts)
    assert {v.verdict for v in verdicts if v.metric == "time"} <= {"same", NO_SAMPLES}


def test_a_30_percent_slowdown_in_one_impl_is_caught_and_nothing_else(tmp_path, capsys):
    baseline = json.loads(NEW.read_text())
    slower = write(tmp_path, "slower.json", changed(baseline, {SPARSE}, factor=1.3))
    verdicts, _ = compare(NEW, slower)
    assert [v.name for v in verdicts if v.verdict == SLOWER] == [SPARSE]
    assert all(v.verdict == "same" for v in verdicts if v.metric == "time" and v.name != SPARSE and v.verdict != NO_SAMPLES)
    flagged = next(v for v in verdicts if v.name == SPARSE)
    assert flagged.ratio == pytest.approx(1.3) and 1.0 < flagged.interval[0] < 1.3 < flagged.interval[1] and flagged.p_value < 0.002
    assert main(["check", str(NEW), str(slower)]) == 1
    output = capsys.readouterr().out
    assert "slower" in output and output.strip().splitlines()[-1].startswith("FAIL: 1 slower")


def test_a_5_percent_change_is_below_the_threshold_and_an_improvement_is_reported(tmp_path):
    baseline = json.loads(NEW.read_text())
    verdicts, _ = compare(NEW, write(tmp_path, "small.json", changed(baseline, {SPARSE}, factor=1.05)))
    assert not any(v.fails for v in verdicts)
    verdicts, _ = compare(NEW, write(tmp_path, "faster.json", changed(baseline, {SPARSE}, factor=0.7)))
    assert [v.name for v in verdicts if v.verdict == FASTER] == [SPARSE] and not any(v.fails for v in verdicts)


def test_a_slow_phase_of_the_machine_gets_no_verdict(tmp_path):
    baseline = json.loads(NEW.read_text())
    slow = write(tmp_path, "slow.json", changed(baseline, {SPARSE}, factor=1.5, measured_while_slow=0.8))
    verdicts, _ = compare(NEW, slow)
    assert next(v for v in verdicts if v.name == SPARSE).verdict == SLOW_PHASE and not any(v.fails for v in verdicts)


def test_an_accuracy_drop_beyond_the_seeds_noise_fails(tmp_path):
    baseline = json.loads(NEW.read_text())
    name = "test_training[L2-H128-V1000-T1-dense-B64]"
    verdicts, _ = compare(NEW, write(tmp_path, "worse.json", changed(baseline, {name}, accuracy_shift=-0.05)))
    assert [v.name for v in verdicts if v.fails] == [name]
    verdicts, _ = compare(NEW, write(tmp_path, "noise.json", changed(baseline, {name}, accuracy_shift=-0.002)))
    assert not any(v.fails for v in verdicts)


def test_runs_from_different_set_ups_are_refused_unless_allowed(tmp_path, capsys):
    other = json.loads(NEW_AGAIN.read_text())
    other["machine_info"]["torch"]["threads"] = [2]
    path = write(tmp_path, "other.json", other)
    assert main(["check", str(NEW), str(path)]) == 2
    assert "different set-ups (threads [1] vs [2])" in capsys.readouterr().err
    same_run = json.loads(NEW.read_text())
    same_run["machine_info"]["torch"]["threads"] = [2]
    assert main(["check", str(NEW), str(write(tmp_path, "same.json", same_run)), "--allow-different-machines"]) == 0
    assert "note: different set-ups, compared as asked: threads [1] vs [2]" in capsys.readouterr().out


def test_a_run_whose_canary_never_ran_counts_as_not_slow():
    """An untimed benchmark has no reading; a run saved before the quiet gate (its canary's machine_speed only) is
    read as slow below 0.9 once upgraded."""
    assert not measured_while_slow({"extra_info": {"machine_speed": None}}) and not measured_while_slow({"extra_info": {}})
    old = upgrade({"machine_info": {}, "benchmarks": [{"extra_info": {"machine_speed": speed}} for speed in (0.5, 0.95, None)]})
    assert [measured_while_slow(bench) for bench in old["benchmarks"]] == [True, False, False]


def test_runs_saved_without_samples_are_not_judged():
    verdicts, _ = compare(OLD, OLD)
    assert {v.verdict for v in verdicts if v.metric == "time"} == {NO_SAMPLES}


def test_a_benchmark_saved_without_extra_info_is_named_and_not_compared(tmp_path):
    interrupted = json.loads(NEW.read_text())
    interrupted["benchmarks"][0]["extra_info"] = {}
    name = interrupted["benchmarks"][0]["name"]
    verdicts, notes = compare(NEW, write(tmp_path, "interrupted.json", interrupted))
    assert name not in {v.name for v in verdicts}
    assert any(note.startswith("1 benchmark(s) without extra_info (interrupted before they finished), not compared") and name in note
               for note in notes)


FULL_RUN = next((ROOT / "docs" / "full-run").glob("*.json.gz"))  # the committed full default run, gzip-compressed


def full_run() -> dict:
    return json.loads(gzip.decompress(FULL_RUN.read_bytes()))


def test_a_training_ten_times_slower_fails_the_check_though_it_has_four_samples(tmp_path, capsys):
    """4 rounds a side: the U test cannot reach alpha (p >= 0.03), so every round must lie beyond the other run's."""
    name = "test_training[L2-H256-V10000-T1-sparse-B64]"
    slower = write(tmp_path, "slower.json", changed(full_run(), {name}, factor=10))
    assert main(["check", str(FULL_RUN), str(slower)]) == 1
    output = capsys.readouterr().out
    line = next(line for line in output.splitlines() if line.startswith(name + " "))
    assert line.endswith("separation  slower") and "10.000x" in line
    assert output.strip().splitlines()[-1].startswith("FAIL: 1 slower")


def test_a_training_within_its_rounds_spread_is_same(tmp_path):
    name = "test_training[L2-H256-V10000-T1-sparse-B64]"
    shifted = write(tmp_path, "shifted.json", changed(full_run(), {name}, factor=1.3))
    verdict = next(v for v in compare(FULL_RUN, shifted)[0] if v.name == name and v.metric == "time")
    rounds = full_run()
    samples = next(b for b in rounds["benchmarks"] if b["name"] == name)["extra_info"]["samples"]
    expected = SLOWER if min(samples) * 1.3 > max(samples) else "same"  # separated or not, by the real rounds
    assert verdict.test == "separation" and verdict.verdict == expected


def test_several_baselines_widen_an_allowance_to_their_spread_and_never_narrow_it(tmp_path):
    baseline = json.loads(NEW.read_text())
    spread = write(tmp_path, "b2.json", changed(baseline, {FUSED}, factor=1.2))  # the baseline code measured 20% apart
    new = write(tmp_path, "new.json", changed(baseline, {FUSED}, factor=1.3))  # 18% above the baselines' middle (1.1)
    profile = NoiseProfile({"inference/fused/B1": 0.15, "inference/sparse/B1": 0.3})
    one, _ = compare(NEW, new, profile=profile)
    several, _ = compare([NEW, spread], new, profile=profile)
    fused_one, fused_several = (next(v for v in verdicts if v.name == FUSED) for verdicts in (one, several))
    assert (fused_one.allowance, fused_one.noise, fused_one.verdict) == (0.15, "profile", SLOWER)
    assert fused_several.allowance == pytest.approx(0.2) and fused_several.noise == "baselines" and fused_several.verdict == "same"
    fastest_block = min(next(b for b in baseline["benchmarks"] if b["name"] == FUSED)["extra_info"]["samples"])
    assert fused_several.baseline == pytest.approx(1.1 * fastest_block)  # the median of the baselines' fastest blocks
    sparse = next(v for v in several if v.name == FUSED.replace("fused", "sparse"))
    assert (sparse.allowance, sparse.noise) == (0.3, "profile")  # the baselines agree within 0%: the profile stands


def test_one_baseline_is_judged_against_the_profile_of_its_kind_or_else_its_groups_noise():
    profile = NoiseProfile({"inference/fused/B1": 0.12, "throughput/sparse/Bdev": 0.4})
    verdicts, _ = compare(NEW, NEW, profile=profile)
    benches = {b["name"]: b for b in json.loads(NEW.read_text())["benchmarks"]}
    for v in (v for v in verdicts if v.metric == "time"):
        bench = benches[v.name]
        key = (bench["group"], bench["params"]["impl"], bench["params"]["batch_size"])
        expected = {("inference", "fused", 1): (0.12, "profile"), ("throughput", "sparse", "dev"): (0.4, "profile")}.get(
            key, (max(0.10, GROUP_NOISE[bench["group"]]), "group"))
        assert (v.allowance, v.noise) == expected, v.name


def test_the_packaged_profile_covers_every_impl_and_batch_size_the_suite_times():
    """A new impl in the default run, or a new batch size, needs A/A runs for the shipped profile (docs/gate.md says
    how)."""
    from sst2mlp.impls.registry import DEFAULT_IMPLS

    expected = {f"inference/{impl}/B1" for impl in DEFAULT_IMPLS} | {f"throughput/{impl}/B{b}" for impl in DEFAULT_IMPLS for b in (64, "dev")}
    # The AMD EPYC profile was calibrated at 253f49e, before aotinductor joined the default run (9b25149): its kinds
    # get the group allowance there until A/A runs on that CPU replace the profile (docs/gate.md)
    not_yet = {"AMD EPYC": {key for key in expected if "/aotinductor/" in key}}
    profiles = [load_profile(path) for path in sorted(PACKAGED.glob("*.json"))]
    assert {profile.cpu for profile in profiles} >= {DEVELOPMENT_CPU, "Intel(R) Xeon(R) Processor"}
    for profile in profiles:
        assert expected - set(profile.allowances) == not_yet.get(profile.cpu, set()), profile.path
        assert all(0 < value < 10 for value in profile.allowances.values()) and len(profile.runs) >= 2


def test_the_gate_takes_the_packaged_profile_of_the_runs_cpu_else_the_development_vms(tmp_path):
    for profile in (load_profile(path) for path in PACKAGED.glob("*.json")):
        assert load_profile(cpu=profile.cpu).allowances == profile.allowances
    assert load_profile(cpu="Some Other CPU").cpu == DEVELOPMENT_CPU
    with pytest.raises(ReportError, match="holds no noise profile of AMD EPYC"):
        packaged_profile("AMD EPYC", folder=tmp_path)


def test_the_noise_study_counts_false_alarms_and_what_an_injected_slowdown_the_gate_catches(tmp_path):
    result = noise.study([(NEW, NEW_AGAIN), (NEW_AGAIN, NEW)], impl="sparse", factor=3.0)
    rows = [line for line in result.lines if line.startswith("| 1:") or line.startswith("| 2:")]
    # B1, B64 and Bdev at two configurations; pair 1 is confirmed by pair 2's second run and pair 2 by pair 1's
    assert rows[0].endswith(f"| 0 | 6/6 | {NEW.name} | 0 | 6/6 |") and rows[1].endswith(f"| 0 | 6/6 | {NEW_AGAIN.name} | 0 | 6/6 |")
    alarms = [sum(int(row.split(" | ")[column].split()[0]) for row in rows) for column in (2, 8)]
    assert f"False alarms at the defaults: {alarms[0]}; after confirmation: {alarms[1]}." in result.lines
    assert set(result.by_group) == {"training", "inference", "throughput", "coldstart"}
    kinds = {kind(b) for b in json.loads(NEW.read_text())["benchmarks"]}
    assert set(result.by_kind) == kinds
    assert all(step is None or step in noise.FACTORS for step in (*result.by_group.values(), *result.by_kind.values()))
    assert result.by_group["inference"] is not None and result.by_group["inference"] <= 3.0
    assert result.by_kind["inference/sparse/B1"] is not None and result.by_kind["inference/sparse/B1"] <= 3.0
    # the same four runs in every order, each alarm confirmed by a third; then 3x caught and confirmed per kind
    assert any(line.startswith("Every ordered pair of these 4 runs (12): ") for line in result.lines)
    assert "| inference/sparse/B1 | 8 of 8 |" in result.lines and "| throughput/sparse/Bdev | 8 of 8 |" in result.lines


def only(document, names):
    """A run that re-measured only the named benchmarks (what a confirmation run of the suspects holds)."""
    kept = copy.deepcopy(document)
    kept["benchmarks"] = [b for b in kept["benchmarks"] if b["name"] in names]
    return kept


def test_a_slowdown_a_confirmation_run_does_not_show_is_not_reproduced_and_passes(tmp_path, capsys):
    """The new run is the baseline's own with one benchmark slowed; the confirmation, another run of the same code."""
    slower = write(tmp_path, "slower.json", changed(json.loads(NEW.read_text()), {SPARSE}, factor=1.6))
    new_run = json.loads(NEW_AGAIN.read_text())
    suspects = tmp_path / "suspects.txt"
    assert main(["check", str(NEW), str(slower), "--suspects", str(suspects)]) == 1
    assert suspects.read_text() == f"benchmarks/bench_mlp.py::{SPARSE}\n"
    again = write(tmp_path, "again.json", only(new_run, {SPARSE}))  # the same code measured again: no slowdown
    capsys.readouterr()
    assert main(["check", str(NEW), str(slower), "--confirm", str(again), "--suspects", str(suspects)]) == 0
    output = capsys.readouterr().out
    assert next(line for line in output.splitlines() if line.startswith(SPARSE + " ")).endswith(NOT_REPRODUCED)
    assert "not in every run" not in output and output.strip().splitlines()[-1].startswith("PASS: 1 not reproduced")
    assert suspects.read_text() == ""


def test_a_slowdown_every_confirmation_run_shows_stands(tmp_path):
    slower = write(tmp_path, "slower.json", changed(json.loads(NEW.read_text()), {SPARSE, FUSED}, factor=4))
    new_run = json.loads(NEW_AGAIN.read_text())
    again = write(tmp_path, "again.json", only(changed(new_run, {SPARSE}, factor=4), {SPARSE}))
    unchanged = write(tmp_path, "unchanged.json", only(new_run, {FUSED}))  # holds FUSED only: SPARSE keeps its verdict
    verdicts, _ = compare(NEW, slower, confirm=[again, unchanged])
    by_name = {v.name: v.verdict for v in verdicts if v.metric == "time"}
    assert by_name[SPARSE] == SLOWER and by_name[FUSED] == NOT_REPRODUCED
    assert [name for name, verdict in by_name.items() if verdict in (SLOWER, NOT_REPRODUCED)] == sorted([FUSED, SPARSE])


def test_the_gate_compares_the_fastest_block_of_each_run_not_its_median(tmp_path):
    """Noise between runs only adds time: a run whose slower half of blocks got slower still has its fastest block."""
    baseline = json.loads(NEW.read_text())
    skewed = copy.deepcopy(baseline)
    bench = next(b for b in skewed["benchmarks"] if b["name"] == SPARSE)
    samples = sorted(bench["extra_info"]["samples"])
    bench["extra_info"]["samples"] = samples[:len(samples) // 2] + [x * 1.5 for x in samples[len(samples) // 2:]]
    bench["stats"]["median"] *= 1.25  # what a slower half does to the median
    verdict = next(v for v in compare(NEW, write(tmp_path, "skewed.json", skewed))[0] if v.name == SPARSE)
    assert verdict.new == pytest.approx(samples[0]) and verdict.ratio == pytest.approx(1.0) and verdict.verdict == "same"


def test_the_u_test_reads_the_faster_half_of_a_runs_blocks_and_every_round_of_a_training():
    assert fastest_half([5.0, 1.0, 4.0, 2.0, 3.0, 6.0, 8.0, 7.0, 9.0]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert fastest_half([4.0, 1.0, 3.0]) == [1.0, 3.0, 4.0]  # a training's few rounds: all of them
