"""Run tfzoo's processes on tcmalloc instead of glibc's malloc (no TensorFlow import here).

TensorFlow's CPU kernels allocate and free large activation buffers every step; glibc
serves buffers above its mmap threshold (at most 32 MB) with fresh mmap'd pages that the
kernel must fault in and zero on every step. tcmalloc keeps them. Measured on 2 CPU cores
(scripts/benchmark.py, batch 32): resnet_v1_50 training +18-24%, lenet +14%, cifarnet +6%.

The allocator must be chosen before the process starts, so an entry point calls
`use_tcmalloc()` first thing: when the library is installed (Debian's
libtcmalloc-minimal4, which scripts/setup.sh installs) and not yet loaded, the process
re-executes itself with it in LD_PRELOAD (same PID, so mpirun and horovodrun are
unaffected). TFZOO_MALLOC=system turns this off.
"""

import os
import sys

ENV_SWITCH = "TFZOO_MALLOC"  # "system" keeps glibc's malloc
_REEXECUTED = "TFZOO_MALLOC_REEXEC"  # set on the re-executed process: never loop
LIBRARY_NAME = "libtcmalloc_minimal.so.4"
SEARCH_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
)


def tcmalloc_path(search_dirs=SEARCH_DIRS):
    """The installed tcmalloc library, or None."""
    for directory in search_dirs:
        path = os.path.join(directory, LIBRARY_NAME)
        if os.path.exists(path):
            return path
    return None


def tcmalloc_environment(environ, library):
    """`environ` with `library` first in LD_PRELOAD (and its huge-allocation reports off)."""
    env = dict(environ)
    preload = [p for p in env.get("LD_PRELOAD", "").split(":") if p and p != library]
    env["LD_PRELOAD"] = ":".join([library, *preload])
    # tcmalloc prints a line for every allocation above 1 GB by default.
    env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))
    return env


def use_tcmalloc(argv=None, environ=None, execve=os.execve):
    """Re-executes this Python process under tcmalloc when it is available; else returns.

    Returns (only when it does not re-execute) a short reason, for logging and tests.
    """
    environ = os.environ if environ is None else environ
    argv = sys.argv if argv is None else argv
    if environ.get(ENV_SWITCH, "tcmalloc") == "system":
        return f"{ENV_SWITCH}=system"
    if environ.get(_REEXECUTED) or "tcmalloc" in environ.get("LD_PRELOAD", ""):
        return "tcmalloc already loaded"
    library = tcmalloc_path()
    if library is None:
        return f"{LIBRARY_NAME} not installed (scripts/setup.sh installs it)"
    env = tcmalloc_environment(environ, library)
    env[_REEXECUTED] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    execve(sys.executable, [sys.executable, *argv], env)
    return "re-executed"  # only reached when `execve` is replaced (tests)
