"""Impls timed against each other in one process, interleaved (A B C A B C ...): the way to choose between forms of
one runtime, whose differences are smaller than a shared VM's drift between two benchmarks of a run.

    sst2mlp-interleave onnxruntime onnxruntime-sum openvino openvino-padded --batches 1,64,dev --rounds 5

One model of the configuration is trained (the sparse trainer, seed 0), every impl is built from it, and each
round times every impl at every batch size once, in an order rotated each round so that no impl always holds the
same place. A timing is torch.utils.benchmark's `Timer.blocked_autorange` of one pass over the dev set's whole batches
of that size (the first `--latency-rows` rows one at a time at batch 1), inputs made beforehand: the model only. The
input preparation (a request's word ids into what the impl takes) is timed the same way, as its own figure. The
rounds of each (impl, batch) are merged into one `Measurement` (its median is the figure; its IQR over the rounds
says how steady), printed by torch's `Compare` and saved as JSON with the machine, the versions and the settings."""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils import benchmark

from sst2mlp.arguments import choice, positive_float, positive_int
from sst2mlp.contract import BASELINE
from sst2mlp.impls.base import RuntimeSettings, RuntimeUnavailable
from sst2mlp.impls.registry import IMPL_NAMES, make_variant, runtime_info
from sst2mlp.measure.machine import available_cores, cpu_model, torch_threads
from sst2mlp.measure.timing import per_call_seconds
from sst2mlp.reference.features import BagOfWords
from sst2mlp.reference.model import ModelConfig
from sst2mlp.reference.training import predict_logits

from .corpus import Corpus
from .models import Models, trainer_of

MODEL, PREPARATION = "model only", "input preparation"


@dataclass(frozen=True)
class Study:
    """What one interleaved comparison runs."""

    impls: tuple[str, ...]
    config: ModelConfig = field(default_factory=lambda: ModelConfig(**BASELINE))
    batches: tuple[str, ...] = ("1", "64", "dev")
    rounds: int = 5
    min_run_time: float = 0.2  # seconds of each blocked_autorange
    latency_rows: int = 128  # rows timed one at a time for batch 1
    threads: int = 1
    flush_denormals: bool = True
    data_dir: str | None = None
    train_limit: int | None = None


