"""The corpus reader against hostile folders: every bad file is reported by name, the good ones still load."""

from __future__ import annotations

import datetime as dt
import os
import random
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval import corpus as corpus_module
from retrieval.corpus import (
    Corpus,
    CorpusError,
    Document,
    Problem,
    list_corpus_files,
    load_corpus,
    read_document,
)

SAMPLE_CORPUS = Path(__file__).resolve().parents[1] / "corpus"
GOOD = " date 2023-08-05 A good title\n\nFirst paragraph.\n\nSecond paragraph.\n"


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def read(
    tmp_path: Path, content: str | bytes, name: str = "doc.txt"
) -> tuple[Document | None, list[Problem]]:
    return read_document(write(tmp_path, name, content), name)


def messages(problems: list[Problem] | tuple[Problem, ...]) -> list[str]:
    return [p.message for p in problems]


def only_skip(problems: list[Problem], name: str = "doc.txt") -> str:
    assert len(problems) == 1, problems
    assert problems[0].skipped
    assert problems[0].file == name
    return problems[0].message


# --- the shipped sample


def test_shipped_sample_loads_cleanly() -> None:
    corpus = load_corpus(SAMPLE_CORPUS)
    assert corpus.problems == ()
    assert len(corpus.documents) == 1
    doc = corpus.documents[0]
    assert doc.name == "000_3587ab5dbc81a1f9.txt"
    assert doc.date == dt.date(2023, 8, 5)
    assert doc.title == (
        "Strengthening Basic Research to Achieve High-Level Scientific and Technological "
        "Self-Reliance and Self-Improvement"
    )
    assert len(doc.paragraphs) == 6
    assert doc.url is None
    assert corpus.summary() == "1 document loaded, 0 files skipped, 0 warnings"


# --- the header format


def test_good_file_paragraphs_are_split_and_joined(tmp_path: Path) -> None:
    content = (
        "date 2023-01-02 Title\n\n"
        "  line one\nline two  \n   \n\t\n"  # whitespace-only lines separate paragraphs
        "\n\n\nthird\n\n\n"
    )
    doc, problems = read(tmp_path, content)
    assert problems == []
    assert doc == Document("doc.txt", "Title", dt.date(2023, 1, 2), ("line one line two", "third"))


def test_header_is_case_insensitive_and_tolerates_leading_blank_lines(tmp_path: Path) -> None:
    doc, problems = read(tmp_path, "\n\n  DATE 2023-08-05   Spaced   title  \n\nText.")
    assert problems == []
    assert doc is not None
    assert (doc.date, doc.title, doc.paragraphs) == (dt.date(2023, 8, 5), "Spaced title", ("Text.",))


def test_text_right_after_header_without_blank_line_is_kept(tmp_path: Path) -> None:
    doc, problems = read(tmp_path, " date 2023-08-05 T\nImmediately.\n")
    assert problems == []
    assert doc is not None and doc.paragraphs == ("Immediately.",)


def test_no_header_keeps_first_line_and_takes_title_from_name(tmp_path: Path) -> None:
    doc, problems = read(tmp_path, "Just some text\non two lines.\n\nMore.\n", name="my_notes-2023.txt")
    assert doc is not None
    assert doc.date is None
    assert doc.title == "my notes 2023"
    assert doc.paragraphs == ("Just some text on two lines.", "More.")
    assert problems == [Problem("my_notes-2023.txt", "no header line; date unknown")]


@pytest.mark.parametrize("bad_date", ["2023-02-30", "2023-13-01", "23-1-1", "0000-01-01", "05/08/2023"])
def test_invalid_date_keeps_text_and_title(tmp_path: Path, bad_date: str) -> None:
    doc, problems = read(tmp_path, f" date {bad_date} The title\n\nBody.\n")
    assert doc is not None
    assert doc.date is None
    assert doc.title == "The title"
    assert doc.paragraphs == ("Body.",)
    assert messages(problems) == [f"invalid date '{bad_date}'; date unknown"]
    assert not problems[0].skipped


def test_line_starting_with_date_but_no_date_is_content(tmp_path: Path) -> None:
    doc, problems = read(tmp_path, "Date 12 of the tour was cancelled.\n\nSad.\n")
    assert doc is not None
    assert doc.date is None
    assert doc.paragraphs == ("Date 12 of the tour was cancelled.", "Sad.")
    assert messages(problems) == [
        "first line starts with 'date' but '12' is not a date; kept as text, date unknown"
    ]

    doc, problems = read(tmp_path, "Date night ideas\n\nDinner.\n")
    assert doc is not None and doc.paragraphs[0] == "Date night ideas"
    assert messages(problems) == ["no header line; date unknown"]


