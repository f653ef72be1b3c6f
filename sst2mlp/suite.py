"""What the pytest-benchmark suite measures, kept out of conftest so tests and benchmarks share it.

`SuiteOptions` holds the parsed command line, `Suite` the session: data, features
per vocabulary size, and one trained model per configuration (the training
benchmark's warm-up round provides it when that benchmark runs first).
"""
from __future__ import annotations

import itertools
import os
import platform
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from . import kernel
from .data import SST2, load_sst2
from .features import BagOfWords, FeatureCache, Features
from .impls import IMPLS, TRAINABLE, Variant, check_impls, effective_flops, make_variant
from .model import MLP, ModelConfig, count_flops, count_params
from .training import TrainConfig, TrainResult, accuracy, make_optimizer, train

REFERENCE_LAYERS = (1, 2, 4)
REFERENCE_WIDTHS = (128, 256, 512)
REFERENCE_VOCABS = (1000, 5000, 10000)
PERCENTILES = (50, 90, 99)
LATENCY_WARMUP_EXAMPLES = 100


def parse_positive_ints(text: str, option: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4); anything else is an error naming the option and the expected form."""
    values = []
    for item in str(text).split(","):
        item = item.strip()
        if not (item.isascii() and item.isdigit()) or int(item) < 1:
            raise ValueError(f"{option} expects a comma-separated list of positive integers such as 1,2,4; got {text!r}")
        values.append(int(item))
    if len(set(values)) != len(values):
        raise ValueError(f"{option} lists a value twice: {text!r}")
    return tuple(values)


def parse_positive_int(text: str, option: str) -> int:
    values = parse_positive_ints(text, option)
    if len(values) != 1:
        raise ValueError(f"{option} expects one positive integer; got {text!r}")
    return values[0]


def parse_impls(text: str, option: str, allowed=IMPLS) -> tuple[str, ...]:
    names = [item.strip() for item in str(text).split(",")]
    try:
        return check_impls(names, allowed)
    except ValueError as error:
        raise ValueError(f"{option}: {error}; got {text!r}") from None


@dataclass(frozen=True)
class SuiteOptions:
    layers: tuple[int, ...] = REFERENCE_LAYERS
    widths: tuple[int, ...] = REFERENCE_WIDTHS
    vocabs: tuple[int, ...] = REFERENCE_VOCABS
    threads: tuple[int, ...] = (1,)
    impls: tuple[str, ...] = IMPLS  # timed for latency and throughput
    train_impls: tuple[str, ...] = ("dense",)  # timed for training; sparse training adds ~40% to a full run
    train_rounds: int = 4
    train_limit: int | None = None  # only the first N training examples (smoke runs)
    latency_rounds: int = 1744  # two passes over the 872 dev examples, one example per round
    data_dir: str | None = None
    seed: int = 0

    @classmethod
    def parse(cls, layers, widths, vocabs, threads, impls, train_impls, train_rounds, train_limit, latency_rounds, data_dir) -> "SuiteOptions":
        return cls(
            layers=parse_positive_ints(layers, "--sst2-layers"),
            widths=parse_positive_ints(widths, "--sst2-widths"),
            vocabs=parse_positive_ints(vocabs, "--sst2-vocabs"),
            threads=parse_positive_ints(threads, "--sst2-threads"),
            impls=parse_impls(impls, "--sst2-impls"),
            train_impls=parse_impls(train_impls, "--sst2-train-impls", TRAINABLE),
            train_rounds=parse_positive_int(train_rounds, "--sst2-train-rounds"),
            train_limit=None if train_limit in (None, "") else parse_positive_int(train_limit, "--sst2-train-limit"),
            latency_rounds=parse_positive_int(latency_rounds, "--sst2-latency-rounds"),
            data_dir=data_dir,
        )

    def grid(self) -> list[ModelConfig]:
        return [ModelConfig(n, h, k) for n, h, k in itertools.product(self.layers, self.widths, self.vocabs)]


@dataclass
class TrainedModel:
    model: MLP
    result: TrainResult
    accuracy: float


@dataclass
class PreparedVariant:
    """An impl's form of a trained model, with what its benchmarks record about it (computed once)."""

    variant: Variant
    accuracy: float
    effective_flops: float


