"""Export of any task's model as a SavedModel, by the task's own signature, with a parity run.

The task says what its serving model takes and returns (Task.export_signature: integer
ids, masks, images, several outputs). The model is built in a fresh graph, restored from
a training checkpoint (optionally its moving averages), written as a SavedModel with the
'serving_default' signature of those inputs and outputs, then loaded back with
tf.saved_model.load and run on the task's example batch (Task.export_example), next to
the live graph: floating outputs must agree to `tolerance` relative to their largest
magnitude, integer outputs (decoded ids, predicted classes) exactly.

    python export_model.py --task=NAME --checkpoint=TRAIN_DIR --format=saved_model --output=DIR
    python export_model.py --task=NAME --checkpoint=TRAIN_DIR --format=onnx --output=FILE.onnx

ONNX: the graph is frozen (variables become constants), each output is an Identity named
after its signature key, and tf2onnx converts it (interchange/export.py's converter,
which keeps the weights out of tf2onnx's passes); the ONNX inputs are the placeholders'
names, which the tasks give their keys (BERT: input_ids, input_mask, segment_ids). The
model is then run in ONNX Runtime on the same example batch, by the same rule.

Image classification keeps its richer exporter (interchange/export.py: frozen graph,
ONNX, in-graph preprocessing); any other task goes through `export_task`.
"""

import numpy as np

from interchange import export
from slim_compat import tf
from training import checkpoints, distributed, fused_ops

FORMATS = ("saved_model", "onnx")


def _restore(session, checkpoint, moving_average_decay):
    if moving_average_decay:
        var_map = checkpoints.moving_average_variables_to_restore(checkpoint, moving_average_decay)
    else:
        var_map = {v.op.name: v for v in tf.global_variables()}
    # The task restores those itself (Task.restore_rank_local_variables).
    own = set(distributed.rank_local_variables())
    var_map = {k: v for k, v in var_map.items() if v not in own}
    checkpoints.check_restorable(checkpoint, var_map, action="evaluate")
    tf.train.Saver(var_map).restore(session, checkpoint)


def _write(session, signature, export_dir):
    export.check_new_directory(export_dir)
    builder = tf.saved_model.builder.SavedModelBuilder(export_dir)
    signature_def = tf.saved_model.signature_def_utils.predict_signature_def(
        signature.inputs, signature.outputs
    )
    builder.add_meta_graph_and_variables(
        session,
        [tf.saved_model.tag_constants.SERVING],
        signature_def_map={export.SERVING_SIGNATURE: signature_def},
        strip_default_attrs=True,
    )
    builder.save()


def _named_outputs(signature):
    """{key: an Identity of the output named `key`}: the names the ONNX outputs get."""
    named = {}
    for key, tensor in signature.outputs.items():
        out = tf.identity(tensor, name=key)
        if out.op.name != key:
            raise ValueError(
                f"Could not name the output {key!r} for ONNX: the graph already has an op "
                f"called {key!r}"
            )
        named[key] = out
    return named


def _input_names(signature):
    """{key: the placeholder's op name}: the names of the ONNX model's inputs."""
    names = {}
    for key, tensor in signature.inputs.items():
        if tensor.op.type != "Placeholder":
            raise ValueError(
                f"Input {key!r} is a {tensor.op.type} op, not a placeholder: ONNX export "
                "needs the signature's inputs to be placeholders"
            )
        names[key] = tensor.op.name
    return names


def _write_onnx(session, signature, path, opset, model_name):
    """Freezes the session's graph down to the signature and writes it as ONNX."""
    outputs = _named_outputs(signature)
    inputs = _input_names(signature)
    graph_def = tf.graph_util.remove_training_nodes(
        session.graph.as_graph_def(), protected_nodes=[*inputs.values(), *outputs]
    )
    graph_def = tf.graph_util.convert_variables_to_constants(session, graph_def, list(outputs))
    try:
        model = export.graph_def_to_onnx(
            graph_def, opset, model_name, tuple(inputs.values()), tuple(outputs)
        )
    except Exception as e:  # tf2onnx raises many types; say which model and opset failed
        raise ValueError(
            f"tf2onnx could not convert {model_name!r} at opset {opset}: {type(e).__name__}: {e}"
        ) from e
    export.write_onnx(model, path)
    return inputs


