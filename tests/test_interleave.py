"""sst2mlp-interleave: impls timed against each other in one process, in rotated order, with parity and input
preparation; its options refused with one line naming what was expected."""
import json

import pytest

from sst2mlp.reference.model import ModelConfig
from sst2mlp.suite import interleave


@pytest.mark.parametrize("argv, expected", [
    (["dense"], "at least two different impls"),
    (["dense", "dense"], "at least two different impls"),
    (["dense", "sparse", "--batches", "1,0"], "expected positive integers or 'dev'"),
    (["dense", "sparse", "--config", "2,256"], "expected three integers N,H,k"),
    (["dense", "nosuch"], "nosuch"),
])
def test_bad_options_stop_with_one_line_naming_what_was_expected(argv, expected, capsys):
    with pytest.raises(SystemExit) as stopped:
        interleave.main(argv)
    assert stopped.value.code == 2 and expected in capsys.readouterr().err


def test_an_existing_out_file_is_never_written_over(tmp_path, capsys):
    out = tmp_path / "result.json"
    out.write_text("kept")
    with pytest.raises(SystemExit):
        interleave.main(["dense", "sparse", "--out", str(out)])
    assert "exists" in capsys.readouterr().err and out.read_text() == "kept"


def test_every_impl_is_timed_every_round_at_every_batch_with_its_parity(tiny_glue, tmp_path, capsys):
    out = tmp_path / "result.json"
    code = interleave.main(["dense", "sparse", "onnxruntime", "--config", "1,8,15", "--batches", "1,16,dev",
                            "--rounds", "2", "--min-run-time", "0.01", "--data", str(tiny_glue), "--out", str(out)])
    assert code == 0
    document = json.loads(out.read_text())
    for what in (interleave.MODEL, interleave.PREPARATION):
        assert set(document["seconds"][what]) == {"dense", "sparse", "onnxruntime"}
        for batches in document["seconds"][what].values():
            assert set(batches) == {"1", "16", "dev"} and all(len(rounds) == 2 and min(rounds) > 0 for rounds in batches.values())
    assert all(difference < 1e-4 for difference in document["max_logit_difference"].values())
    assert document["study"]["config"] == ModelConfig(1, 8, 15).id and "onnxruntime" in document["runtimes"]
    printed = capsys.readouterr().out
    assert "| `onnxruntime` |" in printed and "batch 16" in printed  # the Markdown table and torch's Compare


def test_rounds_rotate_the_order_so_no_impl_always_runs_first():
    names = ["a", "b", "c"]
    orders = [interleave.rotated(names, round_) for round_ in range(3)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    assert {order[0] for order in orders} == set(names)