@dataclass
class Suite:
    options: SuiteOptions
    trained: dict[tuple[ModelConfig, bool], TrainedModel] = field(default_factory=dict)  # key: (config, sparse)
    variants: dict[tuple[ModelConfig, str], PreparedVariant] = field(default_factory=dict)
    trainings: int = 0  # how many trainings this session ran, to check none is wasted

    @cached_property
    def data(self) -> SST2:
        data = load_sst2(self.options.data_dir)
        if self.options.train_limit is not None:
            data = SST2(data.train.head(self.options.train_limit), data.dev, data.source)
        return data

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

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig(seed=self.options.seed)

    def check_vocabulary_sizes(self) -> None:
        """Fail early when the grid asks for more words than the (possibly limited) training split has."""
        words = len(self._feature_cache.vocabulary)
        too_large = [k for k in self.options.vocabs if k > words]
        if too_large:
            limit = f" (the first {self.options.train_limit:,} examples)" if self.options.train_limit else ""
            raise ValueError(f"vocabulary size {max(too_large)} exceeds the {words:,} distinct words of the training split{limit}")

    def summary(self) -> str | None:
        """One line for the end of a session: the data rows read and the trainings run, if any."""
        if "data" not in vars(self):  # the data was never needed (collection only, or no benchmark ran)
            return None
        return f"sst2mlp: {self.data.describe()}; {self.trainings} trainings run"

    def new_model(self, config: ModelConfig, sparse: bool) -> MLP:
        torch.manual_seed(self.options.seed)
        return MLP.from_config(config, sparse=sparse)

    def fit(self, model: MLP, optimizer: torch.optim.Optimizer | None = None) -> TrainResult:
        features = self.features(model.config.vocab_size)
        self.trainings += 1
        return train(model, features.train, self.train_labels, self.train_config, optimizer)

    def keep(self, model: MLP, result: TrainResult) -> None:
        """Keep the first trained model of each configuration and input form, with its dev accuracy."""
        key = (model.config, model.sparse)
        if key not in self.trained:
            dev = self.features(model.config.vocab_size).dev
            self.trained[key] = TrainedModel(model, result, accuracy(model, dev, self.dev_labels))

    def model_for(self, config: ModelConfig, sparse: bool = False) -> TrainedModel:
        if (config, sparse) not in self.trained:
            model = self.new_model(config, sparse)
            self.keep(model, self.fit(model))
        return self.trained[(config, sparse)]

    def variant(self, config: ModelConfig, impl: str) -> PreparedVariant:
        """The impl's form of the dense model trained this session, with its own dev accuracy.

        All impls share those weights, so their accuracies differ only by what the impl changes (int8).
        """
        if (config, impl) not in self.variants:
            trained = self.model_for(config, sparse=False)
            dev = self.features(config.vocab_size).dev
            variant = make_variant(impl, trained.model, dev)
            self.variants[(config, impl)] = PreparedVariant(
                variant, accuracy(variant, dev, self.dev_labels), effective_flops(impl, trained.model, dev)
            )
        return self.variants[(config, impl)]

    def config_info(self, config: ModelConfig, threads: int) -> dict:
        """What every benchmark of this configuration records, whatever its impl."""
        with torch.device("meta"):  # shapes only: nothing is allocated
            model = MLP.from_config(config)
        return {
            "num_layers": config.num_layers,
            "hidden_size": config.hidden_size,
            "vocab_size": config.vocab_size,
            "flops": count_flops(model),
            "params": count_params(model),
            "threads": threads,
            "seed": self.options.seed,
            "train_examples": len(self.data.train),
            "dev_examples": len(self.data.dev),
        }

    def extra_info(self, config: ModelConfig, impl: str, threads: int, group: str) -> dict:
        """A training benchmark describes the model it trained; the others the impl's variant of the dense model."""
        if group == "training":
            trained = self.model_for(config, sparse=impl == "sparse")
            impl_accuracy = trained.accuracy
            impl_flops = effective_flops(impl, trained.model, self.features(config.vocab_size).dev)
        else:
            trained = self.model_for(config, sparse=False)
            prepared = self.variant(config, impl)
            impl_accuracy, impl_flops = prepared.accuracy, prepared.effective_flops
        return {
            **self.config_info(config, threads),
            "impl": impl,
            "effective_flops": impl_flops,
            "accuracy": impl_accuracy,
            "train_accuracy": trained.result.train_accuracy,
            "final_loss": trained.result.final_loss,
        }


