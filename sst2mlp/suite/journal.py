"""A run's journal: every finished benchmark written to disk as it finishes, so that a run killed in any way (Ctrl-C,
SIGTERM, SIGKILL, out of memory, power loss) keeps what it finished, and `--sst2-resume JOURNAL` runs only the rest.

The journal is a JSON Lines file under the results' storage folder (`<storage>/partial/*.jsonl`, which neither
pytest-benchmark nor sst2mlp-report reads as a run): a header line with what the run's results depend on (its
identity), then one line per finished benchmark, exactly as pytest-benchmark saves it. Each line is written with one
write() and fsync'd before the next benchmark starts; a line cut short by a crash has no newline and is dropped when
the journal is read (the benchmark it held runs again). A write-ahead log, in short: appending keeps each write small
where rewriting a whole file per benchmark would write gigabytes over a full run.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from array import array
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

FORMAT = "sst2mlp-journal/1"
FOLDER = "partial"  # under the storage folder
PACKAGES = ("torch", "numpy", "onnxruntime", "onnx", "openvino", "executorch", "pytest-benchmark")
CPU_FIELDS = ("vendor_id", "cpu family", "model", "model name")
UNCHECKED_OPTIONS = ("progress", "resume", "resume_commit")  # change nothing that is measured


class JournalError(ValueError):
    """A journal that cannot be read or resumed; the message names the file and what was expected."""


def _cpu() -> dict[str, str]:
    """The CPU's identity from /proc/cpuinfo (its model name alone, "AMD EPYC", does not tell Zen 3 from Zen 4)."""
    found: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in CPU_FIELDS and key.strip() not in found:
                found[key.strip()] = value.strip()
    except OSError:
        pass
    return found or {"processor": platform.processor()}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class RunIdentity:
    """What a run's results depend on; a resumed run must have the same (the commit may differ when allowed)."""

    options: dict
    benchmarks: list[str]  # the node ids the run planned, in order (its -k, -m and paths)
    commit: str | None
    dirty: bool
    machine: dict
    packages: dict

    @classmethod
    def current(cls, options, benchmarks: list[str], commit_info: dict) -> RunIdentity:
        checked = {key: value for key, value in dataclasses.asdict(options).items() if key not in UNCHECKED_OPTIONS}
        machine = {"arch": platform.machine(), "python": platform.python_version(), "cpus": os.cpu_count(), **_cpu()}
        return cls(options=json.loads(json.dumps(checked)), benchmarks=list(benchmarks), commit=commit_info.get("id"),
                   dirty=bool(commit_info.get("dirty")), machine=machine,
                   packages={package: _version(package) for package in PACKAGES})

    def differences(self, earlier: RunIdentity, any_commit: bool) -> list[str]:
        """What differs from the run being resumed, one phrase each (empty: it may be resumed)."""
        found = []
        for name in sorted(set(self.options) | set(earlier.options)):
            if self.options.get(name) != earlier.options.get(name):
                found.append(f"option {name}: {earlier.options.get(name)!r} then, {self.options.get(name)!r} now")
        if self.benchmarks != earlier.benchmarks:
            added, dropped = set(self.benchmarks) - set(earlier.benchmarks), set(earlier.benchmarks) - set(self.benchmarks)
            found.append(f"the benchmarks selected: {len(earlier.benchmarks)} then, {len(self.benchmarks)} now "
                         f"({len(added)} added, {len(dropped)} dropped; same paths, -k and -m expected)")
        if not any_commit and (self.commit, self.dirty) != (earlier.commit, earlier.dirty):
            found.append(f"commit: {_commit(earlier)} then, {_commit(self)} now (--sst2-resume-commit=any allows it)")
        for part, now, then in (("machine", self.machine, earlier.machine), ("package", self.packages, earlier.packages)):
            for name in sorted(set(now) | set(then)):
                if now.get(name) != then.get(name):
                    found.append(f"{part} {name}: {then.get(name)!r} then, {now.get(name)!r} now")
        return found


def _commit(identity: RunIdentity) -> str:
    return f"{(identity.commit or 'none')[:12]}{' with uncommitted changes' if identity.dirty else ''}"


