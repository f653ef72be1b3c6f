"""The peer runtimes (sst2mlp.impls) as impls: exact where they claim to be, int8 close, threads and denormals
passed on, and their cold starts in fresh processes."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import QUIET, run_pytest
from sst2mlp import MLP, Vocabulary, accuracy, featurize, predict_logits
from sst2mlp.contract import COLDSTART_PHASES as PHASES
from sst2mlp.impls.base import RuntimeSettings
from sst2mlp.impls.coldstart_child import now
from sst2mlp.impls.gathered import GatheredMLP, export_onnx, with_weights
from sst2mlp.impls.onnx_runtime import session_options
from sst2mlp.impls.openvino_runtime import compile_config
from sst2mlp.impls.registry import REGISTRY, get_impl, make_variant, runtime_info
from sst2mlp.suite.coldstart import ColdStartRuns, parse_round, write_shipped
from sst2mlp.suite.variants import PreparedVariant, parity

PEERS = [impl.name for impl in REGISTRY if impl.peer]
FLOAT_PEERS = [impl.name for impl in REGISTRY if impl.peer and impl.exact]
SENTENCES = ["a good film", "a bad bad film", "not good at all", "the the the plot", "", "good good good good good fun"]


def small_model():
    bags = featurize(SENTENCES, Vocabulary.build(SENTENCES))
    torch.manual_seed(0)
    return MLP(2, 16, bags.vocab_size).eval(), bags


def one_at_a_time(variant, bags):
    return torch.cat([predict_logits(variant, bags.rows(i, i + 1)) for i in range(len(bags))])


def test_a_compiled_model_gets_graphs_of_its_own_when_earlier_models_filled_dynamos_limit():
    """Dynamo's default limit (8 graphs per code object, all the suite's models sharing one) is full after two
    compiled models; a model past it would run eagerly, with a warning, and be timed as torch.compile."""
    from torch._dynamo.utils import counters

    model, bags = small_model()
    get_impl("torch-compile").forget()  # no graph, and no raised limit, left from an earlier test's compiled model
    full = dict(recompile_limit=0, accumulated_recompile_limit=0, fail_on_recompile_limit_hit=False)
    with torch._dynamo.config.patch(**full):  # as if earlier models had filled the limit
        before = counters["stats"]["unique_graphs"]
        variant = make_variant("torch-compile", model, bags)
        assert counters["stats"]["unique_graphs"] - before >= 4  # batch 1 and several rows, under no_grad and inference mode
        assert torch._dynamo.config.fail_on_recompile_limit_hit  # a call needing one more fails instead of running eagerly
        reference = predict_logits(make_variant("dense", model, bags), bags)
        assert torch.allclose(one_at_a_time(variant, bags), reference, atol=1e-4)
        get_impl("torch-compile").forget()  # as the suite does after a configuration: dynamo's limits as they were
        assert {name: getattr(torch._dynamo.config, name) for name in full} == full


@pytest.mark.slow
def test_every_float_runtime_gives_dense_logits_and_predictions_on_the_baseline(baseline_trained_on_a_subset):
    model, dev, _ = baseline_trained_on_a_subset
    reference = predict_logits(make_variant("dense", model, dev), dev)
    for impl in FLOAT_PEERS:
        variant = make_variant(impl, model, dev)
        whole = predict_logits(variant, dev)
        assert torch.allclose(whole, reference, rtol=0, atol=1e-4), impl
        assert torch.equal(whole > 0, reference > 0), impl
        sample = dev.rows(0, 64)  # batch 1, one example at a time, on the first 64 (the whole dev set takes long)
        assert torch.allclose(one_at_a_time(variant, sample), reference[:64], rtol=0, atol=1e-4), impl


def test_the_int8_runtime_keeps_the_baseline_accuracy_within_half_a_point(baseline_trained_on_a_subset):
    model, dev, labels = baseline_trained_on_a_subset
    float_accuracy = accuracy(make_variant("onnxruntime", model, dev), dev, labels)
    int8 = make_variant("onnxruntime-int8", model, dev)
    assert abs(accuracy(int8, dev, labels) - float_accuracy) <= 0.005
    assert int8.model_bytes() < 0.3 * make_variant("onnxruntime", model, dev).model_bytes()  # int8 weights


def test_other_weights_put_into_one_export_give_that_models_logits():
    """Every seed's model of a configuration shares one export; its weights must be the ones that run."""
    model, bags = small_model()
    torch.manual_seed(1)
    other = MLP(2, 16, bags.vocab_size).eval()
    reused = make_variant("onnxruntime", model, bags)  # exports this shape
    variant = make_variant("onnxruntime", other, bags)
    assert torch.allclose(predict_logits(variant, bags), predict_logits(other, bags), rtol=0, atol=1e-5)
    assert not torch.allclose(predict_logits(reused, bags), predict_logits(other, bags), atol=1e-3)


