"""Real English -> X parallel text from the gettext catalogs every Debian machine has.

Programs ship their translated UI strings as compiled gettext catalogs,
`/usr/share/locale/<lang>/LC_MESSAGES/<domain>.mo` (and `<lang>_<COUNTRY>/...` variants
such as de_CH), each mapping an English message (msgid) to its translation (msgstr).
Python's `gettext.GNUTranslations` reads them. Most entries are not sentences (language
and country names, command-line help with format placeholders, menu labels), so
`extract_pairs` keeps only entries that read as plain text:

    context      a context-prefixed msgid ("ctx\\x04msgid"): the same text in another role
    plural_form  a plural entry's forms beyond the first (the singular is kept)
    empty        no translation
    multiline    an entry spanning several lines (help screens, tables)
    placeholder  a format placeholder on either side: %s %d %1$s %(name)s %1 {0} {name} $VAR @VAR@
    markup       tags or entities: <b> </a> <br/> &amp; &#169;
    too_short    fewer than min_words words on either side (after the steps above)
    same_as_source the translation equals the source (untranslated or a proper name)
    duplicate    the same (source, target) pair seen before, in any catalog

Keyboard accelerators (`_File`, `Ö_ffnen`, `&File`, `(_F)`) are stripped, not dropped,
and whitespace is normalised (parallel_text.normalise_text). The pairs are split into
train / dev / test by the hash of the source (parallel_text.split_by_source_hash), so no
source sentence is in two splits.

    python -m datasets.gettext_catalogs --language=de fr es it    # counts per filter
"""

import argparse
import collections
import gettext
import os
import re
import struct
import sys

from datasets import parallel_text

LOCALE_DIR = "/usr/share/locale"
DEFAULT_MIN_WORDS = 4
DROP_REASONS = (
    "context",
    "plural_form",
    "empty",
    "multiline",
    "placeholder",
    "markup",
    "too_short",
    "same_as_source",
    "duplicate",
)

# printf conversions (%s %5.2f %ld %1$s %%, not "% " after a number), Python's %(name)s,
# Qt / KDE's %1, brace fields {0} {name} {}, shell / autoconf variables $VAR ${VAR} @VAR@.
_PLACEHOLDER_RE = re.compile(
    r"%(?:\d+\$)?[-+#0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?"
    r"(?:hh|h|ll|l|L|q|j|z|Z|t|I64|I32|I)?[diouxXeEfFgGaAcspnCSm%]"
    r"|%\([^)]*\)"
    r"|%\d"
    r"|\{[^{}\s]*\}"
    r"|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?"
    r"|@[A-Za-z_][A-Za-z0-9_]*@"
)
_MARKUP_RE = re.compile(r"<\s*/?\s*[A-Za-z!][^<>]*>|&(?:[A-Za-z][A-Za-z0-9]*|#\d+|#x[0-9a-fA-F]+);")
# A parenthesised accelerator after a label, common in CJK translations: "ファイル(_F)".
_BRACKETED_ACCELERATOR_RE = re.compile(r"\s*\(\s*[_&]\w\s*\)")
_MARKER_BEFORE_WORD_CHAR_RE = {marker: re.compile(re.escape(marker) + r"(?=\w)") for marker in "_&"}

CatalogPairs = collections.namedtuple(
    "CatalogPairs", ["language", "catalogs", "unreadable", "splits", "dropped", "stats"]
)
CatalogPairs.__doc__ = """What extract_pairs found for one language.

language: the language code asked for, e.g. 'de'.
catalogs: the .mo paths read, sorted.
unreadable: [(path, reason)] of the catalogs that gettext could not read.
splits: {'train' | 'dev' | 'test': [(source, target)]}, each in a stable order.
dropped: collections.Counter, reason (one of DROP_REASONS) -> entries dropped for it.
stats: dict: 'entries' (catalog entries read, headers excluded), 'kept' (pairs in all
  splits), 'accelerators_stripped' (pairs kept or not whose accelerator marks were removed).
"""


