"""Corpus reading: one ``.txt`` file per document -> :class:`Document`.

A real folder is messy, so reading never stops at the first bad file: every problem is recorded
with the file it belongs to, and the rest of the corpus still loads.

Two file formats are accepted::

     date 2023-08-05 Title of the document        --- (YAML front matter)
                                                  title: Title of the document
    First paragraph, which may span               date: 2023-08-05
    several lines.                                url: https://example.org/x
                                                  ---
    Second paragraph.                             First paragraph...

Text is kept as written, except that line endings, byte-order marks, tabs and control characters are
normalised away: those would break both paragraph splitting and Telegram's HTML.
"""

from __future__ import annotations

import codecs
import datetime as dt
import os
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from charset_normalizer import from_bytes


class CorpusError(Exception):
    """The corpus as a whole cannot be used (missing folder, not a folder)."""


@dataclass(frozen=True, slots=True)
class Document:
    """One corpus file, parsed. ``date`` is ``None`` when the file gives none or an invalid one."""

    name: str  # path relative to the corpus folder, with "/" separators
    title: str
    date: dt.date | None
    paragraphs: tuple[str, ...]
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one file. ``skipped`` tells whether the file was left out entirely."""

    file: str
    message: str
    skipped: bool = False

    def __str__(self) -> str:
        verdict = "skipped" if self.skipped else "warning"
        return f"{self.file}: {verdict}: {self.message}"


@dataclass(frozen=True)
class Corpus:
    root: Path
    documents: tuple[Document, ...]
    problems: tuple[Problem, ...]

    @property
    def skipped(self) -> int:
        return len({p.file for p in self.problems if p.skipped})

    @property
    def warnings(self) -> int:
        """Counted per problem, not per file: one file can have several independent issues."""
        return sum(1 for p in self.problems if not p.skipped)

    def summary(self) -> str:
        """One line for logs and the bot's status, so an operator sees at a glance whether to dig in."""
        return (
            f"{_plural(len(self.documents), 'document')} loaded, "
            f"{_plural(self.skipped, 'file')} skipped, {_plural(self.warnings, 'warning')}"
        )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# A file larger than this is almost certainly not a hand-made document (a log, a dump); reading it whole
# would only waste memory, so it is skipped rather than truncated (a truncated document would mislead).
MAX_FILE_BYTES = 64 * 1024 * 1024


# Titles are shown above every quote; a runaway "title" (a paragraph pasted into the header line) would
# bury the answer, and Telegram caps a message at 4096 characters.
MAX_TITLE_CHARS = 300


# --------------------------------------------------------------------------------------------------------
# Listing


