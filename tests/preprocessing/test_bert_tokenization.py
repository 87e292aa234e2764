"""Tests for preprocessing/bert_tokenization.py: google's tokenizer rules, vocab checks, learning.

The tokenizer is checked twice: against hand-written expectations of each rule, and
against the `tokenizers` library's BertWordPieceTokenizer (an independent Rust
implementation) on the same vocabulary over real rendered man pages plus text in other
scripts.
"""

import os

import pytest

from datasets import man_pages
from preprocessing import bert_tokenization

# Pages every Debian system with man-db has: coreutils (Essential) and man-db itself.
REAL_PAGES = ("ls", "cp", "sort", "date", "man", "apropos", "mandb", "manpath")

# Lines in other scripts and with Unicode punctuation, accents, CJK; no characters on which
# the two implementations are known to differ (see test_differences_from_the_library_are_googles).
OTHER_SCRIPTS = [
    "Café déjà vu: naïve façade, résumé, coöperate — Ångström and Øresund.",
    "Größe, Straße; ÄÖÜ äöü ß! ¿Dónde está el niño? ¡Olé!",
    "Ελληνικά: Καλημέρα κόσμε; οδός.",
    "Русский текст: Привет, мир! Ёлка «ёлочка» — «кавычки».",
    "中文分词测试：我爱北京天安门。日本語のテキスト、カタカナ「テスト」",
    "한국어 문장입니다. 𠀀𠀁 and 丽 are CJK too.",
    "Mixed:foo/bar\\baz|qux~tilde`back^caret$dollar#hash@at_under+plus=eq",
    "Quotes ‘single’ “double” „low“ ‹angle› and ellipsis… and dash‐hyphen",
    "Symbols € £ ¥ © ® ™ ° ± × ÷ ≤ ≥ → ← are not punctuation but §¶ are.",
    "Tabs\tand\nnewlines\r\nand\u3000ideographic\u00a0nbsp\u2009thin spaces",
    "Zero\u200bwidth\u200dJoiner\ufeffBOM and soft\u00adhyphen (format chars vanish)",
    "a" * 150 + " " + "b" * 201 + " long words",
    "ﬁ ligature, ² superscript, Ⅻ numeral, ｆｕｌｌｗｉｄｔｈ",
    "İstanbul ǅemal",
]

# Compared but not learned from: characters outside the vocabulary's alphabet.
UNSEEN = [
    "Unseen: ☃ snowman, ✓check, 🙂 emoji, Ꭰ Cherokee, ᚠᚢᚦ runes, ⠓⠑ braille",
    "Mixed unknowns: x☃y 𝔘𝔫𝔦 ⅓ and known words around them.",
]


def _write_vocab(path, tokens):
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in tokens))
    return str(path)


@pytest.fixture(scope="module")
def man_page_lines():
    """The text lines of a few real, rendered man pages (fails if none is installed)."""
    pages, _ = man_pages.list_pages()
    paths = [path for _, name, path in pages if name in REAL_PAGES]
    assert paths, (
        f"none of the man pages {REAL_PAGES} is installed under {man_pages.MAN_ROOT}; "
        "this test needs man-db and coreutils' pages (Debian: apt-get install man-db)"
    )
    lines = []
    for path in paths:
        status, text = man_pages.render_page(path)
        assert status == "ok", text
        lines.extend(line for line in text.split("\n") if line.strip())
    return lines


def _learn(folder, lines, lower):
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    vocab_file = str(folder / f"vocab_{'uncased' if lower else 'cased'}.txt")
    tokens = bert_tokenization.learn_wordpiece_vocab(
        [str(corpus)],
        vocab_file,
        vocab_size=2000,
        do_lower_case=lower,
        num_unused=5,
        limit_alphabet=300,
    )
    return vocab_file, tokens, str(corpus)


@pytest.fixture(scope="module")
def learned_vocab(tmp_path_factory, man_page_lines):
    """(vocab file, tokens, corpus file) of a 2000-token uncased vocabulary of the sample."""
    return _learn(tmp_path_factory.mktemp("vocab"), man_page_lines + OTHER_SCRIPTS, True)


