"""Tests of the joint SentencePiece BPE model: reserved ids, round trip, determinism, errors."""

import pytest

from datasets import parallel_text
from preprocessing import sentencepiece_bpe

WORDS_EN = "open save close the file window folder document new old print page all".split()
WORDS_DE = "öffnen speichern schließen die Datei Fenster Ordner Dokument neu alt drucken".split()


def _sentences(n=120):
    sentences = []
    for i in range(n):
        en = " ".join(WORDS_EN[(i * k) % len(WORDS_EN)] for k in (1, 3, 5, 7))
        de = " ".join(WORDS_DE[(i * k) % len(WORDS_DE)] for k in (1, 3, 5, 7))
        sentences += [en, de]
    return sentences


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp("spm") / "spm")
    return sentencepiece_bpe.train_bpe(_sentences(), prefix, vocab_size=320)


def test_reserved_ids_and_eos(model_path):
    tokenizer = sentencepiece_bpe.BpeTokenizer(model_path)
    assert tokenizer.vocab_size == 320
    assert [tokenizer.id_to_piece(i) for i in range(4)] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert (sentencepiece_bpe.PAD_ID, sentencepiece_bpe.UNK_ID) == (0, 1)
    assert (sentencepiece_bpe.BOS_ID, sentencepiece_bpe.EOS_ID) == (2, 3)
    for sentence in _sentences(10):
        ids = tokenizer.encode(sentence)
        assert ids[-1] == 3 and 3 not in ids[:-1]
        assert not {0, 1, 2} & set(ids)  # no pad, unk or bos inside a sentence
    # Merges happened: a frequent word is fewer pieces than characters.
    assert len(tokenizer.encode("speichern")) < len("speichern")
    vocab_lines = open(model_path[: -len(".model")] + ".vocab", encoding="utf-8").readlines()
    assert len(vocab_lines) == 320 and vocab_lines[3].split("\t")[0] == "</s>"


def test_round_trip_including_unseen_characters(model_path):
    tokenizer = sentencepiece_bpe.BpeTokenizer(model_path)
    texts = _sentences(6) + [
        parallel_text.normalise_text("  Größe   ändern\t— 漢字 ✓ «neu»  "),
        "Zoë's naïve café: 100 € (x²)",
    ]
    for text in texts:
        ids = tokenizer.encode(text)
        assert tokenizer.decode(ids) == text
        assert 1 not in ids  # byte fallback: never <unk>
    assert tokenizer.encode_batch(texts) == [tokenizer.encode(t) for t in texts]


def test_decode_stops_at_eos_and_drops_padding(model_path):
    tokenizer = sentencepiece_bpe.BpeTokenizer(model_path)
    ids = tokenizer.encode("open the file")
    assert tokenizer.decode([2] + ids + [0, 0]) == "open the file"
    assert tokenizer.decode(ids[:-1] + [3] + tokenizer.encode("close")) == "open the file"
    assert tokenizer.decode([ids[0], 0, 0] + ids[1:]) == tokenizer.decode(ids)
    assert tokenizer.decode([3, ids[0]]) == ""


def test_training_is_deterministic(tmp_path, model_path):
    again = sentencepiece_bpe.train_bpe(_sentences(), str(tmp_path / "again"), vocab_size=320)
    assert open(again, "rb").read() == open(model_path, "rb").read()
    other = sentencepiece_bpe.train_bpe(_sentences()[:-2], str(tmp_path / "other"), vocab_size=320)
    assert open(other, "rb").read() != open(model_path, "rb").read()


def test_bad_vocab_sizes_and_models(tmp_path):
    with pytest.raises(ValueError, match=r"cannot train a 5000-piece.*<= \d+"):
        sentencepiece_bpe.train_bpe(_sentences(), str(tmp_path / "big"), vocab_size=5000)
    with pytest.raises(ValueError, match="vocab_size 100 is too small.*at least 261"):
        sentencepiece_bpe.train_bpe(_sentences(), str(tmp_path / "small"), vocab_size=100)
    with pytest.raises(ValueError, match="no text"):
        sentencepiece_bpe.train_bpe(["", ""], str(tmp_path / "empty"))
    not_a_model = tmp_path / "junk.model"
    not_a_model.write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.model is not a SentencePiece model"):
        sentencepiece_bpe.BpeTokenizer(str(not_a_model))
    with pytest.raises(FileNotFoundError, match="missing.model does not exist"):
        sentencepiece_bpe.BpeTokenizer(str(tmp_path / "missing.model"))
