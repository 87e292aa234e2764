"""Tests of the gettext reader on .mo catalogs the tests write (GNU's binary format).

Each filter of datasets/gettext_catalogs.py is exercised by an entry made to hit it, the
kept pairs are checked word for word, and the splits are checked disjoint by source.
"""

import collections
import gettext
import os

import pytest

from datasets import gettext_catalogs, parallel_text

KEPT = [
    ("Open the selected file now", "Die ausgewählte Datei jetzt öffnen"),
    # Whitespace runs and tabs become single spaces; NFKC makes "ﬁ" "fi".
    ("  Remove   the\tselected  items  ", "Die  ausgewählten Einträge\tentfernen"),
    ("Only 50% of the disk is used", "Nur 50% der Platte sind belegt"),  # not a placeholder
    ("Show the ﬁle list again", "Die Dateiliste erneut anzeigen"),
    # Accelerators: at a word start, inside a word, '&', and the bracketed CJK style.
    ("_Save the current document", "Das aktuelle Dokument _speichern"),
    ("Open a new window here", "Ein neues Fenster hier ö_ffnen"),
    ("&Quit the application right now", "Die Anwendung sofort &beenden"),
    ("Print the whole page please", "Die ganze Seite drucken bitte (_P)"),
    ("Run wait_for_done and also check_it", "Führe wait_for_done und auch check_it aus"),
]
EXPECTED_KEPT = {
    ("Open the selected file now", "Die ausgewählte Datei jetzt öffnen"),
    ("Remove the selected items", "Die ausgewählten Einträge entfernen"),
    ("Only 50% of the disk is used", "Nur 50% der Platte sind belegt"),
    ("Show the file list again", "Die Dateiliste erneut anzeigen"),
    ("Save the current document", "Das aktuelle Dokument speichern"),
    ("Open a new window here", "Ein neues Fenster hier öffnen"),
    ("Quit the application right now", "Die Anwendung sofort beenden"),
    ("Print the whole page please", "Die ganze Seite drucken bitte"),
    ("Run wait_for_done and also check_it", "Führe wait_for_done und auch check_it aus"),
    ("One file was deleted today", "Eine Datei wurde heute gelöscht"),  # a plural's singular
    ("Close every open window now", "Alle offenen Fenster jetzt schließen"),  # from de_CH
}
DROPPED = {
    "context": [("menu\x04Open the selected file now", "Die gewählte Datei jetzt öffnen")],
    "empty": [("Nothing was translated here yet", "")],
    "multiline": [("First line of the help\nsecond line of it", "Erste Zeile der Hilfe\nzweite")],
    "placeholder": [
        ("Cannot open file %s for reading", "Datei %s kann nicht gelesen werden"),
        ("Copied %d of %d files already", "%d von %d Dateien schon kopiert"),
        ("Error in %1$s at line two", "Fehler in %1$s in Zeile zwei"),
        ("Error in %(name)s at line two", "Fehler in %(name)s in Zeile zwei"),
        ("Wrote %5.2f megabytes to disk", "%5.2f Megabyte auf die Platte geschrieben"),
        ("Deleting {0} files from disk", "Lösche {0} Dateien von der Platte"),
        ("Hello {name}, welcome back here", "Hallo {name}, willkommen zurück hier"),
        ("Your $HOME folder is not set", "Ihr $HOME Ordner ist nicht gesetzt"),
        ("Usage: @GPG@ with many options", "Aufruf: @GPG@ mit vielen Optionen"),
        ("The Qt style %1 placeholder here", "Der Qt Platzhalter %1 steht hier"),
        ("A target only placeholder here", "Ein Platzhalter %s nur im Ziel"),
    ],
    "markup": [
        ("Click <b>here</b> to continue now", "Klicken Sie <b>hier</b> um fortzufahren"),
        ("Tom &amp; Jerry are both here", "Tom &amp; Jerry sind beide hier"),
        ("Read the manual page first", "Zuerst die <a href='x'>Handbuchseite</a> lesen"),
    ],
    "too_short": [
        ("Open file", "Datei öffnen"),
        ("Quit", "Beenden"),
        ("Save the document now", "Speichern"),  # short on the target side only
        ("_Open the file", "Die Datei _öffnen"),  # 3 words once stripped
    ],
    "same_as_source": [
        ("GNU General Public License version", "GNU General Public License Version")
    ],
}