def test_an_export_whose_initializers_do_not_match_the_model_is_refused():
    model, _ = small_model()
    wider = MLP(2, 24, model.config.vocab_size).eval()
    with pytest.raises(RuntimeError, match="initializers do not match"):
        with_weights(export_onnx(model), GatheredMLP(wider))


def test_the_runtimes_get_the_suites_threads_and_denormal_mode():
    options = session_options(RuntimeSettings(threads=2, flush_denormals=True))
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.set_denormal_as_zero") == "1"
    assert session_options(RuntimeSettings(1, flush_denormals=False)).get_session_config_entry("session.set_denormal_as_zero") == "0"
    config = compile_config(RuntimeSettings(threads=3, flush_denormals=False))
    assert config["INFERENCE_NUM_THREADS"] == 3 and config["CPU_DENORMALS_OPTIMIZATION"] is False
    assert config["INFERENCE_PRECISION_HINT"] == "f32"  # bf16 on CPUs that have it, otherwise


def test_openvino_compiles_with_the_threads_and_precision_it_was_given():
    model, bags = small_model()
    variant = make_variant("openvino", model, bags, RuntimeSettings(threads=2))
    compiled = variant.module.compiled
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 2
    assert "float32" in str(compiled.get_property("INFERENCE_PRECISION_HINT"))


def test_machine_info_records_each_runtimes_version_and_threads():
    info = runtime_info(["dense", "onnxruntime", "openvino"], threads=(1, 2), flush_denormals=True)
    import onnxruntime
    import openvino

    assert info["onnxruntime"]["version"] == onnxruntime.__version__
    assert openvino.__version__.startswith(info["openvino"]["version"])
    assert all(entry["threads"] == [1, 2] for entry in info.values())


def test_parity_counts_disagreements_and_the_largest_difference():
    result = parity(torch.tensor([1.0, -2.0, 0.5, -0.1]), torch.tensor([1.5, -2.0, -0.5, -0.1]))
    assert result.agreement_with_dense == 0.75 and result.max_logit_difference == pytest.approx(1.0)


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["dense", "onnxruntime", "aotinductor"])
def test_a_cold_start_round_is_a_new_process_whose_parts_add_up_to_its_time(impl, tmp_path):
    model, bags = small_model()
    variant = make_variant(impl, model, bags)
    prepared = PreparedVariant(variant, None, 0.0, 0.0, None, None)
    write_shipped(prepared, model.config, bags.rows(0, 1), tmp_path)
    runs = ColdStartRuns(get_impl(impl), tmp_path, threads=1, denormals="flush")
    started = now()
    runs.run()
    waited = now() - started  # the parent's view: process start to the prediction read
    runs.finish()
    (round_,) = runs.rounds
    assert round_.pid != os.getpid()
    assert abs(round_.total - waited) <= 0.1 * waited
    assert set(round_.phases) == set(PHASES) and all(seconds >= 0 for seconds in round_.phases.values())
    with torch.no_grad():
        assert round_.logit == pytest.approx(float(variant(*variant.inputs(bags.rows(0, 1)))[0]), abs=1e-4)


