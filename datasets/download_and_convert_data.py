"""Builds a dataset's tfrecords from raw files already on disk (tfzoo downloads nothing).

    python datasets/download_and_convert_data.py --dataset_name=mnist --dataset_dir=/data/mnist
    python datasets/download_and_convert_data.py --dataset_name=cifar10 \\
        --dataset_dir=/data/cifar10 --source=/downloads/cifar-10-python.tar.gz
    python datasets/download_and_convert_data.py --dataset_name=flowers --dataset_dir=/data/flowers
    python datasets/download_and_convert_data.py --dataset_name=imagenet \\
        --dataset_dir=/data/imagenet-records --source=/data/imagenet-raw
    python datasets/download_and_convert_data.py --dataset_name=image_folder \\
        --dataset_dir=/data/pets-records --source=/data/pets --validation_fraction=0.2
    python datasets/download_and_convert_data.py --dataset_name=sklearn_digits --dataset_dir=/tmp/digits
    python datasets/download_and_convert_data.py --dataset_name=gettext --language=de \\
        --dataset_dir=/data/gettext_de
    python datasets/download_and_convert_data.py --dataset_name=translation \\
        --dataset_dir=/data/my_pairs --source=/data/train.en,/data/train.de
    python datasets/download_and_convert_data.py --dataset_name=text_classification \\
        --dataset_dir=/data/man-sections --source=/data/man/classification --vocab_file=vocab.txt
    python datasets/download_and_convert_data.py --dataset_name=movielens \\
        --dataset_dir=/data/ml-1m --source=/downloads/ml-1m/ratings.dat
    python datasets/download_and_convert_data.py --dataset_name=criteo \\
        --dataset_dir=/data/criteo --source=/downloads/criteo/train.txt --min_count=10

Each converter writes {name}_{split}-{i:05d}-of-{n:05d}.tfrecord shards, labels.txt and
split_sizes.json into --dataset_dir; the module of each names the raw files it expects.
The text converters (translation, gettext) write translation_{split}-... shards of token
ids with spm.model / spm.vocab instead of labels.txt (download_and_convert_translation.py).
Conversions run in parallel over shards, resume after an interruption, and are
deterministic for a fixed --seed. This script has its own argparse flags, apart from the
training flags in flags.py.
"""

import argparse
import logging
import os
import sys

if __name__ == "__main__":
    # Run as a script, Python puts this folder first on sys.path, where its modules
    # (mock.py, ...) could shadow installed packages; put the repository root there instead.
    _REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(
        os.path.abspath(__file__)
    ):
        sys.path[0] = _REPO_ROOT
    elif _REPO_ROOT not in sys.path:
        sys.path.insert(0, _REPO_ROOT)

from datasets import (  # noqa: E402  (after the sys.path fix above)
    download_and_convert_cifar,
    download_and_convert_criteo,
    download_and_convert_flowers,
    download_and_convert_image_folder,
    download_and_convert_imagenet,
    download_and_convert_mnist,
    download_and_convert_movielens,
    download_and_convert_sklearn_digits,
    download_and_convert_text_classification,
    download_and_convert_translation,
    gettext_catalogs,
    parallel_text,
    sharded_conversion,
)

# name -> (convert function, its default shard count, fixed keyword arguments)
CONVERTERS = {
    "mnist": (
        download_and_convert_mnist.convert,
        download_and_convert_mnist.DEFAULT_NUM_SHARDS,
        {},
    ),
    "cifar10": (
        download_and_convert_cifar.convert,
        download_and_convert_cifar.DEFAULT_NUM_SHARDS,
        {"name": "cifar10"},
    ),
    "cifar100": (
        download_and_convert_cifar.convert,
        download_and_convert_cifar.DEFAULT_NUM_SHARDS,
        {"name": "cifar100"},
    ),
    "flowers": (
        download_and_convert_flowers.convert,
        download_and_convert_flowers.DEFAULT_NUM_SHARDS,
        {},
    ),
    "imagenet": (
        download_and_convert_imagenet.convert,
        download_and_convert_imagenet.DEFAULT_NUM_SHARDS,
        {},
    ),
    "image_folder": (
        download_and_convert_image_folder.convert,
        download_and_convert_image_folder.DEFAULT_NUM_SHARDS,
        {},
    ),
    "sklearn_digits": (
        download_and_convert_sklearn_digits.convert,
        download_and_convert_sklearn_digits.DEFAULT_NUM_SHARDS,
        {},
    ),
    "translation": (
        download_and_convert_translation.convert,
        download_and_convert_translation.DEFAULT_NUM_SHARDS,
        {},
    ),
    "gettext": (
        download_and_convert_translation.convert_gettext,
        download_and_convert_translation.DEFAULT_NUM_SHARDS,
        {},
    ),
    "text_classification": (
        download_and_convert_text_classification.convert,
        download_and_convert_text_classification.DEFAULT_NUM_SHARDS,
        {},
    ),
    "movielens": (
        download_and_convert_movielens.convert,
        download_and_convert_movielens.DEFAULT_NUM_SHARDS,
        {},
    ),
    "criteo": (
        download_and_convert_criteo.convert,
        download_and_convert_criteo.DEFAULT_NUM_SHARDS,
        {},
    ),
}


