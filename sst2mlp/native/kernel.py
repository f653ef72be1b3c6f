"""The C++ extension: the `fused` impl's kernel (csrc/fused_mlp.cpp) and the sparse trainer's Adam step over its
input table (csrc/sparse_rows_adam.cpp), built at first use, then cached by torch.

torch.utils.cpp_extension compiles it with the machine's C++ compiler and ninja
(~30 s once; later sessions load the cached library from $TORCH_EXTENSIONS_DIR,
by default ~/.cache/torch_extensions). It is compiled for the CPU it runs on
(-march=native), so the cached library's name carries a hash of that CPU's
instruction-set flags: machines sharing a home folder do not load each other's.
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
COMPILER_FLAGS = ("-O3", "-march=native", "-fno-math-errno")  # no errno: sqrt vectorizes


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
    return cpp_extension.load(folder.name, [str(source) for source in SOURCES], extra_cflags=list(COMPILER_FLAGS), build_directory=str(folder),
                              verbose=False)


def extension_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """sst2mlp_fused_mlp_<hash of the CPU's instruction-set flags>: a -march=native build runs only on such a CPU."""
    description = platform.machine()
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
    return {"compiler": compiler, "compiler_version": (version.splitlines() or ["unknown"])[0], "flags": list(COMPILER_FLAGS)}
