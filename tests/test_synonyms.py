"""WordNet's synonyms (a small database in WordNet 3.0's file format) and the expand stage's use of them."""

from __future__ import annotations

from pathlib import Path

import pytest

import retrieval.synonyms as synonyms_module
from retrieval.analysis import Analyzer
from retrieval.expansion import NO_EXPANSION, QUESTION, SYNONYM, ExpansionSettings, QueryExpander
from retrieval.index import InvertedIndex
from retrieval.synonyms import WordNet

LICENCE = "  1 This software and database is being provided to you, the LICENSEE, by Princeton University\n"
# Each part of speech: synsets (their words) and, for each lemma, its senses in order (synset numbers).
SYNSETS = {
    "noun": [["directory", "folder"], ["booklet", "brochure", "folder", "leaflet", "pamphlet"],
             ["pestilence", "plague", "pest"], ["sick_bay", "infirmary"]],
    "verb": [["shuffle", "ruffle", "mix"], ["scuffle", "shuffle", "shamble"]],
    "adj": [], "adv": [],
}  # fmt: skip
SENSES = {
    "noun": {"folder": [0, 1], "directory": [0], "plague": [2], "pestilence": [2], "pest": [2],
             "infirmary": [3], "sick_bay": [3], "booklet": [1], "brochure": [1], "leaflet": [1],
             "pamphlet": [1]},
    "verb": {"shuffle": [0, 1], "mix": [0], "ruffle": [0], "scuffle": [1], "shamble": [1]},
    "adj": {}, "adv": {},
}  # fmt: skip


def write_wordnet(folder: Path) -> Path:
    """A WordNet database of the synsets above: data lines at their byte offsets, index lines naming them."""
    folder.mkdir(parents=True, exist_ok=True)
    for pos, synsets in SYNSETS.items():
        data, offsets = LICENCE.encode(), []
        for number, words in enumerate(synsets):
            offsets.append(len(data))
            members = " ".join(f"{w} 0" for w in words)
            line = f"{len(data):08d} 05 {pos[0]} {len(words):02x} {members} 000 | sense {number}  \n"
            data += line.encode()
        (folder / f"data.{pos}").write_bytes(data)
        index = [LICENCE]
        for lemma, senses in sorted(SENSES[pos].items()):
            synset_offsets = " ".join(f"{offsets[s]:08d}" for s in senses)
            index.append(f"{lemma} {pos[0]} {len(senses)} 1 @ {len(senses)} 0 {synset_offsets}  \n")
        (folder / f"index.{pos}").write_text("".join(index), encoding="latin-1")
    return folder


def test_synonyms_come_from_a_words_first_senses_in_order(tmp_path: Path) -> None:
    wordnet = WordNet(write_wordnet(tmp_path / "wordnet"))
    assert wordnet.synonyms("folder") == ["directory", "booklet", "brochure", "leaflet", "pamphlet"]
    assert WordNet(tmp_path / "wordnet", senses=1).synonyms("folder") == ["directory"]
    assert wordnet.synonyms("infirmary") == []  # "sick_bay" is two words
    assert wordnet.synonyms("Plague") == ["pestilence", "pest"]
    assert wordnet.synonyms("zeppelin") == []


def test_a_word_is_found_by_binary_search_in_a_large_index(tmp_path: Path) -> None:
    # Many lemmas (an index far larger than the window read whole), each naming the one noun synset;
    # every one is found, and words before, between and after them are not.
    folder = write_wordnet(tmp_path / "wordnet")
    lemmas = [*sorted(f"{a}{b}{c}{d}" for a in "bcdfg" for b in "aeiou" for c in "lmnprst" for d in "aeiou"),
              "zz"]  # fmt: skip
    with open(folder / "index.noun", "a", encoding="latin-1") as index:  # after "sick_bay": still sorted
        for lemma in lemmas:
            index.write(f"t{lemma} n 1 1 @ 1 0 {len(LICENCE):08d}  \n")
    assert (folder / "index.noun").stat().st_size > 8 * synonyms_module._SCAN
    wordnet = WordNet(folder)
    for lemma in lemmas:
        assert wordnet.synonyms(f"t{lemma}") == ["directory", "folder"], lemma
    for absent in ("tbaaa", "tbalax", "tzzz", "t", "ta", "zzz", "aaa", "sick", "tgusx"):
        assert wordnet.synonyms(absent) == [], absent
    assert wordnet.synonyms("folder")[:1] == ["directory"]  # the small ones before them still there


def test_a_folder_that_is_no_wordnet_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"not a WordNet database: no index\.noun"):
        WordNet(tmp_path)


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = write_wordnet(tmp_path / "wordnet")
    monkeypatch.setattr(synonyms_module, "DEFAULT_FOLDERS", (folder,))
    monkeypatch.setattr(synonyms_module, "_looked", False)
    monkeypatch.setattr(synonyms_module, "_default", None)
    return folder


def expander_over(sentences: list[str], settings: ExpansionSettings | None = None,
                  analyzer: Analyzer | None = None) -> QueryExpander:
    analyzer = analyzer or Analyzer()
    inverted = InvertedIndex.from_term_lists([analyzer.terms(s) for s in sentences])
    return QueryExpander(analyzer, inverted.term_ids, inverted.document_frequency, settings)


def test_a_synonym_the_corpus_has_is_an_extra_term(installed: Path) -> None:
    expander = expander_over(["Copy the whole directory tree.", "Shuffle the sequence in place."])
    extra = {t.term: (t.source, t.weight, t.word) for t in expander.expand("duplicate a folder")
             if t.source != QUESTION}  # fmt: skip
    assert extra == {"directori": (SYNONYM, 0.6, "folder")}  # "pamphlet" and the rest: not in the corpus
    mixed = {t.term for t in expander.expand("mixing the list") if t.source == SYNONYM}
    assert mixed == {"shuffl"}  # through the word's lemma ("mixing" -> mix)


def test_no_synonyms_when_off_in_another_language_or_without_wordnet(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentences = ["Copy the whole directory tree."]
    assert all(t.source == QUESTION for t in expander_over(sentences, NO_EXPANSION).expand("folder"))
    off = ExpansionSettings(synonyms=False)
    assert all(t.source != SYNONYM for t in expander_over(sentences, off).expand("folder"))
    french = expander_over(["Le dossier est copié."], analyzer=Analyzer(language="french"))
    assert all(t.source != SYNONYM for t in french.expand("folder"))
    monkeypatch.setattr(synonyms_module, "DEFAULT_FOLDERS", (installed.parent / "nowhere",))
    monkeypatch.setattr(synonyms_module, "_looked", False)
    monkeypatch.setattr(synonyms_module, "_default", None)
    assert synonyms_module.default_wordnet() is None
    assert all(t.source != SYNONYM for t in expander_over(sentences).expand("folder"))
