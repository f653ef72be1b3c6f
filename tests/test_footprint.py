import random

import pytest
import torch

from sst2mlp import MLP, Vocabulary, accuracy, featurize
from sst2mlp.impls.registry import make_variant
from sst2mlp.measure.footprint import PeakMemory
from sst2mlp.reference.training import TrainConfig, train

SENTENCES = ["a b c a", "a", "b b b b c", "c d", "d d a"]


def small_model(num_layers=1, hidden=8, vocab=4):
    torch.manual_seed(0)
    return MLP(num_layers, hidden, vocab).eval(), featurize(SENTENCES, Vocabulary.build(SENTENCES))


def test_float_impls_hold_four_bytes_per_parameter():
    model, bags = small_model()
    parameters = (4 + 1) * 8 + (8 + 1) * 8 + (8 + 1)  # input, hidden and output layers with their biases
    for impl in ("dense", "sparse", "torchscript"):
        assert make_variant(impl, model, bags).model_bytes() == 4 * parameters, impl
    assert make_variant("fused", model, bags).model_bytes() == 4 * parameters  # its copies, output bias included


def test_int8_holds_one_byte_per_weight_plus_float_biases_and_scales():
    model, bags = small_model()
    weights, biases = 4 * 8 + 8 * 8 + 8, 8 + 8 + 1
    assert make_variant("int8", model, bags).model_bytes() == weights + 4 * biases + 3 * 16  # a scale and zero point per layer
    # the int8 table: 1 byte per input weight and a float scale per row; the rest stays float32
    assert make_variant("fused-int8", model, bags).model_bytes() == 4 * 8 + 4 * 4 + 4 * (8 + 8 * 8 + 8 + 8 + 1)


@pytest.mark.parametrize("impl", ["int8", "fused-int8"])
def test_int8_impls_are_at_most_30_percent_of_float_for_the_big_configurations(impl):
    model, bags = small_model(num_layers=2, hidden=256, vocab=10_000)
    dense = make_variant("dense", model, bags).model_bytes()
    assert dense == 4 * 2_692_097
    assert make_variant(impl, model, bags).model_bytes() <= 0.30 * dense


def test_peak_memory_sees_an_allocation_inside_the_region_and_not_outside():
    memory = PeakMemory()
    if memory.unavailable:
        pytest.skip(memory.unavailable)
    outside = torch.ones(10_000_000)  # 40 MB, allocated before the region starts
    start = memory.start()
    inside = torch.ones(25_000_000)  # 100 MB
    grown = memory.added_since(start)
    del inside
    start = memory.start()
    nothing = memory.added_since(start)
    assert 95e6 <= grown <= 110e6 and nothing < 5e6
    del outside


def test_a_second_training_in_the_same_process_reads_as_much_as_the_first():
    """Memory freed by an earlier training stays in malloc's free lists; a reading that reused it would say 0 bytes."""
    memory = PeakMemory()
    if memory.unavailable:
        pytest.skip(memory.unavailable)
    words = [f"w{i}" for i in range(10_000)]
    generator = random.Random(0)
    sentences = [" ".join(generator.choices(words, k=12)) for _ in range(1_000)]
    bags = featurize(sentences, Vocabulary.build(sentences, 10_000))
    labels = torch.randint(0, 2, (len(sentences),), generator=torch.Generator().manual_seed(0))
    readings = []
    for _ in range(2):
        start = memory.start()
        model = MLP(2, 256, bags.vocab_size)
        train(model, bags, labels, TrainConfig(epochs=1))
        readings.append(memory.added_since(start))
        del model
    weights_gradients_and_moments = 4 * 4 * sum(p.numel() for p in MLP(2, 256, bags.vocab_size).parameters())
    assert min(readings) >= weights_gradients_and_moments, readings


def test_without_proc_the_peak_is_none_with_a_reason(monkeypatch, tmp_path):
    from sst2mlp.measure import footprint

    monkeypatch.setattr(footprint, "CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    memory = PeakMemory()
    assert "clear_refs" in memory.unavailable
    assert memory.added_since(memory.start()) is None


def test_the_int8_table_keeps_the_baseline_accuracy_within_half_a_point(baseline_trained_on_a_subset):
    model, dev, labels = baseline_trained_on_a_subset
    float_accuracy = accuracy(make_variant("fused", model, dev), dev, labels)
    int8_accuracy = accuracy(make_variant("fused-int8", model, dev), dev, labels)
    assert abs(int8_accuracy - float_accuracy) <= 0.005
