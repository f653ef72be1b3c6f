"""The sst2mlp pytest plugin: options, the grid's parametrization, fixtures, and the hooks around a run. Hooks only;
the state of a run is the `Suite` (sst2mlp.suite.session), the work is done by the package."""
from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from pytest_benchmark.utils import get_commit_info, safe_dumps

from sst2mlp import contract
from sst2mlp.impls.base import RuntimeUnavailable
from sst2mlp.impls.registry import IMPLS
from sst2mlp.measure.machine import available_cores, busy_warning, emulator, machine_load, set_denormals, torch_threads, update_machine_info
from sst2mlp.native.kernel import KernelUnavailable
from sst2mlp.reference.data import DATA_DIR_ENV, DataError, resolve_data_dir
from sst2mlp.reference.model import ModelConfig
from sst2mlp.stats import UNSTABLE_SPREAD

from .case import BenchmarkCase
from .coldstart import ROUNDS_WARMUP
from .journal import FOLDER as JOURNAL_FOLDER
from .journal import Journal, JournalError, RunIdentity, merged_run, pack_rounds
from .options import OPTIONS, SuiteOptions
from .progress import Planned, Progress
from .saving import SaveOptions
from .schedule import by_configuration, configuration_of, last_of_configuration
from .session import Suite

UNSTABLE_SHOWN = 8
PROCESS_START_SECONDS = 1.0  # a Python process importing numpy and a runtime takes at least this here (1.2-5 s measured)
ROOFLINE_GROUPS = ("inference", "throughput", "training")  # the groups whose records set a timing against the machine's floor

OPTIONS_KEY = pytest.StashKey[SuiteOptions]()  # the run's parsed --sst2-* options
SUITE_KEY = pytest.StashKey[Suite]()  # the run's session state


def pytest_addoption(parser):
    group = parser.getgroup("sst2mlp", "sst2mlp benchmark suite")
    for option in OPTIONS:
        shown = f" (default: {option.default})" if option.default is not None else ""
        # default None: SuiteOptions tells an option given at its default value from one left out (a preset fills those)
        group.addoption(option.flag, type=option.parse, default=None, metavar=option.metavar, help=option.help + shown)


def pytest_configure(config):
    try:
        options = SuiteOptions.from_pytest(config.getoption)
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    folder = resolve_data_dir(options.data_dir)
    if folder is not None and not folder.is_dir():
        raise pytest.UsageError(f"SST-2 folder {folder} (from --sst2-data or ${DATA_DIR_ENV}) does not exist or is not a folder")
    problem = _xdist_problem(config)
    if problem:
        raise pytest.UsageError(problem)
    resumed = None
    if options.resume is not None:
        try:
            resumed = Journal.read(Path(options.resume))
        except JournalError as error:
            raise pytest.UsageError(str(error)) from None
    config.stash[OPTIONS_KEY] = options
    config.stash[SUITE_KEY] = Suite(options)
    # before torch starts its worker threads, which inherit the setting
    denormals = {"mode": options.denormals, "flush_supported": set_denormals(options.denormals)}
    config.pluginmanager.register(RunHooks(config, config.stash[SUITE_KEY], denormals, resumed), "sst2mlp-run")


def _names(argnames) -> list[str]:
    """pytest.mark.parametrize's names, given as "a,b" or as a sequence of names."""
    return [name.strip() for name in (argnames.split(",") if isinstance(argnames, str) else argnames)]


def pytest_generate_tests(metafunc):
    options = metafunc.config.stash[OPTIONS_KEY]
    group = (metafunc.definition.get_closest_marker("benchmark") or pytest.mark.benchmark()).kwargs.get("group")
    if "model_config" in metafunc.fixturenames:
        grid = options.coldstart_grid() if group == "coldstart" else options.grid()
        metafunc.parametrize("num_layers,hidden_size,vocab_size", [(c.num_layers, c.hidden_size, c.vocab_size) for c in grid],
                             ids=[c.id for c in grid])
    if "pinned_threads" in metafunc.fixturenames:
        metafunc.parametrize("threads", options.threads, ids=[f"T{t}" for t in options.threads])
    explicit = {name for mark in metafunc.definition.iter_markers("parametrize") for name in _names(mark.args[0])}
    if "impl" in metafunc.fixturenames and "impl" not in explicit:
        metafunc.parametrize("impl", options.train_impls if group == "training" else options.impls)


