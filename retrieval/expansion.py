"""Question words -> weighted index terms: the question's own terms, and the other ways the corpus says them.

People do not type the corpus's words: they write "colour" where it says "color", "went" where it says
"go", "goverment", "peace keepers", "folder" where it says "directory". Each question word is looked up
five ways, and what the corpus holds is added as an *extra* term with a weight below 1, so a sentence with
the exact word still ranks first:

* **spelling**: the British or American spelling of the word (the ``breame`` word lists);
* **word forms**: the other inflections of its lemma, where the stemmer does not fold them ("went" -> "go",
  "mice" -> "mouse", "children" -> "child"; ``lemminflect``'s lexicon);
* **typos**: a word the corpus does not know (or knows only once or twice while a word a letter away is
  common) -> the corpus words within a small edit distance for its length, from a SymSpell index over the
  corpus vocabulary (so names and jargon are never "corrected" to dictionary words);
* **compounds**: two question words written as one in the corpus ("peace keepers" -> "peacekeepers") and
  one unknown word that is two corpus words ("database" -> "data" + "base");
* **synonyms**: the words that share one of its first two senses in WordNet ("folder" -> "directory",
  "plague" -> "pestilence"; ``retrieval.synonyms``), where its database is installed.

Nothing here invents a term the corpus lacks: every extra term is in the vocabulary. The lists for
spelling, word forms and synonyms are English; other languages get typos and compounds only. ``expand`` is
cheap (a few dict look-ups per word); the SymSpell index is built once, on first use, over the terms seen
at least twice.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from retrieval.analysis import Analyzer
from retrieval.synonyms import default_wordnet

QUESTION, SPELLING, WORD_FORM, TYPO, COMPOUND = "question", "spelling", "form", "typo", "compound"
SYNONYM = "synonym"


@dataclass(frozen=True, slots=True)
class ExpansionSettings:
    """Which expansions run and what an extra term weighs next to a question term (1.0)."""

    spelling: bool = True
    word_forms: bool = True
    typos: bool = True
    compounds: bool = True
    synonyms: bool = True  # WordNet's, where its database is installed (``retrieval.synonyms``)
    spelling_weight: float = 0.9
    word_form_weight: float = 0.6
    typo_weight: float = 0.8
    compound_weight: float = 0.8
    synonym_weight: float = 0.6

    @property
    def any(self) -> bool:
        return self.spelling or self.word_forms or self.typos or self.compounds or self.synonyms


NO_EXPANSION = ExpansionSettings(spelling=False, word_forms=False, typos=False, compounds=False,
                                 synonyms=False)


@dataclass(frozen=True, slots=True)
class WeightedTerm:
    """One index term to score, how much it counts, and why it is there."""

    term: str
    weight: float
    source: str  # QUESTION, SPELLING, WORD_FORM, TYPO, COMPOUND or SYNONYM
    word: str  # the question word (or words) it stands for, case-folded


# A question word the corpus holds at most this often, next to a word one edit away that it holds at least
# _COMMON_RATIO times as often, is taken for a typo too ("goverment" once, "government" 300 times).
_RARE_DF = 2
_STEM_MATCH_PENALTY = 0.5  # a correction found only between stems ranks after one found between words
_COMMON_RATIO = 20
_MAX_TYPO_TERMS = 2  # corrections kept per word (ties in distance and frequency are common)
# A question waits at most this long for the typo index another thread is building (the bot's warm-up after
# a start: 5-20 s at a million sentences), then goes without typo fixes rather than keep its asker waiting.
TYPO_INDEX_WAIT = 0.5
_HEAD_SHARE = 0.75  # the head of an unknown compound weighs this share of a compound's parts
_MIN_HEAD_CHARS = 4
_MAX_FORM_TERMS = 4
_MAX_SYNONYM_TERMS = 4  # a word's synonyms the corpus has, in WordNet's order of senses
# The SymSpell index holds the most frequent terms only (a correction to a word the corpus uses once or twice
# is seldom what was meant), and deletes of a 5-letter prefix: ~15 entries a term, ~100 MB at the cap.
_TYPO_VOCABULARY = 50_000
_TYPO_PREFIX = 5
_MAX_TYPO_WORDS = 8  # unknown words looked up per question: a pasted paragraph must not cost seconds
_MAX_SPLIT_WORDS = 8  # unknown words tried as two words run together, per question (the same reason)
_MAX_JOINED_WORDS = 24  # question words whose neighbours are tried as one word
_MIN_TYPO_CHARS = 4  # shorter words have too many neighbours one edit away to guess from


def max_edit_distance(word: str) -> int:
    """The edits a misspelling of a word this long may plausibly hold: none below 4 letters, one up to 7,
    two from 8 on (the limits spelling correctors commonly use)."""
    n = len(word)
    if n < _MIN_TYPO_CHARS:
        return 0
    return 1 if n <= 7 else 2


class QueryExpander:
    """Expands the words of one question against one index's vocabulary. Thread-safe."""

    def __init__(
        self,
        analyzer: Analyzer,
        term_ids: Mapping[str, int],
        document_frequency: np.ndarray,
        settings: ExpansionSettings | None = None,
        surface_words: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        """``surface_words`` gives the corpus's words as written (case-folded), or a fair sample of them:
        typos are looked up among those as well as among the stems."""
        self._analyzer = analyzer
        self._surface_words = surface_words
        self._typo_targets: dict[str, str] = {}  # a surface word in the typo index -> its term
        self._term_ids = term_ids
        self._df = document_frequency
        self.settings = settings or ExpansionSettings()
        english = analyzer.language in ("english", "porter")
        self._english = english
        self._spelling = self.settings.spelling and english
        self._word_forms = self.settings.word_forms and english
        self._wordnet = default_wordnet() if self.settings.synonyms and english else None
        self._symspell: object | None = None
        self._symspell_lock = threading.Lock()

    def expand(self, text: str) -> list[WeightedTerm]:
        """The weighted terms of ``text``: each question term (weight 1, repeats kept, as BM25 counts them),
        then the extra terms, each once, none that the question already has."""
        analyzer = self._analyzer
        tokens = analyzer.tokens(text)
        out = [WeightedTerm(t.term, 1.0, QUESTION, text[t.start : t.end].casefold()) for t in tokens]
        if not self.settings.any or not tokens:
            return out
        have = {t.term for t in tokens}
        extra: dict[str, WeightedTerm] = {}

        def add(term: str, weight: float, source: str, word: str) -> None:
            if term in have or term not in self._term_ids:
                return
            known = extra.get(term)
            if known is None or known.weight < weight:
                extra[term] = WeightedTerm(term, weight, source, word)

        words = [text[t.start : t.end].casefold() for t in tokens]
        typo_lookups = splits = 0
        for token, word in zip(tokens, words, strict=True):
            if not word.isalpha():
                continue
            if self._spelling:
                for term in self._spelling_terms(word):
                    add(term, self.settings.spelling_weight, SPELLING, word)
            if self._word_forms:
                for term in self._form_terms(word, token.term):
                    add(term, self.settings.word_form_weight, WORD_FORM, word)
            if self._wordnet is not None:
                for term in self._synonym_terms(word, token.term):
                    add(term, self.settings.synonym_weight, SYNONYM, word)
            if self.settings.typos and typo_lookups < _MAX_TYPO_WORDS and self._rare(token.term):
                typo_lookups += 1
                for term in self._typo_terms(word, token.term):
                    add(term, self.settings.typo_weight, TYPO, word)
            if self.settings.compounds and token.term not in self._term_ids and splits < _MAX_SPLIT_WORDS:
                splits += 1
                parts = self._split_terms(word)
                for term in parts:
                    add(term, self.settings.compound_weight, COMPOUND, word)
                if not parts:
                    for term in self._head_terms(word):
                        add(term, self.settings.compound_weight * _HEAD_SHARE, COMPOUND, word)
        if self.settings.compounds:
            for term, pair in self._joined_terms(text, analyzer):
                add(term, self.settings.compound_weight, COMPOUND, pair)
        return out + list(extra.values())

    # -- the four look-ups ----------------------------------------------------------------------------

    def _single_term(self, word: str) -> str | None:
        terms = self._analyzer.terms(word)
        return terms[0] if len(terms) == 1 else None

    def _spelling_terms(self, word: str) -> list[str]:
        from breame.spelling import get_american_spelling, get_british_spelling

        variants = {get_american_spelling(word), get_british_spelling(word)} - {word}
        return [t for v in sorted(variants) if (t := self._single_term(v))]

    def _form_terms(self, word: str, term: str) -> list[str]:
        import lemminflect

        forms: set[str] = set()
        for lemma in _lemmas(word):
            forms.add(lemma)
            for inflected in lemminflect.getAllInflections(lemma).values():
                forms.update(inflected)
        forms.discard(word)
        found: list[str] = []
        for form in sorted(forms):
            form_term = self._single_term(form)
            if form_term and form_term != term and form_term in self._term_ids and form_term not in found:
                found.append(form_term)
        # The most frequent forms first: they are the ones a sentence is likely to use.
        found.sort(key=lambda t: -int(self._df[self._term_ids[t]]))
        return found[:_MAX_FORM_TERMS]

    def _synonym_terms(self, word: str, term: str) -> list[str]:
        assert self._wordnet is not None
        lemmas = {word} | _lemmas(word)
        terms: list[str] = []
        for lemma in sorted(lemmas):
            for synonym in self._wordnet.synonyms(lemma):
                if synonym in lemmas:
                    continue
                synonym_term = self._single_term(synonym)
                if (synonym_term and synonym_term != term and synonym_term in self._term_ids
                        and synonym_term not in terms):
                    terms.append(synonym_term)
                    if len(terms) >= _MAX_SYNONYM_TERMS:
                        return terms
        return terms

    def warm_up(self) -> None:
        """Load the lexicons and build the typo index, which the first expansion would otherwise do."""
        if self.settings.typos:
            self._typo_index()
        if self._word_forms:
            self._form_terms("went", "went")
        if self._spelling:
            self._spelling_terms("colour")
        if self._wordnet is not None:
            self._wordnet.synonyms("folder")  # opens WordNet's files

    def adopt(self, previous: QueryExpander) -> None:
        """Use the typo index ``previous`` built, if any, rather than building one: for an index that is
        the previous one plus or minus a few documents, it differs in words too rare to matter. A
        correction it offers is still only used when this index has the term (see ``expand``)."""
        if previous.settings == self.settings and previous._symspell is not None:
            with self._symspell_lock:
                if self._symspell is None:
                    self._symspell = previous._symspell
                    self._typo_targets = previous._typo_targets

    def misspelled(self, word: str) -> bool:
        """Whether ``word`` (case-folded), which the corpus lacks, looks like a slip rather than a word:
        it is not in an English dictionary (symspellpy's, 82,765 words). Outside English, any word may be."""
        return not (self._english and word in english_words())

    def _rare(self, term: str) -> bool:
        term_id = self._term_ids.get(term)
        return term_id is None or int(self._df[term_id]) <= _RARE_DF

    def corrections(self, word: str, term: str) -> list[str]:
        """The corpus terms ``word`` (analysed to ``term``) may be a misspelling of, nearest and most
        frequent first; none when the corpus knows the word more than a couple of times."""
        return self._typo_terms(word, term)

    def _typo_terms(self, word: str, term: str) -> list[str]:
        distance = max_edit_distance(word)
        if not distance:
            return []
        term_id = self._term_ids.get(term)
        df = int(self._df[term_id]) if term_id is not None else 0
        if df > _RARE_DF:
            return []
        from symspellpy import Verbosity

        index = self._typo_index(wait=TYPO_INDEX_WAIT)
        if index is None:
            return []  # still being built (warm_up, in the background): this question goes without
        found: dict[str, tuple[float, int]] = {}
        for probe in {term, word}:
            probe_distance = min(distance, max_edit_distance(probe)) if probe != word else distance
            if not probe_distance:
                continue
            for item in index.lookup(probe, Verbosity.ALL, max_edit_distance=probe_distance):
                candidate = self._typo_targets.get(item.term, item.term)
                if candidate == term or candidate not in self._term_ids:
                    continue
                candidate_df = int(self._df[self._term_ids[candidate]])
                if df and candidate_df < _COMMON_RATIO * df:
                    continue  # a rare word next to another rare word: neither is the typo
                # The word as typed, a letter away from a word as written, beats its stem a letter away from
                # a stem: "expedtion" is "expedition" mistyped, though its stem "expedt" is as near "expect".
                distance_found = item.distance + (0.0 if probe == word else _STEM_MATCH_PENALTY)
                best = found.get(candidate)
                if best is None or distance_found < best[0]:
                    found[candidate] = (distance_found, candidate_df)
        if not found:
            return []
        nearest = min(d for d, _ in found.values())
        ranked = sorted((t for t, (d, _) in found.items() if d == nearest), key=lambda t: -found[t][1])
        return ranked[:_MAX_TYPO_TERMS]

    def _split_terms(self, word: str) -> list[str]:
        """An unknown word that is two corpus words run together: the terms of the best split (the one whose
        rarer half is most common), or nothing."""
        best: tuple[int, list[str]] | None = None
        for cut in range(3, len(word) - 1):
            left, right = word[:cut], word[cut:]
            if len(right) < 2:
                continue
            parts: list[str] = []
            score = None
            for part in (left, right):
                if self._analyzer.is_stop_word(part):
                    continue
                part_term = self._single_term(part)
                if part_term is None or part_term not in self._term_ids or len(part) < 3:
                    break
                parts.append(part_term)
                part_df = int(self._df[self._term_ids[part_term]])
                score = part_df if score is None else min(score, part_df)
            else:
                if parts and score is not None and (best is None or score > best[0]):
                    best = (score, parts)
        return best[1] if best else []

    def _head_terms(self, word: str) -> list[str]:
        """An unknown word made of an English word and a corpus word ("superpower", "warship"): the
        corpus word, the compound's head (English puts it last), or nothing."""
        if not self._english:
            return []
        english = english_words()
        for cut in range(3, len(word) - 3):
            left, right = word[:cut], word[cut:]
            if left in english and len(right) >= _MIN_HEAD_CHARS and right in english:
                term = self._single_term(right)
                if term is not None and term in self._term_ids:
                    return [term]
        return []

    def _joined_terms(self, text: str, analyzer: Analyzer) -> list[tuple[str, str]]:
        """Adjacent question words that the corpus writes as one word ("peace keepers" -> "peacekeepers");
        among the first _MAX_JOINED_WORDS words only (a question is a few words, not a page)."""
        words = [w for w in analyzer.words(text) if w.term.isalpha()][:_MAX_JOINED_WORDS]
        out: list[tuple[str, str]] = []
        for left, right in itertools.pairwise(words):
            if not text[left.end : right.start].strip(" -"):
                term = self._single_term(left.term + right.term)
                if term and term in self._term_ids:
                    out.append((term, f"{left.term} {right.term}"))
        return out

    def _typo_index(self, wait: float | None = None):  # -> symspellpy.SymSpell | None
        """The typo index, built here if nobody has; ``wait``: give up (None) after this many seconds of
        waiting for another thread that is building it (seconds at a million sentences)."""
        if self._symspell is not None:
            return self._symspell
        if not self._symspell_lock.acquire(timeout=-1 if wait is None else wait):
            return None
        try:
            if self._symspell is None:
                from symspellpy import SymSpell

                index = SymSpell(max_dictionary_edit_distance=2, prefix_length=_TYPO_PREFIX)
                df = self._df
                words = [(t, i) for t, i in self._term_ids.items() if len(t) >= 3 and t.isalpha()]
                if len(words) > _TYPO_VOCABULARY:
                    words.sort(key=lambda item: -int(df[item[1]]))
                    words = words[:_TYPO_VOCABULARY]
                for term, term_id in words:
                    index.create_dictionary_entry(term, int(df[term_id]))
                # Words as the corpus writes them, too: a typo is a slip in a word, not in a stem
                # ("diffrence" is one letter from "difference", three from its stem "differ").
                if self._surface_words is not None:
                    seen: dict[str, int] = {}
                    for word in self._surface_words():
                        if len(word) >= _MIN_TYPO_CHARS and word.isalpha():
                            seen[word] = seen.get(word, 0) + 1
                    common = sorted(seen, key=lambda w: -seen[w])[:_TYPO_VOCABULARY]
                    for word in common:
                        word_term = self._single_term(word)
                        if word_term and word_term in self._term_ids and word != word_term:
                            self._typo_targets[word] = word_term
                            index.create_dictionary_entry(word, seen[word])
                self._symspell = index
            return self._symspell
        finally:
            self._symspell_lock.release()


@functools.lru_cache(maxsize=65536)
def _lemmas(word: str) -> frozenset[str]:
    """The lemmas of ``word`` in every part of speech (lemminflect's), for word forms and synonyms alike."""
    import lemminflect

    return frozenset(lemma for found in lemminflect.getAllLemmas(word).values() for lemma in found)


@functools.cache
def english_words() -> frozenset[str]:
    """The words of the English frequency dictionary symspellpy ships (loaded once, ~50 ms)."""
    from importlib.resources import files

    text = files("symspellpy").joinpath("frequency_dictionary_en_82_765.txt").read_text(encoding="utf-8")
    return frozenset(line.split(" ", 1)[0] for line in text.splitlines() if line)


def term_weights(terms: Sequence[WeightedTerm], term_ids: Mapping[str, int]) -> dict[int, float]:
    """Summed weight per term id (a repeated question term counts once per repeat, as in rank_bm25)."""
    weights: dict[int, float] = {}
    for weighted in terms:
        term_id = term_ids.get(weighted.term)
        if term_id is not None:
            weights[term_id] = weights.get(term_id, 0.0) + weighted.weight
    return weights
