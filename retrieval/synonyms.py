"""Synonyms from WordNet: the words that share a sense with a word, its most common senses first.

The question says "folder", the documentation says "directory"; "mix up" for "shuffle", "plague" for
"pestilence". WordNet (Princeton, 3.0) groups English words into sets of synonyms, one set per sense, and
orders a word's senses by how often they were seen in tagged text; only the first few senses of a word
are taken, since its rare senses bring mostly noise ("folder" is a directory, but also a pamphlet).

The database is read where Debian's ``wordnet-base`` package installs it (``/usr/share/wordnet``): the
``index.<pos>`` files (a word -> its senses, most common first) once, on first use, and the ``data.<pos>``
lines of the senses asked for, by their byte offsets. Without the database there are no synonyms
(:func:`default_wordnet` returns None) and everything else works as before.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_FOLDERS = (Path("/usr/share/wordnet"),)
PARTS_OF_SPEECH = ("noun", "verb", "adj", "adv")
SENSES = 2  # a word's most common senses whose synonyms are taken
_LINE_READ = 4096  # bytes read at a data offset: a synset line is well under this, with its gloss


class WordNet:
    """A WordNet 3.0 database folder, read lazily. Thread-safe."""

    def __init__(self, folder: Path, senses: int = SENSES) -> None:
        self.folder = Path(folder)
        self.senses = senses
        missing = [f"{kind}.{pos}" for pos in PARTS_OF_SPEECH for kind in ("index", "data")
                   if not (self.folder / f"{kind}.{pos}").is_file()]  # fmt: skip
        if missing:
            raise FileNotFoundError(f"{self.folder} is not a WordNet database: no {', '.join(missing)}")
        self._index: dict[str, list[tuple[str, int]]] | None = None
        self._lock = threading.Lock()
        self._data: dict[str, int] = {}  # part of speech -> an open file descriptor of its data file
        self._synsets: dict[tuple[str, int], tuple[str, ...]] = {}

    def synonyms(self, lemma: str) -> list[str]:
        """The single-word synonyms of ``lemma`` (lower case, as WordNet spells them) in its first senses,
        most common sense first, each once, ``lemma`` itself left out."""
        found: list[str] = []
        lemma = lemma.casefold()
        for pos, offset in self._senses().get(lemma, ()):
            for word in self._synset(pos, offset):
                if "_" not in word and word != lemma and word not in found:
                    found.append(word)
        return found

    def _senses(self) -> dict[str, list[tuple[str, int]]]:
        index = self._index
        if index is None:
            with self._lock:
                if self._index is None:
                    self._index = self._read_index()
                index = self._index
        return index

    def _read_index(self) -> dict[str, list[tuple[str, int]]]:
        # index.<pos> line: lemma pos synset_cnt p_cnt [ptr_symbol]*p_cnt sense_cnt tagsense_cnt offsets...
        index: dict[str, list[tuple[str, int]]] = {}
        for pos in PARTS_OF_SPEECH:
            with open(self.folder / f"index.{pos}", encoding="latin-1") as lines:
                for line in lines:
                    if line.startswith(" "):  # the licence at the top
                        continue
                    fields = line.split()
                    try:
                        pointers = int(fields[3])
                        synsets = int(fields[4 + pointers])
                        offsets = fields[6 + pointers : 6 + pointers + min(synsets, self.senses)]
                        index.setdefault(fields[0], []).extend((pos, int(o)) for o in offsets)
                    except (IndexError, ValueError):
                        continue
        return index

    def _synset(self, pos: str, offset: int) -> tuple[str, ...]:
        key = (pos, offset)
        words = self._synsets.get(key)
        if words is None:
            # data.<pos> line: offset lex_filenum ss_type w_cnt(hex) [word lex_id]*w_cnt ...
            chunk = os.pread(self._descriptor(pos), _LINE_READ, offset).split(b"\n", 1)[0]
            fields = chunk.decode("latin-1").split()
            try:
                count = int(fields[3], 16)
                words = tuple(fields[4 + 2 * i].casefold() for i in range(count))
            except (IndexError, ValueError):
                words = ()
            self._synsets[key] = words
        return words

    def _descriptor(self, pos: str) -> int:
        descriptor = self._data.get(pos)
        if descriptor is None:
            with self._lock:
                descriptor = self._data.get(pos)
                if descriptor is None:
                    descriptor = self._data[pos] = os.open(self.folder / f"data.{pos}", os.O_RDONLY)
        return descriptor

    def __del__(self) -> None:
        for descriptor in getattr(self, "_data", {}).values():
            os.close(descriptor)


_default: WordNet | None = None
_looked = False
_default_lock = threading.Lock()


def default_wordnet() -> WordNet | None:
    """The WordNet database installed on this machine (the first of ``DEFAULT_FOLDERS`` that holds one),
    or None, said once in the log."""
    global _default, _looked
    with _default_lock:
        if not _looked:
            _looked = True
            for folder in DEFAULT_FOLDERS:
                try:
                    _default = WordNet(folder)
                    break
                except FileNotFoundError:
                    continue
            if _default is None:
                log.info("no WordNet database in %s (Debian's wordnet-base): questions get no synonyms",
                         ", ".join(str(f) for f in DEFAULT_FOLDERS))
        return _default