def _group(item) -> str | None:
    marker = item.get_closest_marker("benchmark")
    return marker.kwargs.get("group") if marker else None


def _deselect(config, items: list, unwanted: list) -> None:
    if unwanted:
        dropped = set(map(id, unwanted))
        items[:] = [item for item in items if id(item) not in dropped]
        config.hook.pytest_deselected(items=unwanted)


def _benchmarks(items: Iterable) -> list:
    return [item for item in items if "benchmark" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("skip")]


def _planned(item) -> Planned:
    """A benchmark's work grows with its configuration, a training's also with its trainer's input layer."""
    config, group = configuration_of(item), _group(item)
    impl = item.callspec.params.get("impl") if hasattr(item, "callspec") else None
    sparse = IMPLS[impl].sparse_input if group == "training" and impl in IMPLS else group != "training"
    return Planned(item.nodeid, config.relative_work(sparse) if config else None,
                   group if group in ("training", "coldstart") else "other")


def _xdist_problem(config, collected_benchmarks: bool = False) -> str | None:
    """Benchmarks in pytest-xdist workers would be untimed (pytest-benchmark disables itself there) and would share
    the cores with each other. xdist's controller collects nothing, so it is asked from the paths given, before any
    worker starts; a worker is asked once it has collected benchmarks all the same (e.g. `pytest -n 2 .`)."""
    if hasattr(config, "workerinput"):
        refused = collected_benchmarks
    else:
        distributing = bool(config.getoption("numprocesses", None)) and config.getoption("dist", "no") != "no"
        start = config.invocation_params.dir
        refused = distributing and any(_in_benchmarks(start / arg.split("::")[0], config.rootpath) for arg in config.args)
    if not refused:
        return None
    return ("the benchmarks cannot run under pytest-xdist (-n/--numprocesses): pytest-benchmark times nothing in its "
            "workers, and benchmarks running side by side would slow each other down; run `pytest benchmarks/` without -n "
            "(the unit tests in tests/ can use it)")


def _in_benchmarks(path: Path, root: Path) -> bool:
    path = path.resolve()
    return (root / "benchmarks") in (path, *path.parents)


