import math
import os
import platform
import subprocess
import sys

import pytest
import torch

from helpers import run_pytest
from sst2mlp import MLP, FeatureCache, TrainConfig, Vocabulary, accuracy, featurize, predict_logits, train
from sst2mlp.impls.base import RuntimeSettings
from sst2mlp.impls.registry import IMPLS, REGISTRY, Variant, get_impl, make_variant
from sst2mlp.native import kernel
from sst2mlp.reference.model import SparseLinear, convert, count_flops, count_params


def test_exact_impls_agree_on_every_dev_example(baseline_trained_on_a_subset):
    model, dev, _ = baseline_trained_on_a_subset
    dense = make_variant("dense", model, dev)
    reference = torch.cat([predict_logits(dense, dev.rows(i, i + 1)) for i in range(len(dev))])
    for impl in ("sparse", "torchscript", "fused"):
        variant = make_variant(impl, model, dev)
        one_at_a_time = torch.cat([predict_logits(variant, dev.rows(i, i + 1)) for i in range(len(dev))])
        assert len(one_at_a_time) == 872
        assert torch.allclose(one_at_a_time, reference, rtol=0, atol=1e-4), impl
        assert torch.allclose(predict_logits(variant, dev), reference, rtol=0, atol=1e-4), impl


def test_int8_accuracy_within_one_point_of_dense(baseline_trained_on_a_subset):
    model, dev, labels = baseline_trained_on_a_subset
    dense_accuracy = accuracy(make_variant("dense", model, dev), dev, labels)
    int8_accuracy = accuracy(make_variant("int8", model, dev), dev, labels)
    assert dense_accuracy > 0.75
    assert abs(int8_accuracy - dense_accuracy) <= 0.01


def test_sparse_input_layer_is_initialised_like_linear():
    torch.manual_seed(0)
    layer = SparseLinear(10_000, 256)
    bound = 1 / math.sqrt(10_000)
    weight = layer.bag.weight
    assert weight.shape == (10_000, 256) and weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.01)  # uniform(-b, b), not N(0, 1)
    assert layer.bag.weight.requires_grad and layer.bias.requires_grad


def test_convert_keeps_parameters_and_counts():
    torch.manual_seed(0)
    dense = MLP(2, 16, 50)
    sparse = convert(dense, sparse=True)
    assert count_flops(sparse) == count_flops(dense) and count_params(sparse) == count_params(dense)
    assert torch.equal(convert(sparse, sparse=False).input.weight, dense.input.weight)


def test_sparse_training_reaches_the_accuracy_of_dense(sst2):
    features = FeatureCache(sst2.train.sentences[:10_000], sst2.dev.sentences)(1000)
    labels, dev_labels = torch.from_numpy(sst2.train.labels[:10_000]), torch.from_numpy(sst2.dev.labels)
    accuracies = {}
    for sparse in (False, True):
        torch.manual_seed(0)
        model = MLP(1, 64, 1000, sparse=sparse)
        train(model, features.train, labels, TrainConfig(epochs=1))
        accuracies[sparse] = accuracy(model, features.dev, dev_labels)
    assert abs(accuracies[True] - accuracies[False]) < 0.03, accuracies


def test_effective_flops_count_only_present_words():
    sentences = ["a b c", "a", "b b b b"]
    bags = featurize(sentences, Vocabulary.build(sentences))  # 3, 1, 1 distinct words
    model = MLP(1, 4, 3)
    rest = (2 * 4 * 4 + 4) + (2 * 4 + 1)
    assert IMPLS["sparse"].effective_flops(model, bags) == pytest.approx(2 * (5 / 3) * 4 + 4 + rest)
    assert IMPLS["torchscript"].effective_flops(model, bags) == IMPLS["sparse"].effective_flops(model, bags)
    assert IMPLS["fused-noskip"].effective_flops(model, bags) == IMPLS["sparse"].effective_flops(model, bags)  # every unit
    assert IMPLS["dense"].effective_flops(model, bags) == IMPLS["int8"].effective_flops(model, bags) == count_flops(model)


def test_fused_effective_flops_skip_the_units_the_relu_zeroed():
    sentences = ["a b c", "a", "b b b b"]
    bags = featurize(sentences, Vocabulary.build(sentences))
    model = MLP(1, 4, 3)
    with torch.no_grad():
        model.input.weight.zero_()
        model.input.bias.copy_(torch.tensor([1.0, -1.0, 2.0, 0.0]))  # two units pass the ReLU for every sentence
    sparse_input = 2 * (5 / 3) * 4 + 4
    assert IMPLS["fused"].effective_flops(model, bags) == pytest.approx(sparse_input + (2 * 2 * 4 + 4) + (2 * 4 + 1))


