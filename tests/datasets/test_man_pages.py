"""Tests for datasets/man_pages.py on real installed manual pages.

Every Debian system with man-db has the pages of coreutils (an Essential package) and of
man-db itself; the tests copy a few of them into a man tree of their own, with a `.so`
redirect, a symlinked alias and a broken file beside them.
"""

import gzip
import json
import os

import pytest

from datasets import man_pages

# (section, page name) of pages that come with coreutils and man-db.
REAL_PAGES = [("1", "ls"), ("1", "cp"), ("1", "sort"), ("1", "man"), ("5", "manpath"),
              ("8", "mandb"), ("1", "apropos"), ("1", "date")]  # fmt: skip


@pytest.fixture(scope="module")
def installed():
    """{(section, name): path} of the REAL_PAGES installed here (fails if none is)."""
    pages, _ = man_pages.list_pages()
    found = {(s, n): p for s, n, p in pages if (s, n) in REAL_PAGES}
    assert len(found) >= 4, (
        f"found only {sorted(found)} of the man pages {REAL_PAGES} under {man_pages.MAN_ROOT}; "
        "these tests need man-db and coreutils' pages (Debian: apt-get install man-db, and "
        "no 'path-exclude /usr/share/man' in /etc/dpkg/dpkg.cfg.d)"
    )
    return found


@pytest.fixture(scope="module")
def man_tree(tmp_path_factory, installed):
    """A man tree of the installed pages plus an alias, a .so redirect and a broken page."""
    root = tmp_path_factory.mktemp("man")
    for (section, _), path in installed.items():
        folder = root / f"man{section}"
        folder.mkdir(exist_ok=True)
        (folder / os.path.basename(path)).write_bytes(open(path, "rb").read())
    man1 = root / "man1"
    os.symlink("ls.1.gz", man1 / "dir.1.gz")  # an alias: skipped, counted
    with gzip.open(man1 / "redirected.1.gz", "wb") as f:
        f.write(b'.\\" a comment first\n.so man1/ls.1\n')
    (man1 / "broken.1.gz").write_bytes(b"\x1f\x8b not really gzip")
    return str(root), installed


def test_render_real_pages(installed):
    for (section, name), path in installed.items():
        status, text = man_pages.render_page(path)
        assert status == "ok", text
        sections = dict(man_pages.parse_sections(text))
        assert "NAME" in sections and "DESCRIPTION" in sections, (name, list(sections))
        assert sections["NAME"][0].startswith(name), sections["NAME"]
        assert f"{name.upper()}({section})" not in " ".join(
            p for ps in sections.values() for p in ps
        )
        row = man_pages.classification_row(list(sections.items()), section)
        assert row[2] == section and row[0] == " ".join(sections["NAME"])
        assert 20 < len(row[1]) <= man_pages.DEFAULT_DESCRIPTION_CHARS
        assert "\t" not in row[0] + row[1] and "\n" not in row[0] + row[1]


BOXED_PAGE = """.TH BOXED 1 "2026" "tfzoo" "Test Pages"
.SH NAME
boxed \\- a page with a table
.SH DESCRIPTION
The table below has \\(lqrules\\(rq.
.TS
allbox;
l l.
alpha\tbeta
gamma\tdelta
.TE
After the table.
"""


def test_tables_lose_their_rules_and_quotes_become_ascii(tmp_path):
    path = tmp_path / "boxed.1.gz"
    with gzip.open(path, "wb") as f:
        f.write(BOXED_PAGE.encode("utf-8"))
    status, text = man_pages.render_page(str(path))
    assert status == "ok", text
    assert not any(0x2500 <= ord(c) < 0x2580 for c in text)  # no box-drawing words
    assert dict(man_pages.parse_sections(text)) == {
        "NAME": ["boxed - a page with a table"],
        "DESCRIPTION": [
            'The table below has "rules".',
            "alpha beta",
            "gamma delta",
            "After the table.",
        ],
    }


def test_both_renderers_agree_on_the_words(installed):
    path = installed.get(("1", "ls")) or next(iter(installed.values()))
    texts = [man_pages.render_page(path, renderer)[1] for renderer in man_pages.RENDERERS]
    words = [" ".join(t.split()).split() for t in texts]
    common = set(words[0]) & set(words[1])
    assert len(common) > 0.9 * len(set(words[0]))


def test_build_corpus_skips_and_counts(tmp_path, man_tree):
    root, installed = man_tree
    stats = man_pages.build_corpus(str(tmp_path), man_root=root, num_workers=1)
    assert stats["symlinks_skipped"] == 1 and stats["redirects_skipped"] == 1
    assert stats["failed"] == 1 and "broken.1.gz" in stats["failures"][0]
    expected = {}
    for section, _ in installed:
        expected[section] = expected.get(section, 0) + 1
    assert stats["rendered_per_section"] == expected
    with open(tmp_path / man_pages.STATS_FILENAME) as f:
        assert json.load(f) == stats

    # Classification rows: every rendered page, in the split of its name's hash.
    rows = {}
    for split in man_pages.SPLITS:
        with open(
            tmp_path / man_pages.CLASSIFICATION_DIRNAME / f"{split}.tsv", encoding="utf-8"
        ) as f:
            for line in f:
                text_a, text_b, label = line.rstrip("\n").split("\t")
                name = text_a.split()[0].rstrip(",")
                rows[name] = (split, label)
    assert rows == {name: (man_pages.split_of(name), section) for section, name in installed}

    # The corpus: the train-split pages, one sentence per line, a blank line after each.
    with open(tmp_path / man_pages.CORPUS_FILENAME, encoding="utf-8") as f:
        documents = f.read().split("\n\n")
    assert documents[-1] == ""
    documents = documents[:-1]
    train_names = {name for _, name in installed if man_pages.split_of(name) == "train"}
    assert len(documents) == len(train_names) == stats["corpus"]["documents"]
    for document in documents:
        sentences = document.split("\n")
        assert all(s.strip() == s and s for s in sentences)
        assert sentences[0].split()[0].rstrip(",") in train_names  # the NAME line comes first
        assert len(sentences) > 5