class RunHooks:
    """The hooks of one run, holding what they share (no module-level state)."""

    def __init__(self, config, suite: Suite, denormals: dict, resumed: Journal | None = None):
        self.config, self.suite, self.denormals = config, suite, denormals
        self.saving = SaveOptions.of(config)  # where pytest-benchmark saves the run, read once
        self.resumed = resumed  # the journal of the interrupted run this one continues (--sst2-resume)
        self.journal: Journal | None = None  # where this run writes each finished benchmark
        self.identity: RunIdentity | None = None
        self.started = time.monotonic()
        self.session_id = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
        self.wall_by_group: dict[str, float] = {}  # wall seconds of this session's benchmarks, by group
        self.groups: dict[str, str | None] = {}
        self.held_between: dict[str, int | None] = {}  # resident bytes after each configuration's release
        self._began = 0.0
        self._session_ended = False
        self.load: dict | None = None
        self.planned: set[str] = set()  # the suite's benchmarks in this run
        self.release_after: dict[str, ModelConfig] = {}  # each configuration's last benchmark
        self.left_out: list[str] = []  # interrupted benchmarks, not saved
        self.previous_sigterm = None
        self.interrupted = False

    def pytest_keyboard_interrupt(self, excinfo):
        self.interrupted = True  # before any plugin's sessionfinish (pytest-benchmark saves in its own)

    def pytest_sessionfinish(self, session, exitstatus):
        self.interrupted = self.interrupted or exitstatus == pytest.ExitCode.INTERRUPTED

    def pytest_unconfigure(self, config):
        self.suite.coldstarts.close()
        if self.previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self.previous_sigterm)

    def pytest_benchmark_update_json(self, config, benchmarks, output_json):
        """A benchmark interrupted midway (Ctrl-C, SIGTERM) has rounds but no record: it is not saved as if finished.
        A resumed run saves every session's benchmarks, in the order of the run's plan, as one run."""
        finished = self.suite.finished
        kept = [b for b in output_json["benchmarks"] if b.get("fullname") not in self.planned or b.get("fullname") in finished]
        self.left_out = [b.get("name") for b in output_json["benchmarks"] if b not in kept]
        if self.resumed is not None:
            kept = merged_run(self.journal.records, kept, self.journal.identity.benchmarks)
        output_json["benchmarks"] = kept
        output_json["machine_info"]["sst2mlp_run"] = self._run_info()
        output_json["machine_info"]["sst2mlp_schema"] = contract.SCHEMA_VERSION

    def _session(self) -> dict:
        """This session's wall time, peak resident memory and where its time went (written once, at the first save)."""
        suite = self.suite
        return {"id": self.session_id, "wall_seconds": round(time.monotonic() - self.started, 1),
                "peak_rss_bytes": suite.memory.peak.process_peak_bytes(),
                "interrupted": self.interrupted,
                "seconds": {**{f"{group} benchmarks": round(seconds, 1) for group, seconds in self.wall_by_group.items()},
                            "building impls and runtimes": round(suite.variants.build_seconds, 1),
                            "waiting for a quiet machine": round(suite.wait_budget.spent, 1),
                            "seeds' accuracies (untimed trainings)": round(suite.seeds.seconds, 1),
                            "memory measurements": round(suite.memory.seconds, 1)},
                "rss_after_release_bytes": self.held_between}

    def _run_info(self) -> dict:
        """machine_info["sst2mlp_run"]: every session of the run (one unless resumed), its total wall time and peak."""
        session = self._session()
        if self.journal is not None and not self._session_ended:
            self.journal.end_session(session)
            self._session_ended = True
        sessions = list(self.journal.sessions) if self.journal is not None else [{**session, "ended": True}]
        return {"sessions": sessions, "wall_seconds": round(sum(s["wall_seconds"] for s in sessions), 1),
                "peak_rss_bytes": max(s["peak_rss_bytes"] for s in sessions),
                "journal": str(self.journal.path) if self.journal is not None else None,
                "started": self.journal.started if self.journal is not None else None}

    @pytest.hookimpl(trylast=True)  # after -k and -m: the counts are of the benchmarks the run would have had
    def pytest_collection_modifyitems(self, session, config, items):
        """Left out, not skipped: the coldstart group under --sst2-coldstart=off, and the benchmarks of an impl whose
        optional runtime is not installed, with one line per runtime that says how to install it."""
        if config.stash[OPTIONS_KEY].coldstart == "off":
            _deselect(config, items, [item for item in items if _group(item) == "coldstart"])
        missing: dict[str, list] = {}
        for item in items:
            impl = item.callspec.params.get("impl") if hasattr(item, "callspec") else None
            problem = IMPLS[impl].missing() if impl in IMPLS else None
            if problem:
                missing.setdefault(problem, []).append(item)
        for problem, group in missing.items():
            _deselect(config, items, group)
            config.issue_config_time_warning(
                pytest.PytestWarning(f"sst2mlp: {problem}; its {len(group)} benchmark(s) are left out"), stacklevel=2)
        items[:] = by_configuration(items)
        if self.saving.saves:
            planned = [item.nodeid for item in _benchmarks(items)]
            self.identity = RunIdentity.current(config.stash[OPTIONS_KEY], planned, get_commit_info())
        if self.resumed is not None:
            self._resume(config, items)

    def _resume(self, config, items: list) -> None:
        """Refuse a resume whose results would not be one run's; else leave out what the journal holds."""
        if self.identity is None:
            raise pytest.UsageError(f"--sst2-resume {self.resumed.path}: this run saves nothing; expected the options "
                                    "that saved the interrupted run (--benchmark-autosave, --benchmark-save or --benchmark-json)")
        differences = self.identity.differences(self.resumed.identity, any_commit=config.stash[OPTIONS_KEY].resume_commit == "any")
        if differences:
            raise pytest.UsageError(f"--sst2-resume {self.resumed.path}: cannot continue that run, it differs from this "
                                    f"one in {len(differences)} way(s): " + "; ".join(differences))
        done = self.resumed.finished()
        _deselect(config, items, [item for item in items if item.nodeid in done])

    def pytest_collection_finish(self, session):
        """Before any benchmark: check the data and the grid once (one error, not one per benchmark), then record
        how busy the machine is, and say so when it is too busy for timings."""
        config, suite = self.config, self.suite
        benchmarks = _benchmarks(session.items)
        if config.option.collectonly or not benchmarks:
            return
        problem = _xdist_problem(config, collected_benchmarks=True) or self.saving.problem()
        if problem:
            pytest.exit(f"sst2mlp: {problem}", returncode=pytest.ExitCode.USAGE_ERROR)
        try:
            suite.check()
        except (DataError, ValueError) as error:
            pytest.exit(f"sst2mlp: {error}", returncode=pytest.ExitCode.USAGE_ERROR)
        self.planned = {item.nodeid for item in benchmarks}
        self.groups = {item.nodeid: _group(item) for item in benchmarks}
        if self.identity is not None and not self.saving.disabled:
            self.journal = self.resumed or Journal.create(self.saving.storage_folder / JOURNAL_FOLDER, self.identity)
            self.journal.drop_cut_line()
        self.release_after = last_of_configuration([(item.nodeid, configuration_of(item)) for item in benchmarks])
        self.previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
        for warning in (*suite.corpus.warnings(), *config.stash[OPTIONS_KEY].cost_warnings(), *self.saving.unused()):
            config.issue_config_time_warning(pytest.PytestWarning(f"sst2mlp: {warning}"), stacklevel=2)
        self.load = machine_load()
        if not self.saving.disabled and any(_group(item) in ROOFLINE_GROUPS for item in benchmarks):
            suite.measure_limits()  # before the first timed benchmark, after the load reading
        if shows_progress(config.stash[OPTIONS_KEY].progress, config.get_verbosity()):
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            suite.progress = Progress([_planned(item) for item in benchmarks], write=reporter.write_line,
                                      terminal=bool(reporter.isatty), min_other_seconds=config.stash[OPTIONS_KEY].min_time,
                                      min_coldstart_seconds=PROCESS_START_SECONDS * (config.stash[OPTIONS_KEY].coldstart_rounds + ROUNDS_WARMUP))
        cores = available_cores()
        emulated = emulator()
        emulation = emulated and f"this process runs emulated ({emulated}): its timings say nothing about a real CPU"
        for warning in (emulation, busy_warning(self.load, cores), _oversubscribed(config.stash[OPTIONS_KEY].threads, cores)):
            if warning:
                config.issue_config_time_warning(pytest.PytestWarning(f"sst2mlp: {warning}"), stacklevel=2)

    def pytest_runtest_teardown(self, item, nextitem):
        """A finished benchmark goes to the journal before the next one starts (its fixture is still there); then its
        rounds are packed, unless an output needs them."""
        fixture = (getattr(item, "funcargs", None) or {}).get("benchmark")
        if item.nodeid not in self.suite.finished or fixture is None or fixture.stats is None:
            return
        include_data = self.saving.includes_rounds
        if self.journal is not None:
            self.journal.append(json.loads(safe_dumps(fixture.stats.as_dict(include_data=include_data))),
                                {"id": self.session_id, "wall_seconds": round(time.monotonic() - self.started, 1),
                                 "peak_rss_bytes": self.suite.memory.peak.process_peak_bytes()})
        if not (include_data or self.saving.histogram):
            pack_rounds(fixture.stats.stats)



    def pytest_runtest_logstart(self, nodeid, location):
        self._began = time.monotonic()
        if self.suite.progress is not None and nodeid in self.suite.progress:
            self.suite.progress.benchmark_started(nodeid)

    def pytest_runtest_logfinish(self, nodeid, location):
        group = self.groups.get(nodeid)
        if group is not None:
            self.wall_by_group[group] = self.wall_by_group.get(group, 0.0) + time.monotonic() - self._began
        if nodeid in self.release_after:  # after the test's teardown: its case no longer holds the variant
            config = self.release_after[nodeid]
            self.held_between[config.id] = self.suite.release(config)
        if self.suite.progress is not None and nodeid in self.suite.progress:
            self.suite.progress.benchmark_finished(nodeid)

    def pytest_benchmark_update_machine_info(self, config, machine_info):
        options = self.config.stash[OPTIONS_KEY]
        update_machine_info(machine_info, options.threads, options.impls, self.denormals, self.load)
        if self.suite.limits:
            machine_info["limits"] = {str(threads): limits.as_info() for threads, limits in self.suite.limits.items()}

    def pytest_terminal_summary(self, terminalreporter):
        summary = self.suite.summary()
        if summary:
            terminalreporter.write_line(summary)
        target = self.saving.destination() if self.suite.finished else None
        if target:
            terminalreporter.write_line(f"sst2mlp: results saved in {target}; make the figures and tables with: "
                                        f"sst2mlp-report {target} --out report/")
        if self.interrupted:
            saved = f"saved in {target}" if target else "not saved (no --benchmark-json or --benchmark-autosave)"
            dropped = (f"; not saved, as it had not finished: {', '.join(sorted(set(self.left_out)))}" if self.left_out else "")
            terminalreporter.write_line(f"sst2mlp: the run was interrupted; the {len(self.suite.finished)} finished "
                                        f"benchmark(s) are {saved}{dropped}", yellow=True)
        if self.journal is not None and (self.interrupted or len(self.journal.finished()) < len(self.journal.identity.benchmarks)):
            terminalreporter.write_line(f"sst2mlp: {len(self.journal.finished())} of the run's {len(self.journal.identity.benchmarks)} "
                                        f"benchmarks are in its journal; to run the rest, repeat the command with "
                                        f"--sst2-resume {self.journal.path}", yellow=True)
        unstable = self.suite.unstable
        if unstable:
            shown = unstable[:UNSTABLE_SHOWN]
            more = f"; and {len(unstable) - len(shown)} more" if len(unstable) > len(shown) else ""
            terminalreporter.write_line(
                f"sst2mlp: {len(unstable)} timing(s) unstable (IQR/median above {UNSTABLE_SPREAD:.0%}; flagged 'unstable' in extra_info, "
                f"marked '!' by sst2mlp-report): " + "; ".join(shown) + more, yellow=True)


