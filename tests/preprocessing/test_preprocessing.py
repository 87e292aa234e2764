"""Tests for preprocessing/: the factory, the four preprocessings and the fused JPEG path."""

import io

import numpy as np
import pytest
from PIL import Image

from preprocessing import inception_preprocessing, preprocessing_factory
from slim_compat import tf

NAMES = sorted(preprocessing_factory.PREPROCESSINGS)
OUTPUT_HEIGHT, OUTPUT_WIDTH = 24, 20  # deliberately non-square
# (height, width) of inputs smaller than, larger than and straddling the output size.
INPUT_SIZES = [(13, 17), (61, 45), (20, 40)]


def _random_uint8_image(height, width, channels=3, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (height, width, channels)).astype(np.uint8)


def _smooth_uint8_image(height, width, seed=0):
    """A smooth colour image (JPEG keeps it nearly unchanged)."""
    rows = np.linspace(0.0, 1.0, height)[:, None]
    cols = np.linspace(0.0, 1.0, width)[None, :]
    phase = np.random.RandomState(seed).uniform(0, np.pi, 3)
    channels = [
        127.5 + 100.0 * np.sin(3.0 * rows + 2.0 * cols + phase[c]) * np.cos(2.0 * cols)
        for c in range(3)
    ]
    return np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)


def _jpeg_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _run(fetches, feed_dict=None):
    with tf.Session() as sess:
        return sess.run(fetches, feed_dict=feed_dict)


