"""Implementations of one trained MLP: what each executes and how fast, at identical (or int8) weights.

Each impl is one `Impl` record in `REGISTRY`: adding an implementation is adding an entry. The suite's own impls are
here; the deployment runtimes' builders are in sst2mlp.runtimes.
"""
from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import runtimes
from .features import BagOfWords
from .footprint import storage_bytes
from .kernel import fused_mlp
from .model import MLP, convert, linear_flops
from .sessions import RuntimeSettings

Forward = Callable[..., "torch.Tensor | np.ndarray"]
INPUT_FORMS = ("dense", "bags", "padded")  # count rows; (indices, offsets, counts); (ids, weights) padded per batch


@dataclass(frozen=True)
class Impl:
    name: str
    summary: str
    input_form: str  # one of INPUT_FORMS
    trainable: bool  # has a training benchmark; the others are made from a trained model
    exact: bool  # same logits as dense within float32 rounding
    skips_inactive_units: bool  # hidden layers read only the inputs the ReLU let through
    build: Callable[[MLP, BagOfWords, RuntimeSettings], Forward]  # (trained model, example rows, settings) -> forward
    held_bytes: Callable[[Forward], int]  # bytes of what the built forward keeps for its weights
    save: Callable[[Forward, Path], None]  # writes the built forward into a folder as its users would ship it
    scales_input_rows: bool = False  # an int8 input table: one extra multiply per word present (count x row scale)
    table_weight_bytes: int = 4  # bytes per weight of the input table it holds (1: int8)
    int8_products: bool = False  # its matrix products run in int8 (its floor counts them at the int8 rate)
    model_inputs: Callable[[Forward, BagOfWords], tuple] | None = None  # default: bags.inputs(sparse_input)
    peer: bool = False  # a deployment runtime's, not one of the suite's own implementations
    runtime: str = "torch"  # the package that runs it (its version and thread setting go into machine_info)
    requires: str | None = None  # the Python module of an optional runtime
    install: str | None = None  # how to install it, for the line that skips its benchmarks when it is missing

    @property
    def sparse_input(self) -> bool:
        """Reads the words present (indices or ids with their counts) instead of dense count rows."""
        return self.input_form != "dense"

    def inputs(self, forward: Forward, bags: BagOfWords) -> tuple:
        return self.model_inputs(forward, bags) if self.model_inputs else bags.inputs(self.sparse_input)

    def missing(self) -> str | None:
        """Why this impl cannot run here (its optional runtime is not installed), or None."""
        if self.requires is None or runtimes.installed(self.requires):
            return None
        return f"impl {self.name!r} needs {self.requires}, which is not installed; install it with: {self.install}"


def _eager(sparse: bool) -> Callable[[MLP, BagOfWords, RuntimeSettings], Forward]:
    return lambda trained, _example, _settings: convert(trained, sparse=sparse).eval()


def _module_bytes(module: nn.Module) -> int:
    return storage_bytes([*module.parameters(), *module.buffers()])


def _save_state_dict(module: nn.Module, folder: Path) -> None:
    torch.save(module.state_dict(), folder / "model.pt")


def _torchscript(trained: MLP, example: BagOfWords, _settings: RuntimeSettings) -> Forward:
    model = convert(trained, sparse=True).eval()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated but still the fastest exact path here
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # a shape check traced as constant: holds for every input
        traced = torch.jit.trace(model, model.inputs(example.rows(0, min(2, len(example)))))
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced))


def _torchscript_bytes(module: torch.jit.ScriptModule) -> int:
    """Frozen: the weights became graph constants."""
    constants = [t for t in module.code_with_constants[1].const_mapping.values() if isinstance(t, torch.Tensor)]
    return storage_bytes([*constants, *module.parameters(), *module.buffers()])


