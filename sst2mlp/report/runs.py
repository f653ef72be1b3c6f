"""Saved pytest-benchmark runs, read into one row per measured model and impl, checked against the suite's contract."""
from __future__ import annotations

import gzip
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from sst2mlp import contract

from .schema import SchemaError, upgrade

REFERENCE_LOOP = contract.REFERENCE_LOOP  # shown after the suite's impls
COLDSTART_PHASES = (*contract.COLDSTART_PHASES, "total")




class ReportError(Exception):
    """An input the report cannot read, or an output it will not overwrite."""


@dataclass(frozen=True)
class Key:
    """One measured model and implementation: what a results-table row is about.

    `trained_impl` says which training produced the weights: with --sst2-train-impls=dense,sparse
    the sparse-trained model and the dense-trained model converted to sparse are different rows.
    """

    num_layers: int
    hidden_size: int
    vocab_size: int
    impl: str
    threads: int
    trained_impl: str = "dense"

    @property
    def config(self) -> tuple[int, int, int]:
        return (self.num_layers, self.hidden_size, self.vocab_size)

    def with_impl(self, impl: str, trained_impl: str) -> Key:
        return Key(*self.config, impl, self.threads, trained_impl)


@dataclass(frozen=True)
class Roof:
    """One timed call against the machine's floor for it (sst2mlp.measure.limits): seconds per call, measured and floor."""

    median_seconds: float
    floor_seconds: float
    examples: int  # per call
    call_floor_seconds: float  # the part of the floor that is the call path's (the impl's runtime's, or the extension's)

    @property
    def fraction(self) -> float:
        return self.floor_seconds / self.median_seconds


@dataclass
class Row:
    """Everything a run measured about one Key, across the training, inference and throughput groups."""

    key: Key
    params: int
    flops: int
    effective_flops: float
    accuracy: float
    latency: dict | None = None  # inference stats, seconds per example
    training: dict | None = None  # training stats, seconds per 2-epoch training
    throughput: dict[str, float] = field(default_factory=dict)  # batch label -> examples per second
    accuracy_seeds: list[float] | None = None  # dev accuracy of each seed's model, where the run measured this impl's
    reference_accuracy_seeds: list[float] | None = None  # an approximate impl's float models, seed by seed
    seeds: list[int] | None = None
    model_bytes: int | None = None  # the weights the impl holds once loaded
    file_bytes: int | None = None  # the impl saved as its users would ship it
    training_peak_rss: int | None = None  # resident memory one full training added at its peak
    dev_pass_peak_rss: int | None = None  # resident memory one forward pass over the whole dev set added
    coldstart: dict[str, float] | None = None  # phase -> median seconds, and "total", from a fresh process
    agreement_with_dense: float | None = None  # share of dev predictions equal to dense's
    max_logit_difference: float | None = None  # largest |logit - dense logit| on dev
    exact: bool = True
    peer_runtime: bool = False  # a deployment runtime rather than one of the suite's own impls
    roofs: dict[str, Roof] = field(default_factory=dict)  # batch label ("1", "64", "dev") -> the call against its floor
    preparation: dict[str, float] = field(default_factory=dict)  # batch label -> input preparation, seconds per call


