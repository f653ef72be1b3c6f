import pytest
import torch

from sst2mlp import MLP, FeatureCache, TrainConfig, Vocabulary, accuracy, featurize, train
from sst2mlp.reference.training import SparseRowsAdam, make_optimizer

POSITIVE = ["great fun", "great film", "fun fun film", "a great ride", "truly fun"]
NEGATIVE = ["dull mess", "a dull film", "boring mess", "boring dull", "truly boring"]


def toy_problem():
    sentences = (POSITIVE + NEGATIVE) * 20
    labels = torch.tensor(([1] * 5 + [0] * 5) * 20)
    bags = featurize(sentences, Vocabulary.build(sentences))
    return bags, labels


def trained(seed, bags, labels, epochs=3):
    torch.manual_seed(seed)
    model = MLP(num_layers=1, hidden_size=16, vocab_size=bags.vocab_size)
    return model, train(model, bags, labels, TrainConfig(epochs=epochs, batch_size=8, seed=seed))


def test_training_learns_a_separable_toy_problem():
    bags, labels = toy_problem()
    model, result = trained(0, bags, labels, epochs=6)
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    assert accuracy(model, bags, labels) == 1.0
    assert len(result.epoch_seconds) == 6 and result.seconds == sum(result.epoch_seconds) > 0
    assert 0.5 < result.train_accuracy <= 1.0


def test_same_seed_same_model_other_seed_other_model():
    bags, labels = toy_problem()
    first, first_result = trained(3, bags, labels)
    again, again_result = trained(3, bags, labels)
    other, _ = trained(4, bags, labels)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters()))
    assert first_result.epoch_losses == again_result.epoch_losses
    assert not torch.equal(first.input.weight, other.input.weight)


def test_rows_and_labels_must_match():
    bags, labels = toy_problem()
    try:
        train(MLP(1, 4, bags.vocab_size), bags, labels[:-1])
    except ValueError as error:
        assert "200 feature rows but 199 labels" in str(error)
    else:
        raise AssertionError("mismatched labels were accepted")


def test_short_training_on_real_data_beats_chance(sst2):
    features = FeatureCache(sst2.train.sentences[:10_000], sst2.dev.sentences)(1000)
    torch.manual_seed(0)
    model = MLP(num_layers=1, hidden_size=64, vocab_size=1000)
    train(model, features.train, torch.from_numpy(sst2.train.labels[:10_000]), TrainConfig(epochs=1))
    assert accuracy(model, features.dev, torch.from_numpy(sst2.dev.labels)) > 0.68


def dense_gradient_twin(model: MLP) -> MLP:
    """The same sparse model, weights and all, whose input table gets the dense gradient nn.EmbeddingBag gives."""
    twin = MLP.from_config(model.config, sparse=True)
    twin.load_state_dict(model.state_dict())
    twin.input.bag.sparse = False
    return twin


@pytest.fixture(params=["extension", "dense buffer"])
def table_step(request, monkeypatch):
    """SparseRowsAdam's two ways to step the table: the extension's step, or torch's on a kept dense gradient."""
    if request.param == "dense buffer":
        monkeypatch.setattr(SparseRowsAdam, "extension", property(lambda self: None))
    return request.param


@pytest.mark.parametrize("fused", [True, False])
def test_the_sparse_gradient_adam_is_exact_adam_over_every_row_of_the_table(fused, table_step):
    """Same parameters and losses as torch's Adam on the dense gradient, bit for bit: the rows of earlier batches,
    absent from later ones, keep moving (their moments decay) exactly as there."""
    bags, labels = toy_problem()
    torch.manual_seed(0)
    model = MLP(1, 16, bags.vocab_size, sparse=True)
    twin = dense_gradient_twin(model)
    config = TrainConfig(epochs=2, batch_size=8, seed=1, fused_adam=fused)
    optimizer = make_optimizer(model, config)
    assert isinstance(optimizer, SparseRowsAdam)
    result = train(model, bags, labels, config, optimizer)
    expected = train(twin, bags, labels, config, torch.optim.Adam(twin.parameters(), lr=config.learning_rate, fused=fused))
    assert result.epoch_losses == expected.epoch_losses
    for (name, mine), theirs in zip(model.named_parameters(), twin.parameters()):
        assert torch.equal(mine, theirs), name
    assert bool(optimizer._dense_grads) == (table_step == "dense buffer" or not fused)  # no dense gradient, else


def test_the_sparse_model_gives_its_table_a_sparse_gradient_and_the_step_leaves_it_sparse():
    bags, _ = toy_problem()  # rows 0-1 "great fun", "great film"; rows 5-6 "dull mess", "a dull film"
    model = MLP(1, 4, bags.vocab_size, sparse=True)
    optimizer = make_optimizer(model, TrainConfig())
    table = model.input.bag.weight
    for batch in (bags.rows(0, 2), bags.rows(5, 7)):
        before = table.detach().clone()
        optimizer.zero_grad(set_to_none=True)
        model(*model.inputs(batch)).sum().backward()
        assert table.grad.is_sparse
        optimizer.step()
        assert table.grad.is_sparse and not optimizer._dense_grads  # no table-sized gradient was made
    first_batch_only = sorted(set(bags.rows(0, 2).indices.tolist()) - set(bags.rows(5, 7).indices.tolist()))
    assert first_batch_only and (table[first_batch_only] != before[first_batch_only]).any(1).all()  # moved, no gradient


def test_the_table_step_refuses_mismatched_tensors():
    extension = SparseRowsAdam.extension.fget(None)
    table = torch.zeros(4, 8)
    with pytest.raises(RuntimeError, match=r"exp_avg_sq must be a contiguous float32 CPU tensor shaped like the parameter"):
        extension.sparse_rows_adam_(table, torch.zeros(4, 8), torch.zeros(4, 7), torch.tensor([1]), torch.ones(1, 8),
                                    lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=1)
    with pytest.raises(RuntimeError, match=r"row 4 is outside the table's 4 rows"):
        extension.sparse_rows_adam_(table, torch.zeros(4, 8), torch.zeros(4, 8), torch.tensor([4]), torch.ones(1, 8),
                                    lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=1)