def _interrupt(signum, frame):
    """SIGTERM (a CI timeout, a batch scheduler) ends the run as Ctrl-C does: the finished benchmarks are saved."""
    if frame is not None and frame.f_lineno is None:
        # interrupted at an instruction without a line number, which pytest's report of the interruption cannot
        # format (it would end in an internal error): raise a few milliseconds later instead
        previous = signal.getsignal(signal.SIGALRM)

        def later(_alarm, frame_later):
            signal.signal(signal.SIGALRM, previous)  # the alarm's handler as it was, before this raises
            _interrupt(signum, frame_later)
        signal.signal(signal.SIGALRM, later)
        signal.setitimer(signal.ITIMER_REAL, 0.005)
        return
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def shows_progress(option: str, verbosity: int) -> bool:
    """--sst2-progress: on, off, or auto (on unless -q)."""
    return option == "on" or (option == "auto" and verbosity >= 0)


def _oversubscribed(threads: tuple[int, ...], cores: int) -> str | None:
    if max(threads) <= cores:
        return None
    return (f"--sst2-threads asks for {max(threads)} threads but this process may use {cores} core(s): those timings "
            "measure oversubscription")


@pytest.fixture(scope="session")
def suite(pytestconfig) -> Suite:
    return pytestconfig.stash[SUITE_KEY]