@dataclass
class Run:
    path: Path
    machine: dict
    commit: dict
    datetime: str
    rows: dict[Key, Row]
    skipped: list[str]
    impl_order: list[str]  # impls in the order the suite ran them (its registry order), the reference loop last
    benchmarks: list[dict] = field(default_factory=list, repr=False)  # as saved, for --strict checks
    label: str = ""  # short name in tables: pytest-benchmark's run counter (0001) where it is unambiguous

    def sorted_keys(self) -> list[Key]:
        return sorted_keys(self.rows, self.impl_order)

    @property
    def source_trainer(self) -> str:
        """The trainer whose models every impl ran (the trained_impl of the latency and throughput rows, the first of
        --sst2-train-impls); dense for a run of training benchmarks alone."""
        sources = {b.get("extra_info", {}).get("trained_impl") for b in self.benchmarks if b.get("group") != "training"}
        sources.discard(None)
        return sources.pop() if len(sources) == 1 else "dense"

    def dev_examples(self) -> int:
        """The dev split's size the run measured accuracy on."""
        sizes = {(b.get("extra_info") or {}).get("dev_examples") for b in self.benchmarks} - {None}
        return max(sizes) if sizes else contract.SST2_DEV_EXAMPLES  # a run with no finished benchmark

    def caption(self) -> str:
        torch_info = self.machine.get("torch", {})
        threads = sorted({key.threads for key in self.rows}) or torch_info.get("threads", "?")
        cpu = cpu_of(self.machine) or "unknown CPU"
        count = self.machine.get("cpu_count") or "?"
        commit = (self.commit.get("id") or "")[:8]
        return (
            f"{cpu} ({count} CPUs), torch {torch_info.get('version', '?')}, "
            f"{'/'.join(map(str, threads))} thread(s); run {self.path.name}"
            + (f", HEAD {commit} when saved" if commit else "")
        )


def accuracy_over_seeds(run: Run, key: Key) -> list[float]:
    """The dev accuracies over seeds that belong to a row: its own where the run measured them for this impl (the
    training benchmarks, int8), else those of the models it was made from (an exact impl of the dense-trained
    models has their accuracies), else the one accuracy the run recorded (runs saved before seeds)."""
    row = run.rows[key]
    if row.accuracy_seeds:
        return row.accuracy_seeds
    for other in run.rows.values():
        if other.key.config == key.config and other.key.impl == key.trained_impl == other.key.trained_impl and other.accuracy_seeds:
            return other.accuracy_seeds
    return [row.accuracy]


def sorted_keys(keys, impl_order: list[str]) -> list[Key]:
    """Table order: configuration, then impl and training impl in `impl_order`, then threads."""
    rank = {impl: i for i, impl in enumerate(impl_order)}
    return sorted(keys, key=lambda key: (*key.config, rank.get(key.impl, len(rank)), key.impl,
                                         rank.get(key.trained_impl, len(rank)), key.threads))


