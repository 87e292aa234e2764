"""Checkpoint rules: what a finetune restores and trains, resume, moving averages.

A finetune restores the model variables, as TF-Slim does (weights, biases and the
batch-norm moving statistics; or every global variable with `restore_all_variables`),
from a TF-Slim-style checkpoint, minus the scopes in `checkpoint_exclude_scopes`
(typically the logits, when num_classes differs). Every variable is checked against the
checkpoint BEFORE anything runs: a missing variable or a shape that does not fit is
reported with its name, and the message suggests the exclude scopes that would make the
restore work. A resume is checked the same way against train_dir's latest checkpoint.

A resume first removes what a killed save left in train_dir (`remove_partial_saves`).
Readers of moving averages fall back to the raw variable where a checkpoint holds no
shadow (`moving_average_variables_to_restore`).
"""

import collections
import os
import re
import shutil

from slim_compat import tf


def split_scopes(scopes):
    """'a, b/c' -> ['a', 'b/c']; None or '' -> []."""
    if not scopes:
        return []
    return [s.strip() for s in scopes.split(",") if s.strip()]


def _in_scope(var_name, scope):
    return var_name == scope or var_name.startswith(scope.rstrip("/") + "/")


def resolve_checkpoint(model_dir, ckpt_file_name=None):
    """The checkpoint prefix to restore: model_dir/ckpt_file_name, or model_dir's latest.

    Raises:
        FileNotFoundError: naming the directory or file that does not hold a checkpoint.
    """
    if not model_dir:
        raise ValueError("--task_type=finetune needs --model_dir (and optionally --ckpt_file_name)")
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"--model_dir {model_dir!r} is not a directory")
    if ckpt_file_name:
        path = os.path.join(model_dir, ckpt_file_name)
        if not (tf.train.checkpoint_exists(path)):
            raise FileNotFoundError(
                f"No checkpoint {path!r} (expected {path}.index or a TF1 checkpoint file)"
            )
        return path
    path = tf.train.latest_checkpoint(model_dir)
    if path is None:
        raise FileNotFoundError(
            f"No checkpoint in --model_dir {model_dir!r} and no --ckpt_file_name"
        )
    return path


def _checkpoint_key(var):
    return var.op.name


def variables_to_restore(exclude_scopes=None, restore_all=False):
    """Model variables (or all global variables) outside the excluded scopes.

    The model variables are TF-Slim's (`slim.get_model_variables()`: weights, biases,
    batch-norm beta, gamma, moving mean and variance) plus any trainable variable a net
    made without slim (e.g. an imported ONNX graph). Optimizer slots, the global step,
    loss-scale state and moving-average shadows are never restored in a finetune.
    """
    excludes = split_scopes(exclude_scopes)
    if restore_all:
        candidates = tf.global_variables()
    else:
        candidates = list(tf.model_variables())
        candidates += [v for v in tf.trainable_variables() if v not in candidates]
    out = []
    for var in candidates:
        name = _checkpoint_key(var)
        if any(_in_scope(name, s) for s in excludes):
            continue
        if (
            name == "global_step"
            or name.startswith("loss_scale/")
            or "/Momentum" in name
            or "/Adam" in name
            or "/RMSProp" in name
            or "/Adagrad" in name
            or "/Adadelta" in name
            or "/Ftrl" in name
            or name.endswith(("/adam_m", "/adam_v"))  # adamw / lamb (google's slot names)
            or name.split("/")[-1].startswith(("beta1_power", "beta2_power"))
            or "/ExponentialMovingAverage" in name
        ):
            continue
        out.append(var)
    return out


