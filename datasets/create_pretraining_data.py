"""BERT pretraining tfrecords (masked LM + next sentence) from raw text, as google-research/bert's.

Input: raw text files, one sentence per line, a blank line between documents. Output,
in --output_dir: bert_pretraining_{split}-NNNNN-of-NNNNN.tfrecord shards (split 'train',
plus 'validation' when --validation_fraction > 0), labels.txt (next-sentence labels),
split_sizes.json and bert_pretraining.json (the lengths and vocabulary the records were
made with). Each record has google's features:

    input_ids             int64 [max_seq_length]   [CLS] A [SEP] B [SEP], 0-padded
    input_mask            int64 [max_seq_length]   1 on tokens, 0 on padding
    segment_ids           int64 [max_seq_length]   0 for [CLS] A [SEP], 1 for B [SEP], 0 on padding
    masked_lm_positions   int64 [max_predictions_per_seq]  sorted, 0-padded
    masked_lm_ids         int64 [max_predictions_per_seq]  the original ids there, 0-padded
    masked_lm_weights     float [max_predictions_per_seq]  1.0 per prediction, 0.0 padding
    next_sentence_labels  int64 [1]   1: B is a random sentence, 0: B follows A

The algorithm is google's create_pretraining_data.py: documents are shuffled; for each of
dupe_factor passes over them, each document is cut into chunks of whole sentences up to
a target length (max_seq_length - 3, or with probability short_seq_prob a random length
in [2, max_seq_length - 3]); a chunk splits at a random sentence into A and B, and with
probability 0.5 (or always when the chunk is one sentence) B is replaced by sentences
from a random other document, the unused sentences of the chunk going back to the
document; the pair is truncated to max_seq_length - 3 by dropping tokens from the front
or back (at random) of the longer side; then masked_lm_prob of the tokens (at least 1, at
most max_predictions_per_seq; whole words with do_whole_word_mask) are chosen at random,
each replaced by [MASK] 80%, kept 10% and replaced by a random vocabulary token 10% of the
time; the instances of all passes are shuffled.

What differs, none of it in the records' format: tokenization runs in a process pool;
masking and serialization run in the shard writers, each instance with its own seed
drawn in order from the --random_seed generator (so the output does not depend on the
number of workers); shards are written by `sharded_conversion` (atomic, resumable,
fingerprinted) instead of round-robin into fixed files; an optional validation split
holds out whole documents.

    python datasets/create_pretraining_data.py --input_file=corpus.txt \\
        --vocab_file=vocab.txt --output_dir=data/bert_pretraining
"""

import argparse
import collections
import functools
import glob
import hashlib
import importlib
import logging
import multiprocessing
import os
import random
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

import numpy as np  # noqa: E402

from datasets import sharded_conversion  # noqa: E402
from preprocessing import bert_tokenization  # noqa: E402

tf2 = sharded_conversion.tf2

NAME = "bert_pretraining"
METADATA_FILENAME = "bert_pretraining.json"
LABELS_TO_NAMES = {0: "is_next", 1: "random_next"}
FEATURE_KEYS = (
    "input_ids",
    "input_mask",
    "segment_ids",
    "masked_lm_positions",
    "masked_lm_ids",
    "masked_lm_weights",
    "next_sentence_labels",
)

# google-research/bert's defaults.
DEFAULT_MAX_SEQ_LENGTH = 128
DEFAULT_MAX_PREDICTIONS_PER_SEQ = 20
DEFAULT_MASKED_LM_PROB = 0.15
DEFAULT_DUPE_FACTOR = 10
DEFAULT_SHORT_SEQ_PROB = 0.1
DEFAULT_RANDOM_SEED = 12345
DEFAULT_NUM_SHARDS = 8
DEFAULT_VALIDATION_FRACTION = 0.0
MASK_PROB = 0.8  # of a chosen position: [MASK]; half of the rest keep, half random
RANDOM_NEXT_PROB = 0.5
# Sentences per tokenization task sent to a worker.
_TOKENIZE_CHUNK = 2000

