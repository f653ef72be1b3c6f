"""Runs saved by earlier versions of the suite, brought to the current layout (contract.SCHEMA_VERSION) in one place,
as they are read (runs.read_document): the rest of the report reads only the current layout.

Version 1 (no `sst2mlp_schema` in machine_info) covers every run saved before the version was recorded, whatever
fields it lacks: the impl axis (only dense was measured), `trained_impl` (a training benchmark describes the model it
trained, every other benchmark the dense-trained model), effective FLOPs (the report's count), `dev_examples` (SST-2's
dev split), the suite's cpu_model and cpu_count (py-cpuinfo's), and `measured_while_slow` (before the quiet gate a
canary timed once, just before the benchmark, gave `machine_speed`). Version 2 lacks a latency or throughput
benchmark's `call_floor_seconds`: its floor counted the extension's call floor (machine_info's limits), or none.
Version 3 lacks `input_preparation_seconds`: not measured, recorded as None (the report leaves the columns that add
it empty).
"""
from __future__ import annotations

from sst2mlp import contract

OLD_SLOW_PHASE_SPEED = 0.9  # version 1's canary: a benchmark that started below this speed ran in a slow phase


class SchemaError(ValueError):
    """A run saved by a newer suite than this report."""


def upgrade(document: dict) -> dict:
    """`document` (pytest-benchmark JSON) in the current layout; changed in place and returned."""
    machine = document["machine_info"]
    version = machine.get("sst2mlp_schema", 1)
    if not isinstance(version, int) or version > contract.SCHEMA_VERSION:
        raise SchemaError(f"saved by a newer sst2mlp (schema {version!r}); this report reads schema "
                          f"{contract.SCHEMA_VERSION} and older: upgrade sst2mlp")
    if version == contract.SCHEMA_VERSION:
        return document
    cpu = machine.get("cpu") or {}
    machine.setdefault("cpu_model", cpu.get("brand_raw"))
    machine.setdefault("cpu_count", cpu.get("count"))
    limits = machine.get("limits") or {}
    for bench in document["benchmarks"]:
        info = bench.get("extra_info") if isinstance(bench, dict) else None
        if info:
            _upgrade_extra_info(bench.get("group"), info)
            if "floor_seconds" in info and bench.get("group") in ("inference", "throughput"):
                info.setdefault("call_floor_seconds", (limits.get(str(info.get("threads"))) or {}).get("call_floor_seconds") or 0.0)
            if bench.get("group") in ("inference", "throughput"):
                info.setdefault("input_preparation_seconds", None)
    machine["sst2mlp_schema"] = contract.SCHEMA_VERSION
    return document


def _upgrade_extra_info(group: str | None, info: dict) -> None:
    info.setdefault("impl", "dense")
    info.setdefault("trained_impl", info["impl"] if group == "training" else "dense")
    if "flops" in info:
        info.setdefault("effective_flops", float(info["flops"]))
    info.setdefault("dev_examples", contract.SST2_DEV_EXAMPLES)
    speed = info.get("machine_speed")
    if "measured_while_slow" not in info and speed is not None:
        info["measured_while_slow"] = 1.0 if speed < OLD_SLOW_PHASE_SPEED else 0.0