@dataclass
class Result:
    """Per (impl, batch): seconds per call of every round, model only and input preparation; parity with dense."""

    study: Study
    seconds: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)  # what -> impl -> batch -> rounds
    max_logit_difference: dict[str, float] = field(default_factory=dict)
    build_seconds: dict[str, float] = field(default_factory=dict)

    def median_us(self, what: str, impl: str, batch: str) -> float:
        rounds = sorted(self.seconds[what][impl][batch])
        return 1e6 * rounds[len(rounds) // 2]

    def as_json(self) -> dict:
        return {"study": asdict(self.study) | {"config": self.study.config.id}, "seconds": self.seconds,
                "max_logit_difference": self.max_logit_difference, "build_seconds": self.build_seconds}


def batch_rows(dev: BagOfWords, batch: str, latency_rows: int) -> list[BagOfWords]:
    """The dev set's whole batches of `batch` rows ("dev": one batch of all of them); batch 1: the first rows."""
    size = len(dev) if batch == "dev" else int(batch)
    batches = [dev.rows(start, start + size) for start in range(0, len(dev) - size + 1, size)]
    return batches[:latency_rows] if size == 1 else batches


def run(study: Study, progress=print) -> tuple[Result, list]:
    """Build every impl from one trained model, check its logits against dense, then time the rounds."""
    torch.set_flush_denormal(study.flush_denormals)
    settings = RuntimeSettings(study.threads, study.flush_denormals)
    corpus = Corpus(study.data_dir, study.train_limit)
    with torch_threads(study.threads):
        model, _ = Models(corpus, seed=0).train(study.config, trainer_of("sparse"), seed=0)
        model.eval()
        dev = corpus.features(study.config.vocab_size).dev
        reference = predict_logits(make_variant("dense", model, dev), dev)
        result, variants = Result(study), {}
        for name in study.impls:
            start = time.perf_counter()
            variants[name] = make_variant(name, model, dev, settings)
            result.build_seconds[name] = round(time.perf_counter() - start, 2)
            logits = predict_logits(variants[name], dev)
            result.max_logit_difference[name] = float((logits - reference).abs().max())
            progress(f"built {name} in {result.build_seconds[name]} s; max |logit - dense| {result.max_logit_difference[name]:.1e}")
        measurements = time_rounds(study, variants, dev, result, progress)
    return result, measurements


def time_rounds(study: Study, variants: dict, dev: BagOfWords, result: Result, progress) -> list:
    rows = {batch: batch_rows(dev, batch, study.latency_rows) for batch in study.batches}
    prepared = {(name, batch): [variants[name].inputs(r) for r in rows[batch]] for name in variants for batch in study.batches}
    measurements = []
    names = list(variants)
    for round_ in range(study.rounds):
        for batch in study.batches:
            for name in rotated(names, round_):
                forward, inputs = variants[name].module, prepared[name, batch]
                task = {"sub_label": name, "description": f"batch {batch}", "num_threads": study.threads}
                with torch.inference_mode():
                    timed = per_call_seconds("for x in inputs: forward(*x)", {"forward": forward, "inputs": inputs},
                                             len(inputs), study.min_run_time, label=MODEL, **task)
                prepare = per_call_seconds("for r in rows: inputs(r)", {"inputs": variants[name].inputs, "rows": rows[batch]},
                                           len(rows[batch]), study.min_run_time, label=PREPARATION, **task)
                for what, (measurement, seconds) in ((MODEL, timed), (PREPARATION, prepare)):
                    measurements.append(measurement)
                    result.seconds.setdefault(what, {}).setdefault(name, {}).setdefault(batch, []).append(seconds)
        progress(f"round {round_ + 1}/{study.rounds} done")
    return measurements


def rotated(names: list[str], round_: int) -> list[str]:
    """The impls in the order of round `round_`: each round starts one later, so that no impl always runs first (on
    caches another impl has just left cold) or last."""
    shift = round_ % len(names)
    return names[shift:] + names[:shift]


def markdown(result: Result) -> str:
    """Medians per call (us) over the rounds, model only and with input preparation, and parity: docs/runtimes.md's form."""
    batches = result.study.batches
    header = ["impl"] + [f"B{b} model" for b in batches] + [f"B{b} +prep" for b in batches] + ["max abs logit diff"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in result.study.impls:
        model = [f"{result.median_us(MODEL, name, b):,.1f}" for b in batches]
        total = [f"{result.median_us(MODEL, name, b) + result.median_us(PREPARATION, name, b):,.1f}" for b in batches]
        lines.append("| " + " | ".join([f"`{name}`", *model, *total, f"{result.max_logit_difference[name]:.1e}"]) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> tuple[Study, Path | None]:
    parser = argparse.ArgumentParser(prog="sst2mlp-interleave", description=__doc__.split("\n\n")[0])
    parser.add_argument("impls", nargs="+", type=choice(IMPL_NAMES), help="impls to compare (at least two)")
    parser.add_argument("--config", default=None, metavar="N,H,k", help="layers,width,vocabulary (default: the baseline)")
    parser.add_argument("--batches", default="1,64,dev", help="batch sizes: integers and 'dev' (default 1,64,dev)")
    parser.add_argument("--rounds", type=positive_int, default=Study.rounds)
    parser.add_argument("--min-run-time", type=positive_float, default=Study.min_run_time)
    parser.add_argument("--threads", type=positive_int, default=Study.threads)
    parser.add_argument("--data", default=None, help="GLUE SST-2 folder (default: $SST2_DATA_DIR)")
    parser.add_argument("--train-limit", type=positive_int, default=None, help="train on the first N examples")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here (never overwritten)")
    args = parser.parse_args(argv)
    if len(set(args.impls)) < 2:
        parser.error("give at least two different impls to compare")
    batches = tuple(b.strip() for b in args.batches.split(","))
    if any(b != "dev" and not (b.isdigit() and int(b) > 0) for b in batches):
        parser.error(f"--batches {args.batches!r}: expected positive integers or 'dev', separated by commas")
    config = ModelConfig(**BASELINE)
    if args.config:
        try:
            layers, width, vocab = (int(v) for v in args.config.split(","))
            config = ModelConfig(layers, width, vocab)
        except ValueError:
            parser.error(f"--config {args.config!r}: expected three integers N,H,k (layers, width, vocabulary)")
    if args.out is not None and args.out.exists():
        parser.error(f"--out {args.out}: exists; the result is never written over another")
    return Study(tuple(dict.fromkeys(args.impls)), config, batches, args.rounds, args.min_run_time, threads=args.threads,
                 data_dir=args.data, train_limit=args.train_limit), args.out


def main(argv: list[str] | None = None) -> int:
    study, out = parse_args(argv)
    try:
        result, measurements = run(study, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except RuntimeUnavailable as error:
        print(f"sst2mlp-interleave: {error}", file=sys.stderr)
        return 2
    compare = benchmark.Compare(benchmark.Measurement.merge(measurements))
    compare.trim_significant_figures()
    compare.print()
    print(markdown(result))
    if out is not None:
        from pytest_benchmark.utils import get_commit_info

        document = result.as_json() | {"runtimes": runtime_info(study.impls, (study.threads,), study.flush_denormals),
                                       "cpu": cpu_model(), "cores": available_cores(), "commit_info": get_commit_info(),
                                       "torch": torch.__version__}
        out.write_text(json.dumps(document, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