def test_max_pages_takes_every_section_first(tmp_path, man_tree):
    root, installed = man_tree
    sections = {section for section, _ in installed}
    stats = man_pages.build_corpus(
        str(tmp_path), max_pages=len(sections), man_root=root, num_workers=1
    )
    assert stats["pages_tried"] == len(sections)
    assert stats["tried_per_section"] == {section: 1 for section in sections}


def test_exclude_leaves_pages_out(tmp_path, man_tree):
    root, installed = man_tree
    stats = man_pages.build_corpus(
        str(tmp_path), man_root=root, num_workers=1, exclude=("man*", "l?")
    )
    names = {name for _, name in installed}
    gone = {n for n in names if n.startswith("man") or len(n) == 2 and n[0] == "l"}
    assert gone and stats["excluded"] == len(gone)
    kept = set()
    for split in man_pages.SPLITS:
        with open(
            tmp_path / man_pages.CLASSIFICATION_DIRNAME / f"{split}.tsv", encoding="utf-8"
        ) as f:
            kept |= {line.split()[0].rstrip(",") for line in f}
    assert kept == names - gone
    with pytest.raises(ValueError, match=r"exclude=\['\*'\] leaves none"):
        man_pages.build_corpus(str(tmp_path), man_root=root, exclude=("*",))


def test_balanced_sample():
    pages = [("1", f"a{i}", f"/m/a{i}") for i in range(50)] + [
        ("3", "x", "/m/x"),
        ("3", "y", "/m/y"),
    ]
    pages += [("8", f"z{i}", f"/m/z{i}") for i in range(5)]
    sample = man_pages.balanced_sample(pages, 7)
    assert [p[0] for p in sample] == ["1", "3", "8", "1", "3", "8", "1"]
    assert man_pages.balanced_sample(pages, 7) == sample  # stable
    assert sorted(man_pages.balanced_sample(pages)) == sorted(pages)


@pytest.mark.parametrize(
    "paragraph, sentences",
    [
        (
            "It runs. Then it stops! Does it? Yes.",
            ["It runs.", "Then it stops!", "Does it?", "Yes."],
        ),
        (
            "Use a flag, e.g. -v. Options (see below) work.",
            ["Use a flag, e.g. -v.", "Options (see below) work."],
        ),
        (
            "Files, i.e. Foo and Bar, etc. Not split there.",
            ["Files, i.e. Foo and Bar, etc. Not split there."],
        ),
        ("Written by J. Smith. Thanks.", ["Written by J. Smith.", "Thanks."]),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        ("version 1.2.3 is out. 2 more.", ["version 1.2.3 is out.", "2 more."]),
        ("no end", ["no end"]),
    ],
)
def test_split_sentences(paragraph, sentences):
    assert man_pages.split_sentences(paragraph) == sentences


def test_split_of_is_stable_and_about_ten_percent():
    names = [f"page{i}" for i in range(2000)]
    splits = [man_pages.split_of(n) for n in names]
    assert splits == [man_pages.split_of(n) for n in names]
    assert 0.07 < splits.count("test") / 2000 < 0.13 and 0.07 < splits.count("dev") / 2000 < 0.13


def test_page_names():
    assert man_pages.page_name_and_extension("CA.pl.1ssl.gz") == ("CA.pl", "1ssl")
    assert man_pages.page_name_and_extension("ls.1.gz") == ("ls", "1")
    assert man_pages.page_name_and_extension("[.1.gz") == ("[", "1")


def test_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no manual page under {tmp_path}"):
        man_pages.build_corpus(str(tmp_path / "out"), man_root=str(tmp_path))
    with pytest.raises(
        ValueError, match=r"unknown renderer 'nroff'; valid renderers: \['groff', 'man'\]"
    ):
        man_pages.build_corpus(str(tmp_path / "out"), renderer="nroff")
    with pytest.raises(ValueError, match=r"unknown man sections \['9'\]"):
        man_pages.build_corpus(str(tmp_path / "out"), sections=("1", "9"))
    only_broken = tmp_path / "broken_tree" / "man1"
    only_broken.mkdir(parents=True)
    (only_broken / "x.1.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="none of the 1 manual pages tried"):
        man_pages.build_corpus(
            str(tmp_path / "out"), man_root=str(tmp_path / "broken_tree"), num_workers=1
        )


def test_command_line_on_the_installed_pages(tmp_path, capsys, installed):
    # The real tree, a small balanced sample, rendered by two processes.
    assert man_pages.main([f"--output_dir={tmp_path}", "--max_pages=24", "--num_workers=2"]) == 0
    out = capsys.readouterr().out
    assert "rendered" in out and "of 24 pages" in out
    with open(tmp_path / man_pages.STATS_FILENAME) as f:
        stats = json.load(f)
    assert len(stats["rendered_per_section"]) >= 5  # the sample spans the sections
    assert stats["corpus"]["sentences"] > 100
