"""Every impl's form of the dense model a session trained, with what its benchmarks record about it (made once)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .contract import Footprint
from .corpus import Corpus
from .footprint import MemoryMeter
from .impls import Variant, effective_flops, make_variant
from .model import ModelConfig
from .trained import Models, TrainedModel, trainer_of
from .training import accuracy

SOURCE = trainer_of("dense")  # every impl is made from the dense trainer's model: one set of weights per configuration


@dataclass
class PreparedVariant:
    variant: Variant
    source: TrainedModel  # the model it was made from
    accuracy: float  # its own dev accuracy: differs from the source's only by what the impl changes (int8)
    effective_flops: float
    footprint: Footprint


@dataclass
class Variants:
    corpus: Corpus
    models: Models
    memory: MemoryMeter
    prepared: dict[tuple[ModelConfig, str], PreparedVariant] = field(default_factory=dict)

    def get(self, config: ModelConfig, impl: str) -> PreparedVariant:
        if (config, impl) not in self.prepared:
            source = self.models.model_for(config, SOURCE)
            dev = self.corpus.features(config.vocab_size).dev
            variant = make_variant(impl, source.model, dev)
            with self.memory.measuring():
                footprint = Footprint(model_bytes=variant.model_bytes(), file_bytes=variant.file_bytes())
            self.prepared[(config, impl)] = PreparedVariant(
                variant, source, accuracy(variant, dev, self.corpus.dev_labels), effective_flops(impl, source.model, dev), footprint)
        return self.prepared[(config, impl)]
