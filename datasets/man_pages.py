"""The manual pages installed here as an English corpus, and a classification task on them.

Every Debian machine with man-db has a few thousand manual pages under /usr/share/man
(gzip'd roff in man1..man8). This module renders each page to plain text with groff
(man-db's own formatter, called directly: `man -l` costs a man-db start, a locale and
preprocessor lookup and a pager per page, see RENDERERS) in a pool of processes, skips
and counts the pages that are aliases (symlinks, `.so` redirects) or fail to render, and
writes, into --output_dir:

    pretraining_corpus.txt   one sentence per line, a blank line between pages (documents):
                             the input of create_pretraining_data.py. Only pages of the
                             'train' split below, so the classifier's dev and test pages are
                             text the pretrained model has never read.
    classification/{train,dev,test}.tsv
                             NAME paragraph TAB first DESCRIPTION paragraphs TAB section
                             (1-8): predict the manual section of a page; the input of
                             `download_and_convert_data.py --dataset_name=text_classification`.
                             A page goes to a split by a hash of its name, so pages of one
                             name (printf(1), printf(3)) share a split.
    man_pages.json           what was read: pages per section, skipped pages, render time.

--max_pages takes a sample balanced over the sections (round robin over the sections,
pages in a hash order within each), so a few hundred pages still hold every section.
--exclude leaves out pages by name: where the Google Cloud SDK is installed, its
`gcloud*` pages (16,631 of the 17,908 files in man1 on the machine this was written on)
are most of section 1, and all alike.

    python datasets/man_pages.py --output_dir=data/man --max_pages=300
"""

import argparse
import fnmatch
import gzip
import hashlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time

from tqdm import tqdm

MAN_ROOT = "/usr/share/man"
SECTIONS = ("1", "2", "3", "4", "5", "6", "7", "8")
SECTION_NAMES = {
    "1": "user commands",
    "2": "system calls",
    "3": "library calls",
    "4": "special files",
    "5": "file formats",
    "6": "games",
    "7": "miscellanea",
    "8": "administration",
}
CORPUS_FILENAME = "pretraining_corpus.txt"
CLASSIFICATION_DIRNAME = "classification"
STATS_FILENAME = "man_pages.json"
SPLITS = ("train", "dev", "test")
DEV_PERCENT = 10  # of the page names (by hash)
TEST_PERCENT = 10
DEFAULT_WIDTH = 1000  # characters per rendered line: paragraphs come out as one line
DEFAULT_DESCRIPTION_CHARS = 1000  # of DESCRIPTION kept in a classification row
RENDER_TIMEOUT_SECONDS = 60

# groff straight: -K utf-8 reads the page's UTF-8 (preconv), -t runs tbl, -mandoc takes
# both man and mdoc pages; -P-c -P-b -P-u: no SGR escapes, no overstrike bold or
# underline; LL / LT the line length; HY=0 no hyphenation, AD=l no justification spaces.
# man -l: man-db's own pipeline (it guesses the preprocessors), paged through cat.
RENDERERS = ("groff", "man")