def check_restorable(
    checkpoint_path, variables, ignore_missing_vars=False, action="finetune", shapes=None
):
    """Checks names and shapes of `variables` against the checkpoint.

    Args:
        checkpoint_path: the checkpoint prefix.
        variables: the variables to restore, or {checkpoint key: variable} when the keys
            are not the variables' names (e.g. moving-average shadows).
        ignore_missing_vars: drop (and log) the variables the checkpoint lacks.
        action: 'finetune' (suggest exclude scopes), 'resume' (suggest a new train_dir) or
            'evaluate' (suggest the flags that decide the shapes).
        shapes: {key: shape} of the checkpoint when already read (else read from the file).

    Returns:
        The variables to restore (those missing from the checkpoint dropped when
        ignore_missing_vars), as {checkpoint key: variable}.

    Raises:
        ValueError: listing every mismatched or missing variable and, for a finetune, the
            exclude scopes that would skip them.
    """
    if shapes is None:
        shapes = tf.train.NewCheckpointReader(checkpoint_path).get_variable_to_shape_map()
    if isinstance(variables, dict):
        keyed = variables.items()
    else:
        keyed = ((_checkpoint_key(var), var) for var in variables)
    restore, mismatched, missing = {}, [], []
    for key, var in keyed:
        if key not in shapes:
            if not ignore_missing_vars:
                missing.append(key)
            else:
                tf.logging.warning("Not in %s, left at its initial value: %s", checkpoint_path, key)
            continue
        want = var.shape.as_list()
        have = list(shapes[key])
        if want != have:
            mismatched.append(f"{key}: model {want} vs checkpoint {have}")
            continue
        restore[key] = var
    if mismatched or missing:
        bad = [m.split(":")[0] for m in mismatched] + missing
        suggestion = ",".join(sorted({b.rsplit("/", 1)[0] for b in bad}))
        lines = [f"Cannot {action} from {checkpoint_path}:"]
        if mismatched:
            lines.append(f"  {len(mismatched)} variable(s) have a different shape:")
            lines += [f"    {m}" for m in mismatched]
        if missing:
            lines.append(f"  {len(missing)} variable(s) are not in the checkpoint:")
            lines += [f"    {m}" for m in missing]
        if action == "evaluate":
            lines.append(
                "  The checkpoint does not fit the model these flags build: check "
                "--model_name, --num_classes and --labels_offset"
            )
        elif action == "resume":
            lines.append(
                "  The flags (model, classes, precision, moving averages...) differ from those "
                "of the run that wrote --train_dir: use them again, or a new --train_dir"
            )
        else:
            lines.append(
                f"  Skip them with --checkpoint_exclude_scopes={suggestion}"
                + (" (or --ignore_missing_vars for the missing ones)" if missing else "")
            )
        raise ValueError("\n".join(lines))
    return restore


def finetune_init_fn(
    checkpoint_path, exclude_scopes=None, restore_all=False, ignore_missing_vars=False
):
    """A Scaffold init_fn restoring the checked variables; the check runs now, at build time.

    MonitoredTrainingSession calls it only when train_dir has no checkpoint yet, so a
    resumed finetune continues from its own checkpoint instead of restarting.
    """
    variables = variables_to_restore(exclude_scopes, restore_all)
    restore = check_restorable(checkpoint_path, variables, ignore_missing_vars)
    saver = tf.train.Saver(restore, name="finetune_saver")
    tf.logging.info("Finetune: restoring %d variables from %s", len(restore), checkpoint_path)

    def init_fn(scaffold, session):
        saver.restore(session, checkpoint_path)

    return init_fn


def variables_to_train(trainable_scopes=None):
    """Trainable variables inside `trainable_scopes` (all when None).

    Raises:
        ValueError: a scope matches no trainable variable (names the scope).
    """
    scopes = split_scopes(trainable_scopes)
    if not scopes:
        return tf.trainable_variables()
    out, seen = [], set()
    for scope in scopes:
        found = [v for v in tf.trainable_variables() if _in_scope(v.op.name, scope)]
        if not found:
            raise ValueError(
                f"--trainable_scopes: {scope!r} matches no trainable variable; top-level scopes "
                f"are: {', '.join(sorted({v.op.name.split('/')[0] for v in tf.trainable_variables()}))}"
            )
        for v in found:
            if v.op.name not in seen:
                seen.add(v.op.name)
                out.append(v)
    return out


# ----------------------------------------------------------------------------- resume
# What a save killed half-way leaves beside the checkpoints (seen with TF 2.21's Saver,
# SIGKILL during saves of a 256 MB variable): the tensor bundle's files being written,
# '<prefix>.data-00000-of-00001.tempstate<random>' and '<prefix>.index.tempstate<random>';
# a sharded save's '<prefix>_temp/' directory of 'part-*' bundles; the atomic writes of
# the checkpoint state and the meta graph, '<file>.tmp<32 hex digits>'; and a data file
# renamed into place whose index was never written (no checkpoint without its index).
_TEMPSTATE = re.compile(r".*\.tempstate\d+$")
_ATOMIC_TMP = re.compile(r".*\.tmp[0-9a-f]{32}$")
_SHARDED_TEMP_DIR = re.compile(r".*-\d+_temp$")
_DATA_FILE = re.compile(r"(?P<prefix>.*-\d+)\.data-\d{5}-of-\d{5}$")