def find_catalogs(language, locale_dir=LOCALE_DIR):
    """Sorted paths of the .mo catalogs of a language: <lang>/ and <lang>_<COUNTRY>/ folders.

    'de' matches de/ and de_CH/, not 'dsb' nor 'de@latin' (another script).

    Raises:
      ValueError: language is not a plain language code (letters, 2-3 of them).
      FileNotFoundError: locale_dir is missing, or holds no catalog of that language
        (names the language codes that have catalogs).
    """
    if not re.fullmatch(r"[a-z]{2,3}", language or ""):
        raise ValueError(f"language must be a 2- or 3-letter code such as 'de', got {language!r}")
    if not os.path.isdir(locale_dir):
        raise FileNotFoundError(f"locale directory {locale_dir} does not exist")
    folder_re = re.compile(re.escape(language) + r"(?:_[A-Z]{2})?")
    paths = []
    for name in sorted(os.listdir(locale_dir)):
        messages = os.path.join(locale_dir, name, "LC_MESSAGES")
        if folder_re.fullmatch(name) and os.path.isdir(messages):
            paths.extend(
                os.path.join(messages, f) for f in sorted(os.listdir(messages)) if f.endswith(".mo")
            )
    if not paths:
        available = sorted(
            {
                name.split("_")[0]
                for name in os.listdir(locale_dir)
                if re.fullmatch(r"[a-z]{2,3}(?:_[A-Z]{2})?", name)
                and os.path.isdir(os.path.join(locale_dir, name, "LC_MESSAGES"))
                and any(
                    f.endswith(".mo")
                    for f in os.listdir(os.path.join(locale_dir, name, "LC_MESSAGES"))
                )
            }
        )
        raise FileNotFoundError(
            f"no gettext catalogs (*.mo) for language {language!r} under {locale_dir}; "
            f"languages with catalogs there: {available}"
        )
    return paths


def read_catalog(path):
    """The entries of one .mo catalog as [(key, msgstr)], the header excluded.

    A key is the msgid (str), or (msgid, form index) for a plural entry, as
    gettext.GNUTranslations stores them (its `_catalog`: the module has no public way to
    list a catalog's entries).

    A catalog in a legacy charset whose header itself holds non-ASCII bytes (a translator's
    name in ISO-8859-1: m4 and net-tools in Debian's de/) trips gettext, which decodes the
    header lines as UTF-8 before it reads their charset; such a file is read here with the
    charset its header names.

    Raises:
      ValueError: the file cannot be read (bad magic, corrupt, undecodable text); names
        the file.
    """
    try:
        with open(path, "rb") as f:
            translations = gettext.GNUTranslations(f)
    except UnicodeDecodeError as e:
        try:
            return _read_legacy_charset_catalog(path)
        except (OSError, UnicodeDecodeError, LookupError, ValueError, struct.error) as again:
            raise ValueError(
                f"gettext cannot read {path}: {type(e).__name__}: {e}; as the charset its "
                f"header names: {type(again).__name__}: {again}"
            ) from None
    except (OSError, LookupError, ValueError, struct.error) as e:
        raise ValueError(f"gettext cannot read {path}: {type(e).__name__}: {e}") from None
    return [(key, value) for key, value in translations._catalog.items() if key != ""]


_MO_MAGICS = {0x950412DE: "<", 0xDE120495: ">"}
_CHARSET_RE = re.compile(rb"charset=\s*([A-Za-z0-9_.:-]+)")


def _read_legacy_charset_catalog(path):
    """read_catalog's entries of a .mo file decoded with its header's charset.

    GNU's format: magic, revision, N, the offsets of the msgid and msgstr tables of N
    (length, offset) pairs each; a plural msgid is "singular\0plural" and its msgstr the
    forms joined by NUL, stored as gettext does: (singular, form index) -> form.
    """
    with open(path, "rb") as f:
        data = f.read()
    order = _MO_MAGICS.get(struct.unpack("<I", data[:4])[0])
    if order is None:
        raise ValueError("not a .mo file (bad magic number)")
    count, ids_at, strs_at = struct.unpack(order + "3I", data[8:20])

    def string(table, i):
        length, offset = struct.unpack(order + "2I", data[table + 8 * i : table + 8 * i + 8])
        if offset + length > len(data):
            raise ValueError(f"entry {i} points past the end of the file")
        return data[offset : offset + length]

    raw = [(string(ids_at, i), string(strs_at, i)) for i in range(count)]
    header = dict(raw).get(b"", b"")
    match = _CHARSET_RE.search(header)
    charset = match.group(1).decode("ascii") if match else "ascii"
    entries = []
    for msgid, msgstr in raw:
        if not msgid:
            continue
        if b"\0" in msgid:
            singular = msgid.split(b"\0")[0].decode(charset)
            forms = msgstr.split(b"\0")
            entries.extend(((singular, i), form.decode(charset)) for i, form in enumerate(forms))
        else:
            entries.append((msgid.decode(charset), msgstr.decode(charset)))
    return entries


