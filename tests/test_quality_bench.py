"""The quality benchmark's plumbing: the corpus registry (stamped preparation), settings overrides, passages,
and one small end-to-end run over the shipped corpus (the systems that need no extra package)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from retrieval import IndexSettings

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import bench_quality  # noqa: E402
from quality import corpora  # noqa: E402


def test_shipped_comes_first_and_is_used_as_is(tmp_path: Path) -> None:
    names = corpora.corpus_names()
    assert names[0] == "shipped"
    assert all(not n.startswith("_") for n in names)
    assert corpora.prepare_corpus("shipped", tmp_path) == Path(__file__).resolve().parent.parent / "corpus"
    assert not list(tmp_path.iterdir())


def test_an_unknown_corpus_is_an_error_listing_the_modules(tmp_path: Path) -> None:
    with pytest.raises(corpora.UnknownCorpusError, match="no corpus module 'nope'"):
        corpora.prepare_corpus("nope", tmp_path)


def fake_module(tmp_path: Path, calls: list[Path]) -> types.ModuleType:
    source = tmp_path / "fake.py"
    source.write_text("# version 1\n")
    module = types.ModuleType("quality.corpora.fake")
    module.__file__ = str(source)

    def prepare(dest: Path) -> Path:
        calls.append(dest)
        (dest / f"doc{len(calls)}.txt").write_text(" date 2020-01-01 A title\n\nA sentence.\n")
        return dest

    module.prepare = prepare  # type: ignore[attr-defined]
    return module


def test_a_prepared_corpus_is_reused_until_its_module_changes(tmp_path: Path) -> None:
    calls: list[Path] = []
    module = fake_module(tmp_path, calls)
    dest = tmp_path / "work" / "fake"
    assert corpora.prepare_module(module, dest) == dest.resolve()
    assert corpora.prepare_module(module, dest) == dest.resolve()
    assert len(calls) == 1
    stamp = json.loads((dest / corpora.STAMP_NAME).read_text())
    assert stamp["module"] == "fake" and stamp["folder"] == "."

    Path(module.__file__ or "").write_text("# version 2\n")
    corpora.prepare_module(module, dest)
    assert len(calls) == 2
    assert sorted(p.name for p in dest.glob("*.txt")) == ["doc2.txt"]  # the old preparation is gone


def test_a_broken_stamp_means_preparing_again(tmp_path: Path) -> None:
    calls: list[Path] = []
    module = fake_module(tmp_path, calls)
    dest = tmp_path / "fake"
    corpora.prepare_module(module, dest)
    (dest / corpora.STAMP_NAME).write_text("{half")
    corpora.prepare_module(module, dest)
    assert len(calls) == 2


# -- settings overrides -------------------------------------------------------------------------------------


def test_overrides_replace_fields_and_nested_ranking_fields() -> None:
    assignments = ["ranking.k1=1.2", "stop_words=false", "weak_coverage=0.25", "max_sentence_chars=900"]
    settings = bench_quality.apply_overrides(IndexSettings(), assignments)
    assert settings.ranking.k1 == 1.2 and settings.ranking.b == IndexSettings().ranking.b
    assert settings.stop_words is False and settings.weak_coverage == 0.25
    assert settings.max_sentence_chars == 900
    described = bench_quality.describe_overrides(IndexSettings(), settings)
    assert described == "stop_words=False, max_sentence_chars=900, ranking.k1=1.2, weak_coverage=0.25"
    assert bench_quality.apply_overrides(IndexSettings(), ["ranking.delta=none"]).ranking.delta is None


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("k1=1.2", r"IndexSettings has no field 'k1' \(fields: language, stop_words"),
        ("ranking.kappa=1", r"BM25Params has no field 'kappa'"),
        ("ranking=bm25l", r"ranking is a group of fields: set ranking.algorithm"),
        ("stop_words.x=1", r"stop_words is a plain value"),
        ("stop_words=maybe", r"expected true or false"),
        ("max_sentence_chars=many", r"max_sentence_chars=many"),
        ("ranking.b=2", r"ranking.b=2: BM25 needs k1 >= 0 and 0 <= b <= 1"),
        ("stemming", r"expected FIELD=VALUE"),
    ],
)
def test_a_bad_override_is_a_clear_error(assignment: str, message: str) -> None:
    with pytest.raises(bench_quality.SettingError, match=message):
        bench_quality.apply_overrides(IndexSettings(), [assignment])


# -- passages, end to end -----------------------------------------------------------------------------------


def test_passages_are_sliding_windows_within_each_document() -> None:
    s = bench_quality.Sentence
    sentences = [s("a1", "a", 0), s("a2", "a", 1), s("a3", "a", 2), s("a4", "a", 3), s("b1", "b", 0)]
    assert bench_quality.passages(sentences) == [("a1", "a2", "a3"), ("a2", "a3", "a4"), ("b1",)]


def test_a_run_over_the_shipped_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    details, out = tmp_path / "details.jsonl", tmp_path / "report.md"
    code = bench_quality.main(["--corpora", "shipped", "--systems", "project,rank_bm25", "--workdir",
                               str(tmp_path / "work"), "--details", str(details), "--out", str(out),
                               "--set", "ranking.k1=1.2", "--label", "k1=1.2"])
    assert code == 0
    report = out.read_text()
    assert report in capsys.readouterr().out
    for heading in ("### Split: tune", "### Split: held", "### Split: all", "### Recall@1 by tag",
                    "### Per corpus", "### Shipped corpus"):
        assert heading in report
    assert "| k1=1.2 | " in report and "| rank_bm25 | " in report
    assert "Warning" not in report  # every gold sentence is one of the corpus's sentences
    records = [json.loads(line) for line in details.read_text().splitlines()]
    questions = (BENCHMARKS / "quality" / "questions" / "shipped.jsonl").read_text().splitlines()
    assert len(records) == 2 * len(questions)
    assert {r["system"] for r in records} == {"k1=1.2", "rank_bm25"}
    first = records[0]
    assert set(first) >= {"id", "rank", "top", "confidence", "question", "gold", "split", "tag"}
    assert len(first["top"]) <= 3
    assert all(r["rank"] is None for r in records if r["tag"] == "no-answer")
