"""Where pytest-benchmark will save a run, read once from its options (--benchmark-json, --benchmark-save,
--benchmark-autosave, --benchmark-storage, --benchmark-disable), and what the suite checks of it before the first
benchmark: a run must not measure for an hour and then fail to write."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STORAGE = "file://./.benchmarks"  # pytest-benchmark's default --benchmark-storage


@dataclass(frozen=True)
class SaveOptions:
    disabled: bool  # --benchmark-disable: nothing is timed, so nothing is saved
    json_file: object | None  # --benchmark-json: a path, or the file object pytest-benchmark opened
    to_storage: bool  # --benchmark-save NAME or --benchmark-autosave
    storage: str  # --benchmark-storage: a file:// URI or a folder (or another backend's URI)
    includes_rounds: bool = False  # every round's time is saved: --benchmark-json does, --benchmark-save-data asks
    histogram: bool = False  # --benchmark-histogram draws from every round's time

    @classmethod
    def of(cls, config) -> SaveOptions:
        return cls(disabled=bool(config.getoption("benchmark_disable", False)),
                   json_file=config.getoption("benchmark_json", None),
                   to_storage=bool(config.getoption("benchmark_save", None) or config.getoption("benchmark_autosave", False)),
                   storage=str(config.getoption("benchmark_storage", DEFAULT_STORAGE)),
                   includes_rounds=bool(config.getoption("benchmark_json", None) or config.getoption("benchmark_save_data", False)),
                   histogram=bool(config.getoption("benchmark_histogram", None)))

    @property
    def asked(self) -> bool:
        return self.json_file is not None or self.to_storage

    @property
    def saves(self) -> bool:
        return self.asked and not self.disabled

    @property
    def storage_folder(self) -> Path:
        return Path(self.storage.removeprefix("file://"))

    def destination(self) -> str | None:
        """Where the run is saved: the --benchmark-json file, or the storage folder; None when it is not."""
        if not self.saves:
            return None
        if self.json_file is not None:
            return str(self.json_file) if isinstance(self.json_file, (str, os.PathLike)) else str(self.json_file.name)
        return str(self.storage_folder)

    def problem(self) -> str | None:
        """Why the run could not be written where it is to be saved, or None."""
        if self.disabled:
            return None
        if self.json_file is not None:
            path = Path(self.json_file)
            if path.is_dir():
                return f"--benchmark-json {path} is a folder; expected the path of a file to write"
            if not path.parent.is_dir():
                return f"--benchmark-json {path}: the folder {path.parent} does not exist; expected a file in an existing folder"
            if not writable(path.parent):
                return f"--benchmark-json {path}: cannot write in {path.parent}; expected a writable folder"
        if self.to_storage and (self.storage.startswith("file://") or "://" not in self.storage):
            folder = self.storage_folder
            existing = next(parent for parent in (folder, *folder.parents) if parent.exists())  # pytest-benchmark makes the rest
            if not writable(existing):
                return f"--benchmark-storage {self.storage}: cannot write in {existing}; expected a writable folder for the results"
        return None

    def unused(self) -> list[str]:
        """Saving options that --benchmark-disable makes void, as a warning."""
        if self.disabled and self.asked:
            return ["--benchmark-disable times nothing, so pytest-benchmark saves nothing: --benchmark-json, "
                    "--benchmark-save and --benchmark-autosave have no effect"]
        return []


def writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