def strip_accelerators(text):
    """text without keyboard-accelerator marks: '_File' 'Ö_ffnen' '&File' 'Datei(_F)' -> plain.

    A mark is stripped only when it is the single '_' (or '&') of the text before a word
    character, so identifiers such as 'wait_for_done' and 'A & B' stay as they are.

    Returns:
      (text, whether anything was stripped).
    """
    stripped = _BRACKETED_ACCELERATOR_RE.sub("", text)
    for marker, marker_re in _MARKER_BEFORE_WORD_CHAR_RE.items():
        if stripped.count(marker) == 1 and marker_re.search(stripped):
            stripped = marker_re.sub("", stripped)
    return stripped, stripped != text


def clean_entry(key, msgstr, min_words=DEFAULT_MIN_WORDS):
    """Filters and normalises one catalog entry.

    Returns:
      (pair (source, target) or None, the drop reason or None, accelerator stripped bool).
      Duplicates are not judged here (see extract_pairs).
    """
    if isinstance(key, tuple):
        msgid, form = key
        if form != 0:
            return None, "plural_form", False
    else:
        msgid = key
    if "\x04" in msgid:
        return None, "context", False
    if not msgstr.strip():
        return None, "empty", False
    source, target = msgid.strip(), msgstr.strip()
    if "\n" in source or "\n" in target:
        return None, "multiline", False
    if _PLACEHOLDER_RE.search(source) or _PLACEHOLDER_RE.search(target):
        return None, "placeholder", False
    if _MARKUP_RE.search(source) or _MARKUP_RE.search(target):
        return None, "markup", False
    source, source_stripped = strip_accelerators(source)
    target, target_stripped = strip_accelerators(target)
    stripped = source_stripped or target_stripped
    source, target = parallel_text.normalise_text(source), parallel_text.normalise_text(target)
    if len(source.split()) < min_words or len(target.split()) < min_words:
        return None, "too_short", stripped
    if source.casefold() == target.casefold():
        return None, "same_as_source", stripped
    return (source, target), None, stripped


def extract_pairs(
    language,
    locale_dir=LOCALE_DIR,
    min_words=DEFAULT_MIN_WORDS,
    dev_fraction=parallel_text.DEFAULT_DEV_FRACTION,
    test_fraction=parallel_text.DEFAULT_TEST_FRACTION,
):
    """English -> language pairs from every catalog of the language, filtered and split.

    Catalogs gettext cannot read are skipped and listed in `unreadable`.

    Returns:
      a CatalogPairs.

    Raises:
      ValueError, FileNotFoundError: as find_catalogs; bad fractions.
    """
    parallel_text.check_fractions(dev_fraction, test_fraction)
    catalogs = find_catalogs(language, locale_dir)
    dropped = collections.Counter({reason: 0 for reason in DROP_REASONS})
    unreadable, seen, pairs = [], set(), []
    entries = accelerators = 0
    for path in catalogs:
        try:
            catalog = read_catalog(path)
        except ValueError as e:
            unreadable.append((path, str(e)))
            continue
        for key, msgstr in catalog:
            entries += 1
            pair, reason, stripped = clean_entry(key, msgstr, min_words)
            accelerators += stripped
            if pair is not None and pair in seen:
                reason = "duplicate"
            if reason:
                dropped[reason] += 1
                continue
            seen.add(pair)
            pairs.append(pair)
    splits = parallel_text.split_by_source_hash(pairs, dev_fraction, test_fraction)
    stats = {"entries": entries, "kept": len(pairs), "accelerators_stripped": accelerators}
    return CatalogPairs(language, catalogs, unreadable, splits, dropped, stats)


def report(found):
    """A few lines saying what extract_pairs read, dropped and kept."""
    sizes = ", ".join(f"{split} {len(found.splits[split])}" for split in parallel_text.SPLITS)
    lines = [
        f"en->{found.language}: {len(found.catalogs)} catalogs, {found.stats['entries']} "
        f"entries -> {found.stats['kept']} pairs ({sizes})",
        "  dropped: " + ", ".join(f"{r} {found.dropped[r]}" for r in DROP_REASONS),
        f"  accelerators stripped: {found.stats['accelerators_stripped']}",
    ]
    for _, reason in found.unreadable:
        lines.append(f"  unreadable catalog: {reason}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Count the en->X pairs of the gettext catalogs.")
    parser.add_argument("--language", nargs="+", default=["de"], help="language codes, e.g. de fr")
    parser.add_argument("--locale_dir", default=LOCALE_DIR, help="the system locale directory")
    parser.add_argument(
        "--min_words", type=int, default=DEFAULT_MIN_WORDS, help="words per side, at least"
    )
    args = parser.parse_args(argv)
    for language in args.language:
        try:
            print(report(extract_pairs(language, args.locale_dir, args.min_words)))
        except (ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