def test_header_without_title_uses_file_name(tmp_path: Path) -> None:
    name = "000_3587ab5dbc81a1f9.txt"
    doc, problems = read(tmp_path, " date 2023-08-05\n\nBody.\n", name=name)
    assert doc is not None
    assert doc.title == "000 3587ab5dbc81a1f9"
    assert doc.date == dt.date(2023, 8, 5)
    assert problems == [Problem(name, "header has no title; title taken from the file name")]


def test_invalid_date_and_missing_title_both_reported(tmp_path: Path) -> None:
    doc, problems = read(tmp_path, " date 2023-02-30\n\nBody.\n", name="sub/x-y.TXT")
    assert doc is not None and doc.title == "x y" and doc.date is None
    assert messages(problems) == [
        "invalid date '2023-02-30'; date unknown",
        "header has no title; title taken from the file name",
    ]


# --- empty and header-only


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty file"),
        (b"\xef\xbb\xbf", "empty file"),
        (b"  \n\r\n\t \n", "empty file"),
        (b" date 2023-08-05 Title", "no text after the header"),
        (b" date 2023-08-05 Title\n\n   \n\n", "no text after the header"),
        (b"---\ntitle: T\ndate: 2023-08-05\n---\n\n", "no text after the header"),
    ],
)
def test_empty_and_header_only_files_are_skipped(tmp_path: Path, content: bytes, expected: str) -> None:
    doc, problems = read(tmp_path, content)
    assert doc is None
    assert only_skip(problems) == expected


# --- encodings and line endings


def test_bom_crlf_and_lone_cr(tmp_path: Path) -> None:
    crlf = b"\xef\xbb\xbf date 2023-08-05 Title\r\n\r\nline a\r\nline b\r\n\r\nnext\r\n"
    doc, problems = read(tmp_path, crlf)
    assert problems == []
    assert doc is not None
    assert (doc.title, doc.date, doc.paragraphs) == ("Title", dt.date(2023, 8, 5), ("line a line b", "next"))

    doc, problems = read(tmp_path, b" date 2023-08-05 Title\r\rline a\rline b\r\rnext")
    assert problems == []
    assert doc is not None and doc.paragraphs == ("line a line b", "next")


FRENCH = " date 2023-01-01 Café société\n\nLe café était très bon à Noël. « Déjà vu » - naïve façade.\n"


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_legacy_western_encodings_come_out_right(tmp_path: Path, encoding: str) -> None:
    doc, problems = read(tmp_path, FRENCH.encode(encoding))
    assert doc is not None
    assert doc.title == "Café société"
    assert doc.paragraphs == ("Le café était très bon à Noël. « Déjà vu » - naïve façade.",)
    assert messages(problems) == ["not UTF-8; decoded as cp1252"]
    assert problems[0].file == "doc.txt"


@pytest.mark.parametrize(
    "text",
    [
        "Crème brûlée\n",
        "Grüße aus München, schöne Straße.\n",
        "Déjà vu, naïve façade, “quotes” — dash, €5\n",
        "é\n",
    ],
)
def test_short_cp1252_texts(tmp_path: Path, text: str) -> None:
    doc, problems = read(tmp_path, text.encode("cp1252"))
    assert doc is not None
    assert doc.paragraphs == (text.strip(),)
    assert messages(problems) == ["no header line; date unknown", "not UTF-8; decoded as cp1252"] or messages(
        problems
    ) == ["not UTF-8; decoded as cp1252", "no header line; date unknown"]


def test_cyrillic_cp1251_is_not_mistaken_for_cp1252(tmp_path: Path) -> None:
    text = "Привет, как дела? Это тестовый документ о науке и технике.\n"
    doc, problems = read(tmp_path, text.encode("cp1251"))
    assert doc is not None
    assert doc.paragraphs == (text.strip(),)
    assert "not UTF-8; decoded as cp1251" in messages(problems)


def test_gb18030_chinese_is_decoded(tmp_path: Path) -> None:
    body = "加强基础研究，是实现高水平科技自立自强的迫切要求，是建设世界科技强国的必由之路。"
    text = f" date 2023-08-05 加强基础研究\n\n{body}\n"
    doc, problems = read(tmp_path, text.encode("gb18030"))
    assert doc is not None
    assert doc.title == "加强基础研究"
    assert doc.paragraphs == (body,)
    [warning] = messages(problems)
    assert warning.startswith("not UTF-8; decoded as ")


