"""Which variables a finetune restores and trains, checked against the checkpoint first.

A finetune restores the trainable variables (or every global variable with
`restore_all_variables`) from a TF-Slim-style checkpoint, minus the scopes in
`checkpoint_exclude_scopes` (typically the logits, when num_classes differs). Every
variable is checked against the checkpoint BEFORE anything runs: a missing variable or a
shape that does not fit is reported with its name, and the message suggests the exclude
scopes that would make the restore work.
"""

import os

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
    """Trainable (or all global) variables outside the excluded scopes.

    Optimizer slots, the global step and loss-scale state are never restored in a finetune.
    """
    excludes = split_scopes(exclude_scopes)
    candidates = tf.global_variables() if restore_all else tf.trainable_variables()
    out = []
    for var in candidates:
        name = _checkpoint_key(var)
        if any(_in_scope(name, s) for s in excludes):
            continue
        if restore_all and (
            name == "global_step"
            or name.startswith("loss_scale/")
            or "/Momentum" in name
            or "/Adam" in name
            or "/RMSProp" in name
            or "/Adagrad" in name
            or "/Adadelta" in name
            or "/Ftrl" in name
            or "/ExponentialMovingAverage" in name
        ):
            continue
        out.append(var)
    return out


def check_restorable(checkpoint_path, variables, ignore_missing_vars=False):
    """Checks names and shapes of `variables` against the checkpoint.

    Returns:
        The variables to restore (those missing from the checkpoint dropped when
        ignore_missing_vars), as {checkpoint key: variable}.

    Raises:
        ValueError: listing every mismatched or missing variable and the exclude scopes
            that would skip them.
    """
    reader = tf.train.NewCheckpointReader(checkpoint_path)
    shapes = reader.get_variable_to_shape_map()
    restore, mismatched, missing = {}, [], []
    for var in variables:
        key = _checkpoint_key(var)
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
        lines = [f"Cannot finetune from {checkpoint_path}:"]
        if mismatched:
            lines.append(f"  {len(mismatched)} variable(s) have a different shape:")
            lines += [f"    {m}" for m in mismatched]
        if missing:
            lines.append(f"  {len(missing)} variable(s) are not in the checkpoint:")
            lines += [f"    {m}" for m in missing]
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
