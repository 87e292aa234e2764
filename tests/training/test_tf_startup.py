"""TensorFlow's CPU start-up banners: hidden by default without a GPU, back on request."""

import os
import subprocess
import sys

from training import tf_startup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Imports TensorFlow the way every tfzoo module does, makes a session (the device query
# that logs the cuInit error), then writes a real error line to file descriptor 2.
PROGRAM = """
import os
from slim_compat import tf
tf.disable_eager_execution()
with tf.Session() as s:
    assert s.run(tf.constant(2) + 1) == 3
os.write(2, b"a real error line\\n")
"""


def run_program(*args, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}
    environ.pop(tf_startup.ENV_SWITCH, None)
    environ.update(env, PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM, *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def banner_lines(text):
    return [line for line in text.splitlines() if tf_startup.is_banner(line)]


def test_banners_hidden_by_default_and_shown_on_request():
    quiet = run_program()
    loud = run_program(**{tf_startup.ENV_SWITCH: "1"})
    flagged = run_program(tf_startup.FLAG)
    assert "a real error line" in quiet and "a real error line" in loud
    if tf_startup.gpu_present():
        assert banner_lines(quiet)  # a GPU machine keeps them: they carry the CUDA facts
    else:
        assert banner_lines(quiet) == [], quiet
    # TensorFlow's CPU build prints them on every start-up; the switches bring them back.
    assert banner_lines(loud) and banner_lines(flagged)
    assert any("oneDNN" in line or "cuda" in line.lower() for line in banner_lines(loud))


def test_filter_keeps_every_other_line_in_order():
    text = (
        "W0000 real warning one\n"
        "I0000 00:00:1 port.cc:153] oneDNN custom operations are on. You may see ...\n"
        "E0000 00:00:1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
        "Traceback (most recent call last):\n"
        "  ValueError: bad\n"
    )
    assert tf_startup.filter_banners(text) == (
        "W0000 real warning one\nTraceback (most recent call last):\n  ValueError: bad\n"
    )


def test_switches():
    assert tf_startup.startup_logs_wanted(["prog"], {"TFZOO_TF_LOGS": "1"})
    assert tf_startup.startup_logs_wanted(["prog", "--tf_startup_logs"], {})
    assert tf_startup.startup_logs_wanted(["prog", "--tf_startup_logs=true"], {})
    assert not tf_startup.startup_logs_wanted(["prog", "--tf_startup_logs=false"], {})
    assert not tf_startup.startup_logs_wanted(["prog"], {"TFZOO_TF_LOGS": "0"})
    assert not tf_startup.gpu_present(paths=("/nonexistent/nvidia0",))
