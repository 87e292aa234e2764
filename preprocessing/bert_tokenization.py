"""BERT's WordPiece: learning a vocabulary from local text, and the tokenizer that reads one.

Two halves, used by `datasets/create_pretraining_data.py` and the text-classification
converter:

* `learn_wordpiece_vocab(files, vocab_file, vocab_size)` learns a WordPiece vocabulary from
  raw text with the `tokenizers` library (its WordPiece trainer behind BERT's normaliser
  and pre-tokenizer) and writes it as google-research/bert's `vocab.txt`: one token per
  line, the line number is the id, [PAD] = 0, then `num_unused` [unusedN] slots (99 by
  default, so [UNK], [CLS], [SEP], [MASK] get google's ids 100-103), the learned word
  starts and "##" continuations, in a canonical order so the same text gives the same
  ids. Why `tokenizers` rather than tensorflow-text's `bert_vocab_from_dataset`: each
  tensorflow-text release is a native build for one TensorFlow minor version that it
  pins, one more large package to move in lockstep with TensorFlow; and its learner is
  pure Python over a tf.data pipeline, while the `tokenizers` trainer is compiled Rust:
  an 8000-token vocabulary of all the installed man pages (59 MB of text) took 22 s on
  2 shared cores.
* `FullTokenizer(vocab_file, do_lower_case)` tokenizes as google-research/bert's
  FullTokenizer does, for any google `vocab.txt`: a basic pass (drop control characters
  and U+0000 / U+FFFD, turn whitespace into spaces, put spaces around CJK ideographs,
  split on whitespace, lower-case and strip accents (NFD, drop Mn) when do_lower_case,
  split off every punctuation character: the ASCII symbol ranges and Unicode P*), then
  greedy longest-match-first WordPiece with the "##" continuation prefix; a word of more
  than 200 characters, or one the vocabulary cannot spell, becomes [UNK].

    python preprocessing/bert_tokenization.py --input_files=corpus.txt \\
        --vocab_file=vocab.txt --vocab_size=8000

    tokenizer = bert_tokenization.FullTokenizer("vocab.txt", do_lower_case=True)
    ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("Hello, world!"))
"""

import argparse
import functools
import os
import re
import sys
import unicodedata

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"
MASK_TOKEN = "[MASK]"
# Every vocabulary the BERT data layer reads must hold these.
REQUIRED_TOKENS = (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN)
CONTINUATION_PREFIX = "##"
# google-research/bert: longer words are not split, they become [UNK].
MAX_INPUT_CHARS_PER_WORD = 200
# google's vocabularies have [unused0..98] between [PAD] and [UNK].
DEFAULT_NUM_UNUSED = 99
DEFAULT_VOCAB_SIZE = 30522  # bert-base-uncased
DEFAULT_MIN_FREQUENCY = 2
DEFAULT_LIMIT_ALPHABET = 1000

# The CJK Unified Ideographs blocks (and their extensions and compatibility forms) that
# google's BasicTokenizer splits into one token per character. Hangul, kana and other
# scripts are written with spaces and are left alone.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
# Character classes of the basic pass.
_KEEP, _DROP, _SPACE, _CJK = range(4)
# ASCII fast path: control characters other than tab / newline / carriage return go,
# those three become spaces, every ASCII symbol is punctuation.
_ASCII_CLEAN = {cp: None for cp in range(32) if chr(cp) not in "\t\n\r"}
_ASCII_CLEAN.update({ord("\t"): " ", ord("\n"): " ", ord("\r"): " ", 127: None, 0: None})
_ASCII_PUNCTUATION_RE = re.compile(r"([!-/:-@\[-`{-~])")


@functools.lru_cache(maxsize=65536)
def _char_class(char):
    """What the cleaning pass does with one character: _KEEP, _DROP, _SPACE or _CJK."""
    cp = ord(char)
    if cp == 0 or cp == 0xFFFD:
        return _DROP
    if char in " \t\n\r":
        return _SPACE
    category = unicodedata.category(char)
    if category == "Zs":
        return _SPACE
    if category in ("Cc", "Cf"):
        return _DROP
    if any(low <= cp <= high for low, high in _CJK_RANGES):
        return _CJK
    return _KEEP


@functools.lru_cache(maxsize=65536)
def is_punctuation(char):
    """True for what BERT splits off: ASCII symbols (even $ ^ `, Unicode S*) and Unicode P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def strip_accents(text):
    """text in NFD without its combining marks (Unicode category Mn)."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _split_on_punctuation(word):
    if word.isascii():
        return _ASCII_PUNCTUATION_RE.sub(r" \1 ", word).split()
    pieces, current = [], []
    for char in word:
        if is_punctuation(char):
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(char)
        else:
            current.append(char)
    if current:
        pieces.append("".join(current))
    return pieces