def test_utf8_chinese(tmp_path: Path) -> None:
    body = "第一段。\n\n第二段，包含“引号”。"
    doc, problems = read(tmp_path, f" date 2023-08-05 中文标题\n\n{body}\n")
    assert problems == []
    assert (
        doc is not None and doc.title == "中文标题" and doc.paragraphs == ("第一段。", "第二段，包含“引号”。")
    )


def test_utf16_with_bom(tmp_path: Path) -> None:
    doc, problems = read(tmp_path, GOOD.encode("utf-16"))
    assert doc is not None and doc.paragraphs == ("First paragraph.", "Second paragraph.")
    assert messages(problems) == ["not UTF-8; decoded as UTF-16"]


def test_utf8_with_a_few_stray_bytes_keeps_the_good_accents(tmp_path: Path) -> None:
    content = " date 2023-08-05 Été\n\nCafé, crème, brûlée, naïve, déjà.".encode() + b" bad\xff byte\n"
    doc, problems = read(tmp_path, content)
    assert doc is not None
    assert doc.title == "Été"
    assert doc.paragraphs == ("Café, crème, brûlée, naïve, déjà. bad byte",)
    assert messages(problems) == ["not valid UTF-8; dropped 1 undecodable byte"]


def test_undecodable_noise_is_skipped_not_garbled(tmp_path: Path) -> None:
    noise = random.Random(1).randbytes(4000).replace(b"\x00", b"")
    doc, problems = read(tmp_path, noise)
    assert doc is None
    assert "binary file" in only_skip(problems)


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00",
        b" date 2023-08-05 Title\n\nText with a NUL\x00 in it.\n",
        bytes(range(1, 32)) * 20,
    ],
)
def test_binary_files_are_skipped(tmp_path: Path, content: bytes) -> None:
    doc, problems = read(tmp_path, content)
    assert doc is None
    assert only_skip(problems).startswith("binary file")


def test_control_characters_are_stripped_and_tabs_become_spaces(tmp_path: Path) -> None:
    content = " date 2023-08-05 Ti\ttle\x07\n\nA\tB\x1b[0m C\x7f\fD\x0bE, then some ordinary text.\n"
    doc, problems = read(tmp_path, content)
    assert doc is not None
    assert doc.title == "Ti tle"
    assert doc.paragraphs == (
        "A B[0m C D E, then some ordinary text.",
    )  # form feed and vertical tab end a line
    assert messages(problems) == ["removed 3 control characters"]


def test_replacement_characters_are_removed(tmp_path: Path) -> None:
    doc, problems = read(tmp_path, " date 2023-08-05 T\n\nCaf\ufffd au lait\n")
    assert doc is not None and doc.paragraphs == ("Caf au lait",)
    assert messages(problems) == ["removed 1 U+FFFD replacement character (text damaged earlier)"]


def test_multi_megabyte_single_paragraph_is_fast(tmp_path: Path) -> None:
    words = ("lorem ipsum dolor sit amet " * 120_000).strip()  # ~3.2 MB, one line
    start = time.perf_counter()
    doc, problems = read(tmp_path, f" date 2023-08-05 Big\n\n{words}\n")
    elapsed = time.perf_counter() - start
    assert problems == []
    assert doc is not None and doc.paragraphs == (words,)
    assert elapsed < 2.0


def test_multi_megabyte_paragraph_over_many_lines(tmp_path: Path) -> None:
    content = " date 2023-08-05 Big\n\n" + "word word word\n" * 200_000
    doc, problems = read(tmp_path, content)
    assert problems == []
    assert doc is not None and len(doc.paragraphs) == 1 and len(doc.paragraphs[0]) == 15 * 200_000 - 1


def test_too_large_file_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus_module, "MAX_FILE_BYTES", 100)
    doc, problems = read(tmp_path, GOOD + "x" * 200)
    assert doc is None
    assert only_skip(problems).startswith("file too large")


# --- unreadable files


