"""The C++ extension: the `fused` impl's kernel (csrc/fused_mlp.cpp) and the sparse trainer's Adam step over its
input table (csrc/sparse_rows_adam.cpp), built at first use, then cached by torch.

torch.utils.cpp_extension compiles it with the machine's C++ compiler and ninja
(~30 s once; later sessions load the cached library from $TORCH_EXTENSIONS_DIR,
by default ~/.cache/torch_extensions). Its vector code path is chosen at build
time (`compiler_flags`): on x86-64 it is compiled for the CPU it runs on
(-march=native: AVX-512 or AVX2), on aarch64 for ARMv8-A, whose NEON vectors of
4 floats every 64-bit ARM core has (a Raspberry Pi 4 or 5 included), and with
SST2MLP_KERNEL_PATH=portable on any CPU without target flags: the same 4-float
code, which is how x86 tests check the ARM path's arithmetic. The cached
library's name carries a hash of the CPU's instruction-set flags and the
compiler flags: machines sharing a home folder do not load each other's.
"""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

SOURCES = (Path(__file__).parent / "csrc" / "fused_mlp.cpp", Path(__file__).parent / "csrc" / "sparse_rows_adam.cpp")
SOURCE = SOURCES[0]  # the module (the fused kernel, and the bindings of the rest)
BASE_FLAGS = ("-O3", "-fno-math-errno")  # no errno: sqrt vectorizes
KERNEL_PATH_VARIABLE = "SST2MLP_KERNEL_PATH"
KERNEL_PATHS = ("native", "portable")
X86 = ("x86_64", "amd64", "i386", "i686")


def kernel_path(environ=os.environ) -> str:
    """"native" (the default: the best vectors of this CPU the build can target) or "portable" (the compiler's
    default target: 4-float vectors, SSE2 on x86-64, NEON on aarch64)."""
    path = environ.get(KERNEL_PATH_VARIABLE, "native")
    if path not in KERNEL_PATHS:
        raise KernelUnavailable(f"${KERNEL_PATH_VARIABLE}={path!r}: expected one of {', '.join(KERNEL_PATHS)}")
    return path


def compiler_flags(machine: str | None = None, path: str | None = None) -> tuple[str, ...]:
    """-march=native on x86-64 (natively), nothing more elsewhere: an ARM compiler's -march=native or -mcpu=native
    is refused by some compilers and, under an emulator, detects the host's CPU; GCC's and Clang's aarch64 default
    (ARMv8-A) has NEON, which the kernel's 4-float vectors compile to."""
    machine = (machine or platform.machine()).lower()
    if (path or kernel_path()) == "native" and machine in X86:
        return (*BASE_FLAGS, "-march=native")
    return BASE_FLAGS


LOCK_WAIT_SECONDS = 120.0  # a build takes about 30 s; a lock older than this wait is taken for an interrupted build's


class KernelUnavailable(RuntimeError):
    """The fused kernel could not be compiled or loaded on this machine; the message says why and what to do."""


_loaded = None  # the extension module, or the KernelUnavailable that building it raised


def load_extension():
    """The compiled extension module; a failed build is remembered and raised again without a second try."""
    global _loaded
    if _loaded is None:
        try:
            _loaded = _build(build_directory())
        except KernelUnavailable as error:
            _loaded = error
        except Exception as error:  # compiler errors surface as RuntimeError, OSError or CalledProcessError
            _loaded = KernelUnavailable(f"impl 'fused': {build_failure(error)}; or leave 'fused' and 'fused-int8' out "
                                        "of --sst2-impls")
            _loaded.__cause__ = error  # the full compiler output, for a debugger; messages show the first line
    if isinstance(_loaded, KernelUnavailable):
        raise _loaded
    return _loaded


