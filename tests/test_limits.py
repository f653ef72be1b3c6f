"""The machine's limits (sst2mlp.measure.limits) and the floor a benchmark is judged against."""
import pytest

from sst2mlp import MLP, Vocabulary, featurize
from sst2mlp.impls.registry import IMPLS
from sst2mlp.measure.limits import MachineLimits, adam_step_seconds, cache_sizes, floor_seconds, read_seconds, training_floor_seconds

LIMITS = MachineLimits(threads=1, matmul_gflops={"64x8@8x8": 10.0}, peak_gflops=10.0, int8_peak_gflops=40.0,
                       read_gb_per_s={"l2": 100.0, "l3": 50.0, "memory": 10.0}, cache_bytes={"l2": 1000, "l3": 100_000},
                       call_floor_seconds=1e-6, allocation_floor_seconds=2e-6)


def test_the_floor_is_the_slower_of_compute_and_memory_plus_the_call_floor():
    assert floor_seconds(LIMITS, flops=1e6, bytes_read=100) == pytest.approx(1e6 / 10e9 + 1e-6)
    assert floor_seconds(LIMITS, flops=10, bytes_read=1000) == pytest.approx(1000 / 100e9 + 1e-6)


def test_an_impl_that_multiplies_in_int8_has_its_flops_counted_at_the_int8_rate():
    assert floor_seconds(LIMITS, flops=1e6, bytes_read=100, int8=True) == pytest.approx(1e6 / 40e9 + 1e-6)


def test_bytes_are_read_as_many_as_each_level_holds_at_its_rate_and_never_slower_than_the_level_that_holds_them_all():
    """L2 1,000 bytes at 100 GB/s, L3 100,000 at 50, memory at 10: the first 1,000 bytes from L2, the next 99,000
    from L3, the rest from memory."""
    assert read_seconds(LIMITS, 1000) == pytest.approx(1000 / 100e9)
    assert read_seconds(LIMITS, 1100) == pytest.approx(1000 / 100e9 + 100 / 50e9)
    assert read_seconds(LIMITS, 200_000) == pytest.approx(1000 / 100e9 + 99_000 / 50e9 + 100_000 / 10e9)
    for size in (1100, 50_000, 100_000, 200_000):  # just past a level, all at the slower rate was the old floor
        slowest = size / (50e9 if size <= 100_000 else 10e9)
        assert read_seconds(LIMITS, size) < slowest


