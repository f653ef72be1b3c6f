"""Whether the runtimes that load their shipped files without torch run on this machine: for a CPU where torch itself
cannot run (a Raspberry Pi 4's Cortex-A72 with torch 2.13's aarch64 wheel: SIGILL at import), what a user can still
measure. `ship` (with torch) writes a small model's files for each such impl, as the coldstart group ships them,
with the logit it must give; `load` (without torch) starts each from its files in a fresh process, as the cold-start
child does, and compares.

    python -m sst2mlp.suite.shipped_check ship FOLDER    # where torch runs
    python -m sst2mlp.suite.shipped_check load FOLDER    # anywhere: prints one line per impl, exits 1 on a mismatch
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXPECTED_FILE = "expected.json"
TOLERANCE = 1e-4  # as the suite's parity with dense


def torch_free_impls() -> list:
    """The impls whose cold start imports no torch (their runtime and numpy only) and that can run here."""
    from sst2mlp.impls.registry import REGISTRY

    return [impl for impl in REGISTRY if not impl.torch_inputs and "torch" not in impl.coldstart_imports
            and not impl.missing()]


def ship(folder: Path) -> list[str]:
    """A small model (random weights, seed 0) saved by each torch-free impl into folder/<impl>, with its logit."""
    import torch

    from sst2mlp.impls.registry import make_variant
    from sst2mlp.reference.features import Vocabulary, featurize
    from sst2mlp.reference.model import MLP, ModelConfig
    from sst2mlp.reference.training import predict_logits

    from .coldstart import write_shipped
    from .variants import PreparedVariant

    sentences = ["a good film", "a bad bad film", "not good at all"]
    bags = featurize(sentences, Vocabulary.build(sentences))
    torch.manual_seed(0)
    model = MLP(2, 16, bags.vocab_size).eval()
    config = ModelConfig(2, 16, bags.vocab_size)
    example = bags.rows(0, 1)
    shipped = []
    for impl in torch_free_impls():
        variant = make_variant(impl.name, model, bags)
        write_shipped(PreparedVariant(variant, None, 0.0, 0.0, None, None), config, example, folder / impl.name)
        logit = float(predict_logits(variant, example)[0])
        (folder / impl.name / EXPECTED_FILE).write_text(json.dumps({"module": impl.module, "logit": logit}))
        shipped.append(impl.name)
    return shipped


def load(folder: Path) -> list[tuple[str, bool, str]]:
    """(impl, passed, what happened) for each impl folder: its cold start in a fresh process, its logit compared."""
    results = []
    for shipped in sorted(path for path in folder.iterdir() if (path / EXPECTED_FILE).is_file()):
        expected = json.loads((shipped / EXPECTED_FILE).read_text())
        child = [sys.executable, "-m", "sst2mlp.impls.coldstart_child", expected["module"], shipped.name, str(shipped), "1",
                 "flush"]
        run = subprocess.run(child, capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            lines = run.stderr.strip().splitlines() or [f"exit {run.returncode}"]
            results.append((shipped.name, False, f"failed (exit {run.returncode}): {lines[-1]}"))
            continue
        result = json.loads(run.stdout.strip().splitlines()[-1])
        difference = abs(result["logit"] - expected["logit"])
        results.append((shipped.name, difference <= TOLERANCE,
                        f"logit {result['logit']:.6f}, expected {expected['logit']:.6f} (difference {difference:.1e})"))
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("ship", "load"):
        print("usage: python -m sst2mlp.suite.shipped_check ship|load FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[1])
    if argv[0] == "ship":
        folder.mkdir(parents=True, exist_ok=True)
        print(f"shipped {', '.join(ship(folder))} into {folder}")
        return 0
    if not folder.is_dir():
        print(f"shipped_check: {folder} is not a folder; expected one written by 'ship'", file=sys.stderr)
        return 2
    results = load(folder)
    for name, passed, what in results:
        print(f"{name}: {'ok' if passed else 'FAILED'}: {what}")
    return 0 if results and all(passed for _, passed, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
