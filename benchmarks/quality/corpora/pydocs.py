"""The ``pydocs`` corpus: part of the Python 3.11 documentation as plain prose, a dated ``.txt`` per section.

Source: the Debian package python3.11-doc, version 3.11.2-6+deb12u9 (``apt-get install python3.11-doc``): the
reST sources in /usr/share/doc/python3.11/html/_sources/ and the changelog in html/whatsnew/changelog.html.gz.

What is kept (about 1,170 documents, 16,500 sentences): the tutorial, the FAQs, the how-tos, "Using Python",
"Installing Python Modules" and the glossary; from the library reference, the chapters on the built-ins and
some everyday modules (``LIBRARY``); "What's New" for 3.8 to 3.11; and the changelog of the 3.11.0, 3.11.1 and
3.11.2 final releases. Left out, to keep the corpus at a size a question set can cover: the language
reference, the rest of the library, the C API, extending/embedding and distutils manuals, older "What's New"
pages and the changelogs of pre-releases; also the how-tos that are about C or mostly code, the list of
./configure options, and any page whose prose is less than a third of its source. Each section of the
first two levels below a page's title is a document ("Page title: Section title"); the text before the
first section is one too. Each changelog category ("Library", "Tests", ...) of a release is a document, one
entry a paragraph.

The reST becomes sentences: headings go (they make the titles; a FAQ question on a deeper level stays, as
the question its paragraphs answer), as do code blocks, doctests, tables, link targets, index entries,
object signatures, comments, substitution definitions and "see also" boxes; the text of notes, warnings and
object descriptions stays. Roles become the text Sphinx shows (``:func:`len``` -> ``len()``, ``:pep:`8``` ->
``PEP 8``, ``:ref:`` -> the title of the section it points to), literals, emphasis and links lose their
markup, a glossary or definition-list term (and a command-line option or environment variable) is written
before its definition ("term: definition"), and version notes read "Changed in version 3.3: ..." (without
any text of their own, they are dropped).

Dates: a "What's New in Python X.Y" page is dated by the release of X.Y.0 as the page states it ("Python 3.8
was released on October 14, 2019"), or else as the changelog gives it (3.11.0: 2022-10-24); a changelog
release by its "Release date"; every other page by 2022-10-24, the release of Python 3.11.0, the version the
manual documents (the package builds the 3.11.2 text of it, which differs from 3.11.0 in small fixes only).

Deterministic (same package, same files) and takes about two seconds.

    python benchmarks/quality/corpora/pydocs.py DEST
"""

from __future__ import annotations

import gzip
import html
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DOCS", "prepare"]

DOCS = Path("/usr/share/doc/python3.11/html")
PACKAGE = "python3.11-doc"
MANUAL_DATE = "2022-10-24"  # Python 3.11.0


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# What is kept (page names are the source paths without ".rst.txt").
GUIDES = ("tutorial/", "faq/", "howto/", "using/", "installing/", "glossary")
GUIDES_LEFT_OUT = _names(
    # C-level or code-heavy how-tos, and the build options of ./configure (a list of flags)
    """howto/clinic howto/cporting howto/isolating-extensions howto/instrumentation howto/logging-cookbook
    howto/index faq/index using/index tutorial/index using/configure"""
)
LIBRARY = _names(
    # the chapters on the built-ins, and everyday modules
    """intro functions constants stdtypes exceptions os.path shutil pathlib glob tempfile json csv datetime
    zoneinfo collections functools random re subprocess venv math copy pprint enum dataclasses
    contextlib heapq bisect secrets timeit textwrap"""
)
WHATSNEW = ("3.8", "3.9", "3.10", "3.11")
CHANGELOG_RELEASES = ("3.11.0 final", "3.11.1 final", "3.11.2 final")
MIN_PROSE_SHARE = 0.33  # a page whose kept text is a smaller share of its source is mostly code
SPLIT_LEVELS = 2  # a document per section of the first two levels below the page title

# --------------------------------------------------------------------------------------------------------
# Block structure