def build_failure(error: BaseException, compiler: str | None = None) -> str:
    """The cause of a failed build in one line: no compiler, a folder that cannot be written, or the build's first error."""
    compiler = compiler or os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return (f"compiling {SOURCE.name} at first use needs a C++ compiler, and {compiler!r} was not found; install g++ "
                "or clang++ (Debian: apt-get install g++), or point $CXX at one")
    if isinstance(error, PermissionError):
        return (f"cannot write the kernel's build folder {error.filename or build_directory()} ({error.strerror}); point "
                "$TORCH_EXTENSIONS_DIR at a writable folder")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    first = next((line for line in lines if "error" in line.lower() and line != lines[0]), lines[0] if lines else type(error).__name__)
    return f"building {SOURCE.name} failed: {first}"


def build_directory(name: str | None = None) -> Path:
    """Where torch.utils.cpp_extension builds and caches the kernel: $TORCH_EXTENSIONS_DIR/<name>, else torch's
    default root with a folder per Python version (the same place torch would choose)."""
    from torch.utils import cpp_extension

    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if not root:
        root = os.path.join(cpp_extension.get_default_build_root(), f"py{sys.version_info.major}{sys.version_info.minor}_cpu")
    return Path(root) / (name or extension_name())


def wait_for_lock(folder: Path, max_wait: float | None = None, sleep=time.sleep, clock=time.monotonic) -> None:
    """torch waits without end while a `lock` file sits in the build folder; a build killed midway leaves one. Wait
    a bounded time (default LOCK_WAIT_SECONDS) for another run's build to finish, then name the file."""
    max_wait = LOCK_WAIT_SECONDS if max_wait is None else max_wait
    lock = folder / "lock"
    if not lock.exists():
        return
    print(f"sst2mlp: waiting up to {max_wait:.0f} s for {lock} (another build of the fused kernel)", file=sys.stderr)
    deadline = clock() + max_wait
    while lock.exists():
        if clock() >= deadline:
            raise KernelUnavailable(
                f"impl 'fused': the build lock {lock} is still there after {max_wait:.0f} s; an earlier build was probably "
                "interrupted. If no other run is building the kernel, delete that file and run again")
        sleep(0.5)


def _build(folder: Path):
    from torch.utils import cpp_extension

    if shutil.which("ninja") is None:
        # pip installs the ninja package's binary next to the interpreter, which is not on PATH
        # when a virtualenv's python runs without being activated; torch looks for ninja on PATH.
        import ninja

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    folder.mkdir(parents=True, exist_ok=True)
    wait_for_lock(folder)
    return cpp_extension.load(folder.name, [str(source) for source in SOURCES], extra_cflags=list(compiler_flags()),
                              build_directory=str(folder), verbose=False)


def extension_name(cpuinfo: Path = Path("/proc/cpuinfo"), flags: tuple[str, ...] | None = None) -> str:
    """sst2mlp_fused_mlp_<hash of the CPU's instruction-set flags and the compiler flags>: a -march=native build runs
    only on such a CPU, and a portable build is another library."""
    description = platform.machine() + " ".join(compiler_flags() if flags is None else flags)
    if cpuinfo.exists():
        lines = cpuinfo.read_text(errors="replace").splitlines()
        description += next((line for line in lines if line.startswith(("flags", "Features"))), "")
    return f"sst2mlp_fused_mlp_{hashlib.sha1(description.encode()).hexdigest()[:10]}"


def build_info() -> dict:
    """The compiler and flags the kernel is (or would be) built with: they decide its speed as much as the CPU."""
    compiler = os.environ.get("CXX", "c++")  # what torch.utils.cpp_extension runs
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as error:
        version = f"unavailable ({error})"
    info = {"compiler": compiler, "compiler_version": (version.splitlines() or ["unknown"])[0],
            "flags": list(compiler_flags()), "path": kernel_path()}
    if isinstance(_loaded, Exception) or _loaded is None:
        return info
    return info | {"vectors": _loaded.vectors, "floats_per_vector": _loaded.floats_per_vector}
