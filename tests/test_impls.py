import math

import pytest
import torch

from sst2mlp import MLP, FeatureCache, TrainConfig, Vocabulary, accuracy, featurize, predict_logits, train
from sst2mlp.impls import IMPLS, check_impls, effective_flops, make_variant
from sst2mlp.model import SparseLinear, convert, count_flops, count_params


@pytest.fixture(scope="module")
def baseline_trained_on_a_subset(sst2):
    """The baseline architecture (N=2, H=256, k=10,000), trained sparse on 20,000 examples for one epoch."""
    features = FeatureCache(sst2.train.sentences[:20_000], sst2.dev.sentences)(10_000)
    torch.manual_seed(0)
    model = MLP(2, 256, 10_000, sparse=True)
    train(model, features.train, torch.from_numpy(sst2.train.labels[:20_000]), TrainConfig(epochs=1))
    return model, features.dev, torch.from_numpy(sst2.dev.labels)


def test_exact_impls_agree_on_every_dev_example(baseline_trained_on_a_subset):
    model, dev, _ = baseline_trained_on_a_subset
    dense = make_variant("dense", model, dev)
    reference = torch.cat([predict_logits(dense, dev.rows(i, i + 1)) for i in range(len(dev))])
    for impl in ("sparse", "torchscript"):
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
    assert effective_flops("sparse", model.config, bags) == pytest.approx(2 * (5 / 3) * 4 + 4 + rest)
    assert effective_flops("torchscript", model.config, bags) == effective_flops("sparse", model.config, bags)
    assert effective_flops("dense", model.config, bags) == effective_flops("int8", model.config, bags) == count_flops(model)


def test_check_impls():
    assert check_impls(["dense", "int8"]) == ("dense", "int8")
    assert IMPLS == ("dense", "sparse", "torchscript", "int8")
    with pytest.raises(ValueError, match="unknown impl 'onnx'"):
        check_impls(["onnx"])