def test_cache_sizes_come_from_sysfs(tmp_path):
    for index, (level, kind, size) in enumerate([("1", "Data", "32K"), ("2", "Unified", "1024K"), ("3", "Unified", "32768K")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        (folder / "level").write_text(level + "\n")
        (folder / "type").write_text(kind + "\n")
        (folder / "size").write_text(size + "\n")
    assert cache_sizes(tmp_path) == {"l2": 2**20, "l3": 32 * 2**20}
    assert cache_sizes(tmp_path / "missing") == {"l2": 2**20, "l3": 32 * 2**20}  # the defaults


def test_a_dense_input_reads_every_weight_and_a_sparse_one_only_the_rows_of_its_words():
    sentences = ["a b c", "a a d"]
    bags = featurize(sentences, Vocabulary.build(sentences))  # 4 words
    model = MLP(1, 8, bags.vocab_size).eval()
    weights = 4 * sum(p.numel() for p in model.parameters())
    assert IMPLS["dense"].bytes_read(model, weights, [bags]) == weights + 4 * 2 * 4  # and the dense count rows
    table = 4 * 4 * 8
    rows = 4 * 8 * 4  # the 4 distinct words of the batch
    assert IMPLS["sparse"].bytes_read(model, weights, [bags]) == weights - table + rows + 12 * 5
    assert IMPLS["fused"].bytes_read(model, weights, [bags]) <= IMPLS["sparse"].bytes_read(model, weights, [bags])  # inactive rows skipped
    # ONNX Runtime by batch size holds a session per form, each with the weights: a call reads one of them
    assert IMPLS["onnxruntime"].weight_copies == 2 and IMPLS["onnxruntime-bmm"].weight_copies == 1
    assert IMPLS["onnxruntime"].bytes_read(model, 2 * weights, [bags]) == IMPLS["onnxruntime-bmm"].bytes_read(model, weights, [bags])


def test_a_trainings_floor_is_every_steps_adam_update_plus_three_times_the_forward_flops_at_the_peak():
    assert training_floor_seconds(LIMITS, adam_step=1e-3, steps=100, forward_flops=1e9) == pytest.approx(0.1 + 3 * 1e9 / 10e9)


def test_an_adam_step_over_more_parameters_takes_longer():
    assert 0 < adam_step_seconds(1_000, threads=1) < adam_step_seconds(4_000_000, threads=1)


def test_each_limit_is_the_best_of_its_rounds(monkeypatch):
    """A neighbour can slow a round, never speed one up: the highest rates and the lowest call floors are kept."""
    from sst2mlp.measure import limits

    rounds = iter([({"64x8@8x8": 50.0}, 200.0, {"l2": 70.0, "l3": 20.0, "memory": 9.0}, (3e-7, 9e-7), (80.0, 300.0)),
                   ({"64x8@8x8": 90.0}, 150.0, {"l2": 60.0, "l3": 30.0, "memory": 8.0}, (2e-7, 1e-6), (85.0, None))])
    monkeypatch.setattr(limits, "_one_round", lambda shapes, caches, extension: next(rounds))
    measured = limits.measure([8], threads=1, extension=object(), rounds=2)
    assert (measured.fma_peak_gflops, measured.int8_instruction_peak_gflops) == (85.0, 300.0)
    assert (measured.peak_gflops, measured.int8_peak_gflops) == (90.0, 300.0)
    assert measured.read_gb_per_s == {"l2": 70.0, "l3": 30.0, "memory": 9.0}
    assert (measured.call_floor_seconds, measured.allocation_floor_seconds) == (2e-7, 9e-7)


def test_the_peak_is_the_cores_fma_limit_where_no_matrix_product_reaches_it(monkeypatch):
    """The floor must hold for every kernel: the peak is the best of the products and the core's own FMA limit, and
    the int8 peak never below the float32 one (an int8 impl can always run its products in float)."""
    from sst2mlp.measure import limits

    one_round = ({"64x8@8x8": 50.0}, 20.0, {"l2": 70.0, "l3": 20.0, "memory": 9.0}, (3e-7, 9e-7), (120.0, None))
    monkeypatch.setattr(limits, "_one_round", lambda shapes, caches, extension: one_round)
    measured = limits.measure([8], threads=1, extension=object(), rounds=1)
    assert (measured.peak_gflops, measured.int8_peak_gflops) == (120.0, 120.0)


def test_the_peak_loops_report_the_operations_they_did():
    """fma_peak: chains x lanes x 2 FLOPs per iteration on every thread; int8_peak: its multiply-adds x 2, or 0 on a
    CPU without VNNI or AVX2."""
    import torch

    from sst2mlp.native import kernel

    extension = kernel.load_extension()
    done = extension.fma_peak(1000)
    assert done > 0 and done % (1000 * 2 * torch.get_num_threads()) == 0
    assert extension.int8_peak(1000) % (1000 * 2) == 0


def test_the_extensions_read_loop_sums_the_buffer_it_reads():
    """The read bandwidth's second loop (8 vector accumulators over the threads) reads every element: its sum is the
    buffer's, at a size with a tail shorter than one step."""
    import torch

    from sst2mlp.measure.limits import read_gb_per_s
    from sst2mlp.native import kernel

    extension = kernel.load_extension()
    buffer = torch.arange(1, 100_003, dtype=torch.float32) % 7
    assert extension.read_sum(buffer) == pytest.approx(float(buffer.double().sum()), rel=1e-9)
    with pytest.raises(RuntimeError, match="contiguous 1-D float32"):
        extension.read_sum(buffer.double())
    assert read_gb_per_s(1 << 16, extension) > 0