MaskingOptions = collections.namedtuple(
    "MaskingOptions",
    [
        "max_seq_length",
        "max_predictions_per_seq",
        "masked_lm_prob",
        "do_whole_word_mask",
        "vocab_size",
        "cls_id",
        "sep_id",
        "mask_id",
        "is_continuation",  # bytes, one per id: 1 for a "##" piece
    ],
)
MaskingOptions.__doc__ = "What the shard writers need to mask and pad an instance."


def feature_spec(
    max_seq_length=DEFAULT_MAX_SEQ_LENGTH, max_predictions_per_seq=DEFAULT_MAX_PREDICTIONS_PER_SEQ
):
    """The tf.io parsing spec of one record (google's run_pretraining name_to_features)."""
    ints = functools.partial(tf2.io.FixedLenFeature, dtype=tf2.int64)
    return {
        "input_ids": ints([max_seq_length]),
        "input_mask": ints([max_seq_length]),
        "segment_ids": ints([max_seq_length]),
        "masked_lm_positions": ints([max_predictions_per_seq]),
        "masked_lm_ids": ints([max_predictions_per_seq]),
        "masked_lm_weights": tf2.io.FixedLenFeature([max_predictions_per_seq], tf2.float32),
        "next_sentence_labels": ints([1]),
    }


def expand_input_files(patterns):
    """Comma-separated paths or globs -> sorted, de-duplicated file list.

    Raises:
      FileNotFoundError: a pattern matches no file.
    """
    if isinstance(patterns, str):
        patterns = [p for p in patterns.split(",") if p.strip()]
    files = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.fspath(pattern)))
        if not matches:
            raise FileNotFoundError(f"input file {pattern} does not exist (no file matches it)")
        files.extend(matches)
    return sorted(dict.fromkeys(files))


def read_documents(input_files):
    """Reads documents as lists of stripped non-empty lines; a blank line ends a document."""
    documents = [[]]
    for path in input_files:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line:
                    documents.append([])
                else:
                    documents[-1].append(line)
    return [d for d in documents if d]


_worker_tokenizer = None


def _init_tokenize_worker(vocab_file, do_lower_case):
    global _worker_tokenizer
    _worker_tokenizer = bert_tokenization.FullTokenizer(vocab_file, do_lower_case)


def _tokenize_lines(lines):
    tokenizer = _worker_tokenizer
    return [
        np.asarray(tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line)), np.int32)
        for line in lines
    ]