_TITLE_CHARS = "=-~^\"'`#*+_:.<>"
_ADORNMENT = re.compile(rf"([{re.escape(_TITLE_CHARS)}])\1{{2,}}\s*")
_DIRECTIVE = re.compile(r"\.\.\s+([\w:.-]+)::(?:\s+(.*))?")
_BULLET = re.compile(r"([-*+•]|#\.|\d{1,2}\.|[a-zA-Z]\.|\(\d{1,2}\)|\d{1,2}\))(\s+)(\S.*)")
_FIELD = re.compile(r":(?!\w+:`)[^:`\s][^:`]*:(\s|$)")
_GRID = re.compile(r"\+[-=+]+\+?\s*")
_SIMPLE_TABLE = re.compile(r"=+( +=+)+\s*")

# Directives whose whole block is dropped (code, tables, navigation, metadata, link lists).
_DROPPED = _names(
    """code-block sourcecode code literalinclude highlight productionlist doctest testcode testoutput
    testsetup testcleanup raw image figure toctree index module currentmodule moduleauthor sectionauthor
    tabularcolumns csv-table list-table table include miscnews contents rubric audit-event
    audit-event-table math availability program parsed-literal limited-api-list seealso c:namespace
    epigraph"""
)
# Directives describing a named thing whose name is worth writing before the description.
_NAMED = _names("cmdoption option envvar pdbcommand opcode 2to3fixer describe")
# Directives without arguments, whose content may start on the line after them.
_NO_ARGUMENT = _names(
    "note warning tip important caution attention hint danger error impl-detail glossary container"
)
_VERSIONED = {
    "versionadded": "New in version {}",
    "versionchanged": "Changed in version {}",
    "deprecated": "Deprecated since version {}",
    "deprecated-removed": "Deprecated since version {}, will be removed in version {}",
}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _dedent(lines: list[str]) -> list[str]:
    widths = [_indent(line) for line in lines if line.strip()]
    cut = min(widths, default=0)
    return [line[cut:] for line in lines]


def _block_end(lines: list[str], start: int) -> int:
    """The end of the indented block starting at ``start``: the first later non-blank line at indent 0."""
    j = start
    while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > 0):
        j += 1
    return j


@dataclass(frozen=True)
class _Heading:
    level: int  # 0 for the page title
    text: str


_Item = str | _Heading