@pytest.fixture(scope="session")
def sst2(suite):
    try:
        suite.corpus.check_vocabulary_sizes(suite.options.vocabs)
        return suite.corpus.data
    except (DataError, ValueError) as error:
        message = str(error)
    pytest.fail(message, pytrace=False)  # outside the except block: no chained traceback


@pytest.fixture
def model_config(num_layers, hidden_size, vocab_size) -> ModelConfig:
    return ModelConfig(num_layers, hidden_size, vocab_size)


@pytest.fixture
def pinned_threads(threads):
    """Run the test with exactly `threads` torch threads, restoring the previous count afterwards."""
    with torch_threads(threads):
        yield threads


@pytest.fixture
def case(request, suite, sst2, model_config, impl, pinned_threads) -> BenchmarkCase:
    """The benchmark's subject; for latency and throughput, its impl's variant is made here, before any timing (an
    impl that cannot be built fails its benchmarks with one line each, and the others run)."""
    case = BenchmarkCase(suite, model_config, impl, pinned_threads)
    if request.node.get_closest_marker("benchmark").kwargs.get("group") == "training":
        return case
    try:
        case.variant  # noqa: B018 (made and cached now)
        return case
    except (KernelUnavailable, RuntimeUnavailable) as error:
        message = str(error)
    pytest.fail(message, pytrace=False)  # outside the except block: no chained traceback