def test_permission_error_gives_os_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = write(tmp_path, "locked.txt", GOOD)
    write(tmp_path, "ok.txt", GOOD)
    real_open = Path.open

    def fake_open(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if self.name == "locked.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", fake_open)
    doc, problems = read_document(locked, "locked.txt")
    assert doc is None
    assert problems == [Problem("locked.txt", "cannot read the file: Permission denied", skipped=True)]

    corpus = load_corpus(tmp_path)
    assert [d.name for d in corpus.documents] == ["ok.txt"]
    assert corpus.problems == (Problem("locked.txt", "cannot read the file: Permission denied", True),)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_real_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "locked.txt", GOOD)
    path.chmod(0)
    try:
        doc, problems = read_document(path, "locked.txt")
    finally:
        path.chmod(0o644)
    assert doc is None
    assert only_skip(problems, "locked.txt") == "cannot read the file: Permission denied"


def test_directory_passed_as_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "dir.txt").mkdir()
    doc, problems = read_document(tmp_path / "dir.txt", "dir.txt")
    assert doc is None
    assert only_skip(problems, "dir.txt").startswith("cannot read the file: ")


# --- YAML front matter


def test_front_matter(tmp_path: Path) -> None:
    content = "---\ntitle: A YAML doc\ndate: 2023-08-05\nurl: https://example.org/a\n---\n\nOne.\n\nTwo.\n"
    doc, problems = read(tmp_path, content)
    assert problems == []
    assert doc == Document(
        "doc.txt", "A YAML doc", dt.date(2023, 8, 5), ("One.", "Two."), "https://example.org/a"
    )


@pytest.mark.parametrize(
    ("date_line", "expected"),
    [
        ("date: '2023-08-05'", dt.date(2023, 8, 5)),
        ("date: 2023-08-05T10:30:00Z", dt.date(2023, 8, 5)),
        ("date: 2023-08-05 10:30:00", dt.date(2023, 8, 5)),
    ],
)
def test_front_matter_date_forms(tmp_path: Path, date_line: str, expected: dt.date) -> None:
    doc, problems = read(tmp_path, f"---\ntitle: T\n{date_line}\n---\nBody\n")
    assert problems == []
    assert doc is not None and doc.date == expected


def test_front_matter_invalid_and_missing_dates(tmp_path: Path) -> None:
    doc, problems = read(tmp_path, "---\ntitle: T\ndate: 2023-02-30\n---\nBody\n")
    assert doc is not None and doc.date is None and doc.title == "T"
    assert messages(problems) == ["invalid date '2023-02-30'; date unknown"]

    doc, problems = read(tmp_path, "---\ntitle: T\n---\nBody\n")
    assert doc is not None and doc.date is None
    assert messages(problems) == ["front matter has no date; date unknown"]

    doc, problems = read(tmp_path, "---\ntitle: T\ndate: [1, 2]\n---\nBody\n")
    assert doc is not None and doc.date is None
    assert messages(problems) == ["date in the front matter is not a date; date unknown"]


def test_front_matter_without_title_and_bad_url(tmp_path: Path) -> None:
    doc, problems = read(
        tmp_path, "---\ndate: 2023-08-05\nurl: javascript:alert(1)\n---\nBody\n", "some_file.txt"
    )
    assert doc is not None
    assert doc.title == "some file" and doc.url is None
    assert messages(problems) == [
        "front matter has no title; title taken from the file name",
        "url 'javascript:alert(1)' is not an http(s) address; ignored",
    ]
    assert {p.file for p in problems} == {"some_file.txt"}


def test_broken_yaml_is_salvaged_line_by_line(tmp_path: Path) -> None:
    content = "---\ntitle: Colons: everywhere: here\ndate: 2023-08-05\n---\n\nBody.\n"
    doc, problems = read(tmp_path, content)
    assert doc is not None
    assert (doc.title, doc.date, doc.paragraphs) == (
        "Colons: everywhere: here",
        dt.date(2023, 8, 5),
        ("Body.",),
    )
    [warning] = messages(problems)
    assert warning.startswith("front matter is not valid YAML (line 2: ")
    assert warning.endswith("); read it line by line")


def test_unclosed_front_matter_is_read_as_text(tmp_path: Path) -> None:
    doc, problems = read(tmp_path, "---\ntitle: T\n\nBody.\n")
    assert doc is not None and doc.date is None
    assert doc.paragraphs == ("--- title: T", "Body.")
    assert messages(problems) == [
        "front matter opened with '---' is never closed; read as text, date unknown"
    ]


