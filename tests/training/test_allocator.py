"""tfzoo's entry points re-execute themselves on tcmalloc (training/allocator.py)."""

import os
import subprocess
import sys

from training import allocator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROBE = """
import sys
from training import allocator
reason = allocator.use_tcmalloc()
with open("/proc/self/maps") as f:
    loaded = "libtcmalloc" in f.read()
print("loaded" if loaded else "not loaded", reason, sys.argv[1:])
"""


def run_probe(tmp_path, **env):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TFZOO_MALLOC", "LD_"))}
    environ.update(PYTHONPATH=ROOT, **env)
    proc = subprocess.run(
        [sys.executable, str(script), "--flag=1", "x"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_process_reruns_on_tcmalloc_with_its_arguments(tmp_path):
    # scripts/setup.sh installs Debian's libtcmalloc-minimal4.
    assert allocator.tcmalloc_path(), "tcmalloc is not installed"
    out = run_probe(tmp_path)
    assert out == "loaded tcmalloc already loaded ['--flag=1', 'x']"


def test_tfzoo_malloc_system_keeps_glibc(tmp_path):
    out = run_probe(tmp_path, TFZOO_MALLOC="system")
    assert out == "not loaded TFZOO_MALLOC=system ['--flag=1', 'x']"


def test_reexecution_environment(tmp_path):
    calls = []
    environ = {"LD_PRELOAD": "/lib/other.so", "PATH": "/bin"}
    reason = allocator.use_tcmalloc(["train.py", "--a"], environ, lambda *args: calls.append(args))
    assert reason == "re-executed"
    ((executable, argv, env),) = calls
    assert executable == sys.executable and argv == [sys.executable, "train.py", "--a"]
    library = allocator.tcmalloc_path()
    assert env["LD_PRELOAD"] == f"{library}:/lib/other.so"
    assert env["PATH"] == "/bin" and env["TFZOO_MALLOC_REEXEC"] == "1"
    assert int(env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"]) >= 1 << 40
    assert environ == {"LD_PRELOAD": "/lib/other.so", "PATH": "/bin"}  # not modified

    # Never twice: the re-executed process (or a preloaded one) goes on as it is.
    assert allocator.use_tcmalloc([], env, None) == "tcmalloc already loaded"
    missing = allocator.tcmalloc_path(search_dirs=(str(tmp_path),))
    assert missing is None
