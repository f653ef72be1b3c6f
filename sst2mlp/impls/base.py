"""The impl record and what every impl family shares; free of torch (the cold-start child imports it)."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# count rows; (indices, offsets, counts); (ids, weights) padded per batch; (ids, a word listed once per count; row
# starts); the count rows as one CSR sparse tensor; padded or CSR by batch size
INPUT_FORMS = ("dense", "bags", "padded", "repeated", "csr", "padded or csr")
EXTRA_INSTALL = "pip install -c constraints.txt -e '.[{0}]' (or pip install 'sst2mlp[{0}]')"

# How torch is pinned to the suite's thread count T and denormal mode (the suite's own impls and torch.compile).
TORCH_PINNING = {"thread_setting": "torch.set_num_threads(T)",
                 "denormal_setting": "torch.set_flush_denormal (FTZ/DAZ of the threads)"}

Forward = Callable[..., Any]  # the built impl: inputs -> logits (a tensor, or a numpy array for a runtime's)


@dataclass(frozen=True)
class RuntimeSettings:
    """What an impl is built with beside the weights: the suite's thread count and denormal mode."""

    threads: int = 1
    flush_denormals: bool = True


@dataclass(frozen=True)
class Impl:
    """One way of running a trained model, whole: what the suite builds, times, ships and starts cold."""

    name: str
    rank: int  # its place in tables, figures and the default --sst2-impls: the report's dense model first
    input_form: str  # one of INPUT_FORMS
    exact: bool  # same logits as dense within float32 rounding
    skips_inactive_units: bool  # hidden layers read only the inputs the ReLU let through
    build: Callable[[Any, Any, RuntimeSettings], Forward]  # (trained MLP, example BagOfWords, settings) -> forward
    held_bytes: Callable[[Forward], int]  # bytes of what the built forward keeps for its weights
    files: tuple[str, ...]  # the files it ships, in the folder `save` writes and `load` reads
    save: Callable[[Forward, Path], None]  # writes the built forward's `files` into a folder
    load: Callable[[Path, dict], Any]  # in a cold process: (folder, configuration) -> what the files hold
    prepare: Callable[[Any, RuntimeSettings, tuple], Forward]  # (loaded, settings, first inputs) -> a forward
    trainable: bool = False  # has a training benchmark; the others are made from a trained model
    in_default_run: bool = True  # in the default --sst2-impls (else by name only)
    peer: bool = False  # a deployment runtime's, not one of the suite's own implementations
    runtime: str = "torch"  # the package that runs it (its version and pinning go into machine_info)
    pinning: dict[str, str] = field(default_factory=lambda: dict(TORCH_PINNING))  # how `runtime` gets T and denormals
    coldstart_imports: tuple[str, ...] = ()  # what a cold process imports beside this module, timed as 'imports'
    torch_inputs: bool = True  # the forward takes tensors (else numpy arrays)
    model_inputs: Callable[[Forward, Any], tuple] | None = None  # (forward, bags) -> inputs; default bags.inputs
    scales_input_rows: bool = False  # an int8 input table: one extra multiply per word present (count x row scale)
    table_weight_bytes: int = 4  # bytes per weight of the input table it holds (1: int8)
    int8_products: bool = False  # its matrix products run in int8 (its floor counts them at the int8 rate)
    weight_copies: int = 1  # copies of the weights it holds, one per form it chooses between; a call reads one
    # its runtime's call floor: (settings) -> (a forward of an empty model through the same call path, its inputs);
    # None for the suite's own impls, whose floor is the extension's (sst2mlp.measure.limits)
    empty_model: Callable[[RuntimeSettings], tuple[Forward, tuple]] | None = None
    forget: Callable[[], None] | None = None  # after its variants of a configuration are dropped: what the process
    # still keeps of them elsewhere (compiled graphs, registered types), dropped; None when nothing is kept
    compiles_kernel: bool = False  # runs the suite's C++ extension: a first cold start on a new machine builds it
    requires: str | None = None  # the Python module of an optional runtime
    install: str | None = None  # how to install it, for the line that skips its benchmarks when it is missing
    module: str = ""  # the module that defines it (set by the registry): what a cold process imports

    def __post_init__(self):
        if self.input_form not in INPUT_FORMS:
            raise ValueError(f"impl {self.name!r}: input_form {self.input_form!r}; expected one of {INPUT_FORMS}")

    @property
    def sparse_input(self) -> bool:
        """Reads the words present (indices or ids with their counts) instead of dense count rows."""
        return self.input_form != "dense"

    def inputs(self, forward: Forward, bags) -> tuple:
        return self.model_inputs(forward, bags) if self.model_inputs else bags.inputs(self.sparse_input)

    def missing(self) -> str | None:
        """Why this impl cannot run here (its optional runtime is not installed), or None."""
        if self.requires is None or installed(self.requires):
            return None
        return f"impl {self.name!r} needs {self.requires}, which is not installed; install it with: {self.install}"

    # Its cost: the arithmetic is shared by every impl (sst2mlp.impls.cost, which needs torch), the facts it reads
    # (input form, skipping, table bytes) are the record's.
    def effective_flops(self, model, bags) -> float:
        from .cost import effective_flops

        return effective_flops(self, model, bags)

    def bytes_read(self, model, model_bytes: int, batches: list) -> float:
        from .cost import bytes_read

        return bytes_read(self, model, model_bytes, batches)


class RuntimeUnavailable(RuntimeError):
    """An impl's optional runtime is not installed; the message names the install command."""


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def as_is(loaded, _settings: RuntimeSettings, _inputs: tuple):
    """A cold process's prepare step for an impl whose loaded object already answers."""
    return loaded


def padded_arrays(_forward, bags) -> tuple:
    """(ids, weights) padded to the batch's longest row, as numpy arrays (views of the tensors, no copy)."""
    return tuple(tensor.numpy() for tensor in bags.padded())


@contextlib.contextmanager
def quiet_export():
    """torch.onnx, onnxruntime.quantization and executorch print progress and advice on stdout and the root logger."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)
