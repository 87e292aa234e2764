"""The Horovod build variant: scripts/horovod_build_env.sh picks it, setup.sh keys and
builds with it, the launch scripts follow it.

This machine has no GPU, so the selection runs against fake CUDA / NCCL trees in tmp_path
(TFZOO_SYSROOT stands for /, a private PATH hides any real nvcc), setup.sh runs in a copy
of the checkout whose .venv has a fake pip and python (nothing is built or installed, the
shared .venv is not touched), and the launch scripts print their command
(TFZOO_LAUNCH_DRY_RUN=1) instead of starting it.
"""

import os
import shlex
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELPER = os.path.join(ROOT, "scripts", "horovod_build_env.sh")
LAUNCH = os.path.join(ROOT, "scripts", "launch")
TOOLS = ("bash", "dirname", "readlink", "sha256sum", "cut", "nproc", "cat")


@pytest.fixture
def machine(tmp_path):
    """A fake machine: .root (its /), .path (a PATH of the usual tools only) and helpers
    that install a CUDA toolkit or NCCL into it."""

    class Machine:
        root = tmp_path / "root"
        bin = tmp_path / "bin"

        def __init__(self):
            self.root.mkdir()
            self.bin.mkdir()
            for tool in TOOLS:
                os.symlink(shutil.which(tool), self.bin / tool)

        def cuda(self, home="usr/local/cuda"):
            home = self.root / home
            (home / "bin").mkdir(parents=True)
            (home / "include").mkdir()
            (home / "bin" / "nvcc").write_text("#!/bin/sh\necho fake nvcc\n")
            (home / "bin" / "nvcc").chmod(0o755)
            (home / "include" / "cuda_runtime.h").write_text("")
            return home

        def nccl(self, home="usr", lib="lib/x86_64-linux-gnu"):
            home = self.root / home
            (home / "include").mkdir(parents=True, exist_ok=True)
            (home / lib).mkdir(parents=True, exist_ok=True)
            (home / "include" / "nccl.h").write_text("")
            (home / lib / "libnccl.so.2").write_text("")
            return home

        def env(self, **extra):
            env = {"PATH": str(self.bin), "TFZOO_SYSROOT": str(self.root), "HOME": str(tmp_path)}
            env.update({k: str(v) for k, v in extra.items()})
            return env

    return Machine()


def select(env):
    """Runs the helper; returns (returncode, {KEY: value}, stderr)."""
    proc = subprocess.run(["bash", HELPER], env=env, capture_output=True, text=True)
    values = dict(line.split("=", 1) for line in shlex.split(proc.stdout, posix=True))
    return proc.returncode, values, proc.stderr


def test_no_cuda_builds_for_cpu(machine):
    code, build, _ = select(machine.env())
    assert code == 0
    assert build["TFZOO_HOROVOD_VARIANT"] == "cpu"
    assert build["TFZOO_HOROVOD_REASON"].startswith("no CUDA toolkit")
    assert build["HOROVOD_CPU_OPERATIONS"] == "MPI"
    assert build["HOROVOD_WITH_MPI"] == build["HOROVOD_WITH_GLOO"] == "1"
    assert not any(key.startswith(("HOROVOD_GPU", "HOROVOD_NCCL", "HOROVOD_CUDA")) for key in build)


def test_cuda_without_nccl_builds_for_cpu_and_says_nccl_is_missing(machine):
    cuda = machine.cuda()
    code, build, _ = select(machine.env())
    assert code == 0 and build["TFZOO_HOROVOD_VARIANT"] == "cpu"
    assert build["TFZOO_HOROVOD_REASON"] == (
        f"CUDA at {cuda} but no NCCL (include/nccl.h and libnccl.so under NCCL_HOME, {cuda} or /usr)"
    )
    assert "HOROVOD_GPU_OPERATIONS" not in build


def test_cuda_and_debian_nccl_build_nccl_operations(machine):
    cuda, nccl = machine.cuda(), machine.nccl()
    code, build, _ = select(machine.env())
    assert code == 0
    assert build["TFZOO_HOROVOD_VARIANT"] == "nccl"
    assert build["HOROVOD_GPU_OPERATIONS"] == "NCCL" and build["HOROVOD_GPU"] == "CUDA"
    assert build["HOROVOD_CUDA_HOME"] == str(cuda)
    assert build["HOROVOD_NCCL_HOME"] == str(nccl)
    assert build["HOROVOD_NCCL_INCLUDE"] == str(nccl / "include")
    assert build["HOROVOD_NCCL_LIB"] == str(nccl / "lib" / "x86_64-linux-gnu")
    assert build["HOROVOD_CPU_OPERATIONS"] == "MPI"  # CPU tensors still go over MPI