def test_unknown_impl_names_the_choices():
    with pytest.raises(ValueError, match="unknown impl 'onnx'; expected one of dense, sparse, torchscript, fused, fused-noskip, int8"):
        get_impl("onnx")


@pytest.mark.slow
@pytest.mark.parametrize("impl", [impl.name for impl in REGISTRY])
def test_every_impl_computes_the_dense_models_function_and_ships_what_it_holds(impl, tmp_path):
    """Exact impls match dense to float32 rounding on a batch and one row at a time, an empty row included; the others
    stay close. Their inputs follow `input_form`. Saved as its users ship it, an impl's files are the ones its record
    names, hold its weights and a small container (on the baseline's shape, smaller: its exports take a third of the
    time), and `load` then `prepare` (what a cold process runs) give the built forward's logits; its pinning says how
    threads and denormals were set."""
    record = get_impl(impl)
    words = [f"w{i}" for i in range(500)]
    sentences = ["w1 w2 w3 w1", "w499", "", "w7 w7 w7 w7 w250", "w0 w3", "w3 w3 w1 w42 w42 w42"]
    bags = featurize(sentences, Vocabulary.build(words))
    torch.manual_seed(1)
    model = MLP(2, 64, bags.vocab_size).eval()
    variant = make_variant(impl, model, bags)
    inputs = variant.inputs(bags)
    assert len(inputs) == {"dense": 1, "bags": 3, "padded": 2, "repeated": 2, "csr": 4, "padded or csr": 2}[record.input_form]
    tolerance = 1e-5 if record.exact else 0.05
    reference = predict_logits(model, bags)
    one_at_a_time = torch.cat([predict_logits(variant, bags.rows(i, i + 1)) for i in range(len(bags))])
    assert torch.allclose(predict_logits(variant, bags), reference, rtol=0, atol=tolerance)
    assert torch.allclose(one_at_a_time, reference, rtol=0, atol=tolerance)
    held, shipped = variant.model_bytes(), variant.file_bytes()
    container = 3_000_000 if impl == "aotinductor" else 20_000  # AOTInductor's package holds the compiled library
    assert held >= 500 * 64 * (1 if "int8" in impl else 4) and held <= shipped <= held + container  # the table at least
    assert [path.name for path in variant.save(tmp_path)] == sorted(record.files)
    with torch.no_grad():
        loaded = record.prepare(record.load(tmp_path, {"num_layers": 2, "hidden_size": 64, "vocab_size": bags.vocab_size}),
                                RuntimeSettings(), inputs)
        assert torch.allclose(Variant(record, loaded)(*inputs), variant(*inputs), rtol=0, atol=1e-6)
    assert {"thread_setting", "denormal_setting"} <= set(record.pinning) and record.module.startswith("sst2mlp.impls.")


def tiny_model_and_bags(num_layers=2):
    sentences = ["a b c a", "a", "b b b b c", "c d", "d d a"]
    bags = featurize(sentences, Vocabulary.build(sentences))
    torch.manual_seed(1)
    return MLP(num_layers, 8, 4).eval(), bags


@pytest.mark.parametrize("num_layers", [0, 1, 3])
def test_fused_matches_dense_for_any_depth(num_layers):
    model, bags = tiny_model_and_bags(num_layers)
    fused = make_variant("fused", model, bags)
    assert (fused.module.vocab_size, fused.module.hidden_size, fused.module.num_layers) == (4, 8, num_layers)
    assert torch.allclose(predict_logits(fused, bags), predict_logits(model, bags), rtol=0, atol=1e-6)