@pytest.fixture(scope="module")
def cased_vocab(tmp_path_factory, man_page_lines):
    """The same, cased."""
    return _learn(tmp_path_factory.mktemp("vocab"), man_page_lines + OTHER_SCRIPTS, False)


# ---------------------------------------------------------------------------------------
# The basic pass, rule by rule.


@pytest.mark.parametrize(
    "text, lower, expected",
    [
        # whitespace cleaned, lower-cased, punctuation split off
        (" \tHeLLo!how  \n Are yoU?  ", True, ["hello", "!", "how", "are", "you", "?"]),
        (" \tHeLLo!how  \n Are yoU?  ", False, ["HeLLo", "!", "how", "Are", "yoU", "?"]),
        # accents stripped only when lower-casing
        ("Héllo Ünïcödé", True, ["hello", "unicode"]),
        ("Héllo Ünïcödé", False, ["Héllo", "Ünïcödé"]),
        # CJK ideographs one per token; kana and hangul are not split
        ("ah博推zz", True, ["ah", "博", "推", "zz"]),
        ("カタカナ한국", False, ["カタカナ한국"]),
        # lower-casing leaves text in NFD (Hangul syllables become conjoining jamo)
        ("한국", True, ["\u1112\u1161\u11ab\u1100\u116e\u11a8"]),
        # control and format characters, U+0000 and U+FFFD removed, joining the word
        ("a\x00b\x07c\ufffdd\u200be\x7ff", True, ["abcdef"]),
        # Unicode space separators are whitespace
        ("a\u3000b\u00a0c\u2009d", True, ["a", "b", "c", "d"]),
        # ASCII symbols split even where Unicode calls them symbols (S*), not punctuation
        ("a$b^c`d+e<f", True, ["a", "$", "b", "^", "c", "`", "d", "+", "e", "<", "f"]),
        # Unicode punctuation (P*) split, non-ASCII symbols (Sc, Sm) kept inside the word
        ("x¿y«z»w", True, ["x", "¿", "y", "«", "z", "»", "w"]),
        ("a€b±c", True, ["a€b±c"]),
        ("", True, []),
        ("  \n\t ", True, []),
    ],
)
def test_basic_tokenizer_rules(text, lower, expected):
    assert bert_tokenization.BasicTokenizer(do_lower_case=lower).tokenize(text) == expected


# ---------------------------------------------------------------------------------------
# WordPiece.

PIECES = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "play", "pl", "##ay", "##ing", "##er",
          "##s", "re", "##play", "a", "##a", ",", "!"]  # fmt: skip


@pytest.mark.parametrize(
    "text, expected",
    [
        ("replaying", ["re", "##play", "##ing"]),
        ("players", ["play", "##er", "##s"]),  # longest match first: play, not pl + ##ay
        ("plx", ["[UNK]"]),  # one unknown piece makes the whole word unknown
        ("play plx, play!", ["play", "[UNK]", ",", "play", "!"]),
        ("a" * 200, ["a"] + ["##a"] * 199),
        ("a" * 201, ["[UNK]"]),  # longer than 200 characters
    ],
)
def test_wordpiece_rules(tmp_path, text, expected):
    tokenizer = bert_tokenization.FullTokenizer(_write_vocab(tmp_path / "v.txt", PIECES))
    assert tokenizer.tokenize(text) == expected


def test_full_tokenizer_ids_round_trip(tmp_path):
    tokenizer = bert_tokenization.FullTokenizer(_write_vocab(tmp_path / "v.txt", PIECES))
    tokens = tokenizer.tokenize("RePlaying, PLAYERS!")
    assert tokens == ["re", "##play", "##ing", ",", "play", "##er", "##s", "!"]
    ids = tokenizer.convert_tokens_to_ids(tokens)
    assert ids == [PIECES.index(t) for t in tokens]
    assert tokenizer.convert_ids_to_tokens(ids) == tokens
    assert tokenizer.vocab_size == len(PIECES)
    cased = bert_tokenization.FullTokenizer(str(tmp_path / "v.txt"), do_lower_case=False)
    assert cased.tokenize("RePlaying play") == ["[UNK]", "play"]


# ---------------------------------------------------------------------------------------
# Vocabulary files.


