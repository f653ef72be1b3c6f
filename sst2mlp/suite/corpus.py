"""The session's data: SST-2 (possibly the first N training rows), its features per vocabulary size, its labels, and
the checks a grid must pass against them before anything is measured."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from sst2mlp.measure import footprint
from sst2mlp.reference.data import SST2, load_sst2
from sst2mlp.reference.features import FeatureCache, Features
from sst2mlp.reference.model import ModelConfig
from sst2mlp.reference.training import TrainConfig


@dataclass
class Corpus:
    data_dir: str | None = None
    train_limit: int | None = None

    @cached_property
    def data(self) -> SST2:
        data = load_sst2(self.data_dir)
        if self.train_limit is not None:
            data = SST2(data.train.head(self.train_limit), data.dev, data.source)
        return data

    @property
    def loaded(self) -> bool:
        return "data" in vars(self)

    @cached_property
    def _feature_cache(self) -> FeatureCache:
        return FeatureCache(self.data.train.sentences, self.data.dev.sentences)

    def features(self, vocab_size: int) -> Features:
        return self._feature_cache(vocab_size)

    @cached_property
    def train_labels(self) -> torch.Tensor:
        return torch.from_numpy(self.data.train.labels)

    @cached_property
    def dev_labels(self) -> torch.Tensor:
        return torch.from_numpy(self.data.dev.labels)

    def check_vocabulary_sizes(self, vocabs: tuple[int, ...]) -> None:
        """Fail early when the grid asks for more words than the (possibly limited) training split has."""
        words = len(self._feature_cache.vocabulary)
        too_large = [k for k in vocabs if k > words]
        if too_large:
            limit = f" (the first {self.train_limit:,} examples)" if self.train_limit else ""
            raise ValueError(f"--sst2-vocabs: vocabulary size {max(too_large)} exceeds the {words:,} distinct words "
                             f"of the training split{limit}")

    def check_memory(self, grid: list[ModelConfig]) -> None:
        """Refuse, before anything is allocated, a grid whose largest training would not fit in the available memory."""
        available = footprint.available_memory_bytes()
        if available is None:
            return
        dev = len(self.data.dev)
        needs = {config: footprint.training_bytes_estimate(config, dev, TrainConfig.batch_size) for config in grid}
        config, need = max(needs.items(), key=lambda item: item[1])
        if need > available:
            raise ValueError(
                f"configuration {config.id} needs about {need / 2**30:,.1f} GiB (weights, gradients, Adam's two moments, "
                f"dense batches and the dense dev set) but {available / 2**30:,.1f} GiB are available; choose smaller "
                "--sst2-widths or --sst2-vocabs")

    def warnings(self) -> list[str]:
        found = list(self.data.notes)
        dev = len(self.data.dev)
        if dev < 100:
            found.append(f"the dev split has only {dev} examples: one example moves accuracy by {100 / dev:.1f} points, "
                         "and throughput benchmarks whose batch exceeds it are skipped")
        classes = sorted(set(self.data.train.labels.tolist()))
        if len(classes) < 2:
            limit = f" (its first {self.train_limit:,} rows)" if self.train_limit else ""
            found.append(f"the training split{limit} has only label {classes[0]}: every model learns a constant, and its "
                         "accuracy says nothing")
        return found