def test_an_onnxruntime_cold_start_does_not_import_torch(tmp_path):
    model, bags = small_model()
    write_shipped(PreparedVariant(make_variant("onnxruntime", model, bags), None, 0.0, 0.0, None, None), model.config,
                  bags.rows(0, 1), tmp_path)
    code = ("import sys; from sst2mlp.impls import coldstart_child as c; c.run_child('sst2mlp.impls.onnx_runtime', 'onnxruntime',"
            " __import__('pathlib').Path(sys.argv[1]), 1, True, c.now()); print('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "False", run.stderr


def test_a_failed_cold_start_says_which_impl_and_why(tmp_path):
    model, bags = small_model()
    write_shipped(PreparedVariant(make_variant("dense", model, bags), None, 0.0, 0.0, None, None), model.config,
                  bags.rows(0, 1), tmp_path)
    (tmp_path / "model.pt").write_bytes(b"not a state dict")
    runs = ColdStartRuns(get_impl("dense"), tmp_path, threads=1, denormals="flush")
    with pytest.raises(RuntimeError, match=r"the cold start of impl 'dense' failed \(exit 1\): .*"):
        runs.run()


def test_parse_round_splits_the_time_since_the_parent_started_the_process():
    line = json.dumps({"pid": 7, "started": 10.5, "imports": 11.0, "load": 11.25, "prepare": 11.5, "first": 11.75,
                       "logit": 0.5})
    round_ = parse_round(line, started=10.0)
    assert round_.phases == {"interpreter": 0.5, "imports": 0.5, "load": 0.25, "prepare": 0.25, "first": 0.25}
    assert round_.total == pytest.approx(1.75)


@pytest.mark.slow
def test_a_missing_optional_runtime_leaves_its_benchmarks_out_with_one_line_naming_the_install_command(tmp_path, tiny_glue):
    plugin = tmp_path / "no_openvino.py"
    plugin.write_text("import sst2mlp.impls.base as r\n_installed = r.installed\n"
                      "r.installed = lambda module: module != 'openvino' and _installed(module)\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run = run_pytest("benchmarks/bench_mlp.py", "-p", "no_openvino", *QUIET, f"--sst2-data={tiny_glue}",
                     "--sst2-layers=1", "--sst2-widths=8", "--sst2-vocabs=20", "--sst2-impls=dense,openvino",
                     "--sst2-train-rounds=1", "-k", "inference or throughput", "--benchmark-disable", env=env)
    assert run.returncode == 0, run.stdout[-2000:]
    lines = [line for line in run.stdout.splitlines() if "needs openvino, which is not installed" in line]
    assert len(lines) == 1, run.stdout[-3000:]
    assert "install it with: pip install" in lines[0] and "its 3 benchmark(s) are left out" in lines[0]  # B1, B64, Bdev
    assert re.search(r"\b3 passed, \d+ deselected\b", run.stdout) and "skipped" not in run.stdout, run.stdout[-2000:]


def test_executorch_refuses_rows_longer_than_its_program_takes():
    """Its program's words axis is fixed (XNNPACK takes one dynamic dimension): shorter rows are padded to it, a longer
    one is refused by name."""
    from sst2mlp.impls.executorch_runtime import padded_to

    sentence = " ".join(f"w{i}" for i in range(40))
    longer = featurize([sentence, "w1 w2"], Vocabulary.build([sentence]))
    ids, weights = padded_to(longer.rows(1, 2), words=6)
    assert ids.shape == weights.shape == (1, 6) and weights[0, 2:].eq(0).all()
    with pytest.raises(ValueError, match="a row has 40 words; the ExecuTorch program takes at most 6"):
        padded_to(longer, words=6)


def test_runtimes_are_peers_and_say_what_they_need():
    in_default_run = {name for name in PEERS if get_impl(name).in_default_run}
    assert in_default_run == {"onnxruntime", "onnxruntime-int8", "openvino", "aotinductor", "executorch"}
    # each form of `onnxruntime` alone, the forms before, and inductor compiled in the process that runs it
    assert set(PEERS) - in_default_run == {"onnxruntime-bmm", "onnxruntime-csr", "onnxruntime-sum", "openvino-padded",
                                           "executorch-padded", "torch-compile"}
    assert get_impl("openvino").missing() is None  # installed here (CI installs the extras)
    assert not get_impl("onnxruntime-int8").exact


def test_onnxruntime_takes_numpy_views_of_the_padded_tensors():
    model, bags = small_model()
    ids, weights = make_variant("onnxruntime", model, bags).inputs(bags)
    assert isinstance(ids, np.ndarray) and ids.dtype == np.int64 and weights.dtype == np.float32
    assert ids.shape == (len(bags), int(bags.nnz_per_row.max()))


def test_every_float_runtime_gives_dense_logits_on_a_small_model_whole_and_one_row_at_a_time():
    model, bags = small_model()
    reference = predict_logits(make_variant("dense", model, bags), bags)
    for impl in FLOAT_PEERS:
        variant = make_variant(impl, model, bags)
        assert torch.allclose(predict_logits(variant, bags), reference, rtol=0, atol=1e-5), impl
        assert torch.allclose(one_at_a_time(variant, bags), reference, rtol=0, atol=1e-5), impl


def test_onnxruntime_runs_its_csr_model_from_csr_from_rows_on_and_the_padded_one_below(monkeypatch):
    from sst2mlp.impls import onnx_runtime

    model, bags = small_model()
    variant = make_variant("onnxruntime", model, bags)
    assert sorted(variant.module.files) == ["model-csr.onnx", "model.onnx"]  # it ships both
    monkeypatch.setattr(onnx_runtime, "CSR_FROM_ROWS", 3)
    below, at = variant.inputs(bags.rows(0, 2)), variant.inputs(bags.rows(0, 3))
    assert isinstance(below[0], np.ndarray) and below[0].shape == below[1].shape  # (ids, weights), padded
    assert len(at) == 4 and at[3] == 3 and len(at[2]) == 4  # (counts, ids, row starts, rows): CSR
    reference = predict_logits(make_variant("dense", model, bags), bags)
    assert torch.allclose(variant(*at), reference[:3], rtol=0, atol=1e-5)
    assert torch.allclose(variant(*below), reference[:2], rtol=0, atol=1e-5)


def test_onnxruntimes_csr_form_gives_a_batch_of_a_multiple_of_64_rows_one_more_row_and_returns_the_batchs_logits():
    model, _ = small_model()
    bags = featurize(SENTENCES * 32, Vocabulary.build(SENTENCES))  # 192 rows, 3 x 64
    variant = make_variant("onnxruntime-csr", model, bags)
    _counts, _ids, starts, rows = variant.inputs(bags)
    assert len(starts) == 194 and starts[-1] == starts[-2] and rows == 192
    assert torch.allclose(predict_logits(variant, bags), predict_logits(model, bags), rtol=0, atol=1e-5)


@pytest.mark.parametrize("impl", ["onnxruntime-csr", "openvino", "aotinductor"])
def test_a_batch_without_any_word_gives_each_rows_bias_logit(impl):
    """ONNX Runtime refuses a CSR matrix without entries and OpenVINO's bag op returns garbage without indices: the
    inputs stand in an entry that adds zero."""
    model, _ = small_model()
    empty = featurize(["", "", ""], Vocabulary.build(SENTENCES))
    variant = make_variant(impl, model, empty)
    assert len(empty.indices) == 0
    assert torch.allclose(predict_logits(variant, empty), predict_logits(model, empty), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_each_runtimes_call_floor_is_recorded_counted_in_its_floor_and_below_its_batch_1_median(tmp_path, tiny_glue):
    """An empty model through ONNX Runtime's call path (machine_info's limits), the call floor its latency's floor adds
    (where the suite's own impls add the extension's), and no faster than the real model's call."""
    out = tmp_path / "run.json"
    run = run_pytest("benchmarks/bench_mlp.py", *QUIET, f"--sst2-data={tiny_glue}", "--sst2-layers=1", "--sst2-widths=8",
                     "--sst2-vocabs=20", "--sst2-impls=dense,onnxruntime", "--sst2-train-rounds=1", "--sst2-seeds=2",
                     "--sst2-latency-rounds=200", "--sst2-min-time=0.05", "-k", "inference", f"--benchmark-json={out}")
    assert run.returncode == 0, run.stdout[-3000:]
    saved = json.loads(out.read_text())
    limits = saved["machine_info"]["limits"]["1"]
    floor = limits["runtime_call_floor_seconds"]["onnxruntime"]
    benches = {b["extra_info"]["impl"]: b for b in saved["benchmarks"]}
    assert 0 < floor < benches["onnxruntime"]["stats"]["median"]
    assert benches["onnxruntime"]["extra_info"]["call_floor_seconds"] == floor
    assert benches["dense"]["extra_info"]["call_floor_seconds"] == limits["call_floor_seconds"]