class BasicTokenizer:
    """The first pass of BERT's tokenizer: cleaning, CJK, lower-casing, punctuation."""

    def __init__(self, do_lower_case=True):
        self.do_lower_case = do_lower_case

    def _clean(self, text):
        if text.isascii():
            return text.translate(_ASCII_CLEAN)
        out = []
        for char in text:
            kind = _char_class(char)
            if kind == _KEEP:
                out.append(char)
            elif kind == _SPACE:
                out.append(" ")
            elif kind == _CJK:
                out.append(f" {char} ")
        return "".join(out)

    def tokenize(self, text):
        """Splits text into words and punctuation marks (lower-cased, accents stripped if asked)."""
        tokens = []
        # str.split() splits on every Unicode whitespace (as google's whitespace_tokenize).
        for word in self._clean(text).split():
            if self.do_lower_case:
                word = word.lower()
                if not word.isascii():
                    word = strip_accents(word)
            tokens.extend(_split_on_punctuation(word))
        return tokens


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece over one vocabulary, "##" marking continuations."""

    def __init__(
        self, vocab, unk_token=UNK_TOKEN, max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD
    ):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        # No piece is longer than the longest vocabulary entry: start the search there.
        self._max_piece_chars = max((len(t) for t in vocab), default=0)
        self._cache = {}

    def _word_pieces(self, word):
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        pieces, start = [], 0
        while start < len(word):
            prefix = CONTINUATION_PREFIX if start else ""
            end = min(len(word), start + self._max_piece_chars)
            while end > start:
                piece = prefix + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            else:
                return [self.unk_token]  # some part of the word is not in the vocabulary
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text):
        """WordPiece tokens of whitespace-separated words (the output of BasicTokenizer)."""
        output = []
        for word in text.split():
            pieces = self._cache.get(word)
            if pieces is None:
                pieces = self._word_pieces(word)
                if len(self._cache) > 500_000:  # bounded: corpora have long tails
                    self._cache.clear()
                self._cache[word] = pieces
            output.extend(pieces)
        return output


def load_vocab(vocab_file, required_tokens=REQUIRED_TOKENS):
    """Reads a google `vocab.txt` (one token per line, the line index is its id).

    Lines are stripped of surrounding whitespace as google's loader does; a token that
    appears twice keeps the id of its last line (as google's) so ids match its models.

    Args:
      vocab_file: path of the vocabulary.
      required_tokens: tokens that must be present.

    Returns:
      dict token -> id, in file order.

    Raises:
      FileNotFoundError: no such file.
      ValueError: the file is empty or lacks some required tokens (names the file and them).
    """
    if not os.path.isfile(vocab_file):
        raise FileNotFoundError(f"vocabulary file {vocab_file} does not exist")
    vocab = {}
    with open(vocab_file, encoding="utf-8") as f:
        for index, line in enumerate(f):
            vocab[line.strip()] = index
    if not vocab:
        raise ValueError(f"vocabulary file {vocab_file} is empty (expected one token per line)")
    missing = [token for token in required_tokens if token not in vocab]
    if missing:
        raise ValueError(
            f"vocabulary file {vocab_file} lacks the special token(s) {', '.join(missing)}; "
            f"a BERT vocabulary needs all of {', '.join(required_tokens)}, one per line"
        )
    return vocab


class FullTokenizer:
    """google-research/bert's FullTokenizer: BasicTokenizer then WordPiece, over a vocab.txt.

    Attributes:
      vocab: dict token -> id.
      inv_vocab: dict id -> token.
      do_lower_case: whether text is lower-cased and stripped of accents.
    """

    def __init__(self, vocab_file, do_lower_case=True):
        self.vocab_file = vocab_file
        self.vocab = load_vocab(vocab_file)
        self.inv_vocab = {index: token for token, index in self.vocab.items()}
        self.do_lower_case = do_lower_case
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab)

    @property
    def vocab_size(self):
        """Number of ids (lines of the file)."""
        return max(self.vocab.values()) + 1

    def tokenize(self, text):
        """Text -> WordPiece tokens."""
        return self.wordpiece_tokenizer.tokenize(" ".join(self.basic_tokenizer.tokenize(text)))

    def convert_tokens_to_ids(self, tokens):
        """Tokens -> ids (KeyError for a token outside the vocabulary)."""
        return [self.vocab[token] for token in tokens]

    def convert_ids_to_tokens(self, ids):
        """Ids -> tokens."""
        return [self.inv_vocab[i] for i in ids]


def _special_tokens(num_unused):
    return [PAD_TOKEN] + [f"[unused{i}]" for i in range(num_unused)] + list(REQUIRED_TOKENS[1:])


def learn_wordpiece_vocab(
    files,
    vocab_file,
    vocab_size=DEFAULT_VOCAB_SIZE,
    do_lower_case=True,
    min_frequency=DEFAULT_MIN_FREQUENCY,
    num_unused=DEFAULT_NUM_UNUSED,
    limit_alphabet=DEFAULT_LIMIT_ALPHABET,
):
    """Learns a WordPiece vocabulary from raw text files and writes it as a google vocab.txt.

    The text goes through BERT's normaliser (clean, CJK, lower-case + strip accents when
    do_lower_case) and pre-tokenizer (whitespace and punctuation) before the WordPiece
    trainer of the `tokenizers` library; the result is deterministic for the same input.

    Args:
      files: list of text file paths (any layout; lines are read as text).
      vocab_file: where to write the vocabulary (written atomically).
      vocab_size: number of tokens in the vocabulary, special ones included (an upper
        bound: a small corpus may yield fewer).
      do_lower_case: learn an uncased vocabulary (use the same value when tokenizing).
      min_frequency: a merge must be seen at least this often.
      num_unused: [unusedN] slots after [PAD] (99 as google's; 0 for none).
      limit_alphabet: most distinct characters kept as single-character tokens.

    Returns:
      the list of tokens written, index = id.

    Raises:
      FileNotFoundError: a file is missing.
      ValueError: vocab_size too small for the special tokens, or no text in the files.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    files = [os.fspath(f) for f in files]
    for path in files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"text file {path} does not exist")
    if not any(os.path.getsize(path) > 0 and _has_text(path) for path in files):
        raise ValueError(f"no text to learn a vocabulary from in {', '.join(files)}")
    special = _special_tokens(num_unused)
    if vocab_size <= len(special):
        raise ValueError(
            f"vocab_size {vocab_size} leaves no room for learned tokens after the "
            f"{len(special)} special ones (num_unused={num_unused})"
        )
    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK_TOKEN))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=do_lower_case
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special,
        limit_alphabet=limit_alphabet,
        continuing_subword_prefix=CONTINUATION_PREFIX,
        show_progress=False,
    )
    tokenizer.train(files, trainer)
    by_id = sorted(tokenizer.get_vocab(with_added_tokens=True).items(), key=lambda kv: kv[1])
    tokens = [token for token, _ in by_id]
    if tokens[: len(special)] != special:
        raise AssertionError(f"the trainer did not put the special tokens first: {tokens[:8]}")
    # The trainer's order of the continuation alphabet and of equally frequent merges
    # changes from run to run (Rust hash maps); the set does not. WordPiece does not
    # depend on the order, so write a canonical one: ids are then the same every run.
    tokens = special + sorted(tokens[len(special) :], key=_canonical_order)
    os.makedirs(os.path.dirname(os.path.abspath(vocab_file)), exist_ok=True)
    partial = vocab_file + ".partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.write("".join(token + "\n" for token in tokens))
    os.replace(partial, vocab_file)
    return tokens