def tokenize_documents(documents, vocab_file, do_lower_case=True, num_workers=2):
    """Documents of text lines -> documents of int32 id arrays (empty sentences, documents dropped).

    Tokenizes in a spawn-started process pool of num_workers (1: in this process).
    """
    flat = [line for document in documents for line in document]
    chunks = [flat[i : i + _TOKENIZE_CHUNK] for i in range(0, len(flat), _TOKENIZE_CHUNK)]
    module = importlib.import_module(
        __name__ if __name__ != "__main__" else "datasets.create_pretraining_data"
    )
    if num_workers <= 1 or len(chunks) <= 1:
        module._init_tokenize_worker(vocab_file, do_lower_case)
        results = [module._tokenize_lines(chunk) for chunk in chunks]
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(
            min(num_workers, len(chunks)),
            initializer=module._init_tokenize_worker,
            initargs=(vocab_file, do_lower_case),
        ) as pool:
            results = pool.map(module._tokenize_lines, chunks)
    ids = iter(sentence for chunk in results for sentence in chunk)
    tokenized = []
    for document in documents:
        sentences = [s for s in (next(ids) for _ in document) if len(s)]
        if sentences:
            tokenized.append(sentences)
    return tokenized


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """Drops tokens (from the front or the back, at random) of the longer list until both fit."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def create_pairs_from_document(all_documents, document_index, max_seq_length, short_seq_prob, rng):
    """google's segment pairing for one document.

    Args:
      all_documents: list of documents, each a list of sentences (sequences of ids).
      document_index: the document to cut.
      max_seq_length: the length of [CLS] A [SEP] B [SEP].
      short_seq_prob: probability of a shorter target length for this document.
      rng: random.Random.

    Returns:
      list of (tokens_a list, tokens_b list, is_random_next bool).
    """
    document = all_documents[document_index]
    max_num_tokens = max_seq_length - 3  # room for [CLS], [SEP], [SEP]
    # Mostly fill the sequence (padding is wasted work), sometimes leave it short so
    # pretraining also sees the short inputs of finetuning.
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)
    pairs, chunk, chunk_length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target_seq_length:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
            tokens_b = []
            if len(chunk) == 1 or rng.random() < RANDOM_NEXT_PROB:
                is_random_next = True
                target_b_length = target_seq_length - len(tokens_a)
                # Ten tries at a document other than this one (a one-document corpus
                # takes its own).
                for _ in range(10):
                    random_index = rng.randint(0, len(all_documents) - 1)
                    if random_index != document_index:
                        break
                random_document = all_documents[random_index]
                for sentence in random_document[rng.randint(0, len(random_document) - 1) :]:
                    tokens_b.extend(sentence)
                    if len(tokens_b) >= target_b_length:
                        break
                # The chunk's sentences after A were not used: give them back.
                i -= len(chunk) - a_end
            else:
                is_random_next = False
                tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
            truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
            pairs.append((tokens_a, tokens_b, is_random_next))
            chunk, chunk_length = [], 0
        i += 1
    return pairs


def create_instances(documents, max_seq_length, dupe_factor, short_seq_prob, cls_id, sep_id, rng):
    """All (input_ids int32 array, len(A), is_random_next, mask seed) of a corpus, shuffled.

    documents is shuffled in place first, as google's. The ids are [CLS] A [SEP] B [SEP]
    before masking; the seed drives that instance's masking in encode_instance.
    """
    rng.shuffle(documents)
    instances = []
    for _ in range(dupe_factor):
        for index in range(len(documents)):
            for tokens_a, tokens_b, is_random_next in create_pairs_from_document(
                documents, index, max_seq_length, short_seq_prob, rng
            ):
                ids = np.asarray([cls_id, *tokens_a, sep_id, *tokens_b, sep_id], np.int32)
                instances.append((ids, len(tokens_a), is_random_next, rng.getrandbits(63)))
    rng.shuffle(instances)
    return instances


def create_masked_lm_predictions(input_ids, options, rng):
    """google's masking of one instance.

    Args:
      input_ids: list of ids, [CLS] A [SEP] B [SEP].
      options: MaskingOptions.
      rng: random.Random.

    Returns:
      (output ids list, sorted masked positions, the original ids at those positions).
    """
    candidates = []
    for i, token_id in enumerate(input_ids):
        if token_id == options.cls_id or token_id == options.sep_id:
            continue
        # Whole-word masking: a "##" piece joins the word of the piece before it.
        if options.do_whole_word_mask and candidates and options.is_continuation[token_id]:
            candidates[-1].append(i)
        else:
            candidates.append([i])
    rng.shuffle(candidates)
    output = list(input_ids)
    num_to_predict = min(
        options.max_predictions_per_seq,
        max(1, int(round(len(input_ids) * options.masked_lm_prob))),
    )
    masked, covered = [], set()
    for indexes in candidates:
        if len(masked) >= num_to_predict:
            break
        # A whole word that would exceed the budget is skipped, not cut.
        if len(masked) + len(indexes) > num_to_predict:
            continue
        if any(i in covered for i in indexes):
            continue
        for i in indexes:
            covered.add(i)
            if rng.random() < MASK_PROB:
                output[i] = options.mask_id
            elif rng.random() < 0.5:
                pass  # keep the original token
            else:
                output[i] = rng.randint(0, options.vocab_size - 1)
            masked.append((i, input_ids[i]))
    masked.sort()
    return output, [i for i, _ in masked], [t for _, t in masked]


def _int_feature(values):
    return tf2.train.Feature(int64_list=tf2.train.Int64List(value=values))


def _float_feature(values):
    return tf2.train.Feature(float_list=tf2.train.FloatList(value=values))


def encode_instance(options, item):
    """(ids, len(A), is_random_next, seed) -> a masked, padded pretraining tf.train.Example.

    The encode_fn of sharded_conversion (bound to options with functools.partial).
    """
    ids, len_a, is_random_next, seed = item
    ids = ids.tolist()
    input_ids, positions, label_ids = create_masked_lm_predictions(
        ids, options, random.Random(seed)
    )
    pad = options.max_seq_length - len(input_ids)
    if pad < 0:
        raise AssertionError(f"instance of {len(input_ids)} ids > max_seq_length")
    predictions_pad = options.max_predictions_per_seq - len(positions)
    segment_ids = [0] * (len_a + 2) + [1] * (len(ids) - len_a - 2)
    features = {
        "input_ids": _int_feature(input_ids + [0] * pad),
        "input_mask": _int_feature([1] * len(input_ids) + [0] * pad),
        "segment_ids": _int_feature(segment_ids + [0] * pad),
        "masked_lm_positions": _int_feature(positions + [0] * predictions_pad),
        "masked_lm_ids": _int_feature(label_ids + [0] * predictions_pad),
        "masked_lm_weights": _float_feature([1.0] * len(positions) + [0.0] * predictions_pad),
        "next_sentence_labels": _int_feature([1 if is_random_next else 0]),
    }
    return tf2.train.Example(features=tf2.train.Features(feature=features))


def _file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_options(
    max_seq_length,
    max_predictions_per_seq,
    masked_lm_prob,
    dupe_factor,
    short_seq_prob,
    validation_fraction,
):
    checks = [
        (
            max_seq_length >= 5,
            f"max_seq_length must be >= 5 ([CLS] A [SEP] B [SEP]), got {max_seq_length}",
        ),
        (
            max_predictions_per_seq >= 1,
            f"max_predictions_per_seq must be >= 1, got {max_predictions_per_seq}",
        ),
        (0.0 < masked_lm_prob <= 1.0, f"masked_lm_prob must be in (0, 1], got {masked_lm_prob}"),
        (dupe_factor >= 1, f"dupe_factor must be >= 1, got {dupe_factor}"),
        (0.0 <= short_seq_prob <= 1.0, f"short_seq_prob must be in [0, 1], got {short_seq_prob}"),
        (
            0.0 <= validation_fraction < 1.0,
            f"validation_fraction must be in [0, 1), got {validation_fraction}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def create_pretraining_data(
    input_files,
    vocab_file,
    output_dir,
    do_lower_case=True,
    max_seq_length=DEFAULT_MAX_SEQ_LENGTH,
    max_predictions_per_seq=DEFAULT_MAX_PREDICTIONS_PER_SEQ,
    masked_lm_prob=DEFAULT_MASKED_LM_PROB,
    dupe_factor=DEFAULT_DUPE_FACTOR,
    short_seq_prob=DEFAULT_SHORT_SEQ_PROB,
    do_whole_word_mask=False,
    random_seed=DEFAULT_RANDOM_SEED,
    validation_fraction=DEFAULT_VALIDATION_FRACTION,
    num_shards=DEFAULT_NUM_SHARDS,
    num_workers=2,
    overwrite=False,
):
    """Writes BERT pretraining records of raw text files into output_dir.

    Args:
      input_files: paths or globs (list, or a comma-separated string) of text files, one
        sentence per line, a blank line between documents.
      vocab_file: a google vocab.txt.
      output_dir: folder for the shards, labels.txt, split_sizes.json and bert_pretraining.json.
      do_lower_case: lower-case and strip accents (match the vocabulary).
      max_seq_length: tokens per record, [CLS] and [SEP]s included.
      max_predictions_per_seq: most masked positions per record.
      masked_lm_prob: fraction of the tokens masked.
      dupe_factor: passes over the corpus, each with other pairs and masks.
      short_seq_prob: probability of a shorter target length (per document and pass).
      do_whole_word_mask: mask every piece of a word together.
      random_seed: seed of every random choice.
      validation_fraction: fraction of the documents (after the shuffle) held out in a
        'validation' split (0: only 'train').
      num_shards: shards per split (int or dict split -> int).
      num_workers: processes for tokenization and for writing shards.
      overwrite: replace shards written earlier from other input or options.

    Returns:
      (split_sizes dict split -> records, stats dict: documents, sentences, tokens per split).

    Raises:
      FileNotFoundError: a missing input or vocabulary file.
      ValueError: bad options, a vocabulary without the special tokens, or a corpus with
        no document holding a sentence with tokens (names the files).
    """
    _check_options(
        max_seq_length,
        max_predictions_per_seq,
        masked_lm_prob,
        dupe_factor,
        short_seq_prob,
        validation_fraction,
    )
    input_files = expand_input_files(input_files)
    vocab = bert_tokenization.load_vocab(vocab_file)
    documents = tokenize_documents(
        read_documents(input_files), vocab_file, do_lower_case, num_workers
    )
    if not documents:
        raise ValueError(
            f"no document with a sentence of known tokens in {', '.join(input_files)} "
            "(expected text, one sentence per line, a blank line between documents)"
        )
    vocab_size = max(vocab.values()) + 1
    is_continuation = bytearray(vocab_size)
    for token, index in vocab.items():
        if token.startswith(bert_tokenization.CONTINUATION_PREFIX):
            is_continuation[index] = 1
    cls_id = vocab[bert_tokenization.CLS_TOKEN]
    sep_id = vocab[bert_tokenization.SEP_TOKEN]
    options = MaskingOptions(
        max_seq_length=max_seq_length,
        max_predictions_per_seq=max_predictions_per_seq,
        masked_lm_prob=masked_lm_prob,
        do_whole_word_mask=do_whole_word_mask,
        vocab_size=vocab_size,
        cls_id=cls_id,
        sep_id=sep_id,
        mask_id=vocab[bert_tokenization.MASK_TOKEN],
        is_continuation=bytes(is_continuation),
    )

    rng = random.Random(random_seed)
    rng.shuffle(documents)
    num_validation = int(round(len(documents) * validation_fraction))
    if num_validation >= len(documents):
        raise ValueError(
            f"validation_fraction {validation_fraction} of {len(documents)} document(s) in "
            f"{', '.join(input_files)} leaves none for training"
        )
    split_documents = {"train": documents[num_validation:]}
    if num_validation:
        split_documents["validation"] = documents[:num_validation]
    split_items, stats = {}, {}
    for split, split_docs in split_documents.items():
        split_items[split] = create_instances(
            split_docs, max_seq_length, dupe_factor, short_seq_prob, cls_id, sep_id, rng
        )
        stats[split] = {
            "documents": len(split_docs),
            "sentences": sum(len(d) for d in split_docs),
            "tokens": int(sum(len(s) for d in split_docs for s in d)),
        }

    fingerprint = sharded_conversion.fingerprint_of(
        (
            [(os.path.abspath(p), _file_digest(p)) for p in input_files],
            _file_digest(vocab_file),
            do_lower_case,
            options,
            dupe_factor,
            short_seq_prob,
            random_seed,
            validation_fraction,
        )
    )
    os.makedirs(output_dir, exist_ok=True)
    metadata = {
        "max_seq_length": max_seq_length,
        "max_predictions_per_seq": max_predictions_per_seq,
        "vocab_size": vocab_size,
        "vocab_file": os.path.abspath(vocab_file),
        "do_lower_case": do_lower_case,
        "masked_lm_prob": masked_lm_prob,
        "dupe_factor": dupe_factor,
        "do_whole_word_mask": do_whole_word_mask,
        "random_seed": random_seed,
        "input_files": [os.path.abspath(p) for p in input_files],
        "corpus": stats,
    }
    sharded_conversion.atomic_write_json(os.path.join(output_dir, METADATA_FILENAME), metadata)
    module = importlib.import_module(
        __name__ if __name__ != "__main__" else "datasets.create_pretraining_data"
    )
    split_sizes, _ = sharded_conversion.convert_splits(
        output_dir,
        NAME,
        split_items,
        functools.partial(module.encode_instance, options),
        num_shards,
        LABELS_TO_NAMES,
        fingerprint=fingerprint,
        num_workers=num_workers,
        strict=True,
        overwrite=overwrite,
    )
    return split_sizes, stats


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Write BERT pretraining tfrecords (masked LM + next sentence) from raw "
        "text: one sentence per line, a blank line between documents."
    )
    parser.add_argument("--input_file", required=True, help="comma-separated text files or globs")
    parser.add_argument("--vocab_file", required=True, help="the google vocab.txt to tokenize with")
    parser.add_argument("--output_dir", required=True, help="folder to write the shards to")
    parser.add_argument(
        "--do_lower_case",
        type=sharded_conversion.boolean_argument,
        default=True,
        help="true for an uncased vocabulary (lower-case, strip accents), false for cased",
    )
    parser.add_argument(
        "--max_seq_length",
        type=int,
        default=DEFAULT_MAX_SEQ_LENGTH,
        help="tokens per record, [CLS] and [SEP]s included",
    )
    parser.add_argument(
        "--max_predictions_per_seq",
        type=int,
        default=DEFAULT_MAX_PREDICTIONS_PER_SEQ,
        help="most masked positions per record",
    )
    parser.add_argument(
        "--masked_lm_prob",
        type=float,
        default=DEFAULT_MASKED_LM_PROB,
        help="fraction of the tokens to mask, in (0, 1]",
    )
    parser.add_argument(
        "--dupe_factor",
        type=int,
        default=DEFAULT_DUPE_FACTOR,
        help="passes over the corpus, each with other pairs and masks",
    )
    parser.add_argument(
        "--short_seq_prob",
        type=float,
        default=DEFAULT_SHORT_SEQ_PROB,
        help="probability of a shorter target length, in [0, 1]",
    )
    parser.add_argument(
        "--do_whole_word_mask",
        type=sharded_conversion.boolean_argument,
        default=False,
        help="mask all the WordPiece pieces of a word together",
    )
    parser.add_argument(
        "--random_seed", type=int, default=DEFAULT_RANDOM_SEED, help="seed of every random choice"
    )
    parser.add_argument(
        "--validation_fraction",
        type=float,
        default=DEFAULT_VALIDATION_FRACTION,
        help="fraction of the documents held out as a 'validation' split, in [0, 1)",
    )
    parser.add_argument(
        "--num_shards",
        type=int,
        default=DEFAULT_NUM_SHARDS,
        help="shards per split (never more than records)",
    )
    parser.add_argument(
        "--num_workers",
        type=int,
        default=2,
        help="processes tokenizing and writing shards (1: this process)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace shards an earlier run wrote from other input or options",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        split_sizes, stats = create_pretraining_data(
            args.input_file,
            args.vocab_file,
            args.output_dir,
            do_lower_case=args.do_lower_case,
            max_seq_length=args.max_seq_length,
            max_predictions_per_seq=args.max_predictions_per_seq,
            masked_lm_prob=args.masked_lm_prob,
            dupe_factor=args.dupe_factor,
            short_seq_prob=args.short_seq_prob,
            do_whole_word_mask=args.do_whole_word_mask,
            random_seed=args.random_seed,
            validation_fraction=args.validation_fraction,
            num_shards=args.num_shards,
            num_workers=args.num_workers,
            overwrite=args.overwrite,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for split in sorted(split_sizes):
        s = stats[split]
        print(
            f"wrote {split_sizes[split]} {split} records to {args.output_dir} from "
            f"{s['documents']} documents, {s['sentences']} sentences, {s['tokens']} tokens"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
