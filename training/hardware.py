"""What this machine's CPU computes natively; no TensorFlow import, so scripts can ask cheaply."""

# x86 CPU flags (as /proc/cpuinfo names them) of instructions that compute in each low
# precision. Without them TensorFlow's CPU kernels convert to fp32 and back around every op.
NATIVE_CPU_FLAGS = {
    "bf16": ("avx512_bf16", "amx_bf16"),
    "fp16": ("avx512_fp16", "amx_fp16"),
}


def cpu_flags(path="/proc/cpuinfo"):
    """The feature flags of this machine's first CPU (empty when unknown)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_cpu_precisions(flags=None):
    """The low precisions ('bf16', 'fp16') that the CPU with these flags computes natively."""
    flags = cpu_flags() if flags is None else flags
    return [name for name, needs in NATIVE_CPU_FLAGS.items() if flags & set(needs)]
