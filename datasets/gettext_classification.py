"""A second real text classification task, offline: which program an English message is from.

Every program with a translated interface ships gettext catalogs,
`/usr/share/locale/<lang>/LC_MESSAGES/<domain>.mo`, whose keys (msgids) are the
program's English messages. The msgids that read as plain text (the filters of
datasets/gettext_catalogs.py: no placeholders, markup or plural forms, at least
`min_words` words) labelled with their catalog's domain make a classification task of
real English that the man pages do not contain: `git`, `postgres-15`, `gnupg2`, ... The
`num_programs` domains with the most messages are kept (the ISO code-list catalogs, which
hold names, not messages, are left out); a message found in two of them is dropped, as it
has no single answer. Splits come from a hash of the message (parallel_text's rule), and
each TSV starts with a header row, `message<TAB>label`, which the text_classification
converter skips.

    python datasets/gettext_classification.py --output_dir=data/programs_tsv --num_programs=6
    python datasets/download_and_convert_data.py --dataset_name=text_classification \\
        --source=data/programs_tsv --vocab_file=data/man/vocab.txt --dataset_dir=data/programs
"""

import argparse
import collections
import os
import sys

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets import gettext_catalogs, parallel_text  # noqa: E402

DEFAULT_LANGUAGE = "de"
DEFAULT_NUM_PROGRAMS = 6
DEV_FRACTION = TEST_FRACTION = 0.1
HEADER = "message\tlabel"
EXCLUDED_PREFIXES = ("iso_",)  # code lists: language, country and currency names


def program_messages(language=DEFAULT_LANGUAGE, locale_dir=gettext_catalogs.LOCALE_DIR,
                     min_words=gettext_catalogs.DEFAULT_MIN_WORDS):  # fmt: skip
    """({domain: set of English messages}, [catalogs gettext could not read]).

    The messages are the msgids of the `language` catalogs (any translation language has
    the same English keys; it only decides which programs are found).
    """
    messages = collections.defaultdict(set)
    unreadable = []
    for path in gettext_catalogs.find_catalogs(language, locale_dir):
        domain = os.path.basename(path)[: -len(".mo")]
        if domain.startswith(EXCLUDED_PREFIXES):
            continue
        try:
            entries = gettext_catalogs.read_catalog(path)
        except ValueError:  # e.g. a catalog in a legacy encoding
            unreadable.append(path)
            continue
        for key, msgstr in entries:
            pair, _, _ = gettext_catalogs.clean_entry(key, msgstr, min_words)
            if pair:
                messages[domain].add(pair[0])
    return messages, unreadable


def build_splits(messages, num_programs=DEFAULT_NUM_PROGRAMS):
    """{split: [(message, domain)]} of the num_programs largest domains, shared messages out.

    Raises:
      ValueError: num_programs < 2, or fewer than 2 programs have messages.
    """
    if num_programs < 2:
        raise ValueError(f"num_programs must be >= 2 (a classification), got {num_programs}")
    counts = collections.Counter(
        m for domain_messages in messages.values() for m in domain_messages
    )
    programs = sorted(messages, key=lambda d: (-len(messages[d]), d))[:num_programs]
    if len(programs) < 2:
        raise ValueError(f"only {len(programs)} program(s) with messages: {programs}")
    splits = {split: [] for split in parallel_text.SPLITS}
    for domain in programs:
        for message in messages[domain]:
            if counts[message] == 1:
                split = parallel_text.split_of_source(message, DEV_FRACTION, TEST_FRACTION)
                splits[split].append((message, domain))
    return {split: sorted(rows, key=parallel_text.pair_order_key) for split, rows in splits.items()}


def write_tsv(splits, output_dir):
    """Writes {split}.tsv (header, then message<TAB>program) to output_dir; returns sizes."""
    os.makedirs(output_dir, exist_ok=True)
    for split, rows in splits.items():
        with open(os.path.join(output_dir, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write(HEADER + "\n" + "".join(f"{m}\t{d}\n" for m, d in rows))
    return {split: len(rows) for split, rows in splits.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", required=True, help="folder for train/dev/test.tsv")
    parser.add_argument("--num_programs", type=int, default=DEFAULT_NUM_PROGRAMS)
    parser.add_argument("--language", default=DEFAULT_LANGUAGE, help="whose catalogs to read")
    parser.add_argument("--locale_dir", default=gettext_catalogs.LOCALE_DIR)
    parser.add_argument("--min_words", type=int, default=gettext_catalogs.DEFAULT_MIN_WORDS)
    args = parser.parse_args(argv)
    messages, unreadable = program_messages(args.language, args.locale_dir, args.min_words)
    splits = build_splits(messages, args.num_programs)
    sizes = write_tsv(splits, args.output_dir)
    programs = sorted({d for rows in splits.values() for _, d in rows})
    print(
        f"wrote {sizes} to {args.output_dir}: programs {programs}; "
        f"{len(unreadable)} unreadable catalog(s) skipped"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
