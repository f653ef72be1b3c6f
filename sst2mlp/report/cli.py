"""sst2mlp-report: figures and tables from saved pytest-benchmark JSON.

    sst2mlp-report [draw] [JSON files or storage folders; default .benchmarks] --out DIR
    sst2mlp-report check BASELINE.json [BASELINE.json ...] NEW.json [--threshold 0.10] [--alpha 0.002]
                         [--suspects FILE] [--confirm RUN [RUN ...]]
    sst2mlp-report calibrate RUN RUN [RUN ...] --out noise-profile.json
    sst2mlp-report noise RUN1 RUN2 [RUN3 RUN4 ...]

The JSON is the only input; outputs are written only inside --out. Figures and the
results table describe the last run given (in a storage folder, the newest); with
several runs, comparison.md/csv gives each run's medians and ratios to the first.
"""
from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

from sst2mlp.arguments import number_in
from sst2mlp.stats import UNSTABLE_SPREAD

from . import gate, noise, profile, tables
from .choose import write_choose
from .claims import write_claims
from .figures import FIGURES, write_figures
from .html import write_html
from .profile import load_profile
from .runs import ReportError, load_runs

RESULTS = ("results.md", "results.csv", "claims.md", "choose.md", "report.html")
COMPARISON = ("comparison.md", "comparison.csv")
SPEEDUPS = ("speedups.md", "speedups.csv")
RUNTIMES = ("runtimes.md", "runtimes.csv", "parity.md", "parity.csv", "roofline.md", "roofline.csv",
            "baseline.md")


RESULTS_NOTE = (
    "Accuracy: dev accuracy, mean ± standard deviation over the seeds (their number in brackets); an exact impl "
    "shares the accuracies of the models it was made from. `!N%` after a median: its timed rounds' IQR/median "
    f"was N%, above {UNSTABLE_SPREAD:.0%} (unstable on this machine)."
)


def make_report(inputs: list[str], out: Path, overwrite: bool = False, strict: bool = False) -> list[Path]:
    try:
        return _make_report(inputs, out, overwrite, strict)
    except OSError as error:  # --out is a file, lies under a file, is read-only or not writable
        where = error.filename or out
        raise ReportError(f"cannot write the report to {where} ({error.strerror or error}); expected --out to be a "
                          "writable folder (it is created if missing)") from None


def _make_report(inputs: list[str], out: Path, overwrite: bool, strict: bool) -> list[Path]:
    runs = load_runs(inputs, strict=strict)
    latest = runs[-1]  # files sort by name, so in a storage folder the newest run is last
    several_impls = len({key.impl for key in latest.rows}) > 1
    existing = [name for name in FIGURES + RESULTS + COMPARISON + SPEEDUPS + RUNTIMES if (out / name).exists()]
    if existing and not overwrite:
        raise ReportError(f"{out} already holds {', '.join(existing)}; pass --overwrite to replace them, or choose another --out")
    for name in existing:  # a folder holds one report: an earlier report's comparison must not stay beside new tables
        (out / name).unlink()
    out.mkdir(parents=True, exist_ok=True)
    caption = latest.caption()
    rows = tables.results_table(latest)
    written = [
        tables.write_csv(out / "results.csv", rows, tables.RESULT_COLUMNS),
        tables.write_markdown(out / "results.md", "sst2mlp results", f"{caption}\n\n{RESULTS_NOTE}", rows, tables.RESULT_COLUMNS),
    ]
    written.append(write_claims(out / "claims.md", latest))
    written.append(write_choose(out / "choose.md", latest))
    written += write_figures(latest, out, threads=min(key.threads for key in latest.rows))
    if several_impls:
        rows = tables.speedups_table(latest)
        written += [
            tables.write_csv(out / "speedups.csv", rows, tables.SPEEDUP_COLUMNS),
            tables.write_markdown(out / "speedups.md", "sst2mlp speed-ups of each impl, measured in one run", caption,
                                  rows, tables.SPEEDUP_COLUMNS),
        ]
        written += _runtimes_tables(latest, out, caption)
    if len(runs) > 1:
        rows, columns = tables.comparison_table(runs)
        captions = "\n".join(f"- {run.label}: {run.caption()}" for run in runs)
        differences = [f"{run.label} vs {runs[0].label}: {'; '.join(d)}" for run in runs[1:]
                       if (d := gate.machine_differences(runs[0].machine, run.machine))]
        if differences:
            captions += ("\n\n**These runs come from different set-ups** (" + " | ".join(differences) + "): the ratios "
                         "below mix the code's change with the machine's.")
        written += [
            tables.write_csv(out / "comparison.csv", rows, columns),
            tables.write_markdown(out / "comparison.md", "sst2mlp comparison (ratios against the first run)", captions,
                                  rows, columns, empty="missing"),
        ]
    written.append(write_html(out))  # last: it gathers the pages and figures written above
    return written