def remove_partial_saves(train_dir):
    """Deletes what a killed save left in train_dir; complete checkpoints are kept.

    Only rank 0 writes train_dir, and it calls this before its first save of the run.

    Returns:
        the removed paths.
    """
    removed = []
    for name in sorted(os.listdir(train_dir)):
        path = os.path.join(train_dir, name)
        data = _DATA_FILE.match(name)
        if os.path.isdir(path):
            if _SHARDED_TEMP_DIR.match(name):
                shutil.rmtree(path)
                removed.append(path)
        elif _TEMPSTATE.match(name) or _ATOMIC_TMP.match(name):
            os.remove(path)
            removed.append(path)
        elif data and not os.path.exists(os.path.join(train_dir, data["prefix"] + ".index")):
            os.remove(path)
            removed.append(path)
    for path in removed:
        tf.logging.warning("Removed %s, left by a save that did not finish", path)
    return removed


def checkpoint_step(checkpoint_path):
    """The global step saved in a checkpoint (its '-N' suffix when it holds none)."""
    reader = tf.train.NewCheckpointReader(checkpoint_path)
    if reader.has_tensor("global_step"):
        return int(reader.get_tensor("global_step"))
    match = re.search(r"-(\d+)$", checkpoint_path)
    return int(match.group(1)) if match else 0


# ---------------------------------------------------------------------- moving averages
def moving_average_variables_to_restore(checkpoint_path, decay):
    """{checkpoint key: variable} restoring moving averages, where the checkpoint has them.

    Training keeps shadows of the variables it trains only: with --trainable_scopes the
    frozen variables (and batch-norm statistics) have none, and their raw value, which
    never changed, is restored instead. A checkpoint with no shadow at all is left to the
    caller's check to report (the run had no --moving_average_decay).
    """
    var_map = tf.train.ExponentialMovingAverage(decay).variables_to_restore()
    saved = tf.train.NewCheckpointReader(checkpoint_path).get_variable_to_shape_map()
    shadows = {key for key, var in var_map.items() if key != var.op.name}
    if not shadows & set(saved):
        return var_map
    out, raw = {}, []
    for key, var in var_map.items():
        if key in shadows and key not in saved and var.op.name in saved:
            raw.append(var.op.name)
            key = var.op.name
        out[key] = var
    if raw:
        tf.logging.info(
            "Moving averages: %d variable(s) have no shadow in %s (not trained); restored "
            "as they are, e.g. %s",
            len(raw),
            checkpoint_path,
            raw[0],
        )
    return out


class VariablesSaver(tf.train.Saver):
    """A Saver of {checkpoint key: variable} that also tells which variables it restores."""

    def __init__(self, var_list, **kwargs):
        super().__init__(var_list, **kwargs)
        self._var_map = dict(var_list)

    def variables(self, checkpoint_path=None):
        """{checkpoint key: variable} that `restore` reads (the same for every checkpoint)."""
        return self._var_map


class MovingAverageSaver:
    """A Saver-like restore(session, checkpoint) of the moving averages of each checkpoint.

    Which variables have shadows is read from each checkpoint (see
    `moving_average_variables_to_restore`), so one evaluator follows any training run.
    """

    def __init__(self, decay):
        self._decay = decay
        self._savers = {}

    def variables(self, checkpoint_path):
        """{checkpoint key: variable} that `restore` reads from this checkpoint."""
        return moving_average_variables_to_restore(checkpoint_path, self._decay)

    def restore(self, session, checkpoint_path):
        var_map = self.variables(checkpoint_path)
        key = tuple(sorted(var_map))
        if key not in self._savers:
            with session.graph.as_default():
                self._savers[key] = tf.train.Saver(var_map)
        self._savers[key].restore(session, checkpoint_path)


ResumePoint = collections.namedtuple("ResumePoint", ["checkpoint", "step", "shapes"])
ResumePoint.__doc__ = """Where a run on train_dir starts.

checkpoint: train_dir's latest checkpoint prefix, or None for a fresh run.
step: the global step saved in it (0 for a fresh run).
shapes: {variable key: shape list} of the checkpoint (None for a fresh run).
"""


def find_resume_point(train_dir):
    """The ResumePoint of train_dir, after removing what a killed save left there."""
    if not os.path.isdir(train_dir):
        return ResumePoint(None, 0, None)
    remove_partial_saves(train_dir)
    latest = tf.train.latest_checkpoint(train_dir)
    if latest is None:
        return ResumePoint(None, 0, None)
    shapes = tf.train.NewCheckpointReader(latest).get_variable_to_shape_map()
    return ResumePoint(latest, checkpoint_step(latest), {k: list(v) for k, v in shapes.items()})
