"""Regenerate the report's test fixtures from two real back-to-back smoke runs of the current suite.

    SST2_DATA_DIR=../shared/data/sst2 python tests/data/make_smoke_runs.py

Writes tests/data/0002_smoke.json and 0003_smoke.json: two configurations, every impl, dense and
sparse training, the reference loop, the per-round times dropped (extra_info keeps 20 block medians as samples,
which the regression gate compares). 0001_smoke.json is kept as it is:
a run saved before the impl axis, for the report's backward compatibility.
"""
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SMOKE_ARGS = [
    "benchmarks/bench_mlp.py", "benchmarks/reference_loop.py", "-q", "-p", "no:cacheprovider",
    "--sst2-layers=1,2", "--sst2-widths=128", "--sst2-vocabs=1000", "--sst2-train-impls=dense,sparse",
    "--sst2-train-limit=2000", "--sst2-train-rounds=2", "--sst2-latency-rounds=200", "--sst2-min-time=0.02",
    "--sst2-coldstart-rounds=2",
]


def main() -> int:
    for name in ("0002_smoke.json", "0003_smoke.json"):
        out = HERE / name
        run = subprocess.run([sys.executable, "-m", "pytest", *SMOKE_ARGS, f"--benchmark-json={out}"], cwd=ROOT)
        if run.returncode != 0:
            return run.returncode
        document = json.loads(out.read_text())
        document["machine_info"]["node"] = "ci"  # the host name says nothing a reader needs
        for bench in document["benchmarks"]:  # every round's time: the suite keeps block medians in extra_info["samples"]
            bench["stats"].pop("data", None)
        out.write_text(json.dumps(document, indent=1) + "\n")
        print(f"wrote {out} ({len(document['benchmarks'])} benchmarks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