# widths that take each of the kernel's loops (panels of 64 outputs, summed 2 at a time by the row path with AVX-512;
# table rows in chunks of 256, 64 and 16 with AVX-512, of 96, 32 and 8 with AVX2; inputs selected a vector at a time,
# then one by one): no whole panel; a panel and a remainder; one pair; a pair, a panel and a remainder; a remainder
# that is not a whole vector; two pairs; two pairs and a panel
@pytest.mark.parametrize("hidden", [48, 72, 128, 200, 100, 256, 320])
def test_fused_is_exact_at_every_batch_size_with_empty_bags(hidden):
    """Batches of any size, dividing the rows or not, with rows that have no known word (the bias alone); fused-noskip,
    which reads every hidden unit, gives fused's logits bit for bit (a skipped term is an exact zero)."""
    words = [f"w{i}" for i in range(60)]
    generator = torch.Generator().manual_seed(2)
    sentences = [" ".join(words[int(i)] for i in torch.randint(0, 60, (int(n),), generator=generator))
                 for n in torch.randint(0, 20, (150,), generator=generator)]
    sentences[::17] = [""] * len(sentences[::17])
    bags = featurize(sentences, Vocabulary.build(words))
    torch.manual_seed(3)
    model = MLP(2, hidden, bags.vocab_size).eval()
    fused, noskip = make_variant("fused", model, bags), make_variant("fused-noskip", model, bags)
    reference = predict_logits(model, bags)
    assert (bags.nnz_per_row == 0).sum() >= 9
    for batch in (1, 2, 5, 6, 7, 11, 12, 13, 16, 27, 28, 63, 64, 65, 97, 149, 150):  # around blocks of 6 and 4, chunks of 96
        logits = torch.cat([fused(*fused.inputs(bags.rows(b, min(b + batch, len(bags))))) for b in range(0, len(bags), batch)])
        assert torch.allclose(logits, reference, rtol=0, atol=1e-5), batch
        every_unit = torch.cat([noskip(*noskip.inputs(bags.rows(b, min(b + batch, len(bags))))) for b in range(0, len(bags), batch)])
        assert torch.equal(every_unit, logits), batch


def test_fused_runs_batches_from_the_boundary_size_in_blocks_with_the_same_logits_as_row_by_row(baseline_trained_on_a_subset):
    """The blocked hidden layers add the same terms in the same order as the row path: the same logits, bit for bit."""
    model, dev, _labels = baseline_trained_on_a_subset
    fused = make_variant("fused", model, dev)
    extension = kernel.load_extension()
    boundary = extension.batched_rows
    assert not extension.uses_blocks(boundary - 1, 2) and extension.uses_blocks(boundary, 2)
    assert not extension.uses_blocks(10 * boundary, 0)  # no hidden layer: nothing to block
    with torch.inference_mode():
        for rows in (boundary - 1, boundary, 3 * boundary + 5, len(dev)):
            batch = dev.rows(0, rows)
            one_by_one = torch.cat([fused(*fused.inputs(batch.rows(i, i + 1))) for i in range(rows)])
            assert torch.equal(fused(*fused.inputs(batch)), one_by_one), rows


def test_fused_batches_give_the_same_logits_on_any_thread_count(baseline_trained_on_a_subset):
    model, dev, _ = baseline_trained_on_a_subset
    fused = make_variant("fused", model, dev)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_thread = fused(*fused.inputs(dev))
        torch.set_num_threads(2)
        two_threads = fused(*fused.inputs(dev))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one_thread, two_threads)  # rows are independent: same arithmetic, any split


def test_fused_copies_the_parameters():
    model, bags = tiny_model_and_bags()
    fused = make_variant("fused", model, bags)
    before = fused(*fused.inputs(bags))
    with torch.no_grad():
        model.output.bias += 1
    assert torch.equal(fused(*fused.inputs(bags)), before)


@pytest.mark.parametrize(
    "inputs, message",
    [
        ((torch.tensor([0, 9]), torch.tensor([0, 2]), torch.ones(2)), "word id 9 is outside the vocabulary of 4"),
        ((torch.tensor([0, 1]), torch.tensor([0, 3]), torch.ones(2)), "offsets must run from 0 to len\\(indices\\)"),
        ((torch.tensor([0, 1]), torch.tensor([0, 2, 1, 2]), torch.ones(2)), "offsets must not decrease"),
        ((torch.tensor([0, 1], dtype=torch.int32), torch.tensor([0, 2]), torch.ones(2)), "indices must be a contiguous 1-D int64"),
        ((torch.tensor([0, 1]), torch.tensor([0, 2]), torch.ones(3)), "counts must be .* as long as indices"),
    ],
)
def test_fused_rejects_malformed_inputs(inputs, message):
    model, bags = tiny_model_and_bags()
    fused = make_variant("fused", model, bags)
    with pytest.raises(RuntimeError, match=message):
        fused(*inputs)


def test_fused_rejects_mismatched_parameters():
    extension = kernel.load_extension()
    with pytest.raises(RuntimeError, match=r"hidden weight must have shape \(8, 8\)"):
        extension.FusedMLP(torch.zeros(4, 8), torch.zeros(8), [torch.zeros(8, 7)], [torch.zeros(8)], torch.zeros(8), 0.0)
    with pytest.raises(RuntimeError, match="input_bias must be a float32 CPU tensor"):
        extension.FusedMLP(torch.zeros(4, 8), torch.zeros(8, dtype=torch.float64), [], [], torch.zeros(8), 0.0)