@pytest.mark.parametrize(
    "tokens, missing",
    [
        (["[PAD]", "[UNK]", "[SEP]", "hello"], ["[CLS]", "[MASK]"]),
        (["[CLS]", "[SEP]", "[MASK]", "x"], ["[PAD]", "[UNK]"]),
    ],
)
def test_vocab_without_special_tokens_is_an_error(tmp_path, tokens, missing):
    path = _write_vocab(tmp_path / "bad_vocab.txt", tokens)
    with pytest.raises(ValueError) as error:
        bert_tokenization.FullTokenizer(path)
    message = str(error.value)
    assert path in message
    for token in missing:
        assert token in message.split("lacks")[1].split(";")[0]
    for token in set(bert_tokenization.REQUIRED_TOKENS) - set(missing):
        assert token not in message.split("lacks")[1].split(";")[0]


def test_empty_or_missing_vocab_is_an_error(tmp_path):
    empty = _write_vocab(tmp_path / "empty.txt", [])
    with pytest.raises(ValueError, match="empty.txt is empty"):
        bert_tokenization.load_vocab(empty)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        bert_tokenization.load_vocab(str(tmp_path / "nope.txt"))


def test_vocab_ids_are_line_numbers(tmp_path):
    # As google's loader: stripped lines, the last of two equal lines wins.
    path = _write_vocab(tmp_path / "v.txt", PIECES + [" play "])
    vocab = bert_tokenization.load_vocab(path)
    assert vocab["[CLS]"] == 2 and vocab["##s"] == PIECES.index("##s")
    assert vocab["play"] == len(PIECES)


# ---------------------------------------------------------------------------------------
# Against the tokenizers library.


def _library_tokenizer(vocab_file, lower):
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.models import WordPiece

    library = BertWordPieceTokenizer(vocab_file, lowercase=lower)
    # google's limit is 200 characters per word; the library's default is 100.
    library._tokenizer.model = WordPiece.from_file(
        vocab_file, unk_token="[UNK]", max_input_chars_per_word=200
    )
    return library


@pytest.mark.parametrize("lower", [True, False])
def test_matches_the_tokenizers_library(learned_vocab, cased_vocab, man_page_lines, lower):
    vocab_file, _, _ = learned_vocab if lower else cased_vocab
    lines = man_page_lines + OTHER_SCRIPTS + UNSEEN
    ours = bert_tokenization.FullTokenizer(vocab_file, do_lower_case=lower)
    library = _library_tokenizer(vocab_file, lower)
    theirs = [encoding.tokens[1:-1] for encoding in library.encode_batch(lines)]  # no CLS/SEP
    mismatches = [
        (line, mine, other)
        for line, mine, other in zip(lines, (ours.tokenize(line) for line in lines), theirs)
        if mine != other
    ]
    assert not mismatches, f"{len(mismatches)} of {len(lines)} lines differ, e.g. {mismatches[:2]}"
    # The sample exercises every rule: continuations, unknown words, CJK, accents.
    flat = [t for tokens in theirs for t in tokens]
    assert len(lines) > 1000 and len(flat) > 20000
    assert sum(t.startswith("##") for t in flat) > 100
    assert flat.count("[UNK]") >= 8
    assert "北" in flat and "门" in flat
    # Accents are stripped exactly when lower-casing.
    assert any("é" in t for t in flat) != lower
    assert any(t != t.lower() for t in flat if t != "[UNK]") != lower


def test_differences_from_the_library_are_googles(learned_vocab):
    # Where the Rust library differs from google's Python rules, we follow google: the
    # library also treats unassigned / private-use characters as controls (google keeps
    # them) and U+000B / U+0085 as whitespace (google drops them as controls), and it
    # lower-cases character by character where Python (google's str.lower) applies the
    # Greek final-sigma rule.
    vocab_file, _, _ = learned_vocab
    basic = bert_tokenization.BasicTokenizer(do_lower_case=True)
    assert basic.tokenize("a\ue000b") == ["a\ue000b"]  # private use: kept, as google's
    assert basic.tokenize("a\x0bb\x85c") == ["abc"]  # C0/C1 controls: dropped, as google's
    assert basic.tokenize("ΟΔΟΣ ΣΊΣΥΦΟΣ") == ["οδος", "σισυφος"]  # final sigma, as google's
    library = _library_tokenizer(vocab_file, True)
    assert library.normalizer.normalize_str("ΟΔΟΣ") == "οδοσ"
    assert library.normalizer.normalize_str("a\ue000b") == "ab"


