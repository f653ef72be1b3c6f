"""Bag-of-words features exactly as the reference report defines them.

Words: delete ASCII punctuation (`string.punctuation`), split on whitespace.
Vocabulary: the k most common training words; ties go to the word that sorts
first. Each sentence becomes a length-k vector of word counts, out-of-vocabulary
words ignored.

Features are stored sparse (CSR: indices, offsets, counts), because a sentence
has about 8-15 distinct words out of up to 10,000; dense rows are made per batch.
"""
from __future__ import annotations

import string
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)


def tokenize(sentence: str) -> list[str]:
    return sentence.translate(_DELETE_PUNCTUATION).split()


@dataclass(frozen=True)
class Vocabulary:
    words: tuple[str, ...]  # most frequent first; a word's position is its feature index

    @classmethod
    def build(cls, sentences: list[str], size: int | None = None) -> Vocabulary:
        """The `size` most common words of `sentences` (all of them if size is None)."""
        counts = Counter(word for sentence in sentences for word in tokenize(sentence))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls(tuple(word for word, _ in ranked[:size]))

    def top(self, size: int) -> Vocabulary:
        if size > len(self):
            raise ValueError(f"vocabulary size {size} exceeds the {len(self)} distinct training words")
        return Vocabulary(self.words[:size])

    @cached_property
    def index(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)


@dataclass(frozen=True)
class EncodedText:
    """Sentences as flat word ids: sentence i is ids[offsets[i]:offsets[i + 1]], OOV words dropped."""

    ids: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1


def encode(sentences: list[str], vocabulary: Vocabulary) -> EncodedText:
    index = vocabulary.index
    ids, lengths = [], []
    for sentence in sentences:
        sentence_ids = [index[w] for w in tokenize(sentence) if w in index]
        ids.extend(sentence_ids)
        lengths.append(len(sentence_ids))
    offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return EncodedText(np.asarray(ids, dtype=np.int64), offsets)


@dataclass(frozen=True)
class BagOfWords:
    """Word-count vectors in CSR form: row i has counts[o:e] at columns indices[o:e], (o, e) = offsets[i:i+2]."""

    indices: torch.Tensor  # int64, sorted within each row
    offsets: torch.Tensor  # int64, length rows + 1
    counts: torch.Tensor  # float32
    vocab_size: int

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def nnz_per_row(self) -> torch.Tensor:
        return self.offsets.diff()

    def rows(self, start: int, stop: int) -> BagOfWords:
        """Rows start..stop-1 as a view (no copy)."""
        begin, end = int(self.offsets[start]), int(self.offsets[stop])
        return BagOfWords(self.indices[begin:end], self.offsets[start : stop + 1] - begin, self.counts[begin:end], self.vocab_size)

    def permute(self, order: torch.Tensor) -> BagOfWords:
        """The rows in the given order (one gather, so batches of a shuffled epoch are contiguous slices)."""
        lengths = self.nnz_per_row[order]
        new_offsets = torch.zeros_like(self.offsets)
        torch.cumsum(lengths, 0, out=new_offsets[1:])
        gather = torch.repeat_interleave(self.offsets[:-1][order] - new_offsets[:-1], lengths)
        gather += torch.arange(len(gather))
        return BagOfWords(self.indices[gather], new_offsets, self.counts[gather], self.vocab_size)

    def inputs(self, sparse: bool) -> tuple[torch.Tensor, ...]:
        """A model's forward arguments for these rows: (indices, offsets, counts) for a sparse input layer, else the
        dense count matrix."""
        return (self.indices, self.offsets, self.counts) if sparse else (self.dense(),)

    def padded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, weights), both (rows, longest row): row i's word ids and counts, padded with id 0 at weight 0. The input
        layer of the exported models is then a gather of rows weighted and summed, in ops every runtime has (a pad adds
        0 x a row: exact)."""
        # numpy, not torch: a request's batch is small, and a torch op's dispatch (about 5 us) would be most of it
        lengths = np.diff(self.offsets.numpy())
        length = max(1, int(lengths.max())) if len(self) else 1
        present = np.arange(length) < lengths[:, None]  # row-major, as CSR lists each row's words in order
        ids = np.zeros((len(self), length), dtype=np.int64)
        weights = np.zeros((len(self), length), dtype=np.float32)
        ids[present] = self.indices.numpy()
        weights[present] = self.counts.numpy()
        return torch.from_numpy(ids), torch.from_numpy(weights)

    def dense(self) -> torch.Tensor:
        out = torch.zeros(len(self), self.vocab_size)
        row_ids = torch.repeat_interleave(torch.arange(len(self)), self.nnz_per_row)
        out[row_ids, self.indices] = self.counts
        return out

    def to_sparse_csr(self) -> torch.Tensor:
        return torch.sparse_csr_tensor(
            self.offsets, self.indices, self.counts, size=(len(self), self.vocab_size), check_invariants=True
        )


def bag_of_words(text: EncodedText, vocab_size: int) -> BagOfWords:
    """Count the ids below `vocab_size` per sentence (ids are ranks, so this is the top-k vocabulary)."""
    rows = np.repeat(np.arange(len(text), dtype=np.int64), np.diff(text.offsets))
    keep = text.ids < vocab_size
    keys, counts = np.unique(rows[keep] * vocab_size + text.ids[keep], return_counts=True)
    offsets = np.zeros(len(text) + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // vocab_size, minlength=len(text)), out=offsets[1:])
    return BagOfWords(
        indices=torch.from_numpy(keys % vocab_size),
        offsets=torch.from_numpy(offsets),
        counts=torch.from_numpy(counts.astype(np.float32)),
        vocab_size=vocab_size,
    )


def featurize(sentences: list[str], vocabulary: Vocabulary) -> BagOfWords:
    return bag_of_words(encode(sentences, vocabulary), len(vocabulary))


@dataclass(frozen=True)
class Features:
    train: BagOfWords
    dev: BagOfWords


@dataclass
class FeatureCache:
    """Features of one train/dev pair for any k: sentences are tokenized once, each k counted once."""

    train_sentences: list[str]
    dev_sentences: list[str]
    _by_size: dict[int, Features] = field(default_factory=dict, repr=False)

    @cached_property
    def vocabulary(self) -> Vocabulary:
        return Vocabulary.build(self.train_sentences)

    @cached_property
    def _encoded(self) -> tuple[EncodedText, EncodedText]:
        return encode(self.train_sentences, self.vocabulary), encode(self.dev_sentences, self.vocabulary)

    def __call__(self, vocab_size: int) -> Features:
        if vocab_size not in self._by_size:
            self.vocabulary.top(vocab_size)  # validates the size
            train, dev = self._encoded
            self._by_size[vocab_size] = Features(bag_of_words(train, vocab_size), bag_of_words(dev, vocab_size))
        return self._by_size[vocab_size]