def _check_range(name, values):
    if name in ("lenet", "inception"):
        assert values.min() >= -1.0 and values.max() <= 1.0
    elif name == "vgg":  # [0, 255] minus the RGB means
        assert values.min() >= -123.68 - 1e-3 and values.max() <= 255.0 - 103.94 + 1e-3
    else:  # cifarnet: per-image standardized
        assert abs(values.mean()) < 1e-3
        assert values.std() == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize("is_training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_and_range_for_uint8_inputs_of_any_size(graph, name, is_training):
    preprocess = preprocessing_factory.get_preprocessing(name, is_training=is_training)
    outputs = []
    for height, width in INPUT_SIZES:
        image = tf.constant(_random_uint8_image(height, width))
        output = preprocess(image, OUTPUT_HEIGHT, OUTPUT_WIDTH)
        assert output.dtype == tf.float32
        assert output.get_shape().as_list() == [OUTPUT_HEIGHT, OUTPUT_WIDTH, 3]
        outputs.append(output)
    for values in _run(outputs):
        assert values.shape == (OUTPUT_HEIGHT, OUTPUT_WIDTH, 3)
        assert np.all(np.isfinite(values))
        _check_range(name, values)


@pytest.mark.parametrize("is_training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", NAMES)
def test_one_channel_and_float_inputs(graph, name, is_training):
    preprocess = preprocessing_factory.get_preprocessing(name, is_training=is_training)
    gray = _random_uint8_image(30, 26, channels=1)
    # inception takes floats in [0, 1], the others on the [0, 255] scale
    scale = 255.0 if name == "inception" else 1.0
    gray_output = preprocess(tf.constant(gray), 16, 16)
    float_output = preprocess(tf.constant(gray.astype(np.float32) / scale), 16, 16)
    assert gray_output.get_shape().as_list() == [16, 16, 1]
    gray_values, float_values = _run([gray_output, float_output])
    _check_range(name, gray_values)
    _check_range(name, float_values)
    if not is_training:  # same pixels whether given as uint8 or float
        np.testing.assert_allclose(gray_values, float_values, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_eval_is_deterministic(graph, name):
    preprocess = preprocessing_factory.get_preprocessing(name, is_training=False)
    output = preprocess(tf.constant(_random_uint8_image(37, 29)), OUTPUT_HEIGHT, OUTPUT_WIDTH)
    with tf.Session() as sess:
        first, second = sess.run(output), sess.run(output)
    np.testing.assert_array_equal(first, second)


def _numpy_crop_or_pad(image, height, width):
    """Center crop (floor offsets) and zero pad (floor before), like resize_with_crop_or_pad."""
    out = np.zeros((height, width, image.shape[2]), np.float64)
    src_y, dst_y = max((image.shape[0] - height) // 2, 0), max((height - image.shape[0]) // 2, 0)
    src_x, dst_x = max((image.shape[1] - width) // 2, 0), max((width - image.shape[1]) // 2, 0)
    rows, cols = min(height, image.shape[0]), min(width, image.shape[1])
    out[dst_y : dst_y + rows, dst_x : dst_x + cols] = image[
        src_y : src_y + rows, src_x : src_x + cols
    ]
    return out


def test_lenet_eval_matches_hand_computation(graph):
    image = _random_uint8_image(7, 3, channels=1)  # taller and narrower than the output
    output = preprocessing_factory.get_preprocessing("lenet")(tf.constant(image), 5, 6)
    expected = (_numpy_crop_or_pad(image.astype(np.float64), 5, 6) - 128.0) / 128.0
    assert expected[0, 0, 0] == -1.0  # the zero padding really is part of the expectation
    np.testing.assert_allclose(_run(output), expected, atol=1e-6)


def test_cifarnet_eval_matches_hand_computation(graph):
    image = _random_uint8_image(4, 9)
    output = preprocessing_factory.get_preprocessing("cifarnet")(tf.constant(image), 6, 5)
    cropped = _numpy_crop_or_pad(image.astype(np.float64), 6, 5)
    stddev = max(cropped.std(), 1.0 / np.sqrt(cropped.size))
    np.testing.assert_allclose(_run(output), (cropped - cropped.mean()) / stddev, atol=1e-5)


def test_vgg_subtracts_the_rgb_means(graph):
    constant = np.full((40, 50, 3), 200, np.uint8)  # any resize of a constant is that constant
    outputs = [
        preprocessing_factory.get_preprocessing("vgg", is_training=t)(tf.constant(constant), 8, 8)
        for t in (False, True)
    ]
    for values in _run(outputs):
        np.testing.assert_allclose(values[3, 3], [200 - 123.68, 200 - 116.78, 200 - 103.94], 1e-4)


def test_vgg_eval_resizes_the_smaller_side_then_crops_the_center(graph):
    # A 10x20 image, left half black, right half white, becomes 256 x 512; the central
    # 64x64 crop is columns 224..287. TF1 bilinear resizing (align_corners=False, no
    # half-pixel centers) reads output column x at input column x * 20 / 512, so the
    # black-to-white ramp lies where that is between input columns 9 and 10.
    image = np.zeros((10, 20, 3), np.uint8)
    image[:, 10:] = 255
    output = preprocessing_factory.get_preprocessing("vgg")(tf.constant(image), 64, 64)
    values = _run(output) + np.array([123.68, 116.78, 103.94])
    columns = np.arange(224, 288)
    expected_row = 255.0 * np.clip(columns * 20.0 / 512.0 - 9.0, 0.0, 1.0)
    expected = np.broadcast_to(expected_row[None, :, None], (64, 64, 3))
    np.testing.assert_allclose(values, expected, atol=1e-3)


# Keyword arguments that leave the random flip as the only random step, on a 16x16 input.
FLIP_ONLY = {
    "cifarnet": {"padding": 0, "color_distortion": False},
    "vgg": {"resize_side_min": 16, "resize_side_max": 16},
    "inception": {"random_crop": False, "color_distortion": False},
}


@pytest.mark.parametrize("name", sorted(FLIP_ONLY))
def test_training_flips_left_right_sometimes(graph, name):
    tf.set_random_seed(1234)
    image = _random_uint8_image(16, 16)
    train = preprocessing_factory.get_preprocessing(name, is_training=True)
    evaluate = preprocessing_factory.get_preprocessing(name, is_training=False)
    eval_kwargs = {"inception": {"central_fraction": None}, "vgg": {"resize_side": 16}}
    eval_kwargs = eval_kwargs.get(name, {})
    output = train(tf.constant(image), 16, 16, **FLIP_ONLY[name])
    reference = evaluate(tf.constant(image), 16, 16, **eval_kwargs)
    with tf.Session() as sess:
        unflipped = sess.run(reference)
        runs = [sess.run(output) for _ in range(12)]
    flipped = unflipped[:, ::-1]
    n_flipped = 0
    for values in runs:
        if np.allclose(values, flipped, atol=1e-4):
            n_flipped += 1
        else:
            np.testing.assert_allclose(values, unflipped, atol=1e-4)
    assert 0 < n_flipped < len(runs)


@pytest.mark.parametrize("name", ["cifarnet", "vgg", "inception"])
def test_seed_makes_training_reproducible_across_graphs(name):
    image = _random_uint8_image(40, 30)
    results = []
    for _ in range(2):
        with tf.Graph().as_default():
            tf.set_random_seed(7)
            train = preprocessing_factory.get_preprocessing(name, is_training=True)
            output = train(tf.constant(image), 16, 16, seed=3)
            with tf.Session() as sess:
                results.append([sess.run(output) for _ in range(3)])
    np.testing.assert_array_equal(results[0], results[1])
    assert not all(np.array_equal(results[0][0], r) for r in results[0][1:])  # still random


def test_inception_slow_mode_runs_and_stays_in_range(graph):
    tf.set_random_seed(5)
    image = tf.constant(_random_uint8_image(50, 40))
    output = inception_preprocessing.preprocess_for_train(image, 24, 24, fast_mode=False)
    assert output.get_shape().as_list() == [24, 24, 3]
    with tf.Session() as sess:
        for _ in range(8):  # reach several resize methods and colour orderings
            values = sess.run(output)
            assert values.min() >= -1.0 and values.max() <= 1.0


def test_inception_crop_window_contains_the_bbox(graph):
    tf.set_random_seed(11)
    box = [0.6, 0.1, 0.9, 0.4]  # ymin, xmin, ymax, xmax
    window = inception_preprocessing.sample_crop_window(
        tf.constant([100, 200, 3]), bbox=tf.constant([box]), min_object_covered=1.0
    )
    with tf.Session() as sess:
        windows = [sess.run(window) for _ in range(10)]
    for top, left, height, width in windows:
        assert top <= 60 and top + height >= 90 and left <= 20 and left + width >= 80
    assert any(h * w < 100 * 200 for _, _, h, w in windows)  # crops, not always the whole image


def test_inception_jpeg_train_shape_and_range(graph):
    encoded = tf.constant(_jpeg_bytes(_smooth_uint8_image(30, 40)))
    fused = preprocessing_factory.get_jpeg_preprocessing("inception", is_training=True)
    output = fused(encoded, 24, 20)
    assert output.get_shape().as_list() == [24, 20, 3]
    with tf.Session() as sess:
        for _ in range(3):
            values = sess.run(output)
            assert values.min() >= -1.0 and values.max() <= 1.0


def test_inception_jpeg_train_with_full_image_box_matches_decode_and_resize(graph):
    encoded = tf.constant(_jpeg_bytes(_smooth_uint8_image(30, 40)))
    fused = inception_preprocessing.preprocess_jpeg_for_train(
        encoded,
        24,
        20,
        bbox=tf.constant([[0.0, 0.0, 1.0, 1.0]]),
        min_object_covered=1.0,  # the only crop that covers the whole image is the image
        random_flip=False,
        color_distortion=False,
    )
    decoded = tf.image.convert_image_dtype(tf.image.decode_jpeg(encoded, channels=3), tf.float32)
    reference = tf.image.resize_bilinear(decoded[None], [24, 20])[0] * 2.0 - 1.0
    fused_values, reference_values = _run([fused, reference])
    np.testing.assert_allclose(fused_values, reference_values, atol=1e-5)


def test_inception_jpeg_train_decodes_the_same_crop_as_decode_then_crop(graph):
    tf.set_random_seed(21)
    encoded = tf.constant(_jpeg_bytes(_smooth_uint8_image(64, 48)))
    kwargs = {"random_flip": False, "color_distortion": False, "seed": 5}
    fused = inception_preprocessing.preprocess_jpeg_for_train(encoded, 16, 16, **kwargs)
    # Same graph seed and op seeds, so the unfused path samples the same crop window.
    unfused = inception_preprocessing.preprocess_for_train(
        tf.image.decode_jpeg(encoded, channels=3), 16, 16, **kwargs
    )
    with tf.Session() as sess:
        for _ in range(3):
            fused_values, unfused_values = sess.run([fused, unfused])
            # libjpeg's cropped decode may differ by a level at the crop's edges (chroma
            # upsampling); a window off by one pixel would differ by ~0.04 here.
            np.testing.assert_allclose(fused_values, unfused_values, atol=1e-2)


def test_inception_jpeg_eval_matches_eval_on_the_decoded_image(graph):
    encoded = tf.constant(_jpeg_bytes(_smooth_uint8_image(37, 53)))
    fused = preprocessing_factory.get_jpeg_preprocessing("inception")(encoded, 24, 20)
    unfused = preprocessing_factory.get_preprocessing("inception")(
        tf.image.decode_jpeg(encoded, channels=3), 24, 20
    )
    fused_values, unfused_values = _run([fused, unfused])
    np.testing.assert_allclose(fused_values, unfused_values, atol=1e-2)  # see above


def test_every_network_names_a_registered_preprocessing():
    from image_models import nets_factory

    unknown = {
        model: entry.preprocessing
        for model, entry in nets_factory.NETWORKS.items()
        if entry.preprocessing not in preprocessing_factory.PREPROCESSINGS
    }
    assert not unknown


def test_jpeg_preprocessing_is_none_without_a_fused_path():
    assert preprocessing_factory.get_jpeg_preprocessing("lenet") is None
    assert preprocessing_factory.get_jpeg_preprocessing("vgg", is_training=True) is None


@pytest.mark.parametrize("getter", ["get_preprocessing", "get_jpeg_preprocessing"])
def test_unknown_name_lists_the_valid_names(getter):
    with pytest.raises(ValueError, match="'resnet'.*cifarnet, inception, lenet, vgg"):
        getattr(preprocessing_factory, getter)("resnet")


def test_bad_output_size_is_rejected(graph):
    preprocess = preprocessing_factory.get_preprocessing("lenet")
    with pytest.raises(ValueError, match="output_height.*-3"):
        preprocess(tf.constant(_random_uint8_image(8, 8)), -3, 8)


def test_ensure_channels_with_static_channels(graph):
    rgb = _random_uint8_image(5, 6)
    gray = rgb[:, :, :1]
    to_rgb = preprocessing_factory.ensure_channels(tf.constant(gray), 3)
    to_gray = preprocessing_factory.ensure_channels(tf.constant(rgb), 1)
    same = preprocessing_factory.ensure_channels(tf.constant(rgb), 3)
    assert to_rgb.get_shape().as_list() == [5, 6, 3] and to_gray.get_shape().as_list() == [5, 6, 1]
    rgb_values, gray_values, same_values = _run([to_rgb, to_gray, same])
    np.testing.assert_array_equal(rgb_values, np.repeat(gray, 3, axis=2))
    luma = rgb.astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])
    np.testing.assert_allclose(gray_values[:, :, 0], luma, atol=1.0)
    np.testing.assert_array_equal(same_values, rgb)
    with pytest.raises(ValueError, match="channels must be 1 or 3, got 2"):
        preprocessing_factory.ensure_channels(tf.constant(rgb), 2)


def test_ensure_channels_with_channels_known_only_at_run_time(graph):
    image = tf.placeholder(tf.uint8, [None, None, None])
    to_rgb = preprocessing_factory.ensure_channels(image, 3)
    to_gray = preprocessing_factory.ensure_channels(image, 1)
    assert to_rgb.get_shape().as_list() == [None, None, 3]
    assert to_gray.get_shape().as_list() == [None, None, 1]
    gray = _random_uint8_image(4, 3, channels=1)
    rgba = _random_uint8_image(4, 3, channels=4)
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(to_rgb, {image: gray}), np.repeat(gray, 3, axis=2))
        np.testing.assert_array_equal(sess.run(to_gray, {image: gray}), gray)
        np.testing.assert_array_equal(sess.run(to_rgb, {image: rgba}), rgba[:, :, :3])
        assert sess.run(to_gray, {image: rgba}).shape == (4, 3, 1)