@pytest.fixture
def locale_dir(tmp_path, write_mo):
    """A locale folder: de/ and de_CH/ catalogs plus catalogs that must not be read."""
    root = tmp_path / "locale"
    entries = list(KEPT)
    for pairs in DROPPED.values():
        entries.extend(pairs)
    # A plural: the singular form is kept, the other form dropped.
    entries.append(
        (
            ("One file was deleted today", "Many files were deleted today"),
            ["Eine Datei wurde heute gelöscht", "Viele Dateien wurden heute gelöscht"],
        )
    )
    write_mo(str(root / "de" / "LC_MESSAGES" / "app.mo"), entries)
    # The same pair in another catalog is a duplicate; a new pair is kept.
    write_mo(
        str(root / "de_CH" / "LC_MESSAGES" / "other.mo"),
        [KEPT[0], ("Close every open window now", "Alle offenen Fenster jetzt schließen")],
    )
    # Not German: Franco-Provençal, another script, a non-catalog file.
    write_mo(str(root / "frp" / "LC_MESSAGES" / "app.mo"), [("Not read at all here", "Pas lu")])
    write_mo(str(root / "de@latin" / "LC_MESSAGES" / "app.mo"), [("Not read either here", "X")])
    (root / "de" / "LC_MESSAGES" / "notes.txt").write_text("not a catalog")
    # A corrupt catalog: skipped and named.
    (root / "de" / "LC_MESSAGES" / "broken.mo").write_bytes(b"\x00\x01\x02\x03garbage")
    return str(root)


def test_every_filter_and_the_kept_pairs(locale_dir):
    found = gettext_catalogs.extract_pairs("de", locale_dir, dev_fraction=0.0, test_fraction=0.0)
    assert [os.path.relpath(p, locale_dir) for p in found.catalogs] == [
        "de/LC_MESSAGES/app.mo",
        "de/LC_MESSAGES/broken.mo",
        "de_CH/LC_MESSAGES/other.mo",
    ]
    assert len(found.unreadable) == 1
    assert found.unreadable[0][0].endswith("broken.mo") and "broken.mo" in found.unreadable[0][1]

    assert set(found.splits["train"]) == EXPECTED_KEPT
    assert len(found.splits["train"]) == len(EXPECTED_KEPT)  # deduplicated
    assert found.splits["dev"] == [] and found.splits["test"] == []

    expected_dropped = {reason: len(pairs) for reason, pairs in DROPPED.items()}
    expected_dropped.update(plural_form=1, duplicate=1)
    assert dict(found.dropped) == expected_dropped
    assert found.stats["kept"] == len(EXPECTED_KEPT)
    assert found.stats["entries"] == len(EXPECTED_KEPT) + sum(expected_dropped.values())
    # _Save, ö_ffnen, &Quit, (_P), and _Open (dropped later as too short).
    assert found.stats["accelerators_stripped"] == 5
    report = gettext_catalogs.report(found)
    assert "duplicate 1" in report and "placeholder 11" in report and "broken.mo" in report


def test_min_words_is_a_parameter(locale_dir):
    found = gettext_catalogs.extract_pairs("de", locale_dir, min_words=2, test_fraction=0.0)
    kept = {pair for split in found.splits.values() for pair in split}
    assert ("Open file", "Datei öffnen") in kept and ("Quit", "Beenden") not in kept


def test_unknown_language_and_bad_codes(locale_dir):
    with pytest.raises(FileNotFoundError, match=r"no gettext catalogs.*'it'.*\['de', 'frp'\]"):
        gettext_catalogs.extract_pairs("it", locale_dir)
    with pytest.raises(ValueError, match="2- or 3-letter code.*'de_CH'"):
        gettext_catalogs.find_catalogs("de_CH", locale_dir)
    with pytest.raises(FileNotFoundError, match="locale directory /nonexistent"):
        gettext_catalogs.find_catalogs("de", "/nonexistent")
    with pytest.raises(ValueError, match="dev_fraction"):
        gettext_catalogs.extract_pairs("de", locale_dir, dev_fraction=1.5)


