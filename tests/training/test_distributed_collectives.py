"""training/distributed.py: Horovod collectives of constants stay in the graph that runs.

Horovod's ops are not stateful, so Grappler's constant folding evaluates a collective of a
constant while it builds an executor (a rank-dependent moment) instead of at the step:
that hung sampled GraphSAGE under mpirun. One process with Horovod (TFZOO_FORCE_HOROVOD)
shows it: the executed (partition) graph of a folded collective holds no Horovod op.
"""

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.horovod]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = """
import json
from slim_compat import tf
from training import distributed, runtime

runtime.configure_tf_runtime()
dist = distributed.init()
assert dist.hvd is not None, "TFZOO_FORCE_HOROVOD gives Horovod in one process"
zero = tf.constant(0.0)
collectives = {
    "allreduce_sum": dist.allreduce_sum(tf.constant([1.0, 2.0]), name="c_sum"),
    "allreduce_mean": dist.allreduce_mean(zero, name="c_mean"),
    "allreduce_max": dist.allreduce_max(tf.constant(3, tf.int64), name="c_max"),
    "broadcast_from_chief": dist.broadcast_from_chief(zero, name="c_bcast"),
    "all_ranks_true": dist.all_ranks_true(tf.constant(True), name="c_all"),
    # Without the guard: what Grappler does to a bare Horovod collective of a constant.
    "bare": dist.hvd.allreduce(zero, op=dist.hvd.Average, name="c_bare"),
    # Nor is an unfed placeholder_with_default a guard: Grappler folds through it.
    "placeholder": dist.hvd.allreduce(
        tf.compat.v1.placeholder_with_default(zero, []), op=dist.hvd.Average, name="c_pwd"
    ),
}
report = {}
options = tf.RunOptions(output_partition_graphs=True)
with tf.Session() as session:
    for name, tensor in collectives.items():
        metadata = tf.RunMetadata()
        value = session.run(tensor, options=options, run_metadata=metadata)
        ops = [node.op for graph in metadata.partition_graphs for node in graph.node]
        report[name] = {
            "value": value.tolist(),
            "horovod_ops": sum(op.startswith("Horovod") for op in ops),
        }
print("REPORT" + json.dumps(report))
"""


def test_collectives_of_constants_run_at_the_step_not_in_grappler():
    env = dict(os.environ, TFZOO_FORCE_HOROVOD="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    line = [x for x in proc.stdout.splitlines() if x.startswith("REPORT")][-1]
    report = json.loads(line[len("REPORT") :])
    # The premise: Grappler folds a bare collective of a constant away (it ran in Grappler).
    assert report["bare"]["horovod_ops"] == 0
    assert report["placeholder"]["horovod_ops"] == 0
    for name in ("allreduce_sum", "allreduce_mean", "allreduce_max", "broadcast_from_chief"):
        assert report[name]["horovod_ops"] == 1, (name, report[name])
    assert report["all_ranks_true"]["horovod_ops"] == 1
    # One rank: the values are the inputs'.
    assert report["allreduce_sum"]["value"] == [1.0, 2.0]
    assert report["allreduce_max"]["value"] == 3
    assert report["all_ranks_true"]["value"] is True
