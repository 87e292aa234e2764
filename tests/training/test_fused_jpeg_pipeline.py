"""Training with inception preprocessing decodes only the sampled crop of JPEG records."""

import io

import numpy as np
import pytest
from PIL import Image

from datasets import dataset_factory, tfrecord_format
from slim_compat import tf
from training import input_pipeline


def _write_flowers(directory, n=6):
    """Flowers-format records: JPEGs, plus one PNG, of 60x80 images with label i % 5."""
    rng = np.random.RandomState(0)
    path = directory / dataset_factory.shard_filename("flowers", "train", 0, 1)
    with tf.io.TFRecordWriter(str(path)) as w:
        for i in range(n):
            pixels = rng.randint(0, 255, size=(60, 80, 3)).astype(np.uint8)
            fmt = "PNG" if i == 0 else "JPEG"
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format=fmt)
            ex = tfrecord_format.make_example(buf.getvalue(), fmt.lower().encode(), 60, 80, i % 5)
            w.write(ex.SerializeToString())
    (directory / "split_sizes.json").write_text('{"train": %d, "validation": 1}' % n)
    return str(directory)


def _graph_ops(dataset):
    with tf.Session() as sess:
        return sess.run(dataset._as_serialized_graph())


@pytest.mark.parametrize("fused", [True, False])
def test_inception_training_uses_decode_and_crop_for_jpegs(graph, tmp_path, fused):
    spec = dataset_factory.get_dataset("flowers", "train", _write_flowers(tmp_path))
    ds, _ = input_pipeline.build_dataset(
        spec,
        "inception",
        32,
        3,
        batch_size=6,
        is_training=True,
        shuffle_buffer_size=1,
        fused_jpeg_decode=fused,
    )
    assert (b"DecodeAndCropJpeg" in _graph_ops(ds)) == fused
    images, labels = tf.data.make_one_shot_iterator(ds).get_next()
    with tf.Session() as sess:
        for _ in range(2):  # PNG and JPEG records alike
            im, lab = sess.run([images, labels])
            assert im.shape == (6, 32, 32, 3) and im.dtype == np.float32
            assert np.all(np.isfinite(im)) and im.min() >= -1.0 and im.max() <= 1.0
            assert sorted(lab.tolist()) == sorted([i % 5 for i in range(6)])


def test_eval_and_other_preprocessings_decode_whole_images(graph, tmp_path):
    spec = dataset_factory.get_dataset("flowers", "train", _write_flowers(tmp_path))
    for name, training in [("inception", False), ("vgg", True)]:
        ds, _ = input_pipeline.build_dataset(spec, name, 32, 3, batch_size=2, is_training=training)
        assert b"DecodeAndCropJpeg" not in _graph_ops(ds)