# ---------------------------------------------------------------------------------------
# Learning a vocabulary.


def test_learned_vocab_layout_size_and_use(learned_vocab):
    vocab_file, tokens, corpus = learned_vocab
    with open(vocab_file, encoding="utf-8") as f:
        assert [line.rstrip("\n") for line in f] == tokens
    assert len(tokens) == 2000  # the corpus is large enough to fill the size asked for
    assert len(set(tokens)) == len(tokens)
    specials = (
        ["[PAD]"] + [f"[unused{i}]" for i in range(5)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    )
    assert tokens[: len(specials)] == specials
    learned = tokens[len(specials) :]
    continuations = [t for t in learned if t.startswith("##")]
    assert len(continuations) > 100 and all(len(t) > 2 for t in continuations)
    assert all(" " not in t and t for t in learned)
    assert all(t == t.lower() for t in learned)  # uncased
    # It spells its own corpus with few unknown words.
    tokenizer = bert_tokenization.FullTokenizer(vocab_file)
    with open(corpus, encoding="utf-8") as f:
        pieces = [t for line in f for t in tokenizer.tokenize(line)]
    assert pieces.count("[UNK]") / len(pieces) < 0.005


def test_learning_is_deterministic_and_google_ids_by_default(tmp_path, learned_vocab):
    _, _, corpus = learned_vocab
    first = bert_tokenization.learn_wordpiece_vocab([corpus], str(tmp_path / "a.txt"), 500)
    second = bert_tokenization.learn_wordpiece_vocab([corpus], str(tmp_path / "b.txt"), 500)
    assert first == second and len(first) == 500
    assert (tmp_path / "a.txt").read_bytes() == (tmp_path / "b.txt").read_bytes()
    vocab = bert_tokenization.load_vocab(str(tmp_path / "a.txt"))
    assert [vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [
        0,
        100,
        101,
        102,
        103,
    ]
    cased = bert_tokenization.learn_wordpiece_vocab(
        [corpus], str(tmp_path / "c.txt"), 500, do_lower_case=False
    )
    assert any(t != t.lower() for t in cased)


def test_small_corpus_gives_at_most_vocab_size(tmp_path):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("one two three\ntwo three\n", encoding="utf-8")
    tokens = bert_tokenization.learn_wordpiece_vocab([str(corpus)], str(tmp_path / "v.txt"), 1000)
    assert 104 < len(tokens) < 1000


def test_learning_bad_input(tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="blank.txt"):
        bert_tokenization.learn_wordpiece_vocab([str(blank)], str(tmp_path / "v.txt"), 500)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        bert_tokenization.learn_wordpiece_vocab(
            [str(tmp_path / "missing.txt")], str(tmp_path / "v.txt"), 500
        )
    text = tmp_path / "t.txt"
    text.write_text("hello world\n", encoding="utf-8")
    with pytest.raises(ValueError, match="vocab_size 50"):
        bert_tokenization.learn_wordpiece_vocab([str(text)], str(tmp_path / "v.txt"), 50)
    assert not os.path.exists(tmp_path / "v.txt")


def test_command_line(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("hello world, hello tokens\n" * 5, encoding="utf-8")
    vocab_file = tmp_path / "vocab.txt"
    argv = [
        f"--input_files={text}",
        f"--vocab_file={vocab_file}",
        "--vocab_size=200",
        "--num_unused=0",
    ]
    assert bert_tokenization.main(argv) == 0
    assert vocab_file.read_text(encoding="utf-8").split("\n")[:5] == [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
    ]  # fmt: skip
    assert (
        bert_tokenization.main(
            [f"--input_files={tmp_path / 'no.txt'}", f"--vocab_file={vocab_file}"]
        )
        == 1
    )
    assert "no.txt" in capsys.readouterr().err