RUNTIMES_NOTE = (
    "Every impl at the baseline configuration (or the run's nearest). latency_vs_fused: batch-1 median over fused's; "
    "throughput_*_vs_best_exact: examples/s over the best exact impl of the suite's own; *_vs_fused_noskip: the same "
    "against fused-noskip, the fused kernel reading every hidden unit (fused's lead over a row is that row's ratio to "
    "fused-noskip, its overhead and layout, times fused-noskip's to fused, what skipping the inactive units gives); "
    "call_floor_us: the call path's floor its batch-1 floor counts (a runtime's empty model through the same path, "
    "else the suite's extension call); coldstart_s: a fresh process from its start to its first prediction.")
PARITY_NOTE = (
    "Each impl's dev-set predictions and logits against the dense model it was made from, over every configuration "
    "of the run; accuracy at the baseline (mean ± sd over seeds where the impl was made from every seed's model).")


ROOFLINE_NOTE = (
    "Every impl at the baseline configuration (or the run's nearest), per call: the median, the floor (the time this "
    "machine could not beat: the larger of the FLOPs at its peak matrix-product rate and the bytes the impl must read "
    "at the read bandwidth of the cache level that holds them, plus the extension call floor; machine_info "
    "limits) and floor / median. b1: one example; b64: 64; dev: the whole dev set in one call.")


def _runtimes_tables(run, out: Path, caption: str) -> list[Path]:
    runtimes = tables.runtimes_table(run)
    tables_to_write = [("runtimes", "sst2mlp runtimes at the baseline", RUNTIMES_NOTE, runtimes, tables.RUNTIME_COLUMNS),
                       ("parity", "sst2mlp parity with dense", PARITY_NOTE, tables.parity_table(run), tables.PARITY_COLUMNS),
                       ("roofline", "sst2mlp against the machine's floor", ROOFLINE_NOTE, tables.roofline_table(run),
                        tables.ROOFLINE_COLUMNS)]
    written = []
    for stem, title, note, rows, columns in tables_to_write:
        if rows:
            written += [tables.write_csv(out / f"{stem}.csv", rows, columns),
                        tables.write_markdown(out / f"{stem}.md", title, f"{caption}\n\n{note}", rows, columns)]
    if runtimes:  # the short form, for a front page; runtimes.csv holds its every column
        written.append(tables.write_markdown(out / "baseline.md", "sst2mlp at the baseline", f"{caption}\n\n{RUNTIMES_NOTE}",
                                             runtimes, tables.BASELINE_COLUMNS))
    return written


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN",
                        help="pytest-benchmark JSON: the baseline run(s), then the run to check (the last)")
    parser.add_argument("--threshold", type=number_in("a positive fraction such as 0.10 (10%)", lambda v: 0 < v < math.inf),
                        default=0.10, help="smallest slowdown that counts (default: 0.10, 10%%)")
    parser.add_argument("--alpha", type=number_in("a probability above 0 and below 1 such as 0.002", lambda v: 0 < v < 1),
                        default=0.002, help="significance level of the U test (default: 0.002)")
    parser.add_argument("--allow-different-machines", action="store_true",
                        help="compare runs whose CPU, torch version, thread counts or denormal mode differ")
    parser.add_argument("--noise-profile", type=Path, metavar="JSON",
                        help="between-run noise per group, impl and batch size when one baseline is given, made by "
                             "sst2mlp-report calibrate (default: the profile the suite ships for the new run's CPU, else its "
                             "development VM's)")
    parser.add_argument("--confirm", type=Path, nargs="+", default=[], metavar="RUN",
                        help="runs of the new code measured again in fresh processes (all its benchmarks or some, such "
                             "as those --suspects lists): a timing change stands only where each of them shows it too")
    parser.add_argument("--suspects", type=Path, metavar="FILE",
                        help="write the pytest node ids of the benchmarks judged slower, one per line, to measure them "
                             "again for --confirm (the file is replaced; empty when none is slower)")