def _canonical_order(token):
    """Single characters, then "##" + a character, then word starts, then continuations."""
    is_continuation = token.startswith(CONTINUATION_PREFIX)
    body = token[len(CONTINUATION_PREFIX) :] if is_continuation else token
    return (len(body) > 1, is_continuation, token)


def _has_text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return any(line.strip() for line in f)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Learn a WordPiece vocabulary (google vocab.txt) from local text files."
    )
    parser.add_argument("--input_files", required=True, help="comma-separated text files")
    parser.add_argument("--vocab_file", required=True, help="the vocab.txt to write")
    parser.add_argument(
        "--vocab_size",
        type=int,
        default=DEFAULT_VOCAB_SIZE,
        help="tokens in the vocabulary, special ones included (upper bound)",
    )
    parser.add_argument(
        "--do_lower_case",
        type=lambda v: v.lower() in ("1", "true", "yes"),
        default=True,
        help="true: an uncased vocabulary (lower-case, strip accents); false: cased",
    )
    parser.add_argument(
        "--min_frequency",
        type=int,
        default=DEFAULT_MIN_FREQUENCY,
        help="least number of occurrences of a merged pair",
    )
    parser.add_argument(
        "--num_unused",
        type=int,
        default=DEFAULT_NUM_UNUSED,
        help="[unusedN] slots after [PAD] (99: google's ids for [UNK] [CLS] [SEP] [MASK])",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        tokens = learn_wordpiece_vocab(
            [f for f in args.input_files.split(",") if f],
            args.vocab_file,
            vocab_size=args.vocab_size,
            do_lower_case=args.do_lower_case,
            min_frequency=args.min_frequency,
            num_unused=args.num_unused,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(tokens)} tokens to {args.vocab_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
