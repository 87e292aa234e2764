"""Translation data as tfrecords of token ids (tensor2tensor's layout), and its parser.

Records come from `python datasets/download_and_convert_data.py --dataset_name=translation`
(parallel text the user has) or `--dataset_name=gettext` (the system's gettext catalogs,
en -> X). Each record is one sentence pair:

    inputs   int64 list   source token ids, EOS_ID last
    targets  int64 list   target token ids, EOS_ID last

The ids are those of the joint SentencePiece BPE model written beside the records
(`spm.model`, `spm.vocab`; preprocessing/sentencepiece_bpe.py): pad 0, unk 1, bos 2,
eos 3. `split_sizes.json` holds the pairs per split and is written last, so its presence
marks a finished conversion; `translation_info.json` says what the records were made from.

    split = translation.get_split("/data/gettext_de", "train")
    dataset = tf.data.TFRecordDataset(split.files).map(translation.parse_fn)
"""

import collections
import glob
import json
import os

from datasets import dataset_factory, parallel_text
from preprocessing import sentencepiece_bpe
from slim_compat import tf

NAME = "translation"  # the shard-name prefix of both converters
INPUTS_KEY = "inputs"
TARGETS_KEY = "targets"
PAD_ID = sentencepiece_bpe.PAD_ID
UNK_ID = sentencepiece_bpe.UNK_ID
BOS_ID = sentencepiece_bpe.BOS_ID
EOS_ID = sentencepiece_bpe.EOS_ID
SPLITS = parallel_text.SPLITS  # train, dev, test
FILE_PATTERN = NAME + "_{split}-*.tfrecord"
SPM_PREFIX = "spm"
SPM_MODEL_FILENAME = SPM_PREFIX + sentencepiece_bpe.MODEL_SUFFIX
SPM_VOCAB_FILENAME = SPM_PREFIX + sentencepiece_bpe.VOCAB_SUFFIX
INFO_FILENAME = "translation_info.json"

_FEATURES = {
    INPUTS_KEY: tf.io.VarLenFeature(tf.int64),
    TARGETS_KEY: tf.io.VarLenFeature(tf.int64),
}

TranslationSplit = collections.namedtuple(
    "TranslationSplit", ["split", "files", "num_examples", "spm_model_path", "info"]
)
TranslationSplit.__doc__ = """One converted split: what to read and how to detokenize it.

split: 'train', 'dev' or 'test'.
files: sorted tfrecord paths.
num_examples: pairs in the split (from split_sizes.json).
spm_model_path: the SentencePiece model of the ids (sentencepiece_bpe.BpeTokenizer reads it).
info: the dict of translation_info.json (source, languages, vocab_size, ...).
"""


def encode_example(input_ids, target_ids):
    """A tf.train.Example of one pair of id lists (each should end with EOS_ID)."""
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                INPUTS_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=input_ids)),
                TARGETS_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=target_ids)),
            }
        )
    )


def parse_fn(serialized):
    """Parses one serialized record into {'inputs': int64 [len], 'targets': int64 [len]}."""
    features = tf.io.parse_single_example(serialized, _FEATURES)
    return {key: tf.sparse.to_dense(features[key]) for key in (INPUTS_KEY, TARGETS_KEY)}


def get_split(dataset_dir, split):
    """Describes one split of a converted translation dataset.

    Raises:
      FileNotFoundError: dataset_dir, its split_sizes.json (the conversion did not
        finish), its spm.model or the split's shards are missing.
      ValueError: an unknown split (lists the converted ones), or missing shards.
    """
    if not dataset_dir or not os.path.isdir(dataset_dir):
        raise FileNotFoundError(f"translation dataset_dir {dataset_dir!r} does not exist")
    sizes_path = os.path.join(dataset_dir, dataset_factory.SPLIT_SIZES_FILENAME)
    if not os.path.exists(sizes_path):
        raise FileNotFoundError(
            f"{sizes_path} is missing: {dataset_dir} holds no finished translation conversion "
            "(run datasets/download_and_convert_data.py --dataset_name=translation or gettext)"
        )
    sizes = dataset_factory.read_split_sizes(sizes_path)
    if split not in sizes:
        raise ValueError(
            f"Unknown split {split!r} of the translation data in {dataset_dir}; "
            f"valid splits: {sorted(sizes)}"
        )
    pattern = os.path.join(dataset_dir, FILE_PATTERN.format(split=split))
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no file matches {pattern}")
    dataset_factory.check_shards_complete(files, pattern)
    model_path = os.path.join(dataset_dir, SPM_MODEL_FILENAME)
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"the SentencePiece model {model_path} of the records is missing")
    info_path = os.path.join(dataset_dir, INFO_FILENAME)
    info = {}
    if os.path.exists(info_path):
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
    return TranslationSplit(split, files, sizes[split], model_path, info)
