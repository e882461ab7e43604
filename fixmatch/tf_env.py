"""TensorFlow's process settings of the programs and the pipeline, set before it is imported.

- TF_CPP_MIN_LOG_LEVEL=1: TensorFlow's C++ INFO lines (oneDNN, CPU features) drown the
  programs' own progress output; warnings and errors still show.
- TF_ENABLE_ONEDNN_OPTS=1 on x86-64: TensorFlow turns its oneDNN kernels on by default only on
  CPUs with AVX-512 VNNI/BF16, AVX-VNNI or AMX; on the others (AVX2-only cloud CPUs) training
  steps are much slower without them (docs/performance.md). Not on ARM, where TensorFlow's
  default depends on the core type.
A value the user set wins; TensorFlow reads both once, at its first import.

- On a Linux machine without an NVIDIA driver, the pip TensorFlow prints "Could not find cuda
  drivers" at import (before its log is initialised, so no log level hides it) and "failed call
  to cuInit: ... (303)" when it first lists devices: error 303 is its CUDA stub saying
  libcuda.so.1 could not be loaded, i.e. the no-GPU case the programs run in on purpose. The
  command-line programs (`python -m stages.<name>`, `luigi --module pipeline ...`) pass their
  stderr through a small filter process that drops exactly those two lines, and only when
  libcuda.so.1 indeed cannot be loaded; every other line, any other CUDA error included, passes
  unchanged (docs/reliability.md). TF_CPP_MIN_LOG_LEVEL=0 (show everything) turns it off.
"""

import atexit
import os
import platform
import re
import subprocess
import sys

#: The two lines of a machine without an NVIDIA driver, as TensorFlow 2.21 prints them.
NO_DRIVER_LINES = (
    re.compile(rb"^I\d{4} [\d:.]+ +\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your "
               rb"machine, GPU will not be used\.\r?$"),
    re.compile(rb"^E\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*"
               rb"\(303\)\r?$"),
)
_FILTER_ENV = "FIXMATCH_STDERR_FILTER"  # "<st_dev>:<st_ino>" of the filtered stderr pipe
_HOLD_SECONDS = 0.2  # a partial line that may be a log line waits this long for its end


def apply_defaults(environ=None) -> None:
    """The environment defaults above; in a program's own process also the no-driver filter."""
    real = environ is None
    environ = os.environ if environ is None else environ
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if platform.machine().lower() in ("x86_64", "amd64"):
        environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    if real and _is_program_start():
        filter_stderr_without_driver()


def _is_program_start() -> bool:
    """True while `python -m stages.<name>` is being located (argv[0] is still "-m") or in
    the `luigi` command: a library import (tests, notebooks) keeps its stderr untouched."""
    return sys.argv[:1] == ["-m"] or os.path.basename(sys.argv[0] if sys.argv else "") == "luigi"


def cuda_driver_loadable() -> bool:
    """Whether libcuda.so.1 (the NVIDIA driver's library, what TensorFlow's stub loads) loads."""
    import ctypes
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


def drop_no_driver_lines(lines):
    """The lines (bytes, each with its newline) that are not NO_DRIVER_LINES."""
    return [line for line in lines
            if not any(p.match(line.rstrip(b"\n")) for p in NO_DRIVER_LINES)]


def filter_stderr_without_driver() -> bool:
    """Routes this process's stderr (fd 2) through the filter process; returns True if it did.

    Only on Linux, before TensorFlow is imported, without a loadable NVIDIA driver, unless the
    user asked for every log line, and once per stderr (children inherit the filtered one).
    The filter is a separate process so nothing is lost when this one dies: it forwards what
    it has read until every writer has closed the pipe. It ignores the terminal's signals and
    exits at end of input; at exit this process restores fd 2 and waits for it to drain.
    """
    if (not sys.platform.startswith("linux") or "tensorflow" in sys.modules
            or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0"):
        return False
    try:
        stat = os.fstat(2)
    except OSError:
        return False
    if os.environ.get(_FILTER_ENV) == f"{stat.st_dev}:{stat.st_ino}" or cuda_driver_loadable():
        return False
    read_end, write_end = os.pipe()
    original = os.dup(2)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (f"import sys; sys.path.insert(0, {package_parent!r}); "
            "from fixmatch.tf_env import run_filter; run_filter()")
    child = subprocess.Popen([sys.executable, "-S", "-c", code], stdin=read_end,
                             stdout=original, stderr=original, close_fds=True,
                             start_new_session=True)
    os.close(read_end)
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    piped = os.fstat(2)
    os.environ[_FILTER_ENV] = f"{piped.st_dev}:{piped.st_ino}"
    pid = os.getpid()

    def restore():
        if os.getpid() != pid:  # a forked child exiting normally: the parent restores
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(original, 2)  # drops this process's end of the pipe
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass  # a child process still holds the pipe; the filter ends with it

    atexit.register(restore)
    return True


def run_filter(in_fd=0, out_fd=1) -> None:
    """The filter process: copy in_fd to out_fd without NO_DRIVER_LINES, until end of input.

    Whole lines are filtered; a partial line is written at once unless it may be the start of
    a TensorFlow log line, which waits up to _HOLD_SECONDS for its newline."""
    import select
    import signal
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    pending = b""
    while True:
        if pending:
            ready, _, _ = select.select([in_fd], [], [], _HOLD_SECONDS)
            if not ready:
                _write_all(out_fd, pending)
                pending = b""
                continue
        chunk = os.read(in_fd, 65536)
        if not chunk:
            _write_all(out_fd, pending)
            return
        lines = (pending + chunk).splitlines(keepends=True)
        pending = lines.pop() if not lines[-1].endswith(b"\n") else b""
        if pending and not re.match(rb"^[IE]\d{0,4}( |$)", pending):
            lines.append(pending)
            pending = b""
        _write_all(out_fd, b"".join(drop_no_driver_lines(lines)))


def _write_all(fd, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