class _Converter:
    """reST (as the CPython docs write it) -> paragraphs of prose."""

    def __init__(self, labels: dict[str, str], docs: dict[str, str]) -> None:
        self.labels = labels
        self.docs = docs
        self.styles: list[tuple[str, bool]] = []  # section adornments, in the order the page uses them
        self.faq = False
        self.substitutions = dict(_SUBSTITUTIONS)

    def page(self, text: str, faq: bool) -> list[_Item]:
        """Paragraphs and the headings between them."""
        self.styles, self.faq = [], faq
        self.substitutions = dict(_SUBSTITUTIONS)
        for name, value in _SUBSTITUTION_DEFINITION.findall(text):
            self.substitutions[name] = self.inline(value.strip())
        return list(self.blocks(text.expandtabs(8).split("\n")))

    def blocks(self, lines: list[str]) -> Iterator[_Item]:
        i, n = 0, len(lines)
        while i < n:
            line = lines[i]
            stripped = line.strip()
            if not stripped:
                i += 1
                continue
            if _indent(line) > 0:  # block quote
                end = _block_end(lines, i)
                yield from self.blocks(_dedent(lines[i:end]))
                i = end
                continue
            nxt = lines[i + 1] if i + 1 < n else ""
            # section title with an overline, a section title, a transition
            if (
                _ADORNMENT.fullmatch(line)
                and i + 2 < n
                and _ADORNMENT.fullmatch(lines[i + 2])
                and nxt.strip()
            ):
                yield from self._title(nxt.strip(), (line.strip()[0], True))
                i += 3
                continue
            if (
                _ADORNMENT.fullmatch(nxt)
                and len(nxt.strip()) >= len(stripped) - 2
                and not _SIMPLE_TABLE.fullmatch(nxt)
                and not stripped.startswith(("..", ">>>"))
            ):
                yield from self._title(stripped, (nxt.strip()[0], False))
                i += 2
                continue
            if _ADORNMENT.fullmatch(line) and not _SIMPLE_TABLE.fullmatch(line) and len(stripped) >= 4:
                i += 1
                continue
            if stripped.startswith(".."):
                end = _block_end(lines, i + 1)
                yield from self._explicit(lines[i:end])
                i = end
                continue
            if _GRID.fullmatch(line):
                while i < n and lines[i].strip():
                    i += 1
                continue
            if _SIMPLE_TABLE.fullmatch(line):
                i += 1
                while i < n and not (
                    _SIMPLE_TABLE.fullmatch(lines[i]) and (i + 1 >= n or not lines[i + 1].strip())
                ):
                    i += 1
                i += 1
                continue
            if stripped.startswith(">>>"):
                while i < n and lines[i].strip():
                    i += 1
                continue
            if _FIELD.match(line):
                i = _block_end(lines, i + 1)
                continue
            bullet = _BULLET.fullmatch(line)
            if bullet and (bullet.group(1) in "-*+•" or self._is_list(lines, i)):
                width = len(bullet.group(1)) + len(bullet.group(2))
                end = _block_end(lines, i + 1)
                item = [" " * width + bullet.group(3), *lines[i + 1 : end]]
                yield from self.blocks(_dedent(item))
                i = end
                continue
            if stripped.startswith("| "):  # line block
                j = i
                while j < n and lines[j].strip():
                    j += 1
                yield from self._paragraph([ln.strip().removeprefix("| ") for ln in lines[i:j]])
                i = j
                continue
            # an ordinary paragraph, perhaps a definition-list term
            j = i
            while j < n and lines[j].strip() and _indent(lines[j]) == 0:
                j += 1
            para = lines[i:j]
            if j < n and lines[j].strip() and j == i + 1:  # term followed by its indented definition
                end = _block_end(lines, j)
                yield from self._defined(self.inline(stripped), self.blocks(_dedent(lines[j:end])))
                i = end
                continue
            literal = para[-1].rstrip().endswith("::")
            yield from self._paragraph(para)
            i = j
            if literal:  # skip the literal block that follows
                while i < n and not lines[i].strip():
                    i += 1
                if i < n and _indent(lines[i]) > 0:
                    i = _block_end(lines, i)

    @staticmethod
    def _is_list(lines: list[str], i: int) -> bool:
        """An enumerator ("1.", "a.") starts a list item unless it is within a paragraph."""
        prev = lines[i - 1] if i > 0 else ""
        return not prev.strip() or _indent(prev) > 0 or bool(_BULLET.fullmatch(prev))

    def _title(self, text: str, style: tuple[str, bool]) -> Iterator[_Item]:
        if style not in self.styles:
            self.styles.append(style)
        level = self.styles.index(style)
        if level <= SPLIT_LEVELS:
            yield _Heading(level, self.inline(text))
        elif self.faq and text.endswith("?"):  # a question whose paragraphs are its answer
            yield self.inline(text)

    def _explicit(self, block: list[str]) -> Iterator[_Item]:
        first = block[0].strip()
        match = _DIRECTIVE.fullmatch(first)
        if match is None:
            if first.startswith(".. [") and "]" in first:  # footnote
                yield from self.blocks([first[first.index("]") + 1 :].strip(), *_dedent(block[1:])])
            return  # comment, link target or substitution
        name, argument = match.group(1).lower(), (match.group(2) or "").strip()
        if name in _DROPPED:
            return
        body = block[1:]
        k = 0
        while (
            name not in _NO_ARGUMENT
            and k < len(body)
            and body[k].strip()
            and not _FIELD.match(body[k].strip())
        ):
            argument += " " + body[k].strip()  # the argument goes on
            k += 1
        while k < len(body) and body[k].strip() and _FIELD.match(body[k].strip()):
            k += 1  # options
        content = _dedent(body[k:])
        if name == "only":
            if argument.strip() == "html":
                yield from self.blocks(content)
            return
        if name in _VERSIONED:
            versions = argument.split(None, 2 if name == "deprecated-removed" else 1)
            count = 2 if name == "deprecated-removed" else 1
            if len(versions) < count:
                return
            head = _VERSIONED[name].format(*versions[:count])
            text = versions[count:]
            yield from self._defined(head, self.blocks(text[:1] + content))
            return
        paragraphs = self.blocks(content)
        if name in _NAMED and argument:
            yield from self._defined(self.inline(argument), paragraphs)
        else:
            yield from paragraphs

    @staticmethod
    def _defined(term: str, items: Iterator[_Item]) -> Iterator[_Item]:
        """``term: first paragraph``, then the other paragraphs (a definition list, a described option)."""
        first = next(items, None)
        if first is None:
            return
        if term and isinstance(first, str) and not _NOTE_NUMBER.fullmatch(term):
            first = f"{term} {first}" if term.endswith(":") else f"{term}: {first}"
        yield first
        yield from items

    def _paragraph(self, lines: list[str]) -> Iterator[str]:
        text = " ".join(line.strip() for line in lines)
        if text.endswith("::"):
            text = text[:-2].rstrip() if text[:-2].endswith(" ") or text == "::" else text[:-1]
        text = self.inline(text)
        if text:
            yield text

    # ----------------------------------------------------------------------------------------------------
    # Inline markup

    def inline(self, text: str) -> str:
        saved: list[str] = []

        def keep(value: str) -> str:
            saved.append(value)
            return f"\x00{len(saved) - 1}\x01"

        text = _LITERAL.sub(lambda m: keep(m.group(1)), text)
        text = _ROLE.sub(lambda m: keep(self._role(m.group(1), m.group(2))), text)
        text = _LINK.sub(lambda m: keep(_unescape(m.group(1).strip())), text)
        text = _NAMED_REF.sub(lambda m: keep(_unescape(m.group(1))), text)
        text = _FOOTNOTE_REF.sub("", text)
        text = _SUBSTITUTION.sub(lambda m: keep(self.substitutions.get(m.group(1), m.group(0))), text)
        text = _STRONG.sub(r"\1", text)
        text = _EMPHASIS.sub(r"\1", text)
        text = _DASHES.sub(lambda m: "—" if len(m.group(0)) == 3 else "–", text)
        text = _unescape(text)
        text = _SAVED.sub(lambda m: saved[int(m.group(1))], text)
        text = _SAVED.sub(lambda m: saved[int(m.group(1))], text)  # placeholders inside link titles
        return _SPACES.sub(" ", text).strip()

    def _role(self, role: str, content: str) -> str:
        role = role.lower().removeprefix("py:")
        content = _unescape(content)
        titled = _TITLED.fullmatch(content)
        title, target = (titled.group(1).strip(), titled.group(2).strip()) if titled else (None, content)
        if role == "ref":
            return title or self.labels.get(target.lower(), target.replace("-", " ").replace("_", " "))
        if role == "doc":
            return title or self.docs.get(target.strip("/"), target.rsplit("/", 1)[-1])
        if role == "pep":
            return title or f"PEP {target.split('#')[0]}"
        if role == "rfc":
            return title or f"RFC {target.split('#')[0]}"
        if role == "issue":
            return f"bpo-{target}"
        if role == "gh":
            return f"gh-{target}"
        if role == "abbr":
            return content.split(" (", 1)[0]
        if role == "menuselection":
            return content.replace("-->", ">")
        if role in {"file", "samp"}:
            return re.sub(r"(?<!\\)[{}]", "", content)
        if title is not None:
            return title
        shown = target.lstrip("!")
        if shown.startswith("~"):
            shown = shown[1:].rsplit(".", 1)[-1]
        shown = shown.removeprefix(".")  # "search from the current module outwards"
        if role in _CALLABLE_ROLES and not shown.endswith(")"):
            shown += "()"
        return shown