def convert_dataset(dataset_name, dataset_dir, num_shards=None, **kwargs):
    """Runs the converter of dataset_name; returns (split_sizes, skipped).

    Raises:
      ValueError: unknown dataset_name (lists the valid ones), or bad input.
      FileNotFoundError: missing input.
    """
    if dataset_name not in CONVERTERS:
        raise ValueError(
            f"Unknown dataset_name {dataset_name!r}; valid names: {sorted(CONVERTERS)}"
        )
    convert, default_num_shards, fixed = CONVERTERS[dataset_name]
    return convert(dataset_dir, num_shards=num_shards or default_num_shards, **fixed, **kwargs)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Build tfrecords for tfzoo from raw dataset files already on disk."
    )
    parser.add_argument("--dataset_name", required=True, choices=sorted(CONVERTERS))
    parser.add_argument("--dataset_dir", required=True, help="folder to write the tfrecords to")
    parser.add_argument(
        "--source",
        default=None,
        help="raw input: archive or folder (default: looked for in --dataset_dir; "
        "required for image_folder); translation: a TSV file, 'SOURCE_FILE,TARGET_FILE' or "
        "a folder of {train,dev,test}.tsv / .{source_language} + .{language} files; "
        "gettext: the locale directory (default /usr/share/locale); text_classification: a "
        "folder of train.tsv, dev.tsv...; movielens: the ratings file (u.data or "
        "ratings.dat); criteo: a TSV file (split by line order) or "
        "'train=FILE,validation=FILE,test=FILE'",
    )
    parser.add_argument(
        "--num_shards",
        type=int,
        default=None,
        help="shards per split (default per dataset; a split never gets more shards than "
        "images or sentence pairs)",
    )
    parser.add_argument(
        "--num_workers",
        type=int,
        default=None,
        help="processes writing shards in parallel (default: 2; 1 for sklearn_digits, "
        "translation, gettext and movielens, whose records take less time to write than a worker "
        "takes to start)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffles and splits")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first unreadable image (or bad line of parallel text) instead of "
        "skipping and logging it",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace shards that an earlier run wrote from other input or options",
    )
    parser.add_argument(
        "--num_validation",
        type=int,
        default=download_and_convert_flowers.DEFAULT_NUM_VALIDATION,
        help="flowers: images in the validation split",
    )
    parser.add_argument(
        "--validation_fraction",
        type=float,
        default=download_and_convert_image_folder.DEFAULT_VALIDATION_FRACTION,
        help="image_folder: fraction of the images in the validation split, in [0, 1)",
    )
    parser.add_argument(
        "--validation_labels",
        default=None,
        help="imagenet: the validation labels file (default: looked for in --source)",
    )
    parser.add_argument(
        "--language",
        default=None,
        help="gettext (required) and translation: the target language code, e.g. de "
        "(translation: the target files' suffix in a --source folder)",
    )
    parser.add_argument(
        "--source_language",
        default="en",
        help="translation: the source files' suffix in a --source folder, e.g. en",
    )
    parser.add_argument(
        "--vocab_size",
        type=int,
        default=download_and_convert_translation.DEFAULT_VOCAB_SIZE,
        help="translation, gettext: pieces of the joint SentencePiece BPE vocabulary "
        "(reserved ids and 256 byte pieces included)",
    )
    parser.add_argument(
        "--dev_fraction",
        type=float,
        default=parallel_text.DEFAULT_DEV_FRACTION,
        help="translation, gettext: share of the distinct source sentences in the dev split, "
        "in [0, 1), when the input has no split of its own (by the hash of the source)",
    )
    parser.add_argument(
        "--test_fraction",
        type=float,
        default=parallel_text.DEFAULT_TEST_FRACTION,
        help="translation, gettext: share of the distinct source sentences in the test split",
    )
    parser.add_argument(
        "--min_words",
        type=int,
        default=gettext_catalogs.DEFAULT_MIN_WORDS,
        help="gettext: words per side a pair needs, at least",
    )
    parser.add_argument(
        "--vocab_file",
        default=None,
        help="text_classification: the google vocab.txt to tokenize with (required)",
    )
    parser.add_argument(
        "--do_lower_case",
        type=sharded_conversion.boolean_argument,
        default=True,
        help="text_classification: true for an uncased vocabulary (lower-case, strip "
        "accents), false for cased",
    )
    parser.add_argument(
        "--max_seq_length",
        type=int,
        default=download_and_convert_text_classification.DEFAULT_MAX_SEQ_LENGTH,
        help="text_classification: tokens per record, [CLS] and [SEP]s included",
    )
    parser.add_argument(
        "--tsv_header",
        default="auto",
        choices=["auto", "true", "false"],
        help="text_classification: whether each TSV's first line names the columns; 'auto': "
        "when its label field is a column name (label, class, ...) no other line has",
    )
    parser.add_argument(
        "--ratings_format",
        default="auto",
        choices=["auto", "tab", "colons", "comma"],
        help="movielens: 'tab' (ml-100k u.data), 'colons' (ml-1m ratings.dat, '::'), "
        "'comma' (ratings.csv with its userId,movieId,rating,timestamp header) or 'auto' "
        "(from the first line)",
    )
    parser.add_argument(
        "--num_test_negatives",
        type=int,
        default=download_and_convert_movielens.movielens.DEFAULT_NUM_TEST_NEGATIVES,
        help="movielens: sampled negatives per test user, beside its held-out positive",
    )
    parser.add_argument(
        "--drop_single_rating_users",
        action="store_true",
        help="movielens: drop (and count) users with one rated item instead of stopping; "
        "leave-one-out cannot split them",
    )
    parser.add_argument(
        "--max_user_id",
        type=int,
        default=None,
        help="movielens: the declared user vocabulary, raw ids 1..N (default: unchecked)",
    )
    parser.add_argument(
        "--max_item_id",
        type=int,
        default=None,
        help="movielens: the declared item vocabulary, raw ids 1..N (default: unchecked)",
    )
    parser.add_argument(
        "--min_count",
        type=int,
        default=download_and_convert_criteo.DEFAULT_MIN_COUNT,
        help="criteo: train-split occurrences a categorical value needs for its own id "
        "(rarer values share the field's out-of-vocabulary id)",
    )
    parser.add_argument(
        "--hash_buckets",
        type=int,
        default=0,
        help="criteo: hash each categorical field into this many ids instead of building "
        "vocabularies (0: vocabularies)",
    )
    parser.add_argument(
        "--heldout_fraction",
        type=float,
        default=download_and_convert_criteo.DEFAULT_HELDOUT_FRACTION,
        help="criteo, one source file: share of its last lines held out, halved into "
        "validation and test, in [0, 1) (default 1/7: DLRM's last day)",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Every option goes to the converter (each takes the ones it knows); --source and
    # --num_workers only when given, so each converter keeps its own default.
    options = {
        name: value
        for name, value in vars(args).items()
        if name not in ("dataset_name", "dataset_dir", "num_shards")
        and not (name in ("source", "num_workers") and value is None)
    }
    try:
        split_sizes, skipped = convert_dataset(
            args.dataset_name, args.dataset_dir, args.num_shards, **options
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    summary = ", ".join(f"{split} {size}" for split, size in sorted(split_sizes.items()))
    print(
        f"wrote {args.dataset_name} to {args.dataset_dir}: {summary}"
        + (f"; skipped {len(skipped)} unreadable input(s), listed above" if skipped else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
