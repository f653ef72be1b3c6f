"""SST-2 train and dev splits, from the Hugging Face hub or a local folder.

Both sources end as the same `Split` objects: sentences plus 0/1 labels. A local
folder holds either GLUE's `train.tsv` and `dev.tsv` (parsed here: importing
`datasets` for them would cost each run about a second), or the hub's parquet
files (`train-*.parquet`, `validation-*.parquet`, read by `datasets` as the hub's are).
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HUB_NAME = "stanfordnlp/sst2"
DATA_DIR_ENV = "SST2_DATA_DIR"
TSV_HEADER = ("sentence", "label")
TSV_FILES = {"train": "train.tsv", "dev": "dev.tsv"}
PARQUET_PREFIXES = {"train": "train", "dev": "validation"}  # the hub calls dev "validation"
HOW_TO_POINT_LOCAL = (
    f"point at a local copy of SST-2 with the pytest option --sst2-data DIR or the "
    f"environment variable {DATA_DIR_ENV}=DIR; DIR holds GLUE's train.tsv and dev.tsv "
    f"(or the hub's train-*.parquet and validation-*.parquet)"
)


class DataError(ValueError):
    """The SST-2 source is missing, unreachable or not in the expected format."""


@dataclass(frozen=True)
class Split:
    name: str
    sentences: list[str]
    labels: np.ndarray  # int64, 0 negative / 1 positive

    def __len__(self) -> int:
        return len(self.sentences)

    def head(self, n: int) -> Split:
        return Split(self.name, self.sentences[:n], self.labels[:n])


@dataclass(frozen=True)
class SST2:
    train: Split
    dev: Split
    source: str  # the hub name or the local folder, for logs and extra_info
    notes: tuple[str, ...] = ()  # what a user should know about how the source was read

    def describe(self) -> str:
        return f"SST-2 from {self.source}: train {len(self.train):,} rows, dev {len(self.dev):,} rows"


def resolve_data_dir(option: str | os.PathLike | None = None) -> Path | None:
    """The local folder to read: an explicit option first, then $SST2_DATA_DIR, else None (the hub)."""
    value = option if option not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    return Path(value).expanduser() if value is not None else None


def load_sst2(data_dir: str | os.PathLike | None = None) -> SST2:
    """Load train and dev; `data_dir` (or $SST2_DATA_DIR) selects a local folder over the hub."""
    folder = resolve_data_dir(data_dir)
    if folder is None:
        return _load_hub()
    return _load_folder(folder)


def hub_unreachable_reason(timeout: float = 3.0) -> str | None:
    """Why the hub cannot be reached, found in at most `timeout` seconds (the hub client retries for ~25 s);
    None when it answers, when a proxy is configured (only the client can use it) or in offline mode (cache only)."""
    if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE"):
        return None
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    name, _, port = host.partition(":")
    try:
        socket.create_connection((name, int(port or 443)), timeout=timeout).close()
    except OSError as error:
        return f"{endpoint} is not reachable ({error})"
    return None


def _load_hub() -> SST2:
    unreachable = hub_unreachable_reason()
    if unreachable:
        raise DataError(f"cannot download {HUB_NAME} from the Hugging Face hub: {unreachable}; {HOW_TO_POINT_LOCAL}")
    import datasets

    try:
        splits = datasets.load_dataset(HUB_NAME)
    except (ConnectionError, OSError) as error:
        raise DataError(
            f"cannot download {HUB_NAME} from the Hugging Face hub ({type(error).__name__}: {error}); "
            f"{HOW_TO_POINT_LOCAL}"
        ) from None
    return SST2(
        train=_split_from_columns("train", splits["train"], f"{HUB_NAME}:train"),
        dev=_split_from_columns("dev", splits["validation"], f"{HUB_NAME}:validation"),
        source=HUB_NAME,
    )


def _load_folder(folder: Path) -> SST2:
    if not folder.is_dir():
        raise DataError(f"SST-2 folder {folder} does not exist or is not a folder; {HOW_TO_POINT_LOCAL}")
    tsv_paths = {split: folder / name for split, name in TSV_FILES.items()}
    notes = ()
    if any(path.exists() for path in tsv_paths.values()):
        if any(folder.glob("**/*.parquet")):
            notes = (f"{folder} holds both GLUE TSV files and parquet files: read train.tsv and dev.tsv, ignored the parquet files",)
        missing = [str(path) for path in tsv_paths.values() if not path.is_file()]
        if missing:
            raise DataError(f"SST-2 file {', '.join(missing)} is missing; expected train.tsv and dev.tsv in {folder}")
        splits = {split: _split_from_columns(split, read_glue_tsv(path), str(path)) for split, path in tsv_paths.items()}
    else:
        splits = {split: _split_from_columns(split, *_read_parquet(folder, prefix)) for split, prefix in PARQUET_PREFIXES.items()}
    return SST2(train=splits["train"], dev=splits["dev"], source=str(folder), notes=notes)


def read_glue_tsv(path: Path) -> dict[str, list]:
    """Parse a GLUE-format SST-2 file strictly, naming the file and line of the first problem: its columns."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read the file ({error.strerror or error}); expected a readable GLUE-format TSV file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: bytes that are not UTF-8 ({error.reason}); expected a UTF-8 text file") from None
    text = text.removeprefix("\ufeff")  # a byte-order mark, as spreadsheet exports write
    # Only newlines end a row: str.splitlines would also split at U+2028 and other separators inside a sentence.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines or tuple(lines[0].split("\t")) != TSV_HEADER:
        found = repr(lines[0][:80]) if lines else "an empty file"
        raise DataError(f"{path}, line 1: expected the header 'sentence<TAB>label', found {found}")
    sentences, labels = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            raise DataError(f"{path}, line {number}: the line is blank; expected a sentence, a tab and a 0/1 label")
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"{path}, line {number}: expected 2 tab-separated columns (sentence, label), found {len(fields)}")
        if fields[1] not in ("0", "1"):
            raise DataError(f"{path}, line {number}: label must be 0 or 1, found {fields[1]!r}")
        sentences.append(fields[0])
        labels.append(int(fields[1]))
    return {"sentence": sentences, "label": labels}