_NOTE_NUMBER = re.compile(r"\(\d+\)")  # the notes under a table: "(1)", "(2)"...
_CALLABLE_ROLES = frozenset(["func", "meth", "c:func", "cfunc"])
_LITERAL = re.compile(r"``(.+?)``(?!`)")
_ROLE = re.compile(r":([A-Za-z][\w:.-]*):`((?:[^`\\]|\\.)+)`")
_TITLED = re.compile(r"(?s)(.*\S)\s*<([^<>]+)>")
_LINK = re.compile(r"`((?:[^`<\\]|\\.)+?)\s*(?:<[^<>`]*>)?`__?")
_NAMED_REF = re.compile(r"(?<![\w`])([A-Za-z][\w.-]*[A-Za-z0-9])__?(?!\w)")
_FOOTNOTE_REF = re.compile(r"\s*\[(?:#\w*|\d+|\*)\]_")
_SUBSTITUTION = re.compile(r"\|(\w[\w-]*)\|(?:__?)?")
_SUBSTITUTION_DEFINITION = re.compile(r"^\.\. \|([^|]+)\| replace:: (.*)$", re.MULTILINE)
_SUBSTITUTIONS = {"version": "3.11", "release": "3.11", "nbsp": " "}
_STRONG = re.compile(r"(?<![\w*\\])\*\*(\S(?:.*?\S)?)\*\*(?![\w*])")
_EMPHASIS = re.compile(r"(?<![\w*\\])\*(?![\s*])(.+?)(?<![\s\\])\*(?![\w*])")
_DASHES = re.compile(r"(?<=[\s\d])---?(?=[\s\d])")  # Sphinx's smart dashes
_SAVED = re.compile(r"\x00(\d+)\x01")
_SPACES = re.compile(r"\s+")


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text.replace("\\ ", ""))