def check(args: argparse.Namespace) -> int:
    if len(args.runs) < 2:
        args.parser.error("expected at least two runs: a baseline and the run to check")
    try:
        verdicts, notes = gate.compare(args.runs[:-1], args.runs[-1], args.threshold, args.alpha, args.allow_different_machines,
                                       (load_profile(args.noise_profile) if args.noise_profile else None), confirm=args.confirm)
        if args.suspects is not None:
            _write_suspects(args.suspects, gate.suspect_ids(verdicts, args.runs[-1]))
    except ReportError as error:
        print(f"sst2mlp-report check: error: {error}", file=sys.stderr)
        return 2
    few = [v.name for v in verdicts if v.verdict == gate.NO_SAMPLES]
    if few:
        notes.append(f"{len(few)} benchmark(s) with fewer than 2 samples a side: no verdict, they neither pass nor fail "
                     "(a training benchmark has one sample per timed round: run with --sst2-train-rounds 2 or more)")
    for note in (*notes, gate.NOISE_LEGEND):
        print(f"note: {note}")
    print(gate.format_table(verdicts))
    print(gate.summary(verdicts))
    return 1 if any(v.fails for v in verdicts) else 0


def _write_suspects(path: Path, ids: list[str]) -> None:
    try:
        path.write_text("".join(f"{node_id}\n" for node_id in ids))
    except OSError as error:
        raise ReportError(f"cannot write --suspects {path} ({error.strerror or error}); expected a writable file path") from None


CHECK_HELP = ("compare a new run with one or more baseline runs benchmark by benchmark; exit 1 when a timing got slower "
              "by more than its allowance (the threshold, or its spread between the baseline runs, or with one baseline "
              "the machine's noise profile) with significant samples, or a configuration's dev accuracy dropped beyond "
              "its noise")
DEFAULT_COMMAND = "draw"  # `sst2mlp-report RUN ... --out DIR` draws: the command name may be left out


def add_draw_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", default=[".benchmarks"], help="pytest-benchmark JSON files or storage folders (default: .benchmarks)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="folder for figures and tables (default: report)")
    parser.add_argument("--overwrite", action="store_true", help="replace figures and tables already in --out")
    parser.add_argument("--strict", action="store_true",
                        help="fail on any benchmark without every parameter and extra_info field the current suite writes")


def draw(args: argparse.Namespace) -> int:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            written = make_report(args.inputs, args.out, overwrite=args.overwrite, strict=args.strict)
        for warning in caught:  # the message only: a reader needs no source location inside the report
            print(f"sst2mlp-report: warning: {warning.message}", file=sys.stderr)
    except ReportError as error:
        print(f"sst2mlp-report: error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


COMMANDS = (  # name, its arguments, what runs it, its help
    (DEFAULT_COMMAND, add_draw_arguments, draw, "figures and tables of saved runs (the default command)"),
    ("check", add_check_arguments, check, CHECK_HELP),
    ("calibrate", profile.add_arguments, profile.run, "this machine's noise profile for check, from runs of the same code"),
    ("noise", noise.add_arguments, noise.run, "how the gate does on A/A pairs of runs: false alarms, and what it catches"),
)


def command_parser() -> argparse.ArgumentParser:
    """sst2mlp-report and its commands, each with its arguments and the function that runs it."""
    top = argparse.ArgumentParser(prog="sst2mlp-report", description=__doc__.split("\n\n")[0],
                                  epilog=f"`sst2mlp-report RUN ...` is `sst2mlp-report {DEFAULT_COMMAND} RUN ...`; "
                                         "see `sst2mlp-report COMMAND --help`")
    commands = top.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name, add_arguments, run, help_text in COMMANDS:
        parser = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(parser)
        parser.set_defaults(run=run, parser=parser)
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in ("-h", "--help", *(name for name, *_ in COMMANDS)):
        argv = [DEFAULT_COMMAND, *argv]
    args = command_parser().parse_args(argv)
    return args.run(args)