def test_hostile_yaml_does_not_crash(tmp_path: Path) -> None:
    deep = "---\ntitle: " + "[" * 1500 + "]" * 1500 + "\ndate: 2023-08-05\n---\nBody\n"
    doc, problems = read(tmp_path, deep)
    assert doc is not None and doc.paragraphs == ("Body",) and doc.date == dt.date(2023, 8, 5)
    assert len(doc.title) <= 300
    assert problems and all(not p.skipped for p in problems)

    # nested just below the bracket guard: PyYAML itself parses or rejects it, without a crash
    doc, problems = read(tmp_path, "---\ntitle: " + "[" * 60 + "]" * 60 + "\ndate: 2023-08-05\n---\nBody\n")
    assert doc is not None and doc.title == "doc" and doc.date == dt.date(2023, 8, 5)

    aliases = "---\na: &a [x, x, x]\nb: &b [*a, *a, *a]\ntitle: *b\ndate: 2023-08-05\n---\nBody\n"
    doc, problems = read(tmp_path, aliases)
    assert doc is not None and doc.title == "doc"
    assert "title in the front matter is not text; ignored" in messages(problems)


def test_runaway_title_is_shortened(tmp_path: Path) -> None:
    doc, problems = read(tmp_path, " date 2023-08-05 " + "word " * 200 + "\n\nBody\n")
    assert doc is not None and len(doc.title) == 300 and doc.title.endswith("…")
    assert messages(problems) == ["title longer than 300 characters; shortened"]


# --- listing


def test_listing_skips_hidden_and_non_txt_and_sorts(tmp_path: Path) -> None:
    write(tmp_path, "b.txt", GOOD)
    write(tmp_path, "A.TXT", GOOD)
    write(tmp_path, "sub/deeper/c.Txt", GOOD)
    write(tmp_path, ".hidden.txt", GOOD)
    write(tmp_path, ".git/d.txt", GOOD)
    write(tmp_path, "notes.md", GOOD)
    write(tmp_path, "image.png", b"\x89PNG")
    write(tmp_path, "backup.txt~", GOOD)
    files, problems = list_corpus_files(tmp_path)
    assert problems == []
    assert [name for name, _ in files] == ["A.TXT", "b.txt", "sub/deeper/c.Txt"]
    assert files[2][1] == tmp_path / "sub" / "deeper" / "c.Txt"


def test_names_with_spaces_and_non_ascii_are_kept(tmp_path: Path) -> None:
    for name in ["résumé du 5 mai.txt", "中文 文件.txt", "dir with space/ü.txt"]:
        write(tmp_path, name, GOOD)
    corpus = load_corpus(tmp_path)
    assert corpus.problems == ()
    assert sorted(d.name for d in corpus.documents) == sorted(
        ["résumé du 5 mai.txt", "中文 文件.txt", "dir with space/ü.txt"]
    )


@pytest.mark.skipif(os.name != "posix", reason="byte file names are a POSIX thing")
def test_undecodable_file_name_is_made_printable(tmp_path: Path) -> None:
    try:
        fd = os.open(os.fsencode(tmp_path) + b"/caf\xe9.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError:
        pytest.skip("file system refuses non-UTF-8 names")
    os.write(fd, GOOD.encode())
    os.close(fd)
    corpus = load_corpus(tmp_path)
    assert [d.name for d in corpus.documents] == ["caf\\xe9.txt"]
    assert corpus.problems == (
        Problem("caf\\xe9.txt", "file name has undecodable bytes or control characters"),
    )
    "\n".join(str(p) for p in corpus.problems).encode("utf-8")  # would raise on lone surrogates


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    outside = tmp_path / "outside"
    write(outside, "secret.txt", GOOD)
    write(root, "real.txt", GOOD)
    write(root, "sub/inner.txt", GOOD)
    write(root, ".drafts/draft.txt", GOOD)
    (root / "to_secret.txt").symlink_to(outside / "secret.txt")
    (root / "to_outside_dir").symlink_to(outside, target_is_directory=True)
    (root / "broken.txt").symlink_to(root / "missing.txt")
    (root / "alias.txt").symlink_to(root / "real.txt")
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "sub" / "up").symlink_to(root / "sub", target_is_directory=True)
    (root / "published").symlink_to(root / ".drafts", target_is_directory=True)
    (root / "logo.png").symlink_to(outside / "nothing.png")  # broken, but reported: could be anything

    files, problems = list_corpus_files(root)
    assert [name for name, _ in files] == ["published/draft.txt", "real.txt", "sub/inner.txt"]
    assert sorted((p.file, p.message, p.skipped) for p in problems) == [
        ("broken.txt", "broken symlink (its target does not exist)", True),
        ("logo.png", "broken symlink (its target does not exist)", True),
        ("to_outside_dir", "symlink points outside the corpus folder", True),
        ("to_secret.txt", "symlink points outside the corpus folder", True),
    ]
    corpus = load_corpus(root)
    assert len(corpus.documents) == 3
    assert corpus.summary() == "3 documents loaded, 4 files skipped, 0 warnings"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_named_txt_is_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    write(tmp_path, "ok.txt", GOOD)
    files, problems = list_corpus_files(tmp_path)
    assert [name for name, _ in files] == ["ok.txt"]
    assert problems == [Problem("pipe.txt", "not a regular file", True)]


