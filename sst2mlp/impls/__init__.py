"""Every way the suite runs one trained MLP: its own impls and the deployment runtimes, one module per family.

Each module here that defines `IMPLS` (a tuple of `base.Impl` records) is an impl family: the record owns the impl's
input form, how it is built from a trained model, saved as its users ship it, loaded again by a cold process, pinned
to the suite's threads, and what it costs. `registry` finds the families (these modules, and the modules named by the
`sst2mlp.impls` entry point group of other installed packages); nothing else lists them.

Adding an impl:
    1. a module here (or in your own package, named under the `sst2mlp.impls` entry point group) with its `IMPLS`;
    2. its tests: tests/test_impls.py checks every record it finds (complete, exact within 1e-4 where it says so,
       its files saved and loaded again by a cold process).

This package's `__init__` and `base` import neither torch nor any runtime: a cold process that loads an ONNX Runtime
or OpenVINO model imports only its impl's module, and that module imports torch only where it builds from a trained
model.
"""