def test_cuda_home_nvcc_on_path_and_nccl_home_are_found_where_they_are(machine):
    # CUDA_HOME wins over /usr/local/cuda; NCCL_HOME with lib64 wins over /usr.
    machine.cuda()
    machine.nccl()
    cuda = machine.cuda("opt/cuda-12")
    nccl = machine.nccl("opt/nccl", lib="lib64")
    _, build, _ = select(machine.env(CUDA_HOME=cuda, NCCL_HOME=nccl))
    assert build["HOROVOD_CUDA_HOME"] == str(cuda)
    assert build["HOROVOD_NCCL_LIB"] == str(nccl / "lib64")
    # No CUDA_HOME: the toolkit of the nvcc on PATH (through a link, as /usr/local/bin/nvcc);
    # NCCL inside that toolkit.
    cuda = machine.cuda("opt/cuda-13")
    machine.nccl("opt/cuda-13", lib="lib64")
    os.symlink(cuda / "bin" / "nvcc", machine.bin / "nvcc")
    _, build, _ = select(machine.env())
    assert build["TFZOO_HOROVOD_VARIANT"] == "nccl"
    assert build["HOROVOD_CUDA_HOME"] == str(cuda)
    assert build["HOROVOD_NCCL_HOME"] == str(cuda)


def test_forced_variants_and_an_unknown_one(machine):
    machine.cuda()
    machine.nccl()
    code, build, _ = select(machine.env(TFZOO_HOROVOD_VARIANT="cpu"))
    assert code == 0 and build["TFZOO_HOROVOD_VARIANT"] == "cpu"
    assert build["TFZOO_HOROVOD_REASON"] == "TFZOO_HOROVOD_VARIANT=cpu"
    assert "HOROVOD_GPU_OPERATIONS" not in build

    code, _, stderr = select(machine.env(TFZOO_HOROVOD_VARIANT="gpu"))
    assert code == 2 and "TFZOO_HOROVOD_VARIANT=gpu is not one of: auto, cpu, nccl" in stderr


def test_forced_nccl_without_nccl_is_an_error_naming_what_is_missing(machine):
    machine.cuda()
    code, build, stderr = select(machine.env(TFZOO_HOROVOD_VARIANT="nccl"))
    assert code == 1 and not build
    assert "TFZOO_HOROVOD_VARIANT=nccl, but CUDA at" in stderr and "but no NCCL" in stderr


def test_the_build_id_names_the_variant_and_hashes_the_build(machine):
    _, cpu, _ = select(machine.env())
    machine.cuda()
    machine.nccl()
    _, nccl, _ = select(machine.env())
    assert cpu["TFZOO_HOROVOD_BUILD_ID"].startswith("cpu-")
    assert nccl["TFZOO_HOROVOD_BUILD_ID"].startswith("nccl-")
    # Another NCCL location is another build too.
    _, moved, _ = select(machine.env(NCCL_HOME=machine.nccl("opt/nccl")))
    assert moved["TFZOO_HOROVOD_BUILD_ID"] != nccl["TFZOO_HOROVOD_BUILD_ID"]


# Stand-ins for the venv's pip and python, so setup.sh's Horovod section runs for real in a
# copy of the checkout without building or installing anything: `pip wheel` writes the
# HOROVOD_* variables it was given into the "wheel", `pip install` copies it to
# $FAKE_INSTALLED, and python's Horovod checks read that.
FAKE_PIP = r"""#!/bin/bash
set -eu
echo "pip $1" >>"$FAKE_LOG"
last="${*: -1}"
case "$1" in
  download)
    while [[ "$1" != -d ]]; do shift; done
    src="$(mktemp -d)/horovod-0.28.1"
    mkdir -p "$src/horovod/tensorflow"
    printf 'set(SOURCES mpi_ops.cc\n    xla_mpi_ops.cc)\n' >"$src/horovod/tensorflow/CMakeLists.txt"
    tar -czf "$2/horovod-0.28.1.tar.gz" -C "$(dirname "$src")" horovod-0.28.1 ;;
  wheel)
    while [[ "$1" != -w ]]; do shift; done
    ! grep -q xla_mpi_ops "$last/horovod/tensorflow/CMakeLists.txt"
    env | grep '^HOROVOD_' | sort >"$2/horovod-0.28.1-cp311-cp311-linux_x86_64.whl" ;;
  install) cp "$last" "$FAKE_INSTALLED" ;;
esac
"""
FAKE_PYTHON = r"""#!/bin/bash
case "$2" in
  *importlib.metadata*) echo 2.21.0 ;;
  *nccl_built*) grep -qx HOROVOD_GPU_OPERATIONS=NCCL "$FAKE_INSTALLED" ;;
  *mpi_built*) grep -qx HOROVOD_WITH_MPI=1 "$FAKE_INSTALLED" ;;
  *) exit 3 ;;
esac
"""
SETUP_TOOLS = TOOLS + ("sed", "tar", "gzip", "grep", "mktemp", "ls", "rm", "mv", "mkdir", "id")
SETUP_TOOLS += ("cp", "env", "sort", "tail", "head", "chmod", "touch")


