"""Parallel text in plain files: reading it line by line, normalising it, splitting it by source.

Two layouts of one sentence per line, UTF-8:

* a TSV file, `source<TAB>target` per line;
* a pair of files, line i of the source file translating line i of the target file.

A bad line (a TSV line without exactly one tab, an empty side, bytes that are not UTF-8, a
line of one file of a pair with no partner in the other) is skipped and reported as a
`BadLine` naming its file and line number; in strict mode the first one is an error.

Text is normalised (`normalise_text`: NFKC, whitespace runs as one space) so that what
the tokenizer reproduces is the stored text. Data without its own train / dev / test
split is split by a stable hash of the SOURCE sentence (`split_by_source_hash`), so a
source sentence never lands in two splits, whatever else the data holds.
"""

import collections
import hashlib
import os
import unicodedata

SPLITS = ("train", "dev", "test")
DEFAULT_DEV_FRACTION = 0.015
DEFAULT_TEST_FRACTION = 0.015
TSV_SUFFIX = ".tsv"


class BadLine(collections.namedtuple("BadLine", ["path", "line_number", "reason"])):
    """One unusable input line: file, 1-based line number, what is wrong with it."""

    __slots__ = ()

    def __str__(self):
        return f"{self.path}:{self.line_number}: {self.reason}"


def normalise_text(text):
    """NFKC, then every run of whitespace as one space, with no leading or trailing space.

    The one text normalisation of the translation data: the gettext reader and the
    parallel-text reader apply it, and it is what a decoded sentence reproduces.
    """
    return " ".join(unicodedata.normalize("NFKC", text).split())