def test_the_kernel_library_is_named_after_the_cpu_it_was_built_for(tmp_path):
    avx2, avx512 = tmp_path / "avx2", tmp_path / "avx512"
    avx2.write_text("processor\t: 0\nmodel name\t: A\nflags\t\t: fpu sse avx2\n")
    avx512.write_text("processor\t: 0\nmodel name\t: B\nflags\t\t: fpu sse avx2 avx512f\n")
    name = kernel.extension_name(avx2)
    assert name.startswith("sst2mlp_fused_mlp_") and len(name) == len("sst2mlp_fused_mlp_") + 10
    assert name.isidentifier()  # it becomes the Python module's name
    assert kernel.extension_name(avx512) != name  # other instruction sets: another library
    (tmp_path / "same").write_text(avx2.read_text().replace("model name\t: A", "model name\t: C"))
    assert kernel.extension_name(tmp_path / "same") == name  # only the flags decide


def test_a_failed_kernel_build_is_tried_once_and_states_its_cause(monkeypatch):
    attempts = []

    def failing_build(folder):
        attempts.append(folder)
        raise RuntimeError("Error building extension 'sst2mlp_fused_mlp'\nfused_mlp.cpp:3: error: expected ';'\nninja: build stopped")

    monkeypatch.setattr(kernel, "_loaded", None)
    monkeypatch.setattr(kernel, "_build", failing_build)
    for _ in range(2):
        with pytest.raises(kernel.KernelUnavailable, match=r"impl 'fused': building fused_mlp.cpp failed: fused_mlp.cpp:3: "
                                                            r"error: expected ';'; or leave 'fused' and 'fused-int8' out"):
            kernel.load_extension()
    assert len(attempts) == 1


def test_the_cause_of_a_failed_build_is_named(tmp_path):
    assert "'/nonexistent/c++' was not found" in kernel.build_failure(RuntimeError("x"), compiler="/nonexistent/c++")
    denied = PermissionError(13, "Permission denied", str(tmp_path / "ro"))
    assert f"cannot write the kernel's build folder {tmp_path / 'ro'} (Permission denied)" in kernel.build_failure(denied, "sh")


def test_a_stale_build_lock_is_named_after_a_bounded_wait(tmp_path):
    (tmp_path / "lock").write_text("")
    clock = iter(range(0, 1000, 30))
    with pytest.raises(kernel.KernelUnavailable, match=rf"the build lock {tmp_path / 'lock'} is still there after 120 s"):
        kernel.wait_for_lock(tmp_path, sleep=lambda seconds: None, clock=lambda: next(clock))
    kernel.wait_for_lock(tmp_path / "elsewhere")  # no lock: returns at once


def test_the_kernel_is_built_for_the_cpu_on_x86_and_for_armv8_neon_on_aarch64(monkeypatch):
    assert "-march=native" in kernel.compiler_flags("x86_64", "native")
    assert not any(flag.startswith(("-march", "-mcpu")) for flag in kernel.compiler_flags("aarch64", "native"))
    assert not any(flag.startswith("-march") for flag in kernel.compiler_flags("x86_64", "portable"))
    monkeypatch.setenv(kernel.KERNEL_PATH_VARIABLE, "neon-please")
    with pytest.raises(kernel.KernelUnavailable, match=r"\$SST2MLP_KERNEL_PATH='neon-please': expected one of native, portable"):
        kernel.kernel_path()
    assert kernel.extension_name(flags=kernel.compiler_flags("x86_64", "portable")) != kernel.extension_name(
        flags=kernel.compiler_flags("x86_64", "native"))  # a portable build is a library of its own


@pytest.mark.slow
def test_the_portable_kernel_the_arm_build_compiles_passes_the_kernels_own_tests(tmp_path):
    """The 4-float code that aarch64 compiles to NEON, built here without target flags (SSE2) into a folder of its
    own: the fused impls' tests (every batch size against dense, the blocked path against the row path, int8) and the
    sparse trainer's Adam step bit for bit, run against that build."""
    env = {**os.environ, kernel.KERNEL_PATH_VARIABLE: "portable", "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    run = run_pytest("tests/test_impls.py", "tests/test_training.py", "-q", "-k", "fused or sparse_gradient_adam",
                     env=env, timeout=900)
    assert run.returncode == 0 and " passed" in run.stdout, run.stdout[-3000:]
    info = subprocess.run([sys.executable, "-c", "from sst2mlp.native import kernel; kernel.load_extension(); "
                           "i = kernel.build_info(); print(i['vectors'], i['floats_per_vector'], *i['flags'])"],
                          capture_output=True, text=True, timeout=600, env=env)
    vectors, floats, *flags = info.stdout.split()
    assert (vectors, floats) == ("generic" if platform.machine() == "x86_64" else "neon", "4"), info.stderr[-2000:]
    assert not any(flag.startswith("-march") for flag in flags)