@pytest.fixture
def setup_copy(machine, tmp_path):
    """run() -> (stderr, pip commands, HOROVOD_* of the installed wheel) of scripts/setup.sh
    in a copy of the checkout whose .venv has the fake pip and python."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("setup.sh", "horovod_build_env.sh"):
        shutil.copy(os.path.join(ROOT, "scripts", name), repo / "scripts" / name)
    shutil.copy(os.path.join(ROOT, "requirements.txt"), repo / "requirements.txt")
    # setup.sh's step 2b (the fused kernels; tests/training/test_fused_ops.py checks the
    # real build): here a stand-in that leaves a mark.
    (repo / "scripts" / "build_kernels.sh").write_text('#!/bin/sh\ntouch "$0.ran"\n')
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    for name, text in (("pip", FAKE_PIP), ("python", FAKE_PYTHON)):
        (venv_bin / name).write_text(text)
        (venv_bin / name).chmod(0o755)
    digest = subprocess.run(
        ["sha256sum", str(repo / "requirements.txt")], capture_output=True, text=True
    ).stdout[:16]
    (repo / ".venv" / ".requirements.stamp").write_text(digest + "\n")  # step 2 is done
    for tool in SETUP_TOOLS:
        if not (machine.bin / tool).exists():
            os.symlink(shutil.which(tool), machine.bin / tool)
    (machine.bin / "dpkg").write_text("#!/bin/sh\nexit 0\n")  # every Debian package is there
    (machine.bin / "dpkg").chmod(0o755)
    log, installed = tmp_path / "pip.log", tmp_path / "installed.whl"

    def run(**env):
        log.write_text("")
        proc = subprocess.run(
            ["bash", str(repo / "scripts" / "setup.sh")],
            env=machine.env(
                FAKE_LOG=log, FAKE_INSTALLED=installed, XDG_CACHE_HOME=tmp_path / "cache", **env
            ),
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        wheel = dict(line.split("=", 1) for line in installed.read_text().split())
        written = (repo / ".venv" / "horovod_build.env").read_text()
        return proc.stderr, log.read_text().split("\n")[:-1], wheel, written

    run.cache = tmp_path / "cache" / "tfzoo" / "wheels"
    run.kernels_built = repo / "scripts" / "build_kernels.sh.ran"
    return run


def test_setup_builds_installs_and_reports_the_variant_it_found(machine, setup_copy):
    # CPU machine; a HOROVOD_* variable left in the shell does not leak into the build.
    stderr, pip, wheel, written = setup_copy(HOROVOD_GPU_OPERATIONS="NCCL")
    assert pip == ["pip download", "pip wheel", "pip install"]
    assert wheel == {
        "HOROVOD_CPU_OPERATIONS": "MPI",
        "HOROVOD_WITH_GLOO": "1",
        "HOROVOD_WITH_MPI": "1",
        "HOROVOD_WITH_TENSORFLOW": "1",
        "HOROVOD_WITHOUT_MXNET": "1",
        "HOROVOD_WITHOUT_PYTORCH": "1",
    }
    assert "[setup] installed Horovod 0.28.1, CPU build: MPI and Gloo operations, no NCCL" in stderr
    assert stderr.rstrip().endswith("Horovod 0.28.1, CPU build)")
    assert "TFZOO_HOROVOD_VARIANT=cpu" in written.splitlines()
    assert setup_copy.kernels_built.exists()  # setup.sh built the fused kernels too
    (cpu_wheels,) = os.listdir(setup_copy.cache)
    assert "-cpu-" in cpu_wheels

    # Nothing changed: nothing built or installed.
    _, pip, _, _ = setup_copy()
    assert pip == []

    # CUDA and NCCL appear: a GPU build, under its own key (the CPU wheel is not reused).
    cuda, nccl = machine.cuda(), machine.nccl()
    stderr, pip, wheel, written = setup_copy()
    assert pip == ["pip download", "pip wheel", "pip install"]
    assert wheel["HOROVOD_GPU_OPERATIONS"] == "NCCL" and wheel["HOROVOD_CUDA_HOME"] == str(cuda)
    assert wheel["HOROVOD_NCCL_LIB"] == str(nccl / "lib" / "x86_64-linux-gnu")
    assert f"installed Horovod 0.28.1, GPU build: NCCL operations (CUDA at {cuda}" in stderr
    assert stderr.rstrip().endswith("Horovod 0.28.1, NCCL build)")
    assert "TFZOO_HOROVOD_VARIANT=nccl" in written.splitlines()
    nccl_wheels = set(os.listdir(setup_copy.cache)) - {cpu_wheels}
    assert len(nccl_wheels) == 1 and "-nccl-" in nccl_wheels.pop()

    # Forced back to CPU: the cached CPU wheel is installed again, not rebuilt.
    stderr, pip, wheel, _ = setup_copy(TFZOO_HOROVOD_VARIANT="cpu")
    assert pip == ["pip install"] and "HOROVOD_GPU_OPERATIONS" not in wheel
    assert "building Horovod" not in stderr


def launch(machine, script, build_env, **env):
    """The command a launch script runs under the build described by `build_env`."""
    path = os.path.join(LAUNCH, script)
    with open(path) as f:
        assert "source scripts/launch/horovod_build.sh" in f.read(), f"{script} ignores the build"
    env = machine.env(HOROVOD_BUILD_ENV=build_env, TFZOO_LAUNCH_DRY_RUN=1, **env)
    proc = subprocess.run(["bash", path, "--extra_flag=1"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    command = shlex.split(proc.stdout)
    assert command[-1] == "--extra_flag=1"  # the user's flags come last
    return command, proc.stderr


@pytest.fixture
def build_envs(machine, tmp_path):
    """{'cpu': path, 'nccl': path}: the helper's answer on a CPU and a GPU machine."""
    paths = {}
    for variant in ("cpu", "nccl"):
        if variant == "nccl":
            machine.cuda()
            machine.nccl()
        proc = subprocess.run(["bash", HELPER], env=machine.env(), capture_output=True, text=True)
        path = tmp_path / f"{variant}.env"
        path.write_text(proc.stdout)
        paths[variant] = path
    return paths


