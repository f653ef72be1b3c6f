"""The impls this installation has: every module of sst2mlp.impls that defines `IMPLS`, and every module named by the
`sst2mlp.impls` entry point group of an installed package, in rank order; and an impl's form of a trained model."""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import tempfile
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path

import numpy as np
import torch

from . import __path__ as _package_path
from .base import Forward, Impl, RuntimeSettings, RuntimeUnavailable

ENTRY_POINT_GROUP = "sst2mlp.impls"


def family_modules() -> list[str]:
    """The modules that may define impls: this package's, then those other packages name under ENTRY_POINT_GROUP."""
    own = [f"{__package__}.{info.name}" for info in pkgutil.iter_modules(_package_path)]
    return own + [point.module for point in entry_points(group=ENTRY_POINT_GROUP)]


def discover(modules: list[str]) -> tuple[Impl, ...]:
    """The impls the modules define, each stamped with its module, in rank order; a name defined twice is an error."""
    found: dict[str, Impl] = {}
    for name in modules:
        for impl in getattr(importlib.import_module(name), "IMPLS", ()):
            if impl.name in found:
                raise ValueError(f"impl {impl.name!r} is defined by both {found[impl.name].module} and {name}")
            found[impl.name] = dataclasses.replace(impl, module=name)
    return tuple(sorted(found.values(), key=lambda impl: (impl.rank, impl.name)))


REGISTRY = discover(family_modules())
IMPLS = {impl.name: impl for impl in REGISTRY}
IMPL_NAMES = tuple(IMPLS)
DEFAULT_IMPLS = tuple(impl.name for impl in REGISTRY if impl.in_default_run)
TRAINABLE = tuple(impl.name for impl in REGISTRY if impl.trainable)


def get_impl(name: str) -> Impl:
    if name not in IMPLS:
        raise ValueError(f"unknown impl {name!r}; expected one of {', '.join(IMPL_NAMES)}")
    return IMPLS[name]


def approximate(names) -> list[str]:
    """The impls among `names` that change the model's function (int8) and can run here, in registry order."""
    return [impl.name for impl in REGISTRY if not impl.exact and impl.name in names and not impl.missing()]


def runtime_info(names, threads: tuple[int, ...], flush_denormals: bool) -> dict:
    """machine_info's record of the runtimes the impls among `names` use: version, thread counts and how they were
    pinned (each impl's record says how)."""
    info = {}
    for impl in REGISTRY:
        if impl.name in names and impl.runtime not in info:
            try:
                installed = version(impl.runtime)
            except PackageNotFoundError:
                installed = None
            info[impl.runtime] = {"version": installed, "threads": list(threads), "flush_denormals": flush_denormals,
                                  **impl.pinning}
    return info


@dataclasses.dataclass
class Variant:
    """An impl's form of a trained model; `module` is what latency benchmarks time."""

    impl: Impl
    module: Forward

    def inputs(self, bags) -> tuple:
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


def make_variant(name: str, trained, example, settings: RuntimeSettings | None = None) -> Variant:
    """The `name` form of a trained model; `example` rows serve as tracing or export inputs where an impl needs them."""
    impl = get_impl(name)
    problem = impl.missing()
    if problem:
        raise RuntimeUnavailable(problem)
    return Variant(impl, impl.build(trained, example, settings or RuntimeSettings()))
