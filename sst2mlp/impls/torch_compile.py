"""PyTorch's inductor compiler, two ways:

- `aotinductor`: the sparse model exported (torch.export) and compiled ahead of time into one package, model.pt2
  (`torch._inductor.aoti_compile_and_package`), which a deployment loads with `aoti_load_package`: what PyTorch
  documents for shipping a compiled model, and the faster form at batch 1 and 64 (docs/runtimes.md).
- `torch-compile`, by name only: the sparse model through torch.compile (mode "default"), compiled in the process
  that runs it. It is not saved: its users ship the state_dict and compile at load, which the coldstart group times.
"""
from __future__ import annotations

import functools
import tempfile
import warnings
from pathlib import Path

import torch

from sst2mlp.reference.features import BagOfWords
from sst2mlp.reference.model import MLP, convert

from .base import Impl, RuntimeSettings, as_is
from .cost import storage_bytes
from .eager import STATE_FILE, load_state_dict, save_state_dict

MODE = "default"
LIMITS = ("recompile_limit", "accumulated_recompile_limit", "fail_on_recompile_limit_hit")  # what the suite raises
_limits_before: dict | None = None  # dynamo's own values, while the suite's compiled models hold raised ones


def make_room_for_compiled_graphs(graphs: int) -> None:
    """Let dynamo keep `graphs` more compiled graphs, and fail rather than run eagerly when a call finds no room.

    Every compiled model adds its graphs to the one code object all the suite's models share (their forward), and
    dynamo's default limit (8 graphs per code object) is full after two models: it would then run every later model
    eagerly, with a warning, and its benchmarks would measure eager PyTorch. `forget_compiled_graphs` puts dynamo's
    values back once the models are gone."""
    global _limits_before
    config = torch._dynamo.config
    if _limits_before is None:
        _limits_before = {name: getattr(config, name) for name in LIMITS}
    config.recompile_limit += graphs
    config.accumulated_recompile_limit += graphs
    config.fail_on_recompile_limit_hit = True


def forget_compiled_graphs() -> None:
    """After a configuration's compiled models are dropped: dynamo's graphs and guards, which hold their weights,
    cleared, and its limits as they were before the suite raised them."""
    global _limits_before
    torch._dynamo.reset()
    if _limits_before is not None:
        for name, value in _limits_before.items():
            setattr(torch._dynamo.config, name, value)
        _limits_before = None


