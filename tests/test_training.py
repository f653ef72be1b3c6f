import torch

from sst2mlp import MLP, FeatureCache, TrainConfig, Vocabulary, accuracy, featurize, train

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
