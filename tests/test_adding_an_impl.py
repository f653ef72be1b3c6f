"""Adding an impl is one module: a family defined outside the suite, named under the `sst2mlp.impls` entry point
group, runs in every group it can (latency, throughput, cold start), and reaches the report's tables, the parity
table among them, without another module of the suite knowing its name."""
import json
import os
import textwrap

import pytest

from helpers import QUIET, run_pytest
from sst2mlp import contract
from sst2mlp.report.cli import main as report_main

# A whole impl family in one module: the dense model's function in numpy, on dense count rows, shipped as .npz.
TOY_RUNTIME = textwrap.dedent('''
    """numpy-mlp: the trained model's dense layers as numpy matrix products (a test's impl family)."""
    from pathlib import Path

    import numpy as np

    from sst2mlp.impls.base import Impl, as_is

    WEIGHTS_FILE = "weights.npz"


    class NumpyForward:
        def __init__(self, arrays):
            self.arrays = {name: np.ascontiguousarray(value) for name, value in arrays.items()}

        def __call__(self, counts):
            h = np.asarray(counts)
            for i in range(len(self.arrays) // 2):
                h = h @ self.arrays[f"w{i}"] + self.arrays[f"b{i}"]
                h = np.maximum(h, 0) if i < len(self.arrays) // 2 - 1 else h
            return h.reshape(-1)


    def build(trained, _example, _settings):
        from sst2mlp.reference.model import convert

        dense = convert(trained, sparse=False)
        layers = [dense.input, *dense.hidden, dense.output]
        return NumpyForward({**{f"w{i}": layer.weight.detach().numpy().T for i, layer in enumerate(layers)},
                             **{f"b{i}": layer.bias.detach().numpy() for i, layer in enumerate(layers)}})


    def held_bytes(forward):
        return sum(value.nbytes for value in forward.arrays.values())


    def save(forward, folder: Path):
        np.savez(folder / WEIGHTS_FILE, **forward.arrays)


    def load(folder: Path, _config):
        with np.load(folder / WEIGHTS_FILE) as arrays:
            return NumpyForward(dict(arrays))


    IMPLS = (Impl("numpy-mlp", 1000, input_form="dense", exact=True,
                  skips_inactive_units=False, build=build, held_bytes=held_bytes, files=(WEIGHTS_FILE,), save=save,
                  load=load, prepare=as_is, peer=True, runtime="numpy",
                  pinning={"thread_setting": "none (its BLAS pool as it starts)", "denormal_setting": "none"},
                  torch_inputs=False),)
''')
ENTRY_POINTS = "[sst2mlp.impls]\nnumpy-mlp = toy_runtime\n"


@pytest.mark.slow
def test_an_impl_family_added_by_one_module_runs_in_every_group_and_reaches_the_report(tmp_path, tiny_glue, tables_only):
    plugins = tmp_path / "site"
    (plugins / "toy_runtime-0.dist-info").mkdir(parents=True)
    (plugins / "toy_runtime.py").write_text(TOY_RUNTIME)
    (plugins / "toy_runtime-0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-runtime\nVersion: 0\n")
    (plugins / "toy_runtime-0.dist-info" / "entry_points.txt").write_text(ENTRY_POINTS)
    env = {**os.environ, "PYTHONPATH": f"{plugins}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    saved = tmp_path / "run.json"
    run = run_pytest("benchmarks/bench_mlp.py", *QUIET, f"--sst2-data={tiny_glue}", "--sst2-layers=1", "--sst2-widths=8",
                     "--sst2-vocabs=20", "--sst2-impls=dense,numpy-mlp", "--sst2-train-impls=dense", "--sst2-seeds=2",
                     "--sst2-train-rounds=1", "--sst2-latency-rounds=5", "--sst2-min-time=0.001",
                     "--sst2-coldstart-rounds=1", "-k", "not test_training and not (test_coldstart and dense)",
                     f"--benchmark-json={saved}", env=env)
    assert run.returncode == 0, run.stdout[-3000:]
    benchmarks = json.loads(saved.read_text())["benchmarks"]
    groups = {b["group"] for b in benchmarks if b["extra_info"]["impl"] == "numpy-mlp"}
    assert groups == {"inference", "throughput", "coldstart"}, groups
    toy = [b["extra_info"] for b in benchmarks if b["extra_info"]["impl"] == "numpy-mlp"]
    assert all(info["max_logit_difference"] < 1e-4 for info in toy if "max_logit_difference" in info)
    assert any(info.get("coldstart_total_seconds", 0) > 0 for info in toy)
    machine = json.loads(saved.read_text())["machine_info"]
    assert machine["runtimes"]["numpy"]["thread_setting"].startswith("none")
    assert machine["sst2mlp_schema"] == contract.SCHEMA_VERSION  # every saved run says its layout

    out = tmp_path / "report"
    assert report_main([str(saved), "--out", str(out)]) == 0
    for table in ("results.md", "runtimes.md", "parity.md"):
        assert "numpy-mlp" in (out / table).read_text(), table