def _save_torchscript(module: torch.jit.ScriptModule, folder: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, still how TorchScript ships
        torch.jit.save(module, str(folder / "model.ts"))


def _int8(trained: MLP, _example: BagOfWords, _settings: RuntimeSettings) -> Forward:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        return torch.ao.quantization.quantize_dynamic(convert(trained, sparse=False).eval(), {nn.Linear}, dtype=torch.qint8)


def _int8_bytes(model: nn.Module) -> int:
    """A dynamic int8 Linear keeps its int8 weight with its scale and a float bias in packed params."""
    tensors = []
    for module in model.modules():
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            weight, bias = packed._weight_bias()
            tensors += [weight] + ([bias] if bias is not None else [])
        tensors += [*module.parameters(recurse=False), *module.buffers(recurse=False)]
    return storage_bytes(tensors)


def _fused(trained: MLP, _example: BagOfWords, _settings: RuntimeSettings) -> Forward:
    return fused_mlp(trained)  # copies the parameters into its own layout


def _fused_int8_table(trained: MLP, _example: BagOfWords, _settings: RuntimeSettings) -> Forward:
    return fused_mlp(trained, int8_table=True)


def _fused_bytes(kernel) -> int:
    return kernel.nbytes  # its tensors and its float output bias, counted by the kernel


def _save_fused(kernel, folder: Path) -> None:
    """Its tensors in the kernel's order, the output bias and the layer count: what kernel.fused_from_saved reads."""
    torch.save({"state": list(kernel.state()), "output_bias": kernel.output_bias, "num_layers": kernel.num_layers},
               folder / "fused.pt")


def _runtime_bytes(forward) -> int:
    return forward.held_bytes()


def _runtime_save(forward, folder: Path) -> None:
    forward.save(folder)


_EAGER = {"held_bytes": _module_bytes, "save": _save_state_dict}
_FUSED = {"held_bytes": _fused_bytes, "save": _save_fused}
_RUNTIME = {"held_bytes": _runtime_bytes, "save": _runtime_save, "trainable": False, "skips_inactive_units": False,
            "peer": True}
_EXTRA = "pip install -c constraints.txt -e '.[{}]' (or pip install 'sst2mlp[{}]')"
REGISTRY = (
    Impl("dense", "the report's model: nn.Linear on dense count vectors", input_form="dense", trainable=True,
         exact=True, skips_inactive_units=False, build=_eager(sparse=False), **_EAGER),
    Impl("sparse", "the input layer an EmbeddingBag over the words present", input_form="bags", trainable=True,
         exact=True, skips_inactive_units=False, build=_eager(sparse=True), **_EAGER),
    Impl("torchscript", "the sparse model traced, frozen and optimized for inference", input_form="bags",
         trainable=False, exact=True, skips_inactive_units=False, build=_torchscript, held_bytes=_torchscript_bytes,
         save=_save_torchscript),
    Impl("fused", "the sparse model's whole forward pass as one C++ call (kernel.py)", input_form="bags",
         trainable=False, exact=True, skips_inactive_units=True, build=_fused, **_FUSED),
    Impl("int8", "dynamic int8 quantization of the dense model's Linear layers", input_form="dense",
         trainable=False, exact=False, skips_inactive_units=False, build=_int8, held_bytes=_int8_bytes,
         save=_save_state_dict, int8_products=True),
    Impl("fused-int8", "fused, its input table in int8 with a float scale per row (on-device embedding layout)",
         input_form="bags", trainable=False, exact=False, skips_inactive_units=True, build=_fused_int8_table,
         scales_input_rows=True, table_weight_bytes=1, **_FUSED),
    Impl("onnxruntime", "ONNX Runtime (CPU provider, all graph optimizations) on the model exported to ONNX, its input "
         "layer a gather of the rows of the words present", input_form="padded", exact=True,
         build=runtimes.build_onnxruntime, model_inputs=runtimes.padded_numpy, runtime="onnxruntime", **_RUNTIME),
    Impl("onnxruntime-int8", "the same ONNX model through onnxruntime's dynamic int8 quantization", input_form="padded",
         exact=False, table_weight_bytes=1, int8_products=True, build=runtimes.build_onnxruntime_int8,
         model_inputs=runtimes.padded_numpy, runtime="onnxruntime", **_RUNTIME),
    Impl("openvino", "the same ONNX model compiled by OpenVINO for its CPU device (latency hint, float32)",
         input_form="padded", exact=True, build=runtimes.build_openvino, model_inputs=runtimes.padded_numpy,
         runtime="openvino", requires="openvino", install=_EXTRA.format("openvino", "openvino"), **_RUNTIME),
    Impl("torch-compile", "the sparse model through torch.compile (inductor, CPU, mode default)", input_form="bags",
         exact=True, build=runtimes.build_torch_compile, **_RUNTIME),
    Impl("executorch", "the gathered model lowered to ExecuTorch's XNNPACK backend, run by its Python runtime",
         input_form="padded", exact=True, build=runtimes.build_executorch,
         model_inputs=lambda forward, bags: forward.padded(bags), runtime="executorch", requires="executorch",
         install=_EXTRA.format("executorch", "executorch"), **_RUNTIME),
)
IMPLS = {impl.name: impl for impl in REGISTRY}
IMPL_NAMES = tuple(IMPLS)
TRAINABLE = tuple(impl.name for impl in REGISTRY if impl.trainable)


def get_impl(name: str) -> Impl:
    if name not in IMPLS:
        raise ValueError(f"unknown impl {name!r}; expected one of {', '.join(IMPL_NAMES)}")
    return IMPLS[name]


def runtimes_of(names) -> list[str]:
    """The packages that run the impls among `names`, in registry order."""
    return list(dict.fromkeys(impl.runtime for impl in REGISTRY if impl.name in names))


def approximate(names) -> list[str]:
    """The impls among `names` that change the model's function (int8) and can run here, in registry order."""
    return [impl.name for impl in REGISTRY if not impl.exact and impl.name in names and not impl.missing()]


@dataclass
class Variant:
    """An impl's form of a trained model; `module` is what latency benchmarks time."""

    impl: Impl
    module: Forward

    def inputs(self, bags: BagOfWords) -> tuple:
        return self.impl.inputs(self.module, bags)

    def __call__(self, *inputs) -> torch.Tensor:
        """Logits as a tensor of their own (a runtime's numpy result may be a view of a buffer it reuses)."""
        logits = self.module(*inputs)
        return logits if isinstance(logits, torch.Tensor) else torch.from_numpy(np.array(logits))

    def model_bytes(self) -> int:
        """What the impl holds for its weights once loaded, measured from the objects it keeps."""
        return self.impl.held_bytes(self.module)

    def save(self, folder: Path) -> list[Path]:
        """The impl saved into `folder` as its users would ship it; the files written."""
        self.impl.save(self.module, folder)
        return sorted(path for path in folder.iterdir() if path.is_file())

    def file_bytes(self) -> int:
        """Size of the impl saved as its users would ship it (all its files)."""
        with tempfile.TemporaryDirectory() as folder:
            return sum(path.stat().st_size for path in self.save(Path(folder)))


def make_variant(name: str, trained: MLP, example: BagOfWords, settings: RuntimeSettings | None = None) -> Variant:
    """The `name` form of a trained model; `example` rows serve as tracing or export inputs where an impl needs them."""
    impl = get_impl(name)
    problem = impl.missing()
    if problem:
        raise RuntimeUnavailable(problem)
    return Variant(impl, impl.build(trained, example, settings or RuntimeSettings()))


class RuntimeUnavailable(RuntimeError):
    """An impl's optional runtime is not installed; the message names the install command."""


def effective_flops(name: str, model: MLP, bags: BagOfWords) -> float:
    """FLOPs per example the impl executes, averaged over `bags`.

    A sparse input layer does 2*nnz*H + H (+ nnz scale multiplies for an int8 table); an impl that skips inactive units does
    2*active*H + H per hidden layer. Everything else is the report's 2mn + n.
    """
    impl = get_impl(name)
    config = model.config
    hidden = config.hidden_size
    if impl.sparse_input:
        nnz = bags.nnz_per_row.double().mean().item()
        input_flops = 2 * nnz * hidden + hidden + (nnz if impl.scales_input_rows else 0)
    else:
        input_flops = linear_flops(config.vocab_size, hidden)
    if impl.skips_inactive_units:
        hidden_flops = sum(2 * active * hidden + hidden for active in mean_active_inputs(model, bags))
    else:
        hidden_flops = config.num_layers * linear_flops(hidden, hidden)
    return float(input_flops + hidden_flops + linear_flops(hidden, 1))


def bytes_read(name: str, model: MLP, model_bytes: int, batches: list[BagOfWords]) -> float:
    """The least bytes one call must read, averaged over `batches`. A dense input layer reads every weight the impl
    holds and the dense count rows. With the words present: the table rows of the batch's distinct words, the inputs
    (an int64 id and a float count per word), and the rest of the weights; an impl that skips inactive units reads
    only the rows of the hidden weights that some row of the batch has active."""
    impl = get_impl(name)
    config = model.config
    hidden, vocab = config.hidden_size, config.vocab_size
    table = vocab * hidden * impl.table_weight_bytes
    per_batch = []
    for bags in batches:
        if not impl.sparse_input:
            per_batch.append(model_bytes + 4 * len(bags) * vocab)
            continue
        rows = len(torch.unique(bags.indices)) if len(bags.indices) else 0
        others = model_bytes - table
        if impl.skips_inactive_units and config.num_layers:
            hidden_bytes = config.num_layers * hidden * hidden * 4
            active = sum(active_union(model, bags))  # rows of the hidden weights read, over all layers
            others -= hidden_bytes - active * hidden * 4
        per_batch.append(others + rows * hidden * impl.table_weight_bytes + 12 * len(bags.indices))
    return float(np.mean(per_batch))


def active_union(model: MLP, bags: BagOfWords) -> list[int]:
    """For each hidden layer, how many of its inputs are active (after the ReLU) in at least one row of `bags`."""
    union = []
    with torch.no_grad():
        h = torch.relu(model.input(*model.inputs(bags)))
        for layer in model.hidden:
            union.append(int((h > 0).any(0).sum()))
            h = torch.relu(layer(h))
    return union


def mean_active_inputs(model: MLP, bags: BagOfWords) -> list[float]:
    """For each hidden layer, how many of its inputs are non-zero after the ReLU, averaged over `bags`."""
    active = []
    with torch.no_grad():
        h = torch.relu(model.input(*model.inputs(bags)))
        for layer in model.hidden:
            active.append((h > 0).sum(1).double().mean().item())
            h = torch.relu(layer(h))
    return active
