import os
import subprocess
import sys

import numpy as np
import pytest

from sst2mlp import DataError, load_sst2
from sst2mlp.reference import data as data_module
from sst2mlp.reference.data import DATA_DIR_ENV

TRAIN = "sentence\tlabel\nit 's a charming journey . \t1\nthe film is boring \t0\na gem \t1\n"
DEV = "sentence\tlabel\na dull , boring movie . \t0\nan utterly charming gem \t1\n"


def write_glue(folder, train=TRAIN, dev=DEV):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("train.tsv", train), ("dev.tsv", dev)):
        if text is not None:
            (folder / name).write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return folder


def test_glue_folder_loads_sentences_and_labels(tmp_path):
    data = load_sst2(write_glue(tmp_path))
    assert data.train.sentences == ["it 's a charming journey . ", "the film is boring ", "a gem "]
    assert data.train.labels.tolist() == [1, 0, 1]
    assert data.dev.labels.tolist() == [0, 1]
    assert "train 3 rows, dev 2 rows" in data.describe()


def test_environment_variable_selects_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(write_glue(tmp_path)))
    assert len(load_sst2().train) == 3


def test_parquet_folder_gives_the_same_splits(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    glue = load_sst2(write_glue(tmp_path / "glue"))
    hub_layout = tmp_path / "hub" / "data"
    hub_layout.mkdir(parents=True)
    for split, file in ((glue.train, "train-00000-of-00001.parquet"), (glue.dev, "validation-00000-of-00001.parquet")):
        table = pa.table({"idx": list(range(len(split))), "sentence": split.sentences, "label": split.labels.tolist()})
        pq.write_table(table, hub_layout / file)
    parquet = load_sst2(tmp_path / "hub")
    assert parquet.train.sentences == glue.train.sentences
    assert np.array_equal(parquet.dev.labels, glue.dev.labels)


@pytest.mark.parametrize(
    "train, dev, expected",
    [
        (TRAIN, None, r"dev\.tsv is missing"),
        ("sentence\tpolarity\nfine \t1\n", DEV, r"train\.tsv, line 1: expected the header 'sentence<TAB>label', found 'sentence\\tpolarity'"),
        ("", DEV, r"train\.tsv, line 1: expected the header .* found an empty file"),
        (TRAIN + "no label here\n", DEV, r"train\.tsv, line 5: expected 2 tab-separated columns .* found 1"),
        (TRAIN, DEV + "bad\t1\textra\n", r"dev\.tsv, line 4: expected 2 tab-separated columns .* found 3"),
        (TRAIN, DEV + "so-so \t2\n", r"dev\.tsv, line 4: label must be 0 or 1, found '2'"),
        ("sentence\tlabel\n", DEV, r"train\.tsv: the train split is empty"),
        (TRAIN.encode() + b"caf\xe9 \t1\n", DEV, r"train\.tsv, line 5: bytes that are not UTF-8 .* expected a UTF-8 text file"),
    ],
    ids=["missing-file", "wrong-header", "empty-file", "too-few-columns", "too-many-columns", "bad-label", "empty-split", "not-utf8"],
)
def test_malformed_glue_files_are_named_with_line_and_expectation(tmp_path, train, dev, expected):
    with pytest.raises(DataError, match=expected):
        load_sst2(write_glue(tmp_path, train, dev))


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match=rf"SST-2 folder {tmp_path / 'nope'} does not exist.*--sst2-data"):
        load_sst2(tmp_path / "nope")


def test_folder_without_data_files_says_what_it_expected(tmp_path):
    with pytest.raises(DataError, match=r"holds neither train\.tsv and dev\.tsv nor train-\*\.parquet"):
        load_sst2(tmp_path)


def test_offline_hub_says_how_to_use_a_local_copy(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != DATA_DIR_ENV}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    run = subprocess.run(
        [sys.executable, "-c", "import sst2mlp, sys\ntry:\n sst2mlp.load_sst2()\nexcept sst2mlp.DataError as e:\n sys.exit(str(e))"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 1
    message = run.stderr.strip().splitlines()[-1]
    assert message.startswith("cannot download stanfordnlp/sst2 from the Hugging Face hub")
    assert "--sst2-data DIR" in message and "SST2_DATA_DIR=DIR" in message


def test_real_data_row_counts(sst2):
    assert (len(sst2.train), len(sst2.dev)) == (67_349, 872)
    assert (sst2.train.labels.sum(), sst2.dev.labels.sum()) == (37_569, 444)


def test_hub_splits_map_validation_to_dev(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name):
        calls.append(name)
        make = datasets.Dataset.from_dict
        return {
            "train": make({"idx": [0, 1], "sentence": ["a gem ", "a mess "], "label": [1, 0]}),
            "validation": make({"idx": [0], "sentence": ["charming "], "label": [1]}),
            "test": make({"idx": [0], "sentence": ["unlabelled "], "label": [-1]}),
        }

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(data_module, "hub_unreachable_reason", lambda: None)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_sst2()
    assert calls == ["stanfordnlp/sst2"]
    assert data.train.sentences == ["a gem ", "a mess "] and data.dev.labels.tolist() == [1]
    assert data.source == "stanfordnlp/sst2"


def test_unlabelled_rows_are_rejected(monkeypatch):
    import datasets

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(data_module, "hub_unreachable_reason", lambda: None)
    split = datasets.Dataset.from_dict({"sentence": ["x "], "label": [-1]})
    monkeypatch.setattr(datasets, "load_dataset", lambda name: {"train": split, "validation": split})
    with pytest.raises(DataError, match=r"stanfordnlp/sst2:train: row 0 has label -1; expected 0 or 1"):
        load_sst2()