def find_json_files(inputs: list[str]) -> list[Path]:
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted([*path.rglob("*.json"), *path.rglob("*.json.gz")])
            if not found:
                raise ReportError(f"{path}: no pytest-benchmark JSON files in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ReportError(f"{path}: no such file or folder; expected pytest-benchmark JSON files or a storage folder")
    return files


def contract_violations(run: Run) -> list[str]:
    """Benchmarks of a run that lack a parameter or extra_info field the current suite writes."""
    problems = []
    for bench in run.benchmarks:
        missing = contract.missing_fields(bench)
        if missing:
            problems.append(f"{bench.get('fullname')}: {', '.join(missing)}")
    return problems


def read_document(path: Path) -> dict:
    """A pytest-benchmark JSON file (or one gzip-compressed, `.json.gz`, as docs/ keeps them), checked for the shape
    the report relies on."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        document = json.loads(raw.decode("utf-8"))
    except (EOFError, gzip.BadGzipFile) as error:  # a truncated or mislabelled .gz
        raise ReportError(f"{path}: not a whole gzip file ({error}); expected pytest-benchmark JSON compressed by gzip") from None
    except OSError as error:
        raise ReportError(f"{path}: cannot read ({error.strerror or error}); expected a readable pytest-benchmark JSON file") from None
    except UnicodeDecodeError as error:
        raise ReportError(f"{path}: not a text file ({error.reason}); expected pytest-benchmark JSON") from None
    except json.JSONDecodeError as error:
        raise ReportError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}; truncated?); "
            "expected a file written by pytest-benchmark"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), list) or not isinstance(document.get("machine_info"), dict):
        raise ReportError(f"{path}: not pytest-benchmark JSON; expected an object with 'machine_info' and a 'benchmarks' list")
    try:
        return upgrade(document)
    except SchemaError as error:
        raise ReportError(f"{path}: {error}") from None


def read_run(path: Path) -> Run:
    document = read_document(path)
    rows: dict[Key, Row] = {}
    skipped, impl_order = [], []
    for index, bench in enumerate(document["benchmarks"]):
        if not isinstance(bench, dict) or not isinstance(bench.get("stats"), dict):
            raise ReportError(f"{path}: benchmark #{index} has no 'stats'; expected pytest-benchmark JSON")
        info = bench.get("extra_info") or {}
        bad = [name for name in ("min", "median", "mean") if not finite_positive(bench["stats"].get(name))]
        if bad:
            raise ReportError(f"{path}: benchmark {bench.get('name') or index!s} has stats.{bad[0]} = {bench['stats'].get(bad[0])!r}; "
                              "expected a finite positive number of seconds (a damaged or hand-edited file?)")
        if bench.get("group") not in contract.GROUPS or any(name not in info for name in contract.READABLE_EXTRA_INFO):
            skipped.append(bench.get("fullname") or bench.get("name") or f"#{index}")
            continue
        key = _add_benchmark(rows, bench, info)
        if key.impl not in impl_order:
            impl_order.append(key.impl)
    if REFERENCE_LOOP in impl_order:
        impl_order.append(impl_order.pop(impl_order.index(REFERENCE_LOOP)))
    return Run(path, document["machine_info"], document.get("commit_info") or {}, document.get("datetime", ""), rows,
               skipped, impl_order, benchmarks=document["benchmarks"])


def cpu_of(machine_info: dict) -> str | None:
    """The CPU a run was saved on."""
    return machine_info.get("cpu_model")


def measured_while_slow(bench: dict) -> bool:
    """Most of the benchmark's rounds ran while the machine was slow (the quiet gate's waiting budget ran out)."""
    return ((bench.get("extra_info") or {}).get("measured_while_slow") or 0.0) >= 0.5  # absent: untimed


def gated_time(bench: dict) -> float | None:
    """The time the regression gate compares between runs: the fastest of a benchmark's samples (the medians of its
    blocks of rounds, or a training's rounds), else its median. Between runs of the same code, noise only adds time
    (a slower phase of the shared machine, a neighbour's memory traffic, a slower process), so the fastest block moves
    less than the median: on the ten A/A runs of docs/gate/aa-ef7dd4a, sparse's whole-dev throughput 9% against 24%."""
    samples = (bench.get("extra_info") or {}).get("samples") or []
    if samples and all(finite_positive(x) for x in samples):
        return min(samples)
    return (bench.get("stats") or {}).get("median")


def finite_positive(value) -> bool:
    """A number of seconds a timing can have: finite and above zero (not NaN, not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _add_benchmark(rows: dict[Key, Row], bench: dict, info: dict) -> Key:
    key = Key(info["num_layers"], info["hidden_size"], info["vocab_size"], info["impl"], info["threads"], info["trained_impl"])
    row = rows.get(key)
    if row is None:
        row = rows[key] = Row(key, info["params"], info["flops"], info["effective_flops"], info["accuracy"])
    stats = {name: bench["stats"][name] for name in ("min", "median", "mean", "stddev", "rounds")}
    stats.update({name: info[name] for name in ("iqr_over_median", "unstable") if name in info})
    if info.get("accuracy_seeds"):
        row.accuracy_seeds, row.seeds = list(info["accuracy_seeds"]), list(info.get("seeds") or [])
        row.reference_accuracy_seeds = info.get("reference_accuracy_seeds")
    row.model_bytes = info.get("model_bytes", row.model_bytes)
    row.file_bytes = info.get("file_bytes", row.file_bytes)
    row.exact, row.peer_runtime = info.get("exact", row.exact), info.get("peer_runtime", row.peer_runtime)
    if "agreement_with_dense" in info:
        row.agreement_with_dense, row.max_logit_difference = info["agreement_with_dense"], info.get("max_logit_difference")
    if bench["group"] in ("inference", "throughput"):
        batch = str((bench.get("params") or {}).get("batch_size", info.get("batch_examples", 1)))
        if "floor_seconds" in info:
            row.roofs[batch] = Roof(stats["median"], info["floor_seconds"], info.get("batch_examples", 1), info["call_floor_seconds"])
        if info.get("input_preparation_seconds") is not None:
            row.preparation[batch] = info["input_preparation_seconds"]
    if bench["group"] == "coldstart":
        row.coldstart = {phase: info[f"coldstart_{phase}_seconds"] for phase in COLDSTART_PHASES
                         if f"coldstart_{phase}_seconds" in info}
        row.coldstart.setdefault("total", stats["median"])
    elif bench["group"] == "inference":
        row.latency = {**stats, **{p: info[p] for p in ("p50", "p90", "p99", "machine_speed") if p in info}}
    elif bench["group"] == "training":
        row.training = {**stats, **{name: info[name] for name in ("floor_seconds", "fraction_of_floor") if name in info}}
        row.training_peak_rss = info.get("peak_rss_bytes")
    else:
        batch = (bench.get("params") or {}).get("batch_size", info.get("batch_examples"))
        if str(batch) == "dev":
            row.dev_pass_peak_rss = info.get("peak_rss_bytes")
        row.throughput[str(batch)] = info.get("examples_per_second", info.get("batch_examples", 1) / stats["median"])
    return key


def short_labels(paths: list[Path]) -> list[str]:
    """'0001' for '0001_<commit>_<date>.json'; the parent folder is added, then the full path, to tell runs apart."""
    for candidate in (
        lambda p: p.stem.split("_")[0],
        lambda p: f"{p.parent.name}/{p.stem.split('_')[0]}",
        lambda p: str(p),
    ):
        labels = [candidate(p) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{i + 1}:{p}" for i, p in enumerate(paths)]


def load_runs(inputs: list[str], strict: bool = False) -> list[Run]:
    files = find_json_files(inputs)
    runs = [read_run(path) for path in files]
    for run, label in zip(runs, short_labels(files)):
        run.label = label
    for run in runs:
        if run.skipped:
            message = (
                f"{run.path}: skipped {len(run.skipped)} benchmark(s) without the sst2mlp fields "
                f"({', '.join(contract.READABLE_EXTRA_INFO)}) in extra_info: {', '.join(run.skipped)}"
            )
            if strict:
                raise ReportError(message)
            warnings.warn(message, stacklevel=2)
        if strict and (problems := contract_violations(run)):
            raise ReportError(f"{run.path}: benchmarks without the fields the suite writes: " + "; ".join(problems))
        if not run.rows:
            raise ReportError(f"{run.path}: no sst2mlp benchmarks in this file")
        if beaten := floors_beaten(run):
            warnings.warn(f"{run.path}: {len(beaten)} timing(s) faster than the floor the machine could not beat "
                          "(fraction_of_floor above 1: the machine's limits were measured too low, or a count of FLOPs "
                          "or bytes is too high): " + "; ".join(beaten), stacklevel=2)
    return runs


def floors_beaten(run: Run) -> list[str]:
    """The timings of a run that came out faster than their floor, each as 'impl L..-H..-V.. batch: fraction'."""
    beaten = []
    for key in run.sorted_keys():
        row = run.rows[key]
        config = f"L{key.num_layers}-H{key.hidden_size}-V{key.vocab_size}-T{key.threads}"
        fractions = {f"B{batch}": roof.fraction for batch, roof in row.roofs.items()}
        if row.training and row.training.get("fraction_of_floor") is not None:
            fractions["training"] = row.training["fraction_of_floor"]
        beaten += [f"{key.impl} {config} {what}: {fraction:.2f}" for what, fraction in fractions.items() if fraction > 1]
    return beaten