def source_hash_fraction(source):
    """A stable number in [0, 1) for a source sentence: the first 8 bytes of its SHA-1."""
    digest = hashlib.sha1(source.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def check_fractions(dev_fraction, test_fraction):
    """Raises ValueError unless both fractions are in [0, 1) and leave some training data."""
    for name, value in (("dev_fraction", dev_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if dev_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"dev_fraction + test_fraction must be below 1 to leave training data, got "
            f"{dev_fraction} + {test_fraction}"
        )


def split_of_source(source, dev_fraction=DEFAULT_DEV_FRACTION, test_fraction=DEFAULT_TEST_FRACTION):
    """'test', 'dev' or 'train' for a source sentence, from its hash alone."""
    u = source_hash_fraction(source)
    if u < test_fraction:
        return "test"
    if u < test_fraction + dev_fraction:
        return "dev"
    return "train"


def pair_order_key(pair):
    """A stable pseudo-random order of pairs (by the SHA-1 of both sides), so that shards
    do not hold alphabetical runs of similar sentences."""
    return hashlib.sha1("\t".join(pair).encode("utf-8")).digest()


def split_by_source_hash(
    pairs, dev_fraction=DEFAULT_DEV_FRACTION, test_fraction=DEFAULT_TEST_FRACTION
):
    """Splits (source, target) pairs into {'train', 'dev', 'test'} by the hash of the source.

    Every pair of one source sentence goes to the same split; each split is in the
    stable order of `pair_order_key`. About dev_fraction / test_fraction of the distinct
    source sentences land in dev / test.

    Raises:
      ValueError: fractions outside [0, 1) or summing to 1 or more.
    """
    check_fractions(dev_fraction, test_fraction)
    splits = {split: [] for split in SPLITS}
    for pair in pairs:
        splits[split_of_source(pair[0], dev_fraction, test_fraction)].append(tuple(pair))
    return {split: sorted(items, key=pair_order_key) for split, items in splits.items()}


def _fail_or_collect(bad_line, bad, strict):
    if strict:
        raise ValueError(f"{bad_line} (stopping: strict mode)")
    bad.append(bad_line)


def read_lines(path):
    """The lines of a text file as [(line number, text, error)]: text None for non-UTF-8 bytes.

    Lines end at '\\n' ('\\r\\n' too); a final newline does not start another line; a
    UTF-8 byte-order mark at the start is dropped.

    Raises:
      FileNotFoundError: no such file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"parallel text file {path} does not exist")
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    lines = []
    for number, raw in enumerate(raw_lines, start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            lines.append((number, raw.decode("utf-8"), None))
        except UnicodeDecodeError as e:
            lines.append((number, None, f"not UTF-8 ({e.reason} at byte {e.start})"))
    return lines


def _sides_or_bad(path, number, source, target):
    """(source, target) normalised, or a BadLine when a side is empty."""
    source, target = normalise_text(source), normalise_text(target)
    if not source or not target:
        side = "source" if not source else "target"
        return BadLine(path, number, f"empty {side} side")
    return source, target


def read_tsv(path, strict=False):
    """Reads a source<TAB>target file.

    Returns:
      (pairs [(source, target)] in file order, normalised; bad lines [BadLine]).

    Raises:
      FileNotFoundError: no such file.
      ValueError: a bad line in strict mode (names the file and line).
    """
    pairs, bad = [], []
    for number, text, error in read_lines(path):
        if text is None:
            _fail_or_collect(BadLine(path, number, error), bad, strict)
            continue
        tabs = text.count("\t")
        if tabs != 1:
            reason = f"expected one tab between source and target, found {tabs}"
            _fail_or_collect(BadLine(path, number, reason), bad, strict)
            continue
        result = _sides_or_bad(path, number, *text.split("\t"))
        if isinstance(result, BadLine):
            _fail_or_collect(result, bad, strict)
        else:
            pairs.append(result)
    return pairs, bad


def read_file_pair(source_path, target_path, strict=False):
    """Reads a source file and a target file of one sentence per line, aligned by line.

    Lines of the longer file beyond the end of the shorter one are bad lines (named, one
    each); the rest are paired in order.

    Returns:
      (pairs [(source, target)] in file order, normalised; bad lines [BadLine]).

    Raises:
      FileNotFoundError: a file is missing.
      ValueError: a bad line (different line counts included) in strict mode.
    """
    source_lines, target_lines = read_lines(source_path), read_lines(target_path)
    pairs, bad = [], []
    if len(source_lines) != len(target_lines):
        longer, shorter = (
            (source_path, target_path)
            if len(source_lines) > len(target_lines)
            else (target_path, source_path)
        )
        counts = f"{source_path} has {len(source_lines)} lines, {target_path} {len(target_lines)}"
        first_extra = min(len(source_lines), len(target_lines)) + 1
        if strict:
            raise ValueError(
                f"{longer}:{first_extra}: no matching line in {shorter} ({counts}) "
                "(stopping: strict mode)"
            )
        for number in range(first_extra, max(len(source_lines), len(target_lines)) + 1):
            bad.append(BadLine(longer, number, f"no matching line in {shorter} ({counts})"))
    for (number, source, source_error), (_, target, target_error) in zip(
        source_lines, target_lines
    ):
        if source is None or target is None:
            path = source_path if source is None else target_path
            _fail_or_collect(BadLine(path, number, source_error or target_error), bad, strict)
            continue
        result = _sides_or_bad(source_path, number, source, target)
        if isinstance(result, BadLine):
            if "target" in result.reason:  # name the file whose line is empty
                result = result._replace(path=target_path)
            _fail_or_collect(result, bad, strict)
        else:
            pairs.append(result)
    bad.sort(key=lambda b: (b.line_number, b.path))  # the unmatched lines come last
    return pairs, bad


def _split_files(directory, split, source_language, target_language):
    """The input of one split in a directory: ('tsv', path), ('pair', src, tgt) or None.

    Raises:
      FileNotFoundError: one file of a pair is there, the other missing.
    """
    tsv = os.path.join(directory, split + TSV_SUFFIX)
    source = os.path.join(directory, f"{split}.{source_language}")
    target = os.path.join(directory, f"{split}.{target_language}")
    if os.path.isfile(tsv):
        return ("tsv", tsv)
    if os.path.isfile(source) and os.path.isfile(target):
        return ("pair", source, target)
    if os.path.isfile(source) or os.path.isfile(target):
        present, missing = (source, target) if os.path.isfile(source) else (target, source)
        raise FileNotFoundError(
            f"{directory} holds {os.path.basename(present)} but not {os.path.basename(missing)}: "
            f"the {split} split needs both files of the pair, or {split}{TSV_SUFFIX}"
        )
    return None


def describe_layouts(source_language="en", target_language="de"):
    """The accepted --source forms, for error messages and help."""
    return (
        "a TSV file (source<TAB>target per line), 'SOURCE_FILE,TARGET_FILE' (one sentence "
        "per line each), or a folder holding train/dev/test as {split}.tsv or "
        f"{{split}}.{source_language} + {{split}}.{target_language}"
    )


def read_parallel_source(source, source_language="en", target_language="de", strict=False):
    """Reads parallel text given as a TSV file, 'SRC_FILE,TGT_FILE', or a folder of splits.

    A folder holds, per split of train / dev / test, either `{split}.tsv` or
    `{split}.{source_language}` + `{split}.{target_language}`; train is required, dev and
    test are optional.

    Returns:
      ({split: pairs} for a folder, or {None: pairs} for input without splits, and the
      list of BadLine over all files).

    Raises:
      FileNotFoundError: missing input (names it and the accepted layouts).
      ValueError: a bad line in strict mode.
    """
    if not source:
        raise ValueError(f"translation needs --source: {describe_layouts(source_language)}")
    if os.path.isdir(source):
        layouts = {
            split: _split_files(source, split, source_language, target_language) for split in SPLITS
        }
        if layouts["train"] is None:
            raise FileNotFoundError(
                f"{source} holds no train split: expected train{TSV_SUFFIX} or "
                f"train.{source_language} + train.{target_language} "
                f"(accepted: {describe_layouts(source_language, target_language)})"
            )
        splits, bad = {}, []
        for split, layout in layouts.items():
            if layout is None:
                continue
            if layout[0] == "tsv":
                pairs, split_bad = read_tsv(layout[1], strict)
            else:
                pairs, split_bad = read_file_pair(layout[1], layout[2], strict)
            splits[split] = pairs
            bad.extend(split_bad)
        return splits, bad
    if "," in source and not os.path.exists(source):
        paths = source.split(",")
        if len(paths) != 2:
            raise ValueError(
                f"--source={source!r} names {len(paths)} files; expected "
                f"{describe_layouts(source_language, target_language)}"
            )
        pairs, bad = read_file_pair(paths[0], paths[1], strict)
        return {None: pairs}, bad
    if not os.path.exists(source):
        raise FileNotFoundError(
            f"parallel text {source} does not exist (expected "
            f"{describe_layouts(source_language, target_language)})"
        )
    pairs, bad = read_tsv(source, strict)
    return {None: pairs}, bad