# groff's typographic characters, back to the ASCII the tokenizer and vocabulary expect.
_TYPOGRAPHY = str.maketrans(
    {
        "\u2010": "-",
        "\u2011": "-",
        "\u2212": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u00a0": " ",
        "\u2022": "*",
        "\u27e8": "<",
        "\u27e9": ">",
        # tbl's box-drawing rules (U+2500-U+257F) would make words of thousands of
        # characters: they become spaces.
        **{chr(cp): " " for cp in range(0x2500, 0x2580)},
    }
)
# A sentence ends at . ! ? (maybe closed by a quote or bracket) before a space and a
# capital, digit or opening mark; not after the usual abbreviations.
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])([\"')\]]?)\s+(?=[A-Z0-9\"'(\[])")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.", "no.", "e.x.", "et al.")
_HEADING_RE = re.compile(r"^[A-Z][A-Z0-9 ,/&()'-]*$")


def page_name_and_extension(filename):
    """'CA.pl.1ssl.gz' -> ('CA.pl', '1ssl'): the page name and its section extension."""
    stem = filename[:-3] if filename.endswith(".gz") else filename
    name, _, extension = stem.rpartition(".")
    return (name, extension) if name else (stem, "")


def _hash_order(name):
    return hashlib.sha1(name.encode("utf-8")).hexdigest()


def split_of(name):
    """'train', 'dev' or 'test' for a page name, by a hash of the name (stable everywhere)."""
    bucket = int(_hash_order(name)[:8], 16) % 100
    if bucket < TEST_PERCENT:
        return "test"
    if bucket < TEST_PERCENT + DEV_PERCENT:
        return "dev"
    return "train"


def list_pages(man_root=MAN_ROOT, sections=SECTIONS):
    """Lists the installed pages of the sections, symlinked aliases left out.

    Returns:
      (pages, num_symlinks): pages is a list of (section, name, path) sorted by path.
    """
    pages, symlinks = [], 0
    for section in sections:
        folder = os.path.join(man_root, f"man{section}")
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                symlinks += 1  # another name of a page that is listed under its own name
                continue
            if not entry.is_file():
                continue
            name, _ = page_name_and_extension(entry.name)
            pages.append((section, name, entry.path))
    return pages, symlinks


def balanced_sample(pages, max_pages=None):
    """Up to max_pages pages, round robin over the sections, hash order within each."""
    by_section = {}
    for page in sorted(pages, key=lambda p: (_hash_order(p[1] + "." + p[0]), p[2])):
        by_section.setdefault(page[0], []).append(page)
    queues = [by_section[s] for s in sorted(by_section)]
    sample, depth = [], 0
    while any(depth < len(q) for q in queues):
        for queue in queues:
            if depth < len(queue):
                sample.append(queue[depth])
        depth += 1
    return sample if max_pages is None else sample[:max_pages]


def read_roff(path):
    """The roff source of a page file (.gz or plain), as bytes."""
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def _first_request(source):
    """The first line of roff source that is not blank or a comment (.\\" or '\\")."""
    for line in source.split(b"\n", 50)[:50]:
        line = line.strip()
        if line and not line.startswith((b'.\\"', b"'\\\"", b".\\#")):
            return line
    return b""


def render_command(renderer, path, width=DEFAULT_WIDTH):
    """(argv, environment overrides) rendering one page file to plain UTF-8 text."""
    if renderer == "groff":
        argv = ["groff", "-K", "utf-8", "-t", "-mandoc", "-Tutf8", "-P-c", "-P-b", "-P-u"]
        argv += [f"-rLL={width}n", f"-rLT={width}n", "-rHY=0", "-dAD=l"]
        return argv, {}
    if renderer == "man":
        return ["man", "-l", "-P", "cat", path], {"MANWIDTH": str(width), "MAN_KEEP_FORMATTING": ""}
    raise ValueError(f"unknown renderer {renderer!r}; valid renderers: {list(RENDERERS)}")


def render_page(path, renderer="groff", width=DEFAULT_WIDTH):
    """Renders one page file to plain text.

    Returns:
      (status, text): status 'ok' with the text, or 'redirect' (a .so page) or 'failed'
      with the reason.
    """
    try:
        source = read_roff(path)
    except (OSError, EOFError) as e:
        return "failed", f"{path}: unreadable ({type(e).__name__}: {e})"
    first = _first_request(source)
    if first.startswith(b".so "):
        return "redirect", first.decode("utf-8", "replace")
    argv, env = render_command(renderer, path, width)
    environment = dict(os.environ, LC_ALL="C.UTF-8", **env)
    try:
        result = subprocess.run(
            argv,
            input=source if renderer == "groff" else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=environment,
            timeout=RENDER_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return "failed", f"{path}: {type(e).__name__}: {e}"
    text = result.stdout.decode("utf-8", "replace")
    if result.returncode != 0 or not text.strip():
        return "failed", f"{path}: {argv[0]} exited with {result.returncode}, {len(text)} chars"
    # Any overstrike left (a page setting its own fonts): drop "x\bx" pairs.
    text = re.sub(".\b", "", text).translate(_TYPOGRAPHY)
    return "ok", text


def parse_sections(text):
    """Rendered page text -> [(heading, [paragraph text])], header and footer lines left out.

    A heading is an unindented line; a paragraph is a run of non-blank lines at one
    indentation, joined with spaces.
    """
    lines = text.split("\n")
    content = [i for i, line in enumerate(lines) if line.strip()]
    if len(content) < 3:
        return []
    lines = lines[content[0] + 1 : content[-1]]  # the running header and footer
    sections, paragraph, indent = [], [], None

    def end_paragraph():
        if paragraph and sections:
            sections[-1][1].append(" ".join(paragraph))
        paragraph.clear()

    for line in lines:
        stripped = line.strip()
        if not stripped:
            end_paragraph()
            indent = None
            continue
        line_indent = len(line) - len(line.lstrip())
        if line_indent == 0 and _HEADING_RE.match(stripped):
            end_paragraph()
            sections.append((stripped, []))
            indent = None
            continue
        if indent is not None and line_indent != indent:
            end_paragraph()
        indent = line_indent
        paragraph.append(" ".join(stripped.split()))
    end_paragraph()
    return sections


def split_sentences(paragraph):
    """A paragraph -> its sentences (a simple rule: . ! ? before a capital, not after e.g.)."""
    sentences, start = [], 0
    for match in _SENTENCE_END_RE.finditer(paragraph):
        end = match.end(1)
        before = paragraph[start:end].rstrip("\"')]")
        if before.lower().endswith(_ABBREVIATIONS) or re.search(r"(?:^|\s)[A-Z]\.$", before):
            continue  # "e.g. Foo", "J. Smith"
        sentences.append(paragraph[start:end].strip())
        start = match.end()
    sentences.append(paragraph[start:].strip())
    return [s for s in sentences if s]


def _render_and_parse(task):
    section, name, path, renderer, width = task
    status, text = render_page(path, renderer, width)
    if status != "ok":
        return section, name, status, text, None
    return section, name, status, len(text), parse_sections(text)


def classification_row(sections, section, description_chars=DEFAULT_DESCRIPTION_CHARS):
    """(NAME text, DESCRIPTION text, section) of a parsed page, or None without both."""
    found = {heading: paragraphs for heading, paragraphs in sections}
    name_text = " ".join(found.get("NAME", []))
    description = " ".join(found.get("DESCRIPTION", []))
    if not name_text or not description:
        return None
    if len(description) > description_chars:
        cut = description.rfind(" ", 0, description_chars)
        description = description[: cut if cut > 0 else description_chars]
    return " ".join(name_text.split()), " ".join(description.split()), section


def build_corpus(
    output_dir,
    max_pages=None,
    man_root=MAN_ROOT,
    sections=SECTIONS,
    renderer="groff",
    width=DEFAULT_WIDTH,
    num_workers=2,
    exclude=(),
):
    """Renders the installed man pages and writes the corpus, the TSV splits and the stats.

    Args:
      output_dir: folder to write into (created if missing).
      max_pages: most pages to render (a sample balanced over sections); None: all.
      man_root: the folder holding man1..man8.
      sections: the sections to read.
      renderer: 'groff' (fast) or 'man' (man-db's pipeline).
      width: characters per rendered line.
      num_workers: processes rendering in parallel (1: this process).
      exclude: fnmatch patterns of page names to leave out (counted in the stats), e.g.
        ("gcloud*",) where the Google Cloud SDK's 16k pages would be most of section 1.

    Returns:
      the stats dict also written to man_pages.json.

    Raises:
      FileNotFoundError: no manual page found under man_root (names it).
      ValueError: an unknown renderer or section, or no page rendered.
    """
    if renderer not in RENDERERS:
        raise ValueError(f"unknown renderer {renderer!r}; valid renderers: {list(RENDERERS)}")
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown man sections {unknown}; valid sections: {list(SECTIONS)}")
    pages, symlinks = list_pages(man_root, sections)
    if not pages:
        raise FileNotFoundError(
            f"no manual page under {man_root}/man[{''.join(sections)}] (expected gzip'd roff "
            "files as man-db installs them; install man-db and the manpages package)"
        )
    kept = [page for page in pages if not any(fnmatch.fnmatchcase(page[1], p) for p in exclude)]
    excluded = len(pages) - len(kept)
    if not kept:
        raise ValueError(f"exclude={list(exclude)} leaves none of the {len(pages)} pages")
    sample = balanced_sample(kept, max_pages)
    tasks = [(section, name, path, renderer, width) for section, name, path in sample]
    started = time.perf_counter()
    progress = {"total": len(tasks), "desc": "man pages", "unit": " pages", "file": sys.stderr}
    if num_workers <= 1:
        results = [_render_and_parse(task) for task in tqdm(tasks, **progress)]
    else:
        with multiprocessing.get_context("spawn").Pool(num_workers) as pool:
            results = list(tqdm(pool.imap(_render_and_parse, tasks, chunksize=8), **progress))
    render_seconds = time.perf_counter() - started

    os.makedirs(os.path.join(output_dir, CLASSIFICATION_DIRNAME), exist_ok=True)
    stats = {
        "man_root": man_root,
        "renderer": renderer,
        "width": width,
        "pages_installed": len(pages),
        "symlinks_skipped": symlinks,
        "excluded": excluded,
        "pages_tried": len(sample),
        "tried_per_section": {},
        "redirects_skipped": 0,
        "failed": 0,
        "failures": [],
        "rendered_per_section": {},
        "render_seconds": round(render_seconds, 3),
        "rendered_chars": 0,
        "corpus": {"documents": 0, "sentences": 0, "chars": 0},
        "classification": {split: {} for split in SPLITS},
    }
    rows = {split: [] for split in SPLITS}
    corpus_path = os.path.join(output_dir, CORPUS_FILENAME)
    with open(corpus_path + ".partial", "w", encoding="utf-8") as corpus:
        for section, name, status, detail, parsed in results:
            tried = stats["tried_per_section"]
            tried[section] = tried.get(section, 0) + 1
            if status == "redirect":
                stats["redirects_skipped"] += 1
                continue
            if status != "ok":
                stats["failed"] += 1
                stats["failures"].append(detail)
                continue
            per_section = stats["rendered_per_section"]
            per_section[section] = per_section.get(section, 0) + 1
            stats["rendered_chars"] += detail
            split = split_of(name)
            row = classification_row(parsed, section)
            if row:
                rows[split].append(row)
                counts = stats["classification"][split]
                counts[section] = counts.get(section, 0) + 1
            if split != "train":
                continue
            sentences = [
                s for _, paragraphs in parsed for p in paragraphs for s in split_sentences(p)
            ]
            if sentences:
                text = "\n".join(sentences) + "\n\n"
                corpus.write(text)
                stats["corpus"]["documents"] += 1
                stats["corpus"]["sentences"] += len(sentences)
                stats["corpus"]["chars"] += len(text)
    if not stats["rendered_per_section"]:
        os.remove(corpus_path + ".partial")
        raise ValueError(
            f"none of the {len(sample)} manual pages tried under {man_root} rendered "
            f"({stats['redirects_skipped']} redirects, {stats['failed']} failures, e.g. "
            f"{stats['failures'][:1]}); is groff (Debian groff-base) installed?"
        )
    os.replace(corpus_path + ".partial", corpus_path)
    for split in SPLITS:
        path = os.path.join(output_dir, CLASSIFICATION_DIRNAME, f"{split}.tsv")
        with open(path + ".partial", "w", encoding="utf-8") as f:
            for text_a, text_b, label in rows[split]:
                f.write(f"{text_a}\t{text_b}\t{label}\n")
        os.replace(path + ".partial", path)
    stats["failures"] = sorted(stats["failures"])[:50]
    with open(os.path.join(output_dir, STATS_FILENAME), "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=2, sort_keys=True)
        f.write("\n")
    return stats


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Render the installed manual pages into a BERT pretraining corpus and a "
        "section-classification TSV."
    )
    parser.add_argument("--output_dir", required=True, help="folder to write into")
    parser.add_argument(
        "--max_pages",
        type=int,
        default=None,
        help="most pages to render, balanced over the sections (default: all)",
    )
    parser.add_argument("--man_root", default=MAN_ROOT, help="folder holding man1..man8")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help="comma-separated sections, of 1-8"
    )
    parser.add_argument(
        "--exclude",
        default="",
        help="comma-separated fnmatch patterns of page names to leave out, e.g. 'gcloud*'",
    )
    parser.add_argument(
        "--renderer",
        default="groff",
        choices=RENDERERS,
        help="groff (direct, fast) or man (man -l -P cat)",
    )
    parser.add_argument(
        "--width", type=int, default=DEFAULT_WIDTH, help="characters per rendered line"
    )
    parser.add_argument(
        "--num_workers", type=int, default=2, help="processes rendering pages in parallel"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        stats = build_corpus(
            args.output_dir,
            max_pages=args.max_pages,
            man_root=args.man_root,
            sections=tuple(s for s in args.sections.split(",") if s),
            renderer=args.renderer,
            width=args.width,
            num_workers=args.num_workers,
            exclude=tuple(p for p in args.exclude.split(",") if p),
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rendered = sum(stats["rendered_per_section"].values())
    sizes = {split: sum(c.values()) for split, c in stats["classification"].items()}
    print(
        f"rendered {rendered} of {stats['pages_tried']} pages in {stats['render_seconds']:.1f} s "
        f"({stats['redirects_skipped']} redirects, {stats['failed']} failed); per section "
        f"{dict(sorted(stats['rendered_per_section'].items()))}; corpus "
        f"{stats['corpus']['documents']} documents, {stats['corpus']['sentences']} sentences, "
        f"{stats['corpus']['chars']} chars; classification rows {sizes}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
