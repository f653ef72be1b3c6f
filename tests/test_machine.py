import json
import platform
import subprocess
import sys

import pytest
import torch

from sst2mlp import MLP, TrainConfig, Vocabulary, featurize, train
from sst2mlp.measure.machine import busy_warning, denormals, flushing_denormals, set_denormals
from sst2mlp.reference.training import make_optimizer

TINY = torch.finfo(torch.float32).tiny  # the smallest normal float32


def rare_word_problem(examples=1200, rare_words=300):
    """Two frequent words decide the label; each of `rare_words` words occurs in exactly one sentence."""
    sentences = [f"{'good' if i % 2 else 'bad'} w{i}" if i < rare_words else ("good" if i % 2 else "bad") for i in range(examples)]
    labels = torch.tensor([i % 2 for i in range(examples)])
    return featurize(sentences, Vocabulary.build(sentences)), labels


def denormal_count_after_training(mode: str) -> int:
    """Train one epoch at batch 1; Adam's first moment of a rare word's row decays by 0.9 per step after its
    only appearance and passes through the denormal range about 770 to 920 steps later.

    The setting is per thread: in this process torch's worker threads already exist, so train on this thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_and_count(mode)
    finally:
        torch.set_num_threads(threads)


def _train_and_count(mode: str) -> int:
    bags, labels = rare_word_problem()
    torch.manual_seed(0)
    model = MLP(1, 8, bags.vocab_size, sparse=True)
    config = TrainConfig(epochs=1, batch_size=1, seed=0)
    optimizer = make_optimizer(model, config)
    with denormals(mode):  # counted inside: under flushing, a comparison reads a denormal as zero
        train(model, bags, labels, config, optimizer)
        moments = torch.cat([state["exp_avg"].flatten() for state in optimizer.state.values()])
        return int(((moments != 0) & (moments.abs() < TINY)).sum())


def test_flushing_leaves_no_denormal_in_the_optimizer_state():
    assert denormal_count_after_training("keep") > 0  # the problem produces them under IEEE arithmetic
    assert denormal_count_after_training("flush") == 0


@pytest.mark.slow
def test_worker_threads_started_after_the_setting_inherit_it():
    """The suite sets the mode in pytest_configure, before torch starts its worker threads (POSIX threads inherit
    the floating-point environment of the thread that creates them), so work split over 2 threads flushes too."""
    code = ("import sys\nfrom sst2mlp.measure.machine import set_denormals\nset_denormals(sys.argv[1])\nimport torch\n"
            "torch.set_num_threads(2)\ntiny = torch.finfo(torch.float32).tiny\n"
            "print(int((torch.full((1 << 22,), 4 * tiny) * 0.1).count_nonzero()))")  # split over both threads
    counts = {}
    for mode in ("keep", "flush"):
        run = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        counts[mode] = int(run.stdout)
    assert counts == {"keep": 1 << 22, "flush": 0}


def test_the_denormal_setting_is_restored_to_what_it_was():
    before = flushing_denormals()
    try:
        for outer in ("keep", "flush"):
            set_denormals(outer)
            with denormals("flush"):
                assert torch.tensor([TINY]).div(4).mul(1.0).item() == 0.0
                with denormals("keep"):
                    assert torch.tensor([TINY]).div(4).mul(1.0).item() > 0.0
                assert flushing_denormals()  # the inner block gave back the outer one's mode
            assert flushing_denormals() == (outer == "flush")
    finally:
        set_denormals("flush" if before else "keep")


def test_busy_machine_warnings_name_the_cause():
    quiet = {"load_average": [0.1, 0.2, 0.2], "steal_percent": 0.0, "busy_percent": 3.0}
    assert busy_warning(quiet, cores=2) is None
    assert busy_warning({"load_average": [1.7, 1.0, 0.5], "steal_percent": 0.0, "busy_percent": 3.0}, cores=2) is None  # trailing
    busy = {"load_average": [2.7, 1.0, 0.5], "steal_percent": 12.0, "busy_percent": 60.0}
    warning = busy_warning(busy, cores=2)
    assert "load average 2.7" in warning and "12.0% of the CPU time stolen" in warning and "60.0%" in warning
    assert busy_warning({"load_average": None, "steal_percent": None, "busy_percent": None}, cores=2) is None


X86_CPUINFO = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse sse2 avx2\n"
PI5_CPUINFO = "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes crc32 asimddp\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n"


def test_an_arm_process_that_reads_an_x86_cpus_fields_is_emulated_and_says_by_what(tmp_path):
    from sst2mlp.measure.machine import emulator

    x86, pi5 = tmp_path / "x86", tmp_path / "pi5"
    x86.write_text(X86_CPUINFO)
    pi5.write_text(PI5_CPUINFO)
    said = emulator("aarch64", x86, environ={"QEMU_CPU": "cortex-a72"})
    assert said == "aarch64 cortex-a72 emulated (qemu-user) on AMD EPYC"
    assert "qemu's default CPU" in emulator("aarch64", x86, environ={})
    assert emulator("x86_64", x86, environ={}) is None  # natively on x86
    assert emulator("aarch64", pi5, environ={}) is None  # natively on a board
    assert emulator("aarch64", tmp_path / "missing", environ={}) is None


def test_an_arm_cores_name_comes_from_its_part_number(tmp_path):
    from sst2mlp.measure.machine import cpu_model

    pi5, pi4, x86 = tmp_path / "pi5", tmp_path / "pi4", tmp_path / "x86"
    pi5.write_text(PI5_CPUINFO)
    pi4.write_text(PI5_CPUINFO.replace("0xd0b", "0xd08"))
    x86.write_text(X86_CPUINFO)
    assert cpu_model(pi5) == "ARM Cortex-A76" and cpu_model(pi4) == "ARM Cortex-A72"
    if platform.machine() == "x86_64":
        assert cpu_model(x86) == "AMD EPYC"


@pytest.mark.slow
def test_the_torch_free_runtimes_start_from_their_shipped_files_without_torch(tmp_path):
    """What a CPU where torch cannot run (a Pi 4 with torch 2.13) can still do: ONNX Runtime and OpenVINO loaded from
    files shipped elsewhere, each cold start's logit the one it gave where it was shipped."""
    from sst2mlp.suite import shipped_check

    shipped = shipped_check.ship(tmp_path)
    assert {"onnxruntime", "onnxruntime-int8", "openvino"} <= set(shipped) and "dense" not in shipped
    expected = tmp_path / "onnxruntime" / shipped_check.EXPECTED_FILE
    results = shipped_check.load(tmp_path)
    assert [name for name, _, _ in results] == sorted(shipped) and all(passed for _, passed, _ in results), results
    wrong = json.loads(expected.read_text()) | {"logit": json.loads(expected.read_text())["logit"] + 1}
    expected.write_text(json.dumps(wrong))  # a logit the cold start does not give is caught
    assert not dict((name, passed) for name, passed, _ in shipped_check.load(tmp_path))["onnxruntime"]
