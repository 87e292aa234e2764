"""datasets/gettext_classification.py: English messages -> their program, as TSV splits."""

import pytest

from datasets import download_and_convert_text_classification as tc
from datasets import gettext_classification as gc


def _messages(program, count):
    return [(f"the {program} tool reports message number {i}", f"die Meldung {program} Nummer {i}")
            for i in range(count)]  # fmt: skip


@pytest.fixture
def locale_dir(tmp_path, write_mo):
    root = tmp_path / "locale" / "de" / "LC_MESSAGES"
    shared = ("This message is in both programs", "Diese Meldung ist in beiden")
    write_mo(str(root / "git.mo"), _messages("git", 30) + [shared, ("%s failed", "%s Fehler")])
    write_mo(str(root / "tar.mo"), _messages("tar", 20) + [shared])
    write_mo(str(root / "sed.mo"), _messages("sed", 5))
    write_mo(str(root / "iso_639.mo"), _messages("iso", 40))  # names, not messages
    (root / "broken.mo").write_bytes(b"\x00\x01garbage")
    return str(tmp_path / "locale")


def test_messages_are_labelled_by_program_and_split_by_hash(locale_dir, tmp_path):
    messages, unreadable = gc.program_messages("de", locale_dir)
    assert sorted(messages) == ["git", "sed", "tar"] and len(unreadable) == 1
    assert len(messages["git"]) == 31  # 30 + the shared one; the placeholder is filtered
    splits = gc.build_splits(messages, num_programs=2)
    rows = [row for split in splits.values() for row in split]
    # The two largest programs, the shared message in neither, every message once.
    assert {d for _, d in rows} == {"git", "tar"} and len(rows) == 50
    assert not any("both programs" in m for m, _ in rows)
    again = gc.build_splits(gc.program_messages("de", locale_dir)[0], num_programs=2)
    assert again == splits  # the split is a function of the message alone
    assert splits["train"] and sum(map(len, splits.values())) == 50
    out = tmp_path / "tsv"
    sizes = gc.write_tsv(splits, str(out))
    assert sizes == {k: len(v) for k, v in splits.items()}
    first = (out / "train.tsv").read_text(encoding="utf-8").splitlines()[0]
    assert first == "message\tlabel"
    # The converter's reader skips that header: the rows come back as written.
    read = [(a, label) for a, _, label, _ in tc.read_tsv(str(out / "train.tsv"))]
    assert read == splits["train"]


def test_too_few_programs_is_an_error(locale_dir):
    messages, _ = gc.program_messages("de", locale_dir)
    with pytest.raises(ValueError, match="num_programs must be >= 2"):
        gc.build_splits(messages, num_programs=1)
    with pytest.raises(ValueError, match=r"only 1 program\(s\) with messages: \['git'\]"):
        gc.build_splits({"git": messages["git"]})
