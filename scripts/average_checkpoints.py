"""Averages the weights of the last N checkpoints into a new checkpoint (Vaswani et al. 2017).

The paper's base models average the last 5 checkpoints (written every 10 minutes), its big
ones the last 20. Every floating-point variable is averaged (model weights; optimizer
slots too, harmless for decoding); integer variables (global_step) come from the newest.

    python scripts/average_checkpoints.py --train_dir=/tmp/tfzoo_train --num_last=5 \
        --output=/tmp/tfzoo_train/averaged/model.ckpt
    python translate.py --checkpoint_path=/tmp/tfzoo_train/averaged/model.ckpt ...

Or name the checkpoints: --checkpoints=a/model.ckpt-1000,a/model.ckpt-2000.
"""

import argparse
import json
import os
import sys

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from slim_compat import tf  # noqa: E402


def last_checkpoints(train_dir, num_last):
    """The newest `num_last` checkpoint prefixes of train_dir, oldest first."""
    state = tf.train.get_checkpoint_state(train_dir)
    if state is None or not state.all_model_checkpoint_paths:
        raise FileNotFoundError(f"no checkpoint in {train_dir}")
    paths = list(state.all_model_checkpoint_paths)
    if num_last < 1:
        raise ValueError(f"num_last must be at least 1, got {num_last}")
    if len(paths) < num_last:
        raise ValueError(
            f"{train_dir} keeps {len(paths)} checkpoints, fewer than --num_last={num_last} "
            "(raise --keep_checkpoint_max when training)"
        )
    return [p if os.path.isabs(p) else os.path.join(train_dir, p) for p in paths[-num_last:]]


def average(checkpoints):
    """{variable name: value}: floats averaged over `checkpoints`, others from the last."""
    if not checkpoints:
        raise ValueError("no checkpoint to average")
    readers = [tf.train.load_checkpoint(path) for path in checkpoints]
    shapes = readers[-1].get_variable_to_shape_map()
    dtypes = readers[-1].get_variable_to_dtype_map()
    for path, reader in zip(checkpoints, readers):
        if reader.get_variable_to_shape_map() != shapes:
            raise ValueError(
                f"{path} holds other variables or shapes than {checkpoints[-1]}: "
                "only checkpoints of one model can be averaged"
            )
    values = {}
    for name in shapes:
        if dtypes[name].is_floating:
            total = sum(reader.get_tensor(name).astype(np.float64) for reader in readers)
            values[name] = (total / len(readers)).astype(dtypes[name].as_numpy_dtype)
        else:
            values[name] = readers[-1].get_tensor(name)
    return values


def write_checkpoint(values, output):
    """Saves {name: numpy value} as a checkpoint at prefix `output`."""
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with tf.Graph().as_default():
        variables = [
            tf.Variable(value, name=name, trainable=False) for name, value in values.items()
        ]
        saver = tf.train.Saver({v.op.name: v for v in variables})
        with tf.Session() as session:
            session.run(tf.variables_initializer(variables))
            return saver.save(session, output, write_meta_graph=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train_dir", help="Training directory whose last checkpoints count.")
    parser.add_argument("--num_last", type=int, default=5, help="Checkpoints averaged.")
    parser.add_argument("--checkpoints", help="Comma-separated checkpoint prefixes instead.")
    parser.add_argument("--output", required=True, help="Prefix of the averaged checkpoint.")
    args = parser.parse_args(argv)
    tf.disable_eager_execution()
    if args.checkpoints:
        paths = [p for p in args.checkpoints.split(",") if p]
    elif args.train_dir:
        paths = last_checkpoints(args.train_dir, args.num_last)
    else:
        parser.error("give --train_dir (with --num_last) or --checkpoints")
    written = write_checkpoint(average(paths), args.output)
    print(json.dumps({"averaged": paths, "output": written}))
    return written


if __name__ == "__main__":
    main()
