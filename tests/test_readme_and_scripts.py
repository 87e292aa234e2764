"""The README stays true to the code, and the shell scripts parse."""

import glob
import os
import re
import subprocess

from absl import flags as absl_flags

import flags  # noqa: F401  (defines the flags)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def test_every_flag_is_documented_in_readme_with_its_default():
    text = readme()
    for name in absl_flags.FLAGS.flags_by_module_dict()["flags"]:
        row = re.search(rf"^\| `--{name.name}` \| ([^|]*) \|", text, re.M)
        assert row, f"--{name.name} is missing from README's flag tables"
        default = "" if name.default is None else f"`{name.default}`"
        assert row.group(1).strip() == default, f"--{name.name}: README says {row.group(1)!r}"


def test_quick_start_commands_exist_and_ci_runs_the_readme_test_command():
    text = readme()
    quick = text[text.index("## Quick start") : text.index("## Using it")]
    commands = re.findall(r"^bash (scripts/\S+)", quick, re.M)
    assert commands == ["scripts/demo.sh", "scripts/test.sh"]
    for c in commands:
        assert os.path.isfile(os.path.join(ROOT, c))
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        assert "bash scripts/test.sh" in f.read()


def test_shell_scripts_parse():
    scripts = glob.glob(os.path.join(ROOT, "scripts", "**", "*.sh"), recursive=True)
    scripts += glob.glob(os.path.join(ROOT, "scripts", "launch", "*.sbatch"))
    scripts.append(os.path.join(ROOT, ".ci", "run"))
    assert len(scripts) >= 8
    for path in scripts:
        proc = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
        assert proc.returncode == 0, f"{path}: {proc.stderr}"


def test_slurm_launch_kills_the_job_when_one_task_fails():
    with open(os.path.join(ROOT, "scripts", "launch", "train_slurm.sbatch")) as f:
        text = f.read()
    srun = re.search(r"^(?:launch )?srun .*", text, re.M)
    assert srun and re.search(r"(--kill-on-bad-exit=1|-K1?)\b", srun.group(0)), srun