class _TreeWalk:
    """The real tree under a corpus folder, one folder at a time (see ``list_corpus_files``). A class, not
    a closure that calls itself: such a closure is a reference cycle holding everything found, which only
    a full collection of the garbage collector frees, a pause of its own in a bot that lists per update."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Paths are strings until the end: a Path per entry cost more than the listing itself (6,600 files).
        self.found: dict[str, tuple[str, str]] = {}  # real path -> (name, path); keyed so aliases collapse
        self.problems: list[Problem] = []
        self.links: deque[tuple[str, str]] = deque()  # symlinks, followed once the real tree is known
        self._visited: set[str] = set()

    def folder(self, dir_path: str, dir_real: str, prefix: str) -> None:
        if dir_real in self._visited:
            return
        self._visited.add(dir_real)
        try:
            with os.scandir(dir_path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if not prefix:
                raise CorpusError(f"cannot read the corpus folder {self.root}: {_os_message(exc)}") from exc
            problem = f"cannot open the folder: {_os_message(exc)}"
            self.problems.append(Problem(prefix.rstrip("/"), problem, True))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            name = prefix + entry.name
            path = entry.path
            try:
                if entry.is_symlink():
                    self.links.append((name, path))
                elif entry.is_dir(follow_symlinks=False):
                    self.folder(path, os.path.join(dir_real, entry.name), name + "/")
                elif _is_txt(entry.name):
                    if entry.is_file(follow_symlinks=False):
                        self.found.setdefault(os.path.join(dir_real, entry.name), (name, path))
                    else:
                        self.problems.append(Problem(name, "not a regular file", True))
            except OSError as exc:
                self.problems.append(Problem(name, f"cannot read the entry: {_os_message(exc)}", True))


def list_corpus_files(root: Path) -> tuple[list[tuple[str, Path]], list[Problem]]:
    """The corpus files under root, recursively, sorted by name: (name relative to root, '/'-separated; path).

    Cheap (directory entries and symlink resolution only, no file is opened): the index cache calls it to
    decide whether anything changed.

    Skipped silently: hidden files and folders (name starting with '.'), files not ending in ``.txt``
    (any case), and symlinks that lead to something already listed (aliases and loops), because the text
    is in the corpus under its real name anyway.
    Skipped with a Problem: symlinks leading outside the corpus folder (never followed, so a link cannot
    pull e.g. ``/etc`` into the bot's answers), broken symlinks, ``.txt`` entries that are not regular
    files (a FIFO would hang the reader), and folders that cannot be listed.
    Symlinks inside the corpus are followed after the real tree has been walked, so a document reachable
    both ways keeps its real name.

    Raises CorpusError when root itself is missing, not a folder or cannot be listed.
    """
    root = Path(root)
    _check_root(root)
    root_real = os.path.realpath(root)

    walk = _TreeWalk(root)
    walk.folder(os.fspath(root), root_real, "")
    # Links are resolved only once the real tree is known, so that a link never "steals" a file's name.
    found, problems, links = walk.found, walk.problems, walk.links
    while links:
        name, path = links.popleft()
        target = os.path.realpath(path)
        if not os.path.exists(target):
            problems.append(Problem(name, "broken symlink (its target does not exist)", True))
            continue
        is_dir = os.path.isdir(target)
        if not is_dir and not _is_txt(name):
            continue
        if not _is_inside(target, root_real):
            problems.append(Problem(name, "symlink points outside the corpus folder", True))
        elif is_dir:
            walk.folder(path, target, name + "/")
        elif os.path.isfile(target):
            found.setdefault(target, (name, path))
        else:
            problems.append(Problem(name, "not a regular file", True))

    files: list[tuple[str, Path]] = []
    for name, path in sorted(found.values()):
        shown = _display_name(name)
        if shown != name:
            problems.append(Problem(shown, "file name has undecodable bytes or control characters"))
        files.append((shown, Path(path)))
    return files, problems


def require_folder(root: Path) -> None:
    """Raise CorpusError unless ``root`` is a folder (an index is opened on one, even if empty)."""
    if not root.is_dir():
        missing = not root.exists()
        raise CorpusError(
            f"corpus folder {root} does not exist" if missing else f"corpus path {root} is not a folder"
        )


def _check_root(root: Path) -> None:
    if not root.exists():
        raise CorpusError(f"corpus folder not found: {root}")
    if not root.is_dir():
        raise CorpusError(f"corpus path is not a folder: {root}")


def _is_txt(name: str) -> bool:
    return name.lower().endswith(".txt")


def _is_inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


_NAME_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _display_name(name: str) -> str:
    """Names end up in Telegram messages and JSON caches, which need valid UTF-8 without controls.

    Linux allows any bytes in a file name; Python maps undecodable ones to lone surrogates, which
    would crash the first ``.encode()`` far away from here. They are shown as ``\\xNN`` instead.
    """
    if not _NAME_CONTROLS.search(name):
        return name
    raw = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _NAME_CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", raw)


def _os_message(exc: OSError) -> str:
    """The reason without the path (the Problem already names the file) and without a traceback."""
    return exc.strerror or str(exc) or type(exc).__name__


# --------------------------------------------------------------------------------------------------------
# Reading one file


class _Skip(Exception):
    """Raised deep inside parsing when the file cannot become a document; carries the plain reason."""


def read_document(path: Path, name: str) -> tuple[Document | None, list[Problem]]:
    """Parse one file. None (with a skipped Problem) when the file cannot become a document.

    Never raises for anything the file contains: one hostile file must not stop the corpus from loading.
    A skipped file reports only why it was skipped; earlier warnings about it would be noise.
    """
    warnings: list[str] = []
    try:
        data = _read_bytes(Path(path))
        text = _decode(data, warnings)
        text = _normalise(text, warnings)
        doc = _parse(text, name, warnings)
    except _Skip as skip:
        return None, [Problem(name, str(skip), skipped=True)]
    return doc, [Problem(name, message) for message in warnings]


def _read_bytes(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _Skip(f"cannot read the file: {_os_message(exc)}") from None
    if len(data) > MAX_FILE_BYTES:
        raise _Skip(f"file too large (over {MAX_FILE_BYTES // (1024 * 1024)} MB)")
    return data


# --- decoding

_UTF_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SURROGATE = re.compile(r"[\udc80-\udcff]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_ASCII_LETTER_BYTES = bytes(range(ord("A"), ord("Z") + 1)) + bytes(range(ord("a"), ord("z") + 1))
_NOT_ASCII_LETTER_BYTES = bytes(b for b in range(256) if b not in _ASCII_LETTER_BYTES)
# Letters that cp1252 puts in 0x80-0xFF; three in a row almost never occur in Western languages but are
# the norm when Cyrillic, Greek or CJK bytes are misread as cp1252.
_CP1252_LETTER_RUN = re.compile(r"[ŠŒŽšœžŸªµºÀ-ÖØ-öø-ÿ]{3,}")
# A symbol glued between two letters ("Za¿ó³æ") is what cp1250 text looks like through cp1252 glasses;
# apostrophes, dashes, quotes and the Catalan middle dot are the legitimate exceptions.
_SYMBOL_IN_WORD = re.compile(r"[^\W\d_][^\w\s\x00-\x7f’‘·–—…“”„‚«»•][^\W\d_]")


def _decode(data: bytes, warnings: list[str]) -> str:
    """Bytes to text without ever producing U+FFFD: a wrong guess is reported, garbage is refused."""
    if not data:
        raise _Skip("empty file")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    else:
        for bom, encoding in _UTF_BOMS:
            if data.startswith(bom):
                try:
                    text = data.decode(encoding)
                except UnicodeDecodeError:
                    break
                warnings.append(f"not UTF-8; decoded as {encoding.upper()}")
                return text
    if b"\x00" in data:
        raise _Skip("binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass

    # A UTF-8 file with a few stray bytes (a bad paste) is still UTF-8: re-decoding it all as cp1252 would
    # garble every correct accent to fix a handful of bytes. Valid multi-byte characters must clearly
    # outnumber the bad bytes, otherwise it is a legacy-encoded file that happens to contain a few.
    lenient = data.decode("utf-8", "surrogateescape")
    bad = len(_SURROGATE.findall(lenient))
    good = len(_NON_ASCII.findall(lenient)) - bad
    if good > 2 * bad:
        warnings.append(f"not valid UTF-8; dropped {_plural(bad, 'undecodable byte')}")
        return _SURROGATE.sub("", lenient)

    # charset_normalizer guesses badly on short Western texts (cp1250 or cp775 for plain French), and
    # cp1252 is by far the most common legacy encoding, so it gets first refusal when the result looks
    # like a Western language.
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        pass
    else:
        if _looks_western(data, text):
            warnings.append("not UTF-8; decoded as cp1252")
            return text

    try:
        best = from_bytes(data).best()
    except Exception:  # a detector bug must cost one file, not the whole corpus
        best = None
    if best is None:
        raise _Skip("binary file, or text in an encoding that cannot be recognised")
    warnings.append(f"not UTF-8; decoded as {best.encoding}")
    return str(best)


def _looks_western(data: bytes, text: str) -> bool:
    accented = [ch for ch in _NON_ASCII.findall(text) if ch.isalpha()]
    ascii_letters = len(data.translate(None, _NOT_ASCII_LETTER_BYTES))
    letters = ascii_letters + len(accented)
    # too few letters to judge the ratio: cp1252 is still the likeliest guess for a word or two
    if letters >= 20 and len(accented) > 0.3 * letters:
        return False
    return not _CP1252_LETTER_RUN.search(text) and not _SYMBOL_IN_WORD.search(text)


# --- normalisation

_LINE_BREAKS = re.compile("[\v\f\x85\u2028\u2029]")  # treated as line ends, like str.splitlines does
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BINARY_CONTROL_RATIO = 0.10


def _normalise(text: str, warnings: list[str]) -> str:
    """Only what would break paragraph splitting or Telegram HTML; everything else stays as written."""
    text = text.replace("\ufeff", "").replace("\r\n", "\n").replace("\r", "\n")
    text = _LINE_BREAKS.sub("\n", text).replace("\t", " ")
    text, controls = _CONTROLS.subn("", text)
    if controls and controls > _BINARY_CONTROL_RATIO * (len(text) + controls):
        raise _Skip("binary file (mostly control characters)")
    if controls:
        warnings.append(f"removed {_plural(controls, 'control character')}")
    # U+FFFD in a file means an earlier tool already lost the original characters; showing it to users
    # only spreads the damage, so it goes, loudly.
    replaced = text.count("\ufffd")
    text = text.replace("\ufffd", "")
    if replaced:
        warnings.append(f"removed {_plural(replaced, 'U+FFFD replacement character')} (text damaged earlier)")
    return text


# --- structure

_HEADER = re.compile(r"\s*date(?::\s*|\s+)(\S+)(?:\s+(.*))?", re.IGNORECASE)
_DATE_SHAPED = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_ISO_DATE_TIME = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[Tt ]+\d{1,2}:\d{2}.*)?")
_FRONT_MATTER_END = ("---", "...")


def _parse(text: str, name: str, warnings: list[str]) -> Document:
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise _Skip("empty file")
    if lines[first].strip() == "---":
        meta = _front_matter(lines, first, name, warnings)
    else:
        meta = _header(lines, first, name, warnings)
    paragraphs = _paragraphs(lines[meta.body_start :])
    if not paragraphs:
        raise _Skip("no text after the header" if meta.body_start > first else "empty file")
    title = meta.title
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1].rstrip() + "…"
        warnings.append(f"title longer than {MAX_TITLE_CHARS} characters; shortened")
    return Document(name, title, meta.date, tuple(paragraphs), meta.url)


@dataclass(slots=True)
class _Meta:
    title: str
    date: dt.date | None
    url: str | None
    body_start: int  # index of the first line after the header or front matter


def _header(lines: list[str], first: int, name: str, warnings: list[str]) -> _Meta:
    match = _HEADER.fullmatch(lines[first])
    token = match.group(1) if match else ""
    if not match or not _DATE_SHAPED.fullmatch(token):
        if match and token[:1].isdigit():
            warnings.append(
                f"first line starts with 'date' but '{token}' is not a date; kept as text, date unknown"
            )
        else:
            warnings.append("no header line; date unknown")
        return _Meta(_title_from_name(name), None, None, first)
    date = _parse_date(token, _ISO_DATE, warnings)
    title = _clean_title(match.group(2))
    if not title:
        title = _title_from_name(name)
        warnings.append("header has no title; title taken from the file name")
    return _Meta(title, date, None, first + 1)


def _front_matter(lines: list[str], first: int, name: str, warnings: list[str]) -> _Meta:
    end = next((i for i in range(first + 1, len(lines)) if lines[i].strip() in _FRONT_MATTER_END), None)
    if end is None:
        warnings.append("front matter opened with '---' is never closed; read as text, date unknown")
        return _Meta(_title_from_name(name), None, None, first)
    block = "\n".join(lines[first + 1 : end])
    meta = _load_yaml(block, first + 1, warnings)

    title = _clean_title(_scalar_text(meta.get("title"), "title", warnings))
    if not title:
        title = _title_from_name(name)
        warnings.append("front matter has no title; title taken from the file name")

    raw_date = meta.get("date")
    date: dt.date | None = None
    if isinstance(raw_date, dt.datetime):
        date = raw_date.date()
    elif isinstance(raw_date, dt.date):
        date = raw_date
    elif raw_date is None or raw_date == "":
        warnings.append("front matter has no date; date unknown")
    elif isinstance(raw_date, str | int | float):
        date = _parse_date(str(raw_date).strip(), _ISO_DATE_TIME, warnings)
    else:
        warnings.append("date in the front matter is not a date; date unknown")

    url = _scalar_text(meta.get("url"), "url", warnings)
    if url is not None:
        url = url.strip() or None
    # The bot turns this into a link: only web addresses, never javascript: and the like.
    if url is not None and not url.lower().startswith(("http://", "https://")):
        warnings.append(f"url '{url}' is not an http(s) address; ignored")
        url = None
    return _Meta(title, date, url, end + 1)


class _FrontMatterLoader(yaml.SafeLoader):
    """Keeps dates as the strings written, so an impossible date becomes a warning naming it, not a crash.

    (SafeLoader turns ``2023-02-30`` into a ValueError from deep inside its constructor.)
    """


_FrontMatterLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node)
)
_MAX_BRACKETS = 100
# The value is stripped in Python: a lazy "(.*?)\s*" before the end made fullmatch retry the trailing
# "\s*" from every position of a run of spaces inside the value (quadratic: 6 s for one 32 KB line).
_SIMPLE_KEY = re.compile(r"\s*+(title|date|url)\s*+:(.*)", re.IGNORECASE)


def _load_yaml(block: str, line_offset: int, warnings: list[str]) -> dict[str, Any]:
    """A broken front matter is usually one bad quote in the title; the date beside it is still good."""
    # PyYAML needs about a second to hit its recursion limit on deeply nested brackets; real metadata
    # (a title, a date, a url) never has more than a few, so a pile of them is treated as broken outright.
    if block.count("[") + block.count("{") > _MAX_BRACKETS:
        warnings.append("front matter has too many brackets to be plain metadata; read it line by line")
        return _simple_front_matter(block)
    try:
        data = yaml.load(block, Loader=_FrontMatterLoader)  # safe: a SafeLoader subclass
    except Exception as exc:  # hostile YAML can also raise RecursionError and friends
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1 + line_offset}: "
        reason = getattr(exc, "problem", None) or type(exc).__name__
        warnings.append(f"front matter is not valid YAML ({where}{reason}); read it line by line")
        return _simple_front_matter(block)
    if data is None:
        return {}
    if not isinstance(data, dict):
        warnings.append("front matter is not a list of 'key: value' lines; read it line by line")
        return _simple_front_matter(block)
    return {str(k).lower(): v for k, v in data.items()}


def _simple_front_matter(block: str) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for line in block.split("\n"):
        match = _SIMPLE_KEY.fullmatch(line)
        if match and match.group(1).lower() not in meta:
            meta[match.group(1).lower()] = match.group(2).strip().strip("'\"")
    return meta


def _scalar_text(value: Any, key: str, warnings: list[str]) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):  # "title: 1984"
        return str(value)
    warnings.append(f"{key} in the front matter is not text; ignored")
    return None


def _parse_date(token: str, pattern: re.Pattern[str], warnings: list[str]) -> dt.date | None:
    """Strict on purpose: a wrong date silently misplaces a document in time, an unknown one does not."""
    match = pattern.fullmatch(token)
    if match:
        try:
            return dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            pass
    warnings.append(f"invalid date '{token}'; date unknown")
    return None


def _clean_title(title: str | None) -> str:
    return " ".join(title.split()) if title else ""


def _title_from_name(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    stem = base[:-4] if _is_txt(base) else base
    return " ".join(stem.replace("_", " ").replace("-", " ").split()) or base


def _paragraphs(lines: list[str]) -> list[str]:
    """One pass over the lines, so a multi-megabyte paragraph costs no more than its size."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped:
            current.append(stripped)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


# --------------------------------------------------------------------------------------------------------
# The whole corpus


def load_corpus(root: str | Path) -> Corpus:
    """Raises CorpusError for a missing folder or one that is not a folder (message names the path).

    An empty folder gives a Corpus with no documents: whether that is fatal is the caller's decision.
    """
    root = Path(root).expanduser()
    files, problems = list_corpus_files(root)
    documents: list[Document] = []
    for name, path in files:
        doc, doc_problems = read_document(path, name)
        problems.extend(doc_problems)
        if doc is not None:
            documents.append(doc)
    problems.sort(key=lambda p: p.file)  # stable: a file's own problems stay in the order found
    return Corpus(root, tuple(documents), tuple(problems))
