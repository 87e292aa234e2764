"""A joint SentencePiece BPE vocabulary for translation: train it, encode text to ids, decode back.

The reserved ids are the ones tensor2tensor's Transformer seeds expect:

    0 <pad>   padding (never produced by encode)
    1 <unk>   a character the model cannot represent (never: pieces fall back to bytes)
    2 <s>     beginning of sentence (not added by encode; decoders may start with it)
    3 </s>    end of sentence, appended to every encoded sentence

One model is trained on the source and the target side together (a joint vocabulary, so
the Transformer can share its embedding and softmax). Training reads no file and
downloads nothing: it takes the sentences from memory, uses every one of them in their
order (no sampling, no shuffle) in one thread, so the same sentences, vocabulary size and
seed give a byte-identical model. SentencePiece's own normalisation is off ('identity'):
callers normalise text first (datasets/parallel_text.py's `normalise_text`), and byte
fallback makes every character representable, so `decode(encode(text)) == text`.

    model_path = sentencepiece_bpe.train_bpe(sentences, "/data/spm", vocab_size=8000)
    tokenizer = sentencepiece_bpe.BpeTokenizer(model_path)
    ids = tokenizer.encode("Open the file")     # [..., 3]
    tokenizer.decode(ids) == "Open the file"
"""

import io
import os

import sentencepiece

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
RESERVED_PIECES = {PAD_ID: "<pad>", UNK_ID: "<unk>", BOS_ID: "<s>", EOS_ID: "</s>"}

MODEL_SUFFIX = ".model"
VOCAB_SUFFIX = ".vocab"
DEFAULT_VOCAB_SIZE = 8000
DEFAULT_SEED = 0
# Characters covered by single pieces; the rarest 0.05% fall back to UTF-8 bytes
# (SentencePiece's recommended value for scripts with large alphabets; lossless here).
DEFAULT_CHARACTER_COVERAGE = 0.9995


def _trainer_options(vocab_size, seed, character_coverage, max_sentence_length):
    return dict(
        model_type="bpe",
        vocab_size=int(vocab_size),
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        pad_piece=RESERVED_PIECES[PAD_ID],
        unk_piece=RESERVED_PIECES[UNK_ID],
        bos_piece=RESERVED_PIECES[BOS_ID],
        eos_piece=RESERVED_PIECES[EOS_ID],
        character_coverage=character_coverage,
        byte_fallback=True,
        normalization_rule_name="identity",
        # Determinism: every sentence, in the order given, one thread.
        input_sentence_size=0,
        shuffle_input_sentence=False,
        num_threads=1,
        max_sentence_length=int(max_sentence_length),
        minloglevel=2,  # SentencePiece logs every step at info level otherwise
    )


def _atomic_write(path, data):
    partial = path + ".partial"
    with open(partial, "wb") as f:
        f.write(data)
    os.replace(partial, path)


def train_bpe(
    sentences,
    model_prefix,
    vocab_size=DEFAULT_VOCAB_SIZE,
    seed=DEFAULT_SEED,
    character_coverage=DEFAULT_CHARACTER_COVERAGE,
    max_sentence_length=16384,
):
    """Trains a BPE model on sentences; writes {model_prefix}.model and {model_prefix}.vocab.

    Both files are written atomically (a reader never sees half a model).

    Args:
      sentences: iterable of str, the training text of both languages (normalised).
      model_prefix: path without suffix of the files to write.
      vocab_size: pieces in the vocabulary, the 4 reserved ids and 256 byte pieces included.
      seed: SentencePiece's random seed (BPE training itself does not sample; kept so the
        whole conversion is reproducible under a seed).
      character_coverage: share of characters that get pieces of their own.
      max_sentence_length: longest sentence in bytes used for training (longer: skipped).

    Returns:
      the path of the .model file.

    Raises:
      ValueError: no sentences, or a vocab_size the text cannot fill (says the maximum).
    """
    sentences = [s for s in sentences if s]
    if not sentences:
        raise ValueError(f"no text to train the SentencePiece model {model_prefix} on")
    minimum = len(RESERVED_PIECES) + 256 + 1
    if int(vocab_size) < minimum:
        raise ValueError(
            f"vocab_size {vocab_size} is too small: the 4 reserved ids and 256 byte pieces "
            f"need at least {minimum}"
        )
    sentencepiece.set_random_generator_seed(int(seed))
    model = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            **_trainer_options(vocab_size, seed, character_coverage, max_sentence_length),
        )
    except RuntimeError as e:
        # e.g. "Vocabulary size too high (9000). Please set it to a value <= 812."
        raise ValueError(
            f"cannot train a {vocab_size}-piece BPE model on {len(sentences)} sentences "
            f"for {model_prefix}: {e}"
        ) from None
    directory = os.path.dirname(os.path.abspath(model_prefix))
    os.makedirs(directory, exist_ok=True)
    model_path = model_prefix + MODEL_SUFFIX
    _atomic_write(model_path, model.getvalue())
    tokenizer = BpeTokenizer(model_path)
    _atomic_write(model_prefix + VOCAB_SUFFIX, tokenizer.vocab_text().encode("utf-8"))
    return model_path


class BpeTokenizer:
    """Encodes text to ids ending with EOS_ID and decodes ids back, with a trained model."""

    def __init__(self, model_path):
        """Loads model_path (a .model file written by train_bpe).

        Raises:
          FileNotFoundError: no such file.
          ValueError: the file is not a SentencePiece model, or its reserved ids differ.
        """
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"SentencePiece model {model_path} does not exist")
        self.model_path = model_path
        self._processor = sentencepiece.SentencePieceProcessor()
        try:
            self._processor.load(model_path)
        except (OSError, RuntimeError) as e:
            raise ValueError(f"{model_path} is not a SentencePiece model: {e}") from None
        reserved = {
            PAD_ID: self._processor.pad_id(),
            UNK_ID: self._processor.unk_id(),
            BOS_ID: self._processor.bos_id(),
            EOS_ID: self._processor.eos_id(),
        }
        if any(reserved[i] != i for i in reserved):
            raise ValueError(
                f"{model_path} reserves ids pad/unk/bos/eos = {list(reserved.values())}; "
                f"expected {list(reserved)} (train it with train_bpe)"
            )

    @property
    def vocab_size(self):
        """Number of ids, the reserved ones included."""
        return self._processor.get_piece_size()

    def encode(self, text):
        """ids of one (normalised) sentence, EOS_ID last; text: str."""
        return self._processor.encode(text, out_type=int) + [EOS_ID]

    def encode_batch(self, texts):
        """encode() of each text of a list, faster than one by one."""
        return [ids + [EOS_ID] for ids in self._processor.encode(list(texts), out_type=int)]

    def decode(self, ids):
        """The text of ids, read up to the first EOS_ID (excluded); PAD_ID and BOS_ID are dropped.

        Args:
          ids: a sequence of ints (a list, or a 1-D numpy array, e.g. a decoder's output row).
        """
        kept = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                kept.append(i)
        return self._processor.decode(kept)

    def id_to_piece(self, i):
        return self._processor.id_to_piece(int(i))

    def vocab_text(self):
        """The vocabulary as SentencePiece's .vocab file: 'piece<TAB>score' per id, in id order."""
        return "".join(
            f"{self._processor.id_to_piece(i)}\t{self._processor.get_score(i):g}\n"
            for i in range(self.vocab_size)
        )
