"""Every impl's form of the dense model a session trained, with what its benchmarks record about it (made once per
configuration, impl and thread count)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from sst2mlp.contract import Footprint, Parity
from sst2mlp.impls.base import RuntimeSettings
from sst2mlp.impls.registry import Variant, make_variant
from sst2mlp.measure.footprint import MemoryMeter
from sst2mlp.reference.model import ModelConfig
from sst2mlp.reference.training import logit_accuracy, predict_logits

from .corpus import Corpus
from .models import Models, TrainedModel, Trainer, trainer_of


@dataclass
class PreparedVariant:
    variant: Variant
    source: TrainedModel  # the model it was made from
    accuracy: float  # its own dev accuracy: differs from the source's only by what the impl changes (int8)
    effective_flops: float
    footprint: Footprint
    parity: Parity  # its dev predictions and logits against the source model's (dense)


def parity(logits: torch.Tensor, reference: torch.Tensor) -> Parity:
    return Parity(agreement_with_dense=((logits > 0) == (reference > 0)).double().mean().item(),
                  max_logit_difference=(logits - reference).abs().max().item() if len(logits) else 0.0)


@dataclass
class Variants:
    corpus: Corpus
    models: Models
    memory: MemoryMeter
    flush_denormals: bool = True
    source: Trainer = field(default_factory=lambda: trainer_of("sparse"))  # whose seed-0 model every impl is made from
    prepared: dict[tuple[ModelConfig, str, int], PreparedVariant] = field(default_factory=dict)
    build_seconds: float = 0.0  # making every variant (exports, compilation) and checking its dev predictions
    _reference: dict[int, torch.Tensor] = field(default_factory=dict)  # dev logits per source model (by id)

    def get(self, config: ModelConfig, impl: str, threads: int = 1) -> PreparedVariant:
        """The impl's variant built for `threads` (a runtime with a thread pool of its own is built with the count)."""
        key = (config, impl, threads)
        if key not in self.prepared:
            source = self.models.model_for(config, self.source)
            start = time.perf_counter()
            dev, labels = self.corpus.features(config.vocab_size).dev, self.corpus.dev_labels
            variant = make_variant(impl, source.model, dev, RuntimeSettings(threads, self.flush_denormals))
            with self.memory.measuring():
                footprint = Footprint(model_bytes=variant.model_bytes(), file_bytes=variant.file_bytes())
            with torch.inference_mode():
                logits = predict_logits(variant, dev)
                if id(source.model) not in self._reference:  # once per source model, not once per impl
                    self._reference[id(source.model)] = predict_logits(source.model, dev)
                reference = self._reference[id(source.model)]
            self.prepared[key] = PreparedVariant(variant, source, logit_accuracy(logits, labels),
                                                 variant.impl.effective_flops(source.model, dev),
                                                 footprint, parity(logits, reference))
            self.build_seconds += time.perf_counter() - start
        return self.prepared[key]

    def release(self, config: ModelConfig) -> list[str]:
        """Drop every variant of `config` (its runtime sessions and compiled graphs with it); the impls released."""
        keys = [key for key in self.prepared if key[0] == config]
        for key in keys:
            prepared = self.prepared.pop(key)
            self._reference.pop(id(prepared.source.model), None)
        return sorted({impl for _, impl, _ in keys})
