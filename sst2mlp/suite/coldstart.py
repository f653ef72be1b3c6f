"""The coldstart group's parent side: each round starts a fresh Python process (sst2mlp.impls.coldstart_child) that loads an impl
from the files it ships and makes one prediction; the round's time is from starting the process to reading that
prediction, split into the phases the child stamped (sst2mlp.contract.COLDSTART_PHASES).

What is shipped is written once per configuration and impl, before any round, into a folder of the session's; one
untimed warm-up round first puts those files and the runtime's libraries in the page cache, so the rounds measure a
process starting cold on a machine that has run it before (the usual case for a deployed model), not a disk.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sst2mlp.contract import COLDSTART_PHASES as PHASES
from sst2mlp.contract import ColdStartParts
from sst2mlp.impls import coldstart_child
from sst2mlp.impls.base import Impl
from sst2mlp.impls.coldstart_child import CONFIG_FILE, INPUTS_FILE, now
from sst2mlp.reference.features import BagOfWords
from sst2mlp.reference.model import ModelConfig

from .variants import PreparedVariant

CHILD = coldstart_child.__name__
ROUNDS_WARMUP = 1
PROCESS_TIMEOUT = 600  # seconds; a first torch.compile of a large model takes about a minute here


@dataclass(frozen=True)
class ColdStartRound:
    pid: int
    phases: dict[str, float]  # seconds of each of PHASES
    logit: float  # the first prediction's logit, to check against the variant's

    @property
    def total(self) -> float:
        return sum(self.phases.values())


def parse_round(line: str, started: float) -> ColdStartRound:
    """The child's JSON line -> seconds per phase, the first from `started` (when the parent started the process)."""
    stamps = json.loads(line)
    ends = [stamps["started"], *(stamps[phase] for phase in PHASES[1:])]
    starts = [started, *ends[:-1]]
    return ColdStartRound(stamps["pid"], {phase: end - start for phase, start, end in zip(PHASES, starts, ends)},
                          stamps["logit"])


def write_shipped(prepared: PreparedVariant, config: ModelConfig, example: BagOfWords, folder: Path) -> None:
    """What a cold process starts from: the impl's files, one example's inputs, the configuration."""
    folder.mkdir(parents=True, exist_ok=True)
    prepared.variant.save(folder)
    inputs = [np.asarray(value) for value in prepared.variant.inputs(example)]
    np.savez(folder / INPUTS_FILE, **{f"arg{i}": array for i, array in enumerate(inputs)})
    (folder / CONFIG_FILE).write_text(json.dumps({"num_layers": config.num_layers, "hidden_size": config.hidden_size,
                                                  "vocab_size": config.vocab_size}))


@dataclass
class ColdStartRuns:
    """pytest-benchmark's target and setup for one coldstart benchmark: `run` starts a process and returns when its
    prediction arrives; `setup` (untimed) waits for the previous process to exit, so that no two overlap."""

    impl: Impl
    folder: Path
    threads: int
    denormals: str
    rounds: list[ColdStartRound] = field(default_factory=list)
    _process: subprocess.Popen | None = None

    def setup(self) -> None:
        self.finish()

    def run(self) -> None:
        started = now()
        process = subprocess.Popen([sys.executable, "-m", CHILD, self.impl.module, self.impl.name, str(self.folder),
                                    str(self.threads), self.denormals], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = process.stdout.readline()
        self._process = process
        if not line:
            self.finish()
            raise RuntimeError(f"the cold start of impl {self.impl.name!r} printed no result")
        self.rounds.append(parse_round(line, started))

    def finish(self) -> None:
        """Wait for the last process; one that failed raises with the last line it printed."""
        process, self._process = self._process, None
        if process is None:
            return
        _, errors = process.communicate(timeout=PROCESS_TIMEOUT)
        if process.returncode != 0:
            last = (errors.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"the cold start of impl {self.impl.name!r} failed (exit {process.returncode}): {last}")

    def timed(self) -> list[ColdStartRound]:
        return self.rounds[ROUNDS_WARMUP:] if len(self.rounds) > ROUNDS_WARMUP else self.rounds

    def parts(self) -> ColdStartParts:
        rounds = self.timed()
        median = {phase: float(np.median([r.phases[phase] for r in rounds])) for phase in PHASES}
        return ColdStartParts.of(median, float(np.median([r.total for r in rounds])), [r.pid for r in rounds])


def kernel_build_seconds() -> float:
    """The fused kernel built from source in an empty extension cache, in a process of its own (the session's own
    kernel stays where it is): what a first cold start on a new machine pays once."""
    with tempfile.TemporaryDirectory(prefix="sst2mlp-kernel-build-") as cache:
        env = {**os.environ, "TORCH_EXTENSIONS_DIR": cache}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import sst2mlp.native.kernel as k; k.load_extension()"], env=env, check=True,
                       capture_output=True, timeout=PROCESS_TIMEOUT)
        return time.perf_counter() - start


@dataclass
class ColdStarts:
    """The session's cold starts: the shipped files of each (configuration, impl, threads), and the kernel's first
    build, measured once."""

    denormals: str
    _root: tempfile.TemporaryDirectory | None = None  # made by the first cold start, removed by close()
    _folders: dict[tuple, Path] = field(default_factory=dict)
    _build_seconds: float | None = None

    def runs(self, prepared: PreparedVariant, config: ModelConfig, threads: int, example: BagOfWords) -> ColdStartRuns:
        impl = prepared.variant.impl.name
        key = (config, impl, threads)
        if key not in self._folders:
            if self._root is None:
                self._root = tempfile.TemporaryDirectory(prefix="sst2mlp-coldstart-")
            folder = Path(self._root.name) / f"{config.id}-{impl}-T{threads}"
            write_shipped(prepared, config, example, folder)
            self._folders[key] = folder
        return ColdStartRuns(prepared.variant.impl, self._folders[key], threads, self.denormals)

    def release(self, config: ModelConfig) -> None:
        """Remove the shipped files of `config` (after its last benchmark)."""
        for key in [key for key in self._folders if key[0] == config]:
            shutil.rmtree(self._folders.pop(key), ignore_errors=True)

    def close(self) -> None:
        """Remove the shipped files (at the end of the session)."""
        if self._root is not None:
            self._root.cleanup()
            self._root, self._folders = None, {}

    def kernel_build_seconds(self) -> float:
        if self._build_seconds is None:
            self._build_seconds = kernel_build_seconds()
        return self._build_seconds