def _forwarded(command):
    return [command[i + 1] for i, a in enumerate(command) if a == "-x"]


def test_mpirun_scripts_forward_nccl_settings_only_on_the_gpu_build(machine, build_envs):
    cores = os.cpu_count()
    command, _ = launch(machine, "train_8gpu.sh", build_envs["nccl"])
    assert command[:3] == ["mpirun", "-np", "8"]
    assert "NCCL_DEBUG=WARN" in _forwarded(command)
    assert "--precision=fp16" in command and "--oversubscribe" not in command

    command, stderr = launch(machine, "train_8gpu.sh", build_envs["cpu"], NUM_GPUS=cores + 1)
    assert not [v for v in _forwarded(command) if v.startswith("NCCL")]
    assert "--precision=fp32" in command
    # More ranks than cores on a CPU: oversubscribe, and yield while waiting.
    i = command.index("--oversubscribe")
    assert command[i + 1 : i + 4] == ["--mca", "mpi_yield_when_idle", "1"]
    assert "CPU build (no NCCL)" in stderr
    command, _ = launch(machine, "train_8gpu.sh", build_envs["cpu"], NUM_GPUS=cores)
    assert "--oversubscribe" not in command and "mpi_yield_when_idle" not in command

    command, _ = launch(machine, "train_multinode.sh", build_envs["nccl"], NETWORK_IF="ib0")
    assert {"NCCL_DEBUG=WARN", "NCCL_SOCKET_IFNAME=ib0"} <= set(_forwarded(command))
    assert "--precision=fp16" in command
    command, _ = launch(machine, "train_multinode.sh", build_envs["cpu"], NETWORK_IF="ib0")
    assert not [v for v in _forwarded(command) if v.startswith("NCCL")]
    assert "--precision=fp32" in command and "--oversubscribe" not in command


@pytest.mark.parametrize("script", ["train_horovodrun.sh", "train_slurm.sbatch"])
def test_other_launchers_follow_the_build(machine, build_envs, script):
    command, _ = launch(machine, script, build_envs["nccl"])
    assert "--precision=fp16" in command
    command, _ = launch(machine, script, build_envs["cpu"], PRECISION="bf16")
    assert "--precision=bf16" in command  # the user's choice wins
    command, _ = launch(machine, script, build_envs["cpu"])
    assert "--precision=fp32" in command


def test_a_bad_build_file_stops_the_launch(machine, tmp_path):
    bad = tmp_path / "bad.env"
    bad.write_text("TFZOO_HOROVOD_VARIANT=rocm\n")
    env = machine.env(HOROVOD_BUILD_ENV=bad, TFZOO_LAUNCH_DRY_RUN=1)
    proc = subprocess.run(
        ["bash", os.path.join(LAUNCH, "train_8gpu.sh")], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1 and not proc.stdout
    assert f"{bad}: TFZOO_HOROVOD_VARIANT=rocm is not nccl or cpu" in proc.stderr