class TrainingRuns:
    """setup/target/teardown for benchmark.pedantic: each round trains a fresh model on the whole split.

    Only `run` is timed; setup builds the model and optimizer, teardown keeps the first model.
    """

    def __init__(self, suite: Suite, config: ModelConfig, sparse: bool):
        self.suite, self.config, self.sparse = suite, config, sparse
        self.suite.features(config.vocab_size)  # featurize before any timing
        self.results: list[TrainResult] = []

    def setup(self):
        model = self.suite.new_model(self.config, self.sparse)
        return (model, make_optimizer(model, self.suite.train_config)), {}

    def run(self, model: MLP, optimizer: torch.optim.Optimizer) -> TrainResult:
        self.results.append(self.suite.fit(model, optimizer))
        return self.results[-1]

    def teardown(self, model: MLP, optimizer: torch.optim.Optimizer) -> None:
        self.suite.keep(model, self.results[-1])


class CyclingInputs:
    """Model inputs for consecutive row blocks of the dev set, built before timing; `next` cycles through them.

    batch_size 1 gives single-example latency; rows that do not fill a last block are left out.
    """

    def __init__(self, variant: Variant, dev: BagOfWords, batch_size: int):
        if batch_size > len(dev):
            raise ValueError(f"batch size {batch_size} exceeds the {len(dev)} dev examples")
        self.batch_size = batch_size
        starts = range(0, len(dev) - batch_size + 1, batch_size)
        self.inputs = [variant.inputs(dev.rows(start, start + batch_size)) for start in starts]
        self.position = -1

    def next(self):
        self.position = (self.position + 1) % len(self.inputs)
        return self.inputs[self.position], {}


def percentiles(seconds: list[float]) -> dict[str, float]:
    values = np.percentile(np.asarray(seconds), PERCENTILES)
    return {f"p{p}": float(v) for p, v in zip(PERCENTILES, values)}


_BUILD_PATTERNS = {
    "blas": r"BLAS_INFO=(\w+)",
    "mkl": r"Math Kernel Library Version ([^\n]+?) for",
    "onednn": r"MKL-DNN (v[\d.]+)",
    "cpu_capability": r"CPU capability usage: (\w+)",
    "parallel_backend": r"ATen parallel backend: (\w+)",
}


def torch_build_info() -> dict[str, str]:
    text = torch.__config__.show() + torch.__config__.parallel_info()
    found = {name: re.search(pattern, text) for name, pattern in _BUILD_PATTERNS.items()}
    return {name: match.group(1).strip() for name, match in found.items() if match}


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def update_machine_info(machine_info: dict, options: SuiteOptions) -> None:
    """Record what decides the timings; drop the momentary clock speed so runs on one machine compare cleanly."""
    cpu = machine_info.get("cpu", {})
    for key in [k for k in cpu if k.startswith("hz_actual")]:
        del cpu[key]
    machine_info["torch"] = {
        "version": torch.__version__,
        "threads": list(options.threads),
        "interop_threads": torch.get_num_interop_threads(),
        **torch_build_info(),
    }
    if "fused" in options.impls:
        machine_info["fused_kernel"] = kernel.build_info()
    machine_info["cpu_model"] = cpu_model()
    machine_info["cpu_count"] = os.cpu_count()
    if hasattr(os, "getloadavg"):
        machine_info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
