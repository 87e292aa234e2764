"""Training and evaluation run on what the converters write, for every raw dataset format.

For each converter: tiny raw input in the published format (conftest.py's writers) ->
download_and_convert_data.convert_dataset -> two training steps with evaluation on the
held-out split -> one-shot evaluation of the written checkpoint. The image-file datasets
(flowers, imagenet, image_folder) train with inception preprocessing, whose training
pipeline decodes JPEG records with the fused decode-and-crop path and PNG records whole;
the test counts the fused decodes to show that path really ran.
"""

import json
import math
import os

import pytest

from datasets import dataset_factory, download_and_convert_cifar, download_and_convert_data
from preprocessing import preprocessing_factory
from slim_compat import tf

# For the JPEG datasets, the smallest net fed by inception preprocessing (the one with the
# fused JPEG path) at 32x32: mobilenet_v1_025 at 64x64 took three times as long per case.
JPEG_NET = dict(model_name="cifarnet", preprocessing_name="inception", train_image_size=32)

# dataset -> (training flags beyond the common ones, held-out split, fused JPEG path used)
CASES = {
    "mnist": (dict(model_name="lenet"), "test", False),
    "cifar10": (dict(model_name="cifarnet"), "test", False),
    "cifar100": (dict(model_name="cifarnet"), "test", False),
    "flowers": (JPEG_NET, "validation", True),
    # ImageNet labels are 1..1000 with 0 the background: train 1000 logits on label - 1.
    "imagenet": (dict(JPEG_NET, labels_offset=1), "validation", True),
    "image_folder": (JPEG_NET, "validation", True),
}

COMMON_FLAGS = dict(
    batch_size=4,
    stop_at_step=2,
    eval_every_n_steps=2,
    eval_batch_size=2,  # odd split sizes end in a partial batch, which must still count
    log_every_n_steps=1,
    save_summaries_steps=1000,
    shuffle_buffer_size=16,
    num_readers=2,
)


@pytest.fixture
def convert_tiny_raw_input(
    tmp_path,
    write_mnist_source,
    write_cifar_archive,
    write_flowers_tgz,
    write_imagenet_source,
    write_class_folders,
):
    """convert_tiny_raw_input(name) -> dataset_dir of tfrecords converted from raw files."""

    def convert(name):
        raw = tmp_path / "raw"
        raw.mkdir()
        options = {}
        if name == "mnist":
            write_mnist_source(str(raw))
            source = raw
        elif name in ("cifar10", "cifar100"):
            source = raw / download_and_convert_cifar.ARCHIVES[name]["archive"]
            write_cifar_archive(str(source), name)
        elif name == "flowers":
            source, _, _ = write_flowers_tgz(str(raw))
            options["num_validation"] = 4
        elif name == "imagenet":
            write_imagenet_source(str(raw))
            source = raw
        elif name == "image_folder":
            write_class_folders(str(raw), ["bird", "cat", "dog"], per_class=4)
            source = raw
            options["validation_fraction"] = 0.25
        else:
            raise ValueError(f"no raw input writer for {name!r}")
        out = tmp_path / name
        download_and_convert_data.convert_dataset(
            name, str(out), num_shards=2, source=str(source), num_workers=1, **options
        )
        return str(out)

    return convert


@pytest.fixture
def fused_jpeg_decodes(monkeypatch):
    """A list that grows by one for every record the fused JPEG decode path decodes."""
    decodes = []
    get_jpeg_preprocessing = preprocessing_factory.get_jpeg_preprocessing

    def counting_get_jpeg_preprocessing(name, is_training=False):
        fused = get_jpeg_preprocessing(name, is_training=is_training)
        if fused is None:
            return None

        def counted(encoded_jpeg, output_height, output_width, **kwargs):
            image = fused(encoded_jpeg, output_height, output_width, **kwargs)
            count = tf.py_function(lambda: decodes.append(1) or 0, [], tf.int32)
            with tf.control_dependencies([count]):
                return tf.identity(image)

        return counted

    monkeypatch.setattr(
        preprocessing_factory, "get_jpeg_preprocessing", counting_get_jpeg_preprocessing
    )
    return decodes


def _assert_metrics(metrics, count):
    assert metrics["count"] == count
    assert math.isfinite(metrics["loss"]) and metrics["loss"] > 0
    assert 0.0 <= metrics["top1"] <= metrics["top5"] <= 1.0


@pytest.mark.parametrize("name", list(CASES))
def test_train_and_evaluate_on_converted_data(
    name, tmp_path, convert_tiny_raw_input, fused_jpeg_decodes, train, evaluate
):
    model_flags, eval_split, uses_fused_jpeg = CASES[name]
    dataset_dir = convert_tiny_raw_input(name)
    with open(os.path.join(dataset_dir, dataset_factory.SPLIT_SIZES_FILENAME)) as f:
        eval_size = json.load(f)[eval_split]
    assert eval_size > 0
    flags = dict(
        model_flags, dataset_name=name, dataset_dir=dataset_dir, eval_split_name=eval_split
    )

    result = train(**flags, **COMMON_FLAGS, train_dir=str(tmp_path / "train"))

    assert result["checkpoint"] == str(tmp_path / "train" / "model.ckpt-2")
    assert tf.train.checkpoint_exists(result["checkpoint"])
    assert [step for step, _ in result["log"]] == [1, 2]
    assert all(math.isfinite(values["loss"]) for _, values in result["log"])
    assert [step for step, _ in result["eval"]] == [2]
    during_training = result["eval"][0][1]
    _assert_metrics(during_training, eval_size)
    if uses_fused_jpeg:
        assert fused_jpeg_decodes, "no JPEG record went through the fused decode-and-crop path"
    else:
        assert fused_jpeg_decodes == []

    one_shot = evaluate(**flags, eval_batch_size=2, checkpoint_path=result["checkpoint"])

    _assert_metrics(one_shot, eval_size)
    # The same weights on the same ordered, unaugmented split: the same figures.
    assert one_shot["top1"] == during_training["top1"]
    assert one_shot["top5"] == during_training["top5"]
    assert one_shot["loss"] == pytest.approx(during_training["loss"], rel=1e-4)
