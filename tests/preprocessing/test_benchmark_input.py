"""Smoke test of scripts/benchmark_input.py on a tiny generated set (no timing assertions)."""

import importlib.util
import io
import os

import numpy as np
import pytest
from PIL import Image

from datasets import dataset_factory
from slim_compat import tf

_SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "benchmark_input.py")


@pytest.fixture(scope="module")
def benchmark_input():
    spec = importlib.util.spec_from_file_location("benchmark_input", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_records_are_readable_jpegs_of_the_declared_size(benchmark_input, tmp_path):
    benchmark_input.write_jpeg_tfrecords(str(tmp_path), num_images=6, num_shards=4)
    spec = dataset_factory.get_dataset("image_folder", "train", str(tmp_path))
    assert spec.num_samples == 6 and len(spec.files) == 4 and spec.num_classes == 10
    records = [r for f in spec.files for r in tf.io.tf_record_iterator(f)]
    assert len(records) == 6
    for record in records:
        example = tf.train.Example.FromString(record)
        feature = example.features.feature
        with Image.open(io.BytesIO(feature["image/encoded"].bytes_list.value[0])) as im:
            assert im.format == "JPEG"
            assert im.size == (
                feature["image/width"].int64_list.value[0],
                feature["image/height"].int64_list.value[0],
            )
            assert 250 <= min(im.size) and max(im.size) <= 450
            assert np.asarray(im).std() > 10  # not a flat image


def test_main_prints_a_row_per_preprocessing_mode_and_pipeline(benchmark_input, tmp_path, capsys):
    argv = [
        "--num_images=8",
        "--batch_size=4",
        "--num_batches=2",
        "--warmup_batches=1",
        "--image_size=32",
        "--preprocessing=inception,vgg",
        "--modes=train,eval",
        f"--data_dir={tmp_path}",
    ]
    rows = benchmark_input.main(argv)
    combos = {(r["preprocessing"], r["mode"], r["pipeline"]) for r in rows}
    assert combos == {
        (name, mode, pipeline)
        for mode in ("train", "eval")
        for name, pipeline in [
            ("inception", "build_dataset"),
            ("inception", "fused decode_and_crop_jpeg"),
            ("vgg", "build_dataset"),
        ]
    }
    assert all(r["images_per_sec"] > 0 and r["ms_per_batch"] > 0 for r in rows)
    printed = capsys.readouterr().out
    assert "img/s" in printed and printed.count("build_dataset") == 4
    # A second run reuses the records instead of writing them again.
    benchmark_input.main(
        argv[:-3] + ["--preprocessing=vgg", "--modes=eval", f"--data_dir={tmp_path}"]
    )
    assert "reusing the tfrecords" in capsys.readouterr().out


def test_unknown_preprocessing_is_rejected(benchmark_input, capsys):
    with pytest.raises(SystemExit):
        benchmark_input.parse_args(["--preprocessing=resnet"])
    assert "unknown preprocessing 'resnet'" in capsys.readouterr().err