def run_onnx(path, feeds, input_names=None):
    """The outputs dict of an ONNX model in ONNX Runtime; input_names: {key: ONNX name}."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_names = input_names or {k: k for k in feeds}
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {input_names[k]: v for k, v in feeds.items()})
    return dict(zip(names, values))


def run_saved_model(export_dir, feeds):
    """The outputs dict of a SavedModel's serving signature on `feeds` (TF2 loader)."""
    import tensorflow as tf2

    with tf.Graph().as_default():
        loaded = tf2.saved_model.load(export_dir)
        function = loaded.signatures[export.SERVING_SIGNATURE]
        outputs = function(**{k: tf.constant(v) for k, v in feeds.items()})
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            return session.run(outputs)


def compare(reference, exported, tolerance):
    """{output: max |difference|}; raises export.ParityError outside the rule above."""
    report = {}
    for name, ref in reference.items():
        if name not in exported:
            raise export.ParityError(f"The exported model has no output {name!r}")
        ref, out = np.asarray(ref), np.asarray(exported[name])
        if ref.shape != out.shape:
            raise export.ParityError(
                f"Output {name!r} has shape {out.shape} in the export, {ref.shape} in TensorFlow"
            )
        if np.issubdtype(ref.dtype, np.floating):
            diff = float(np.max(np.abs(out - ref), initial=0.0))
            bound = tolerance * max(float(np.max(np.abs(ref), initial=0.0)), 1.0)
            if not np.all(np.isfinite(out)) or diff > bound:
                raise export.ParityError(
                    f"Output {name!r} differs: max |diff| {diff:.3g} > allowed {bound:.3g}"
                )
        else:
            diff = int(np.sum(out != ref))
            if diff:
                raise export.ParityError(f"Output {name!r}: {diff} values differ from TensorFlow")
        report[name] = diff
    return report


def export_task(task, params, checkpoint, output, moving_average_decay=None, batch_size=2,
                seed=0, tolerance=export.DEFAULT_TOLERANCE, fmt="saved_model",
                opset=export.DEFAULT_OPSET):  # fmt: skip
    """Builds, restores, writes and checks the `fmt` export of `task`; returns the report.

    Args:
        fmt: one of FORMATS: a SavedModel directory or an ONNX file.
        opset: the ONNX opset of fmt='onnx'.
    """
    if fmt not in FORMATS:
        raise ValueError(
            f"Task {task.name!r} exports as one of: {', '.join(FORMATS)}; got format {fmt!r}"
        )
    graph = tf.Graph()
    graph.seed = seed
    # The exported graph leaves this process (SavedModel, ONNX): plain TensorFlow ops only,
    # not tfzoo's fused kernels, which neither a bare TensorFlow nor tf2onnx knows.
    with graph.as_default():
        with fused_ops.plain_ops():
            signature = task.export_signature(params)
        with tf.Session(graph=graph) as session:
            session.run(tf.local_variables_initializer())
            _restore(session, checkpoint, moving_average_decay)
            # One process: a model-parallel table's shards are gathered into one table.
            task.restore_rank_local_variables(session, checkpoint, 0, 1)
            feeds = task.export_example(signature, batch_size, seed)
            reference = session.run(
                signature.outputs, {signature.inputs[k]: v for k, v in feeds.items()}
            )
            if fmt == "onnx":
                names = _write_onnx(session, signature, output, opset, task.name)
            else:
                _write(session, signature, output)
    if fmt == "onnx":
        exported = run_onnx(output, feeds, names)
    else:
        exported = run_saved_model(output, feeds)
    differences = compare(reference, exported, tolerance)
    return {
        "format": fmt,
        "opset": opset if fmt == "onnx" else None,
        "output": output,
        "task": task.name,
        "inputs": {k: [str(v.dtype.name), v.shape.as_list()] for k, v in signature.inputs.items()},
        "outputs": sorted(signature.outputs),
        "max_abs_diff": differences,
        "checkpoint": checkpoint,
        "moving_averages": bool(moving_average_decay),
    }