@dataclass
class Journal:
    path: Path
    identity: RunIdentity
    records: list[dict]  # the finished benchmarks, as pytest-benchmark saves them
    started: str  # when the run began (UTC), kept across resumes
    sessions: list[dict]  # each session's wall seconds and peak resident memory, filled as sessions end
    cut_bytes: int = 0  # the length of a last line cut short by a crash

    @classmethod
    def create(cls, folder: Path, identity: RunIdentity) -> Journal:
        folder.mkdir(parents=True, exist_ok=True)
        started = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
        path = folder / f"{started}_{(identity.commit or 'nocommit')[:8]}.jsonl"
        suffix = 1
        while path.exists():  # never overwrite another run's journal
            path, suffix = folder / f"{started}_{(identity.commit or 'nocommit')[:8]}-{suffix}.jsonl", suffix + 1
        journal = cls(path, identity, [], started, [])
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(journal._header()) + "\n")
        os.replace(temporary, path)  # the journal exists whole or not at all
        return journal

    def _header(self) -> dict:
        return {"format": FORMAT, "started": self.started, "identity": dataclasses.asdict(self.identity)}

    @classmethod
    def read(cls, path: Path) -> Journal:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise JournalError(f"--sst2-resume {path}: cannot read it ({error.strerror}); expected the journal of an "
                               f"interrupted run, {FOLDER}/*.jsonl in the results' storage folder") from None
        complete = data[:data.rfind(b"\n") + 1]  # a last line without its newline was cut short by a crash
        lines = complete.decode(errors="replace").splitlines()
        try:
            header = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise JournalError(f"--sst2-resume {path}: its first line is not a {FORMAT} header; expected the journal "
                               f"of an interrupted run, {FOLDER}/*.jsonl in the results' storage folder")
        records, sessions = [], {}
        for number, line in enumerate(lines[1:], start=2):
            try:
                entry = json.loads(line)
                session = entry["session"]
                if "benchmark" in entry:
                    records.append(entry["benchmark"])
                    # a session killed before its end is known by its last benchmark
                    sessions.setdefault(session["id"], {**session, "ended": False})
                    if not sessions[session["id"]].get("ended"):
                        sessions[session["id"]] = {**session, "ended": False}
                else:
                    sessions[session["id"]] = {**session, "ended": True}
            except (json.JSONDecodeError, KeyError, TypeError):
                raise JournalError(f"--sst2-resume {path}: line {number} is not a journal entry; expected one finished "
                                   "benchmark per line (the file was changed by hand or by another program)") from None
        return cls(path, RunIdentity(**header["identity"]), records, header["started"], list(sessions.values()),
                   cut_bytes=len(data) - len(complete))

    def drop_cut_line(self) -> None:
        """Before appending to a journal whose last write a crash cut short: remove that partial line (its benchmark
        had not finished being written, so it runs again)."""
        if self.cut_bytes:
            os.truncate(self.path, self.path.stat().st_size - self.cut_bytes)
            self.cut_bytes = 0

    def finished(self) -> set[str]:
        return {record["fullname"] for record in self.records}

    def append(self, record: dict, session: dict) -> None:
        """A finished benchmark, with its session so far (id, wall_seconds, peak_rss_bytes): what a session killed
        later leaves of its own record."""
        self._write({"benchmark": record, "session": session})
        self.records.append(record)

    def end_session(self, session: dict) -> None:
        """A session's wall time, peak memory and time breakdown, when it saves."""
        self._write({"session": session})
        self.sessions = [s for s in self.sessions if s["id"] != session["id"]] + [{**session, "ended": True}]

    def _write(self, entry: dict) -> None:
        line = (json.dumps(entry) + "\n").encode()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(descriptor, line)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def pack_rounds(stats) -> None:
    """pytest-benchmark keeps every round's time as a Python float in a list for the whole session (32 bytes each, and
    a sorted copy): a fast batch-1 benchmark times 100,000 rounds, a full run about 8 million. Once its statistics
    are computed (cached on the object, which is all the table and the saved JSON read), the rounds are kept as
    8-byte doubles and the sorted copy is dropped."""
    for name in stats.fields:
        getattr(stats, name)
    stats.__dict__.pop("sorted_data", None)
    stats.data = array("d", stats.data)


def merged_run(journaled: list[dict], saved_now: list[dict], plan: list[str]) -> list[dict]:
    """Every finished benchmark of a resumed run once (this session's record where both have it), in plan order."""
    by_name = {record["fullname"]: record for record in journaled}
    by_name.update({record["fullname"]: record for record in saved_now})
    position = {nodeid: index for index, nodeid in enumerate(plan)}
    return sorted(by_name.values(), key=lambda record: position.get(record["fullname"], len(position)))
