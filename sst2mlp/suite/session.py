"""The session of a benchmark run: its options and the parts that hold its state (the corpus, the trained models,
the seeds' accuracies, every impl's variant, the memory meter, the canary), and the one place a benchmark's
extra_info is written."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sst2mlp import contract
from sst2mlp.impls.base import RuntimeSettings
from sst2mlp.impls.registry import IMPLS, approximate
from sst2mlp.measure import limits
from sst2mlp.measure.footprint import MemoryMeter
from sst2mlp.measure.limits import MachineLimits
from sst2mlp.measure.machine import torch_threads
from sst2mlp.measure.quiet_gate import Canary, QuietGate, WaitBudget
from sst2mlp.measure.timing import CyclingInputs
from sst2mlp.native import kernel
from sst2mlp.reference.model import ModelConfig

from .coldstart import ColdStarts
from .corpus import Corpus
from .models import FirstRoundPeak, Models, Trainer, TrainingRuns, trainer_of
from .options import SuiteOptions
from .seeds import SeedRecorder
from .variants import Variants


@dataclass
class Suite:
    options: SuiteOptions
    corpus: Corpus = field(init=False)
    models: Models = field(init=False)
    seeds: SeedRecorder = field(init=False)
    variants: Variants = field(init=False)
    coldstarts: ColdStarts = field(init=False)
    memory: MemoryMeter = field(default_factory=MemoryMeter, repr=False)
    canary: Canary = field(default_factory=Canary, repr=False)
    wait_budget: WaitBudget = field(init=False, repr=False)  # the run's waiting allowance (--sst2-quiet-budget)
    progress: object | None = field(default=None, repr=False)  # a sst2mlp.suite.progress.Progress while a run shows one
    unstable: list[str] = field(default_factory=list)  # benchmarks whose timed rounds spread more than stats.UNSTABLE_SPREAD
    finished: set[str] = field(default_factory=set)  # the node ids of the benchmarks whose timed record was written
    limits: dict[int, MachineLimits] = field(default_factory=dict)  # per thread count, measured before any timing
    _adam_steps: dict[tuple[int, int], float] = field(default_factory=dict, repr=False)  # (params, threads) -> seconds
    _warmed_up: set[bool] = field(default_factory=set, repr=False)  # input-layer kinds (sparse?) trained once untimed

    def __post_init__(self):
        options = self.options
        self.corpus = Corpus(options.data_dir, options.train_limit)
        self.models = Models(self.corpus, options.seed)
        source = trainer_of(options.train_impls[0])  # the models every impl runs: the first trainer's
        self.seeds = SeedRecorder(self.corpus, self.models, options.seed_count, approximate(options.impls), source.name)
        self.variants = Variants(self.corpus, self.models, self.memory, flush_denormals=options.denormals == "flush",
                                 source=source)
        self.coldstarts = ColdStarts(options.denormals)
        self.wait_budget = WaitBudget(options.quiet_budget)

    def check(self) -> None:
        """Before any benchmark: the data loads, and the grid fits the data and the memory (DataError, ValueError)."""
        self.corpus.check_vocabulary_sizes(self.options.vocabs)
        self.corpus.check_memory(self.options.grid())

    def measure_limits(self) -> None:
        """What the machine can do at each thread count of the run (sst2mlp.measure.limits), and each runtime's call floor:
        a few seconds, once (ExecuTorch lowers its empty model, AOTInductor compiles one)."""
        try:
            extension = kernel.load_extension()
        except kernel.KernelUnavailable:
            extension = None  # no call floor; the fused benchmarks say why
        runtimes = [IMPLS[name] for name in self.options.impls if IMPLS[name].empty_model and not IMPLS[name].missing()]
        self.limits = {}
        for threads in self.options.threads:
            measured = limits.measure(self.options.widths, threads, extension)
            with torch_threads(threads):
                floors = limits.runtime_call_floors(runtimes, RuntimeSettings(threads, self.options.denormals == "flush"))
            self.limits[threads] = dataclasses.replace(measured, runtime_call_floor_seconds=floors)

    def release(self, config: ModelConfig) -> int | None:
        """After a configuration's last benchmark (sst2mlp.suite.schedule): its models, variants, runtime sessions and
        compiled graphs are dropped and the memory handed back, so that a run holds one configuration at a time. The
        resident bytes left (what the run holds between configurations), where Linux says."""
        released = self.variants.release(config)
        self.models.release(config)
        self.coldstarts.release(config)
        for forget in dict.fromkeys(IMPLS[name].forget for name in released if IMPLS[name].forget):
            forget()  # what the process keeps of an impl's built forms beyond them (compiled graphs, registered types)
        return self.memory.peak.release()

    def adam_step_seconds(self, params: int, threads: int) -> float:
        """The Adam step a training's floor counts, measured once per parameter count and thread count (untimed)."""
        if (params, threads) not in self._adam_steps:
            self._adam_steps[params, threads] = limits.adam_step_seconds(params, threads)
        return self._adam_steps[params, threads]

    def training_runs(self, config, trainer: Trainer, timed: bool) -> TrainingRuns:
        """The rounds of a training benchmark: a warm-up and --sst2-train-rounds timed ones, or one round untimed."""
        self.corpus.features(config.vocab_size)  # featurize before any timing
        rounds = self.options.trained_rounds if timed else 1
        peak = FirstRoundPeak(self.memory, lambda: self._warm_up_training(trainer.sparse, config.vocab_size))
        return TrainingRuns(self.models, config, trainer, rounds, peak, on_round=lambda index: self._show_round(index, rounds))

    def _show_round(self, index: int, rounds: int) -> None:
        if self.progress is not None:
            self.progress.training_round(index, rounds)

    def _warm_up_training(self, sparse: bool, vocab_size: int) -> None:
        """Once a session per input-layer kind, before its first peak-memory reading: a small untimed training.

        A process's first training also pages in torch's training code and one-off buffers (about 80 MB more
        than any later training of the same model read here); that is not what the training costs."""
        if sparse in self._warmed_up or self.memory.peak.unavailable:
            return
        self._warmed_up.add(sparse)
        with self.memory.measuring():
            self.models.train_small(sparse, vocab_size)

    def quiet_gate(self, forward, inputs: CyclingInputs) -> QuietGate:
        """`setup` for the rounds of `forward` on the cycled inputs: waits while the machine is slow, and after a
        long round that ran slow until an untimed call on the same inputs runs at its pace (sst2mlp.measure.quiet_gate)."""
        if self.canary.best is None:
            self.canary.calibrate()
        return QuietGate(self.canary, inputs.next, self.options.quiet_wait, quiet_speed=self.options.quiet_speed,
                         budget=self.wait_budget, probe=lambda: forward(*inputs.current()), probe_key=lambda: inputs.position)

    def write(self, benchmark, record, timed: bool) -> None:
        """The one writer of a benchmark's extra_info: the record's fields, checked against the contract when timed
        (every part is there then); an unstable timing is also listed for the end of the run."""
        info = contract.flatten(record)
        group = benchmark.group
        if timed:
            missing = [name for name in contract.extra_info_fields(group) if name not in info]
            if missing:
                raise RuntimeError(f"the suite left out extra_info fields of the {group} group: {', '.join(missing)}")
            self.finished.add(benchmark.fullname)
        if info.get("unstable"):
            self.unstable.append(f"{benchmark.name}: IQR/median {info['iqr_over_median']:.0%}")
        benchmark.extra_info.update(info)

    def summary(self) -> str | None:
        """One line for the end of a session: the data rows read and the trainings run, if any."""
        if not self.corpus.loaded:  # the data was never needed (collection only, or no benchmark ran)
            return None
        return (f"sst2mlp: {self.corpus.data.describe()}; {self.models.trainings} trainings run; "
                f"{self.seeds.seconds:.1f} s spent on the seeds' accuracies and "
                f"{self.memory.seconds:.1f} s on memory measurements (untimed)")
