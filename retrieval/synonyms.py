"""Synonyms from WordNet: the words that share a sense with a word, its most common senses first.

The question says "folder", the documentation says "directory"; "mix up" for "shuffle", "plague" for
"pestilence". WordNet (Princeton, 3.0) groups English words into sets of synonyms, one set per sense, and
orders a word's senses by how often they were seen in tagged text; only the first few senses of a word
are taken, since its rare senses bring mostly noise ("folder" is a directory, but also a pamphlet).

The database is read where Debian's ``wordnet-base`` package installs it (``/usr/share/wordnet``), in place,
as WordNet's own library reads it: a word's line of the sorted ``index.<pos>`` files (the word -> its
senses, most common first) found by binary search, then the ``data.<pos>`` lines of the senses asked for,
by their byte offsets. Nothing is loaded up front (reading the index files whole took 0.3-0.45 s and 44 MiB);
a lookup is about twenty small reads of the page cache. Without the database there are no synonyms
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
_SCAN = 1024  # an index window this small is read whole and scanned rather than halved again
_LOOKUPS_KEPT = 100_000  # words whose senses are remembered (then forgotten all at once)


class WordNet:
    """A WordNet 3.0 database folder, read lazily. Thread-safe."""

    def __init__(self, folder: Path, senses: int = SENSES) -> None:
        self.folder = Path(folder)
        self.senses = senses
        missing = [f"{kind}.{pos}" for pos in PARTS_OF_SPEECH for kind in ("index", "data")
                   if not (self.folder / f"{kind}.{pos}").is_file()]  # fmt: skip
        if missing:
            raise FileNotFoundError(f"{self.folder} is not a WordNet database: no {', '.join(missing)}")
        self._lock = threading.Lock()
        self._files: dict[str, tuple[int, int]] = {}  # "index.noun", ... -> (an open descriptor, its size)
        self._senses: dict[str, tuple[tuple[str, int], ...]] = {}
        self._synsets: dict[tuple[str, int], tuple[str, ...]] = {}

    def synonyms(self, lemma: str) -> list[str]:
        """The single-word synonyms of ``lemma`` (lower case, as WordNet spells them) in its first senses,
        most common sense first, each once, ``lemma`` itself left out."""
        found: list[str] = []
        lemma = lemma.casefold()
        for pos, offset in self._senses_of(lemma):
            for word in self._synset(pos, offset):
                if "_" not in word and word != lemma and word not in found:
                    found.append(word)
        return found

    def _senses_of(self, lemma: str) -> tuple[tuple[str, int], ...]:
        senses = self._senses.get(lemma)
        if senses is None:
            found: list[tuple[str, int]] = []
            try:
                key = lemma.encode("latin-1")
            except UnicodeEncodeError:
                key = b""  # no such word in WordNet
            for pos in PARTS_OF_SPEECH if key and b" " not in key else ():
                # index.<pos> line: lemma pos synset_cnt p_cnt [ptr_symbol]*p_cnt sense_cnt tagsense_cnt
                # offsets...
                fields = self._index_line(pos, key).decode("latin-1").split()
                try:
                    pointers = int(fields[3])
                    synsets = int(fields[4 + pointers])
                    offsets = fields[6 + pointers : 6 + pointers + min(synsets, self.senses)]
                    found.extend((pos, int(o)) for o in offsets)
                except (IndexError, ValueError):
                    continue
            senses = tuple(found)
            if len(self._senses) >= _LOOKUPS_KEPT:
                self._senses.clear()
            self._senses[lemma] = senses
        return senses

    def _index_line(self, pos: str, key: bytes) -> bytes:
        """The line of ``index.<pos>`` for ``key``, or b"": a binary search over the file's bytes for the
        line start where ``key`` would be (the lines are sorted by their first field, byte by byte; the
        licence at the top starts with spaces, so it sorts first)."""
        descriptor, size = self._file(f"index.{pos}")
        low, high = 0, size  # the line sought, if there, starts in [low, high); low is a line start
        while high - low > _SCAN:
            middle = (low + high) // 2
            chunk = os.pread(descriptor, _LINE_READ, middle)
            newline = chunk.find(b"\n")
            start = middle + newline + 1
            if newline < 0 or start >= high:
                high = middle + 1  # no line starts in (middle, high)
                continue
            line = chunk[newline + 1 :].split(b"\n", 1)[0]
            if len(line) + newline + 1 >= len(chunk):  # cut short by the read
                line = os.pread(descriptor, _LINE_READ, start).split(b"\n", 1)[0]
            found = line.split(b" ", 1)[0]
            if found == key:
                return line
            if found < key:
                low = start
            else:
                high = start
        window = os.pread(descriptor, high - low + _LINE_READ, low)
        at = 0
        while at < high - low:
            end = window.find(b"\n", at)
            line = window[at:] if end < 0 else window[at:end]
            if line.split(b" ", 1)[0] == key:
                return line
            if end < 0:
                break
            at = end + 1
        return b""

    def _synset(self, pos: str, offset: int) -> tuple[str, ...]:
        key = (pos, offset)
        words = self._synsets.get(key)
        if words is None:
            # data.<pos> line: offset lex_filenum ss_type w_cnt(hex) [word lex_id]*w_cnt ...
            chunk = os.pread(self._file(f"data.{pos}")[0], _LINE_READ, offset).split(b"\n", 1)[0]
            fields = chunk.decode("latin-1").split()
            try:
                count = int(fields[3], 16)
                words = tuple(fields[4 + 2 * i].casefold() for i in range(count))
            except (IndexError, ValueError):
                words = ()
            self._synsets[key] = words
        return words

    def _file(self, name: str) -> tuple[int, int]:
        opened = self._files.get(name)
        if opened is None:
            with self._lock:
                opened = self._files.get(name)
                if opened is None:
                    descriptor = os.open(self.folder / name, os.O_RDONLY)
                    opened = self._files[name] = (descriptor, os.fstat(descriptor).st_size)
        return opened

    def __del__(self) -> None:
        for descriptor, _ in getattr(self, "_files", {}).values():
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