class CompiledForward:
    """Compiled at build time on a batch of one and a batch of several rows, under no_grad (inductor cannot compile
    under inference mode) and then under inference mode, the mode it is timed in, so that no compilation happens
    inside a timing."""

    def __init__(self, trained: MLP, example: BagOfWords):
        self.model = convert(trained, sparse=True).eval()
        self.compiled = torch.compile(self.model, mode=MODE)
        shapes = [example.rows(0, 1), example.rows(0, min(len(example), 64)), example.rows(1, min(len(example), 3))]
        make_room_for_compiled_graphs(2 * len(shapes))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for grad_mode in (torch.no_grad, torch.inference_mode):
                with torch.inference_mode(False), grad_mode():
                    for bags in shapes:
                        self.compiled(*self.model.inputs(bags))

    def __call__(self, indices: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return self.compiled(indices, offsets, counts)


class RowCounts(torch.nn.Module):
    """The empty model of torch.compile's call floor: the sparse model's arguments, each row's first count back."""

    def forward(self, indices: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return counts[offsets[:-1]]


def empty_model(_settings: RuntimeSettings) -> tuple:
    words = 14
    inputs = (torch.arange(words), torch.tensor([0, words]), torch.ones(words))
    compiled = torch.compile(RowCounts(), mode=MODE)
    make_room_for_compiled_graphs(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for grad_mode in (torch.no_grad, torch.inference_mode):
            with torch.inference_mode(False), grad_mode():
                compiled(*inputs)  # compiled here, not in the timed calls
    return compiled, inputs


def build(trained: MLP, example: BagOfWords, _settings: RuntimeSettings) -> CompiledForward:
    return CompiledForward(trained, example)  # torch's own threads, pinned by the suite


def held_bytes(forward: CompiledForward) -> int:
    return storage_bytes([*forward.model.parameters(), *forward.model.buffers()])


def save(forward: CompiledForward, folder) -> None:
    save_state_dict(forward.model, folder)


def prepare(model: MLP, _settings: RuntimeSettings, inputs: tuple):
    """Compiles on the first inputs (the cold process runs under no_grad, as a deployed model does)."""
    compiled = torch.compile(model, mode=MODE)
    compiled(*inputs)
    return compiled


PACKAGE_FILE = "model.pt2"


class AotInductorForward:
    """The sparse model compiled ahead of time: (indices, offsets, counts) -> logits, loaded from its package."""

    def __init__(self, package: bytes, constant_bytes: int):
        self.package, self.constant_bytes = package, constant_bytes
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / PACKAGE_FILE
            path.write_bytes(package)
            self.loaded = load_package(path)

    def __call__(self, indices: torch.Tensor, offsets: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return self.loaded(indices, offsets, counts)


def compile_package(module: torch.nn.Module, inputs: tuple) -> bytes:
    """torch.export of a module of the sparse model's arguments (indices, offsets, counts), every axis dynamic,
    compiled by AOTInductor into a package's bytes. The rows axis is exported size-oblivious: export would otherwise
    assume that a batch has at least two rows (it takes 0 and 1 for special sizes) and a batch of one would need a
    second package."""
    import torch.fx.experimental._config as fx_config

    words, starts = torch.export.Dim("words", min=1), torch.export.Dim("row_starts", min=2)
    shapes = ({0: words}, {0: starts}, {0: words})
    with warnings.catch_warnings(), fx_config.patch(backed_size_oblivious=True), torch.inference_mode(False), \
            torch.no_grad(), tempfile.TemporaryDirectory() as folder:
        warnings.simplefilter("ignore")
        # MLP.forward takes *inputs: its shapes are those of one argument, the tuple
        program = torch.export.export(module, inputs, dynamic_shapes=(shapes,) if isinstance(module, MLP) else shapes)
        path = torch._inductor.aoti_compile_and_package(program, package_path=str(Path(folder) / PACKAGE_FILE))
        return Path(path).read_bytes()


def load_package(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch._inductor.aoti_load_package(str(path))


def build_aot(trained: MLP, _example: BagOfWords, _settings: RuntimeSettings) -> AotInductorForward:
    model = convert(trained, sparse=True).eval()
    constant_bytes = storage_bytes([*model.parameters(), *model.buffers()])  # the package's constants: these weights
    example_inputs = (torch.arange(4), torch.tensor([0, 2, 3, 4]), torch.ones(4))  # 3 rows: any shape will do
    return AotInductorForward(compile_package(model, example_inputs), constant_bytes)


@functools.lru_cache(maxsize=1)
def _empty_package() -> bytes:
    """RowCounts compiled as the model is (the same for every configuration: compiled once per process)."""
    words = 14
    return compile_package(RowCounts(), (torch.arange(words), torch.tensor([0, 7, words]), torch.ones(words)))


def empty_aot_model(_settings: RuntimeSettings) -> tuple:
    words = 14
    return AotInductorForward(_empty_package(), 0), (torch.arange(words), torch.tensor([0, words]), torch.ones(words))


def save_package(forward: AotInductorForward, folder: Path) -> None:
    (folder / PACKAGE_FILE).write_bytes(forward.package)


def load_aot(folder: Path, _config: dict):
    return load_package(folder / PACKAGE_FILE)


IMPLS = (
    Impl("aotinductor", 100, input_form="bags", exact=True, skips_inactive_units=False, build=build_aot,
         held_bytes=lambda forward: forward.constant_bytes, files=(PACKAGE_FILE,), save=save_package, load=load_aot,
         prepare=as_is, peer=True, empty_model=empty_aot_model),
    Impl("torch-compile", 105, input_form="bags", exact=True, skips_inactive_units=False, build=build,
         held_bytes=held_bytes, files=(STATE_FILE,), save=save, load=load_state_dict(sparse=True), prepare=prepare,
         peer=True, empty_model=empty_model, forget=forget_compiled_graphs, in_default_run=False),
)