# --------------------------------------------------------------------------------------------------------
# Pages


_RULE = rf"[{re.escape(_TITLE_CHARS)}]{{3,}}[ \t]*"  # a title's underline or overline
_LABEL_BEFORE_TITLE = re.compile(
    rf"^\.\. _([^:\n]+):[ \t]*\n(?:[ \t]*\n)*(?:{_RULE}\n)?[ \t]*(\S[^\n]*)\n{_RULE}$", re.MULTILINE
)
_FIRST_TITLE = re.compile(rf"^(?:{_RULE}\n)?[ \t]*(\w[^\n]*|:[^\n]*)\n{_RULE}$", re.MULTILINE)


def _selected(name: str) -> bool:
    if name.startswith("library/"):
        return name.removeprefix("library/") in LIBRARY
    if name.startswith("whatsnew/"):
        return name.removeprefix("whatsnew/") in WHATSNEW
    return name.startswith(GUIDES) and name not in GUIDES_LEFT_OUT


def _references(texts: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Section titles by label and page titles by page name, for :ref: and :doc: without a title."""
    plain = _Converter({}, {})
    labels: dict[str, str] = {}
    docs: dict[str, str] = {}
    for name, text in texts.items():
        for match in _LABEL_BEFORE_TITLE.finditer(text):
            labels.setdefault(match.group(1).strip().lower(), plain.inline(match.group(2).strip()))
        first = _FIRST_TITLE.search(text)
        if first:
            docs[name] = plain.inline(first.group(1).strip())
    return labels, docs


_RELEASED_ON = re.compile(r"Python (\d+\.\d+) was released on (\w+) (\d{1,2}), (\d{4})")
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def _page_date(name: str, text: str, releases: dict[str, str]) -> str:
    """A What's New page: the day X.Y was released, as the page says or else as the changelog does."""
    if not name.startswith("whatsnew/"):
        return MANUAL_DATE
    version = name.removeprefix("whatsnew/")
    for match in _RELEASED_ON.finditer(text):
        if match.group(1) == version and match.group(2) in _MONTHS:
            return f"{match.group(4)}-{_MONTHS.index(match.group(2)) + 1:02d}-{int(match.group(3)):02d}"
    if f"{version}.0 final" in releases:
        return releases[f"{version}.0 final"]
    raise ValueError(f"no release date for Python {version}")


@dataclass
class _Document:
    title: str
    paragraphs: list[str]


def _sections(items: list[_Item], fallback: str) -> list[_Document]:
    """One document per section of the first SPLIT_LEVELS levels (the text before any of them included)."""
    page = next((item.text for item in items if isinstance(item, _Heading) and item.level == 0), fallback)
    documents = [_Document(page, [])]
    for item in items:
        if isinstance(item, _Heading):
            if item.level > 0:
                documents.append(_Document(f"{page}: {item.text}", []))
        elif _is_prose(item):
            documents[-1].paragraphs.append(item)
    return [doc for doc in documents if doc.paragraphs]


_SECTION = re.compile(r'<section id="python-([\w-]+)">\s*<h2>(.*?)<a class="headerlink"')
_CATEGORY = re.compile(r"<h3>(.*?)<a class=\"headerlink\"")
_RELEASE_DATE = re.compile(r"<p><em>Release date: (\d{4}-\d{2}-\d{2})</em></p>")
_ITEM = re.compile(r"(?s)<li><p>(.*?)</p>")
_TAG = re.compile(r"<[^>]+>")


def _text(fragment: str) -> str:
    return _SPACES.sub(" ", html.unescape(_TAG.sub("", fragment))).strip()


@dataclass
class _Release:
    name: str  # "3.11.1 final"
    date: str
    body: str  # its HTML


def _releases(path: Path) -> list[_Release]:
    """The sections of the changelog, one per release, newest first."""
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    starts = list(_SECTION.finditer(text))
    releases = []
    for k, match in enumerate(starts):
        name = _text(match.group(2)).removeprefix("Python ")
        body = text[match.end() : starts[k + 1].start() if k + 1 < len(starts) else len(text)]
        date = _RELEASE_DATE.search(body)
        if date is not None:
            releases.append(_Release(name, date.group(1), body))
    return releases


def _changelog(release: _Release) -> Iterator[tuple[str, _Document]]:
    """(file stem, document) for each category ("Library", "Tests", ...) of a release."""
    categories = list(_CATEGORY.finditer(release.body))
    for c, category in enumerate(categories):
        end = categories[c + 1].start() if c + 1 < len(categories) else len(release.body)
        items = [
            item for item in map(_text, _ITEM.findall(release.body[category.end() : end])) if _is_prose(item)
        ]
        if items:
            title = f"Changelog: Python {release.name}: {_text(category.group(1))}"
            yield f"changelog_{release.name.replace(' ', '_')}-{c + 1:02d}", _Document(title, items)


def _write(dest: Path, stem: str, date: str, doc: _Document) -> None:
    body = "\n\n".join(doc.paragraphs)
    (dest / f"{stem}.txt").write_text(f" date {date} {doc.title}\n\n{body}\n", encoding="utf-8")


def prepare(dest: Path) -> Path:
    """Write the corpus into ``dest`` (created; old ``.txt`` files in it are replaced) and return it."""
    sources = DOCS / "_sources"
    changelog = DOCS / "whatsnew" / "changelog.html.gz"
    missing = next((path for path in (sources, changelog) if not path.exists()), None)
    if missing is not None:
        raise FileNotFoundError(
            f"the Python 3.11 documentation is not installed ({missing} is missing); "
            f"install the Debian package with: apt-get install {PACKAGE}"
        )
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.txt"):
        old.unlink()

    texts = {
        path.relative_to(sources).as_posix().removesuffix(".rst.txt"): path.read_text(encoding="utf-8")
        for path in sorted(sources.rglob("*.rst.txt"))
    }
    releases = _releases(changelog)
    release_dates = {release.name: release.date for release in releases}
    absent = sorted(set(CHANGELOG_RELEASES) - set(release_dates))
    if absent:
        raise ValueError(f"the changelog has no dated section for {', '.join(absent)}")
    converter = _Converter(*_references(texts))
    for name, text in texts.items():
        if not _selected(name):
            continue
        documents = _sections(converter.page(text, faq=name.startswith("faq/")), name)
        if sum(len(p) for doc in documents for p in doc.paragraphs) < MIN_PROSE_SHARE * len(text):
            continue
        stem = name.replace("/", "_")
        for k, doc in enumerate(documents):
            _write(dest, f"{stem}-{k:02d}", _page_date(name, text, release_dates), doc)
    for release in releases:
        if release.name in CHANGELOG_RELEASES:
            for stem, doc in _changelog(release):
                _write(dest, stem, release.date, doc)
    return dest


_WORD = re.compile(r"[^\W\d_]{2,}")


def _is_prose(paragraph: str) -> bool:
    """At least three words: not a bare name, a number or a line of symbols."""
    return len(_WORD.findall(paragraph)) >= 3


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python benchmarks/quality/corpora/pydocs.py DEST", file=sys.stderr)
        return 2
    try:
        dest = prepare(Path(args[0]))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(list(dest.glob('*.txt')))} documents in {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