def test_unlistable_subfolder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "locked/a.txt", GOOD)
    write(tmp_path, "ok.txt", GOOD)
    real_scandir = os.scandir

    def fake_scandir(path):  # type: ignore[no-untyped-def]
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(corpus_module.os, "scandir", fake_scandir)
    files, problems = list_corpus_files(tmp_path)
    assert [name for name, _ in files] == ["ok.txt"]
    assert problems == [Problem("locked", "cannot open the folder: Permission denied", True)]


# --- the whole corpus


def test_missing_folder_and_file_instead_of_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(CorpusError, match="not found") as info:
        load_corpus(missing)
    assert str(missing) in str(info.value)

    a_file = write(tmp_path, "file.txt", GOOD)
    with pytest.raises(CorpusError, match="not a folder") as info:
        load_corpus(str(a_file))
    assert str(a_file) in str(info.value)


def test_empty_folder_gives_empty_corpus(tmp_path: Path) -> None:
    corpus = load_corpus(tmp_path)
    assert corpus == Corpus(tmp_path, (), ())
    assert corpus.summary() == "0 documents loaded, 0 files skipped, 0 warnings"


def test_one_bad_file_never_stops_the_rest(tmp_path: Path) -> None:
    write(tmp_path, "01_good.txt", GOOD)
    write(tmp_path, "02_empty.txt", b"")
    write(tmp_path, "03_binary.txt", b"\x00\x01\x02")
    write(tmp_path, "04_noheader.txt", "Plain text.\n")
    write(tmp_path, "05_latin.txt", FRENCH.encode("latin-1"))
    write(tmp_path, "06_header_only.txt", " date 2023-08-05 Nothing else")
    write(tmp_path, "07_bad_date.txt", " date 2023-13-01 T\n\nx\n")
    corpus = load_corpus(tmp_path)
    assert [d.name for d in corpus.documents] == [
        "01_good.txt",
        "04_noheader.txt",
        "05_latin.txt",
        "07_bad_date.txt",
    ]
    assert [str(p) for p in corpus.problems] == [
        "02_empty.txt: skipped: empty file",
        "03_binary.txt: skipped: binary file (contains NUL bytes)",
        "04_noheader.txt: warning: no header line; date unknown",
        "05_latin.txt: warning: not UTF-8; decoded as cp1252",
        "06_header_only.txt: skipped: no text after the header",
        "07_bad_date.txt: warning: invalid date '2023-13-01'; date unknown",
    ]
    assert corpus.summary() == "4 documents loaded, 3 files skipped, 3 warnings"


def test_summary_singular() -> None:
    corpus = Corpus(
        Path("."),
        (Document("a.txt", "A", None, ("x",)),),
        (Problem("b.txt", "m", True), Problem("a.txt", "w")),
    )
    assert corpus.summary() == "1 document loaded, 1 file skipped, 1 warning"


# --- anything at all


_PREFIXES = st.sampled_from(
    [b"", b" date 2023-08-05 T\n\n", b"---\ntitle: x\ndate: 2023-02-30\n---\n", b"\xef\xbb\xbf"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=_PREFIXES,
    body=st.one_of(
        st.binary(max_size=600),
        st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.text(alphabet=st.characters(max_codepoint=255), max_size=300).map(lambda s: s.encode("latin-1")),
    ),
)
def test_read_document_never_raises(prefix: bytes, body: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.txt"
        path.write_bytes(prefix + body)
        doc, problems = read_document(path, "x.txt")
    assert all(p.file == "x.txt" and p.message for p in problems)
    if doc is None:
        assert len(problems) == 1 and problems[0].skipped
        return
    assert not any(p.skipped for p in problems)
    assert doc.title and doc.paragraphs
    for text in (doc.title, *doc.paragraphs):
        assert text == text.strip()
        assert "\ufffd" not in text and "\n" not in text and "\t" not in text
        assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in text)
        text.encode("utf-8")  # no lone surrogates
