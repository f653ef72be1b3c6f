import string

import pytest
import torch

from sst2mlp import FeatureCache, Vocabulary, featurize, tokenize
from sst2mlp.reference.features import bag_of_words, encode

SENTENCES = ["the film , the cast .", "a film 's heart", "the the end", "zebra apple"]


def test_tokenize_deletes_ascii_punctuation_then_splits_on_whitespace():
    assert tokenize("it 's a gem -- truly ! ") == ["it", "s", "a", "gem", "truly"]
    assert tokenize("don't") == ["dont"]
    assert tokenize(string.punctuation) == []


def test_vocabulary_ranks_by_count_then_word():
    vocabulary = Vocabulary.build(SENTENCES)
    # the: 4, film: 2, then count-1 words alphabetically
    assert vocabulary.words == ("the", "film", "a", "apple", "cast", "end", "heart", "s", "zebra")
    assert Vocabulary.build(SENTENCES, size=3).words == ("the", "film", "a")
    assert vocabulary.top(2).words == ("the", "film")


def test_vocabulary_larger_than_the_words_is_rejected():
    with pytest.raises(ValueError, match="vocabulary size 10 exceeds the 9 distinct training words"):
        Vocabulary.build(SENTENCES).top(10)


def test_bag_of_words_counts_and_ignores_unknown_words():
    vocabulary = Vocabulary.build(SENTENCES, size=3)  # the, film, a
    bags = featurize(["the the film", "unknown words only", "a film a the"], vocabulary)
    assert bags.dense().tolist() == [[2, 1, 0], [0, 0, 0], [1, 1, 2]]
    assert bags.nnz_per_row.tolist() == [2, 0, 3]


def test_dense_and_sparse_forms_agree_on_real_data(sst2):
    features = FeatureCache(sst2.train.sentences[:5000], sst2.dev.sentences)(1000)
    for bags in (features.train, features.dev):
        assert torch.equal(bags.to_sparse_csr().to_dense(), bags.dense())
        assert torch.equal(bags.rows(10, 20).dense(), bags.dense()[10:20])


def test_permute_reorders_rows():
    bags = featurize(SENTENCES, Vocabulary.build(SENTENCES))
    order = torch.tensor([2, 0, 3, 1])
    assert torch.equal(bags.permute(order).dense(), bags.dense()[order])


def test_cache_matches_direct_featurization_for_each_size():
    cache = FeatureCache(SENTENCES, ["film the zebra", "nothing known"])
    for size in (1, 4, 9):
        vocabulary = Vocabulary.build(SENTENCES, size=size)
        assert torch.equal(cache(size).train.dense(), featurize(SENTENCES, vocabulary).dense())
        assert torch.equal(cache(size).dev.dense(), featurize(["film the zebra", "nothing known"], vocabulary).dense())
    assert cache(4) is cache(4)


def test_bag_of_words_keeps_only_the_top_ranks():
    full = Vocabulary.build(SENTENCES)
    assert torch.equal(bag_of_words(encode(SENTENCES, full), 2).dense(), featurize(SENTENCES, full.top(2)).dense())