def _read_parquet(folder: Path, prefix: str):
    import datasets

    files = sorted(folder.glob(f"**/{prefix}-*.parquet"))
    if not files:
        raise DataError(
            f"SST-2 folder {folder} holds neither train.tsv and dev.tsv nor {prefix}-*.parquet; {HOW_TO_POINT_LOCAL}"
        )
    try:
        dataset = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    except Exception as error:  # pyarrow and datasets raise their own types for a damaged file
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise DataError(f"{', '.join(map(str, files))}: cannot read ({first_line}); expected readable parquet files") from None
    missing = {"sentence", "label"} - set(dataset.column_names)
    if missing:
        raise DataError(f"{files[0]}: expected columns 'sentence' and 'label', missing {sorted(missing)}")
    return dataset, ", ".join(str(f) for f in files)


def _split_from_columns(name: str, columns, origin: str) -> Split:
    """A split from its "sentence" and "label" columns (a dict of lists, or a `datasets.Dataset`)."""
    sentences = list(columns["sentence"])
    if not sentences:
        raise DataError(f"{origin}: the {name} split is empty; expected at least one labelled sentence")
    raw = columns["label"]
    try:
        labels = np.asarray(raw, dtype=np.int64)
    except (TypeError, ValueError):
        first = next(value for value in raw if not isinstance(value, (int, np.integer)))
        raise DataError(f"{origin}: column 'label' holds {first!r}; expected the integers 0 (negative) and 1 (positive)") from None
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        raise DataError(f"{origin}: row {bad[0]} has label {labels[bad[0]]}; expected 0 or 1 (an unlabelled test split?)")
    return Split(name=name, sentences=sentences, labels=labels)
