import random

import pytest

POSITIVE_WORDS = ["great", "fun", "charming", "moving", "gem", "delight"]
NEGATIVE_WORDS = ["dull", "boring", "mess", "tedious", "flat", "bland"]
NEUTRAL_WORDS = ["the", "film", "a", "story", "cast", "plot", "is", "and"]


def synthetic_sentences(count: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        label = rng.randint(0, 1)
        words = rng.sample(NEUTRAL_WORDS, 3) + rng.sample(POSITIVE_WORDS if label else NEGATIVE_WORDS, 2)
        rng.shuffle(words)
        rows.append((" ".join(words) + " .", label))
    return rows


@pytest.fixture
def tiny_glue(tmp_path):
    """A GLUE-format SST-2 folder with 2000 train and 100 dev synthetic sentences (20 distinct words)."""
    folder = tmp_path / "sst2"
    folder.mkdir()
    for name, count, seed in (("train.tsv", 2000, 1), ("dev.tsv", 100, 2)):
        lines = ["sentence\tlabel"] + [f"{s} \t{label}" for s, label in synthetic_sentences(count, seed)]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder
