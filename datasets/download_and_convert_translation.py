"""Converts parallel text (the user's files, or the system's gettext catalogs) to token-id records.

    --dataset_name=translation --source=pairs.tsv            source<TAB>target per line
    --dataset_name=translation --source=train.en,train.de    one sentence per line each
    --dataset_name=translation --source=corpus/ --source_language=de --language=en
        a folder with train (required), dev, test as {split}.tsv or {split}.de + {split}.en
    --dataset_name=gettext --language=de [--source=/usr/share/locale]

The steps, each deterministic for a given input and --seed:

1. read the pairs, normalised (datasets/parallel_text.py; datasets/gettext_catalogs.py
   for gettext). A bad line (a TSV line without exactly one tab, an empty side, bytes
   that are not UTF-8, a line with no partner in the other file) is skipped, counted and
   named with its file and line number; with strict=True the first one is an error.
2. input without its own train / dev / test split is split by the hash of the source
   sentence (dev_fraction, test_fraction), so no source sentence is in two splits;
3. a joint SentencePiece BPE model (vocab_size pieces, pad 0 / unk 1 / bos 2 / eos 3) is
   trained on the source and target text of the train split and written as spm.model and
   spm.vocab; a re-run on the same input reuses it;
4. every pair becomes a record of `inputs` and `targets` int64 ids, each ending with
   eos (datasets/translation.py), written by datasets/sharded_conversion.py: shards in
   parallel, atomically, resumable and fingerprinted; translation_info.json (what the
   records were made from, what was dropped) before them and split_sizes.json last.
"""

import logging
import os

import sentencepiece

from datasets import (
    dataset_factory,
    gettext_catalogs,
    parallel_text,
    sharded_conversion,
    translation,
)
from preprocessing import sentencepiece_bpe

DEFAULT_NUM_SHARDS = {"train": 4, "dev": 1, "test": 1}
DEFAULT_VOCAB_SIZE = sentencepiece_bpe.DEFAULT_VOCAB_SIZE
DEFAULT_SEED = 0
SPM_FINGERPRINT_FILENAME = ".spm.fingerprint"
MAX_BAD_LINES_LOGGED = 20

logger = logging.getLogger("tfzoo.convert")


def encode_pair(item):
    """(input ids, target ids) -> the tf.train.Example of one record (runs in shard writers)."""
    return translation.encode_example(item[0], item[1])


def _read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def train_or_reuse_bpe(dataset_dir, train_pairs, vocab_size, seed, overwrite):
    """The BpeTokenizer of dataset_dir: reused if trained on the same text and options, else new.

    The fingerprint file is written before the model, and an old model removed before
    training, so an interrupted run never leaves a model that the fingerprint misdescribes.

    Raises:
      ValueError: dataset_dir holds a model of other input or options and overwrite is
        False; or the text cannot fill vocab_size pieces.
    """
    prefix = os.path.join(dataset_dir, translation.SPM_PREFIX)
    model_path = os.path.join(dataset_dir, translation.SPM_MODEL_FILENAME)
    vocab_path = os.path.join(dataset_dir, translation.SPM_VOCAB_FILENAME)
    fingerprint_path = os.path.join(dataset_dir, SPM_FINGERPRINT_FILENAME)
    fingerprint = sharded_conversion.fingerprint_of(
        (train_pairs, int(vocab_size), int(seed), sentencepiece.__version__)
    )
    old_fingerprint = _read_text(fingerprint_path)
    if os.path.exists(model_path) and os.path.exists(vocab_path):
        if old_fingerprint == fingerprint:
            logger.info("reusing %s (same training text and options)", model_path)
            return sentencepiece_bpe.BpeTokenizer(model_path)
        if not overwrite:
            raise ValueError(
                f"{dataset_dir} already holds {translation.SPM_MODEL_FILENAME} trained on "
                "other input or options; pass --overwrite to replace it and its records, "
                "or choose another --dataset_dir"
            )
    for path in (model_path, vocab_path):
        _remove_quietly(path)
    sharded_conversion.atomic_write_text(fingerprint_path, fingerprint + "\n")
    sentences = [side for pair in train_pairs for side in pair]
    logger.info(
        "training a %d-piece SentencePiece BPE model on %d sentences", vocab_size, len(sentences)
    )
    sentencepiece_bpe.train_bpe(sentences, prefix, vocab_size=vocab_size, seed=seed)
    return sentencepiece_bpe.BpeTokenizer(model_path)


def _log_bad_lines(bad_lines):
    if not bad_lines:
        return
    shown = "\n  ".join(str(b) for b in bad_lines[:MAX_BAD_LINES_LOGGED])
    more = len(bad_lines) - MAX_BAD_LINES_LOGGED
    logger.warning(
        "skipped %d bad line(s):\n  %s%s",
        len(bad_lines),
        shown,
        f"\n  ... and {more} more" if more > 0 else "",
    )


def convert_pairs(
    dataset_dir,
    split_pairs,
    info,
    bad_lines=(),
    num_shards=DEFAULT_NUM_SHARDS,
    num_workers=1,
    vocab_size=DEFAULT_VOCAB_SIZE,
    seed=DEFAULT_SEED,
    overwrite=False,
):
    """Trains (or reuses) the BPE model on split_pairs['train'] and writes every split's records.

    Args:
      dataset_dir: the folder to write into (created if missing).
      split_pairs: {split: [(source, target)]}, normalised text; 'train' must not be empty.
      info: a JSON-able dict describing the input, stored in translation_info.json.
      bad_lines: BadLine of the input, counted in translation_info.json and returned.
      num_shards: int or {split: int}.
      num_workers: processes writing shards in parallel (1: in this process; the default,
        since token-id records are small: en->de's 14k pairs take about a second to
        write, a spawned worker 5-15 s to start TensorFlow).
      vocab_size, seed: of the SentencePiece model.
      overwrite: replace a model and shards written from other input or options.

    Returns:
      (split_sizes {split: records}, skipped: the bad lines as "file:line: reason" strings).

    Raises:
      ValueError: no training pairs, stale output without overwrite, too big a vocab.
    """
    if not split_pairs.get("train"):
        raise ValueError(
            f"no training pairs for {dataset_dir}: the input has no usable train line "
            f"({len(bad_lines)} bad line(s))"
        )
    os.makedirs(dataset_dir, exist_ok=True)
    # Until this run finishes, the folder must not look like a finished conversion.
    _remove_quietly(os.path.join(dataset_dir, dataset_factory.SPLIT_SIZES_FILENAME))
    tokenizer = train_or_reuse_bpe(dataset_dir, split_pairs["train"], vocab_size, seed, overwrite)
    split_items = {}
    for split, pairs in split_pairs.items():
        sources = tokenizer.encode_batch([source for source, _ in pairs])
        targets = tokenizer.encode_batch([target for _, target in pairs])
        split_items[split] = list(zip(sources, targets))
    with open(tokenizer.model_path, "rb") as f:
        model_fingerprint = sharded_conversion.fingerprint_of(f.read())
    fingerprint = sharded_conversion.fingerprint_of((model_fingerprint, split_items))
    info = dict(
        info,
        vocab_size=tokenizer.vocab_size,
        seed=int(seed),
        pad_id=translation.PAD_ID,
        unk_id=translation.UNK_ID,
        bos_id=translation.BOS_ID,
        eos_id=translation.EOS_ID,
        bad_lines=len(bad_lines),
    )
    sharded_conversion.atomic_write_json(
        os.path.join(dataset_dir, translation.INFO_FILENAME), info, ensure_ascii=False
    )
    split_sizes, _ = sharded_conversion.convert_splits(
        dataset_dir,
        translation.NAME,
        split_items,
        encode_pair,
        num_shards,
        None,  # no labels.txt: a translation dataset has no classes
        fingerprint=fingerprint,
        num_workers=num_workers,
        overwrite=overwrite,
    )
    _log_bad_lines(list(bad_lines))
    return split_sizes, [str(b) for b in bad_lines]


def convert(
    dataset_dir,
    source=None,
    num_shards=DEFAULT_NUM_SHARDS,
    num_workers=1,
    seed=DEFAULT_SEED,
    strict=False,
    overwrite=False,
    vocab_size=DEFAULT_VOCAB_SIZE,
    source_language="en",
    language=None,
    dev_fraction=parallel_text.DEFAULT_DEV_FRACTION,
    test_fraction=parallel_text.DEFAULT_TEST_FRACTION,
    **_,
):
    """The 'translation' converter: parallel text in `source` -> records in dataset_dir.

    Args:
      source: a TSV file, 'SOURCE_FILE,TARGET_FILE', or a folder of train / dev / test
        files (parallel_text.read_parallel_source).
      source_language, language: the file suffixes of the source and target side in a
        folder of split files (e.g. 'de' and 'en' for train.de + train.en); recorded.
      dev_fraction, test_fraction: shares of the distinct source sentences held out when
        the input has no split of its own.
      strict: the first bad line is an error instead of being skipped and reported.
      Others: as convert_pairs.

    Returns:
      (split_sizes, skipped bad lines) as convert_pairs.
    """
    parallel_text.check_fractions(dev_fraction, test_fraction)
    if source and os.path.isdir(source) and not language:
        raise ValueError(
            f"--source={source} is a folder of split files: give --language (the target "
            f"side's file suffix, e.g. --language=de for train.{source_language} + train.de)"
        )
    splits, bad_lines = parallel_text.read_parallel_source(
        source, source_language, language or "", strict
    )
    if None in splits:
        split_pairs = parallel_text.split_by_source_hash(splits[None], dev_fraction, test_fraction)
        split_by = "source hash"
    else:
        split_pairs = splits
        split_by = "input files"
    info = {
        "converter": "translation",
        "source": os.path.abspath(source) if "," not in source else source,
        "source_language": source_language,
        "target_language": language,
        "split_by": split_by,
        "dev_fraction": dev_fraction if split_by == "source hash" else None,
        "test_fraction": test_fraction if split_by == "source hash" else None,
    }
    return convert_pairs(
        dataset_dir,
        split_pairs,
        info,
        bad_lines,
        num_shards=num_shards,
        num_workers=num_workers,
        vocab_size=vocab_size,
        seed=seed,
        overwrite=overwrite,
    )


def convert_gettext(
    dataset_dir,
    language=None,
    source=None,
    num_shards=DEFAULT_NUM_SHARDS,
    num_workers=1,
    seed=DEFAULT_SEED,
    overwrite=False,
    vocab_size=DEFAULT_VOCAB_SIZE,
    min_words=gettext_catalogs.DEFAULT_MIN_WORDS,
    dev_fraction=parallel_text.DEFAULT_DEV_FRACTION,
    test_fraction=parallel_text.DEFAULT_TEST_FRACTION,
    **_,
):
    """The 'gettext' converter: en -> language pairs of the system's gettext catalogs.

    Args:
      language: the target language code, e.g. 'de' (required).
      source: the locale directory (default gettext_catalogs.LOCALE_DIR).
      min_words: words per side, at least.
      Others: as convert.

    Catalogs that gettext cannot read are skipped and listed, in strict mode too (Debian
    ships a few with a Latin-1 header that Python's gettext rejects, e.g. m4's German).

    Returns:
      (split_sizes, skipped: the catalogs gettext could not read, as "path: reason").
    """
    if not language:
        raise ValueError("gettext needs --language, the target language code (e.g. de, fr)")
    locale_dir = source or gettext_catalogs.LOCALE_DIR
    found = gettext_catalogs.extract_pairs(
        language, locale_dir, min_words, dev_fraction, test_fraction
    )
    logger.info("%s", gettext_catalogs.report(found))
    info = {
        "converter": "gettext",
        "source": os.path.abspath(locale_dir),
        "source_language": "en",
        "target_language": language,
        "split_by": "source hash",
        "dev_fraction": dev_fraction,
        "test_fraction": test_fraction,
        "min_words": min_words,
        "catalogs": len(found.catalogs),
        "unreadable_catalogs": [path for path, _ in found.unreadable],
        "entries": found.stats["entries"],
        "dropped": dict(found.dropped),
        "accelerators_stripped": found.stats["accelerators_stripped"],
    }
    split_sizes, _ = convert_pairs(
        dataset_dir,
        found.splits,
        info,
        num_shards=num_shards,
        num_workers=num_workers,
        vocab_size=vocab_size,
        seed=seed,
        overwrite=overwrite,
    )
    return split_sizes, [reason for _, reason in found.unreadable]
