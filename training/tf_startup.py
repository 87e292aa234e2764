"""Imports TensorFlow without its C++ start-up banners on machines without a GPU.

On a CPU-only machine, `import tensorflow` and its first device query print a dozen lines
that say nothing to a tfzoo user: "oneDNN custom operations are on", "Could not find cuda
drivers", the cpu_feature_guard list of instructions, and an E-level "failed call to
cuInit ... UNKNOWN ERROR (303)" that reads like a failure. Some are written before
absl's logging starts, so TF_CPP_MIN_LOG_LEVEL cannot hide them. `import_tensorflow()`
captures the process's stderr (file descriptor 2) around the import and the first GPU
query, and then writes back every captured line except those known banners, so a real
error or warning raised during the import is still shown.

It quiets only when no GPU is present (no NVIDIA device node or driver entry): on a GPU
machine those lines carry the CUDA and driver facts users need. Either of these brings
them back on any machine:

    TFZOO_TF_LOGS=1 python train_image_classifiers.py ...
    python train_image_classifiers.py --tf_startup_logs ...

No TensorFlow import at module level: slim_compat calls this before anything else does.
"""

import contextlib
import os
import re
import sys
import tempfile

ENV_SWITCH = "TFZOO_TF_LOGS"  # "1" shows TensorFlow's start-up logs
FLAG = "--tf_startup_logs"

# Lines of TensorFlow 2.21's CPU start-up that carry no information for a CPU run.
BANNER_PATTERNS = tuple(
    re.compile(p)
    for p in (
        r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
        r"oneDNN custom operations are on",
        r"Could not find cuda drivers on your machine",
        r"cpu_feature_guard\.cc",
        r"^To enable the following instructions: .*rebuild TensorFlow",
        r"failed call to cuInit",
        r"Unable to register cu(DNN|FFT|BLAS) factory",
        r"computation placer already registered",
        r"TF-TRT Warning: Could not find TensorRT",
    )
)


def gpu_present(paths=("/dev/nvidia0", "/proc/driver/nvidia/gpus")):
    """True when an NVIDIA GPU device node or driver entry exists (no CUDA call made)."""
    return any(os.path.exists(p) for p in paths)


def startup_logs_wanted(argv=None, environ=None):
    """Whether the user asked for TensorFlow's start-up logs (env var or command-line flag)."""
    environ = os.environ if environ is None else environ
    argv = sys.argv if argv is None else argv
    if environ.get(ENV_SWITCH, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    for arg in argv[1:]:
        if arg == FLAG or arg in (f"{FLAG}=true", f"{FLAG}=True", f"{FLAG}=1"):
            return True
    return False


def is_banner(line):
    """True for a known start-up banner line of TensorFlow's CPU build."""
    return any(p.search(line) for p in BANNER_PATTERNS)


def filter_banners(text):
    """`text` without its banner lines (other lines kept, in order)."""
    return "".join(line for line in text.splitlines(keepends=True) if not is_banner(line))


@contextlib.contextmanager
def _stderr_filtered():
    """Captures file descriptor 2 in the block; writes back what is not a banner."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = filter_banners(captured.read().decode("utf-8", "replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def import_tensorflow(argv=None, environ=None):
    """Imports and returns the `tensorflow` module, quietly unless logs are wanted or a GPU is here."""
    environ = os.environ if environ is None else environ
    if "tensorflow" in sys.modules or startup_logs_wanted(argv, environ) or gpu_present():
        import tensorflow

        return tensorflow
    # Later C++ info and warning lines (e.g. "MLIR V1 optimization pass is not enabled"):
    # hidden like the banners unless the user chose a level.
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_filtered():
        import tensorflow

        # The cuInit error comes with the first device query, so make it here.
        tensorflow.config.list_physical_devices("GPU")
    return tensorflow