def test_splits_are_disjoint_by_source_and_stable(tmp_path, write_mo):
    root = tmp_path / "locale"
    sources = [f"Message number {i} says something useful" for i in range(400)]
    # Every source twice, with two different translations, in two catalogs.
    write_mo(
        str(root / "fr" / "LC_MESSAGES" / "a.mo"),
        [(s, f"Le message numéro {i} dit quelque chose") for i, s in enumerate(sources)],
    )
    write_mo(
        str(root / "fr_CA" / "LC_MESSAGES" / "b.mo"),
        [(s, f"Le message no {i} dit une chose utile") for i, s in enumerate(sources)],
    )
    found = gettext_catalogs.extract_pairs("fr", str(root), dev_fraction=0.1, test_fraction=0.2)
    split_of = collections.defaultdict(set)
    for split, pairs in found.splits.items():
        for source, _ in pairs:
            split_of[source].add(split)
    assert len(split_of) == 400 and all(len(s) == 1 for s in split_of.values())
    counts = collections.Counter(next(iter(s)) for s in split_of.values())
    # 400 sources: expected 40 / 80 / 280; a hash this far off would not be uniform.
    assert 20 <= counts["dev"] <= 60 and 55 <= counts["test"] <= 105
    assert sum(len(p) for p in found.splits.values()) == 800  # both translations kept

    # A source's split depends on the source alone, not on what else is there.
    for source, (split,) in list(split_of.items())[:50]:
        alone = parallel_text.split_by_source_hash([(source, "x")], 0.1, 0.2)
        assert alone[split] == [(source, "x")]
    again = gettext_catalogs.extract_pairs("fr", str(root), dev_fraction=0.1, test_fraction=0.2)
    assert again.splits == found.splits


def test_a_legacy_charset_catalog_with_a_non_ascii_header_is_read_in_its_charset(
    tmp_path, write_mo
):
    # Debian's de/m4.mo: ISO-8859-1, "ö" in the header before the charset line, which
    # Python's gettext decodes as UTF-8 and fails on.
    header = "Last-Translator: Jörg Müller\nContent-Type: text/plain; charset=ISO-8859-1\n"
    entries = [
        ("Invalid range end of the list", "Ungültiges Bereichsende der Liste"),
        (("One byte was read here", "Many bytes were read here"), ["Ein Byte", "Viele Bytes"]),
    ]
    path = write_mo(str(tmp_path / "de" / "LC_MESSAGES" / "m4.mo"), entries, header, "latin-1")
    with open(path, "rb") as f, pytest.raises(UnicodeDecodeError):
        gettext.GNUTranslations(f)
    assert sorted(gettext_catalogs.read_catalog(path), key=str) == sorted(
        [
            ("Invalid range end of the list", "Ungültiges Bereichsende der Liste"),
            (("One byte was read here", 0), "Ein Byte"),
            (("One byte was read here", 1), "Viele Bytes"),
        ],
        key=str,
    )
    found = gettext_catalogs.extract_pairs("de", str(tmp_path), dev_fraction=0, test_fraction=0)
    assert found.unreadable == []
    assert found.splits["train"] == [
        ("Invalid range end of the list", "Ungültiges Bereichsende der Liste")
    ]
    # A header naming a charset the text is not in still fails, and names the file.
    bad = write_mo(str(tmp_path / "bad.mo"), [("Grüße an alle hier", "x y z w")], header, "utf-8")
    with open(bad, "r+b") as f:  # make the UTF-8 text undecodable as ASCII too
        data = f.read().replace(b"ISO-8859-1", b"ascii\n\n\n\n\n")
        f.seek(0)
        f.write(data)
    with pytest.raises(ValueError, match="bad.mo"):
        gettext_catalogs.read_catalog(bad)
