"""Question -> hits: query parsing, BM25 scoring, filters, de-duplication, weak-match judgement, highlighting.

:class:`SearchIndex` is the one object the bot talks to. It is built from documents (or loaded from the
on-disk cache by :func:`open_index`) and answers :meth:`SearchIndex.search`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import hashlib
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.analysis import _CJK, Analyzer
from retrieval.build import AnalysisConfig, Progress, build_parts
from retrieval.corpus import Document
from retrieval.expansion import (
    COMPOUND,
    QUESTION,
    TYPO,
    WORD_FORM,
    ExpansionSettings,
    QueryExpander,
    WeightedTerm,
)
from retrieval.fusion import Neighbourhood, SemanticSettings, fuse
from retrieval.highlight import highlight_spans, phrase_positions
from retrieval.index import MIN_COVERAGE_WEIGHT, BM25Params, InvertedIndex, top_k
from retrieval.limits import MAX_QUESTION_CHARS
from retrieval.query import Query, QueryError, parse_query
from retrieval.semantic import Encoder, VectorBuild
from retrieval.sentences import MAX_SENTENCE_CHARS, SPLITTER_VERSION
from retrieval.store import UNKNOWN_DATE, SentenceStore
from retrieval.timeline import Granularity, Series, Timeline, choose_granularity, count_per_period

if TYPE_CHECKING:
    from retrieval.compose import ComposedVectorBuild, Composition


@dataclass(frozen=True, slots=True)
class Hit:
    """One matching sentence, with where it came from and what in it matched."""

    text: str
    date: dt.date | None  # the document's date; None when unknown
    title: str
    doc: str  # the document's file name, relative to the corpus folder
    score: float
    sentence_id: int  # global sentence number in the index; stable while the index is unchanged
    paragraph: int  # paragraph number within the document (0-based)
    position: int  # sentence number within the document (0-based)
    spans: tuple[tuple[int, int], ...]  # character spans in ``text`` of the matched words
    duplicates: int = 0  # how many other places hold the very same sentence
    url: str | None = None  # the document's source (front matter ``url:``), as written
    # An address that outlives later updates of the index: the fingerprint of the segment the sentence is
    # in and its id there (see ``SearchIndex.sentence_key``); "" and -1 when unknown.
    segment: str = ""
    segment_sentence: int = -1


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The answer to one question: a page of hits plus what the caller needs to explain it."""

    question: str
    hits: tuple[Hit, ...]
    total: int  # matching sentences after filters and de-duplication (at least len(hits))
    offset: int = 0
    weak: bool = False  # the best hit matches only a small part of the question
    unknown_words: tuple[str, ...] = ()  # query words found nowhere in the corpus
    suggestions: dict[str, tuple[str, ...]] = field(default_factory=dict)  # word -> "did you mean"
    error: str | None = None  # the question could not be understood (e.g. a bad date filter)
    total_is_estimate: bool = False  # a phrase of common words: total extrapolated from the ones checked
    confidence: float | None = None  # how likely the best hit answers it, 0..1 (the best cosine by meaning)
    order: str = "relevance"  # "relevance", "new" (newest first) or "old" (oldest first): sort:

    @property
    def empty(self) -> bool:
        return not self.hits


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """A question analysed and expanded: what the later stages score, filter and highlight."""

    terms: tuple[WeightedTerm, ...]  # the question's terms (repeats kept) and the extra terms, with weights
    term_ids: tuple[int, ...]  # the terms the index knows, as ids, parallel to ``weights``
    weights: tuple[float, ...]
    phrases: tuple[list[str], ...]  # each "phrase" as surface words
    unknown: tuple[str, ...]  # question words the corpus does not have, as typed
    suggestions: dict[str, tuple[str, ...]]  # unknown word -> corpus words it may be a misspelling of

    @property
    def question_terms(self) -> list[str]:
        return [t.term for t in self.terms if t.source == QUESTION]


@dataclass(frozen=True, slots=True)
class ContextSentence:
    text: str
    sentence_id: int
    is_hit: bool
    paragraph: int = 0  # paragraph number within the document, so a view can keep paragraphs apart


@dataclass(frozen=True, slots=True)
class IndexStats:
    documents: int
    sentences: int
    terms: int
    first_date: dt.date | None
    last_date: dt.date | None
    undated_documents: int


@dataclass(frozen=True, slots=True)
class IndexSettings:
    """Everything that shapes the index and its ranking; all but ``ranking`` and ``weak_coverage`` change
    what is stored, so they key the on-disk cache."""

    language: str = "english"
    stop_words: bool = True
    stemming: bool = True
    max_sentence_chars: int = MAX_SENTENCE_CHARS
    ranking: BM25Params = field(default_factory=BM25Params)
    weak_coverage: float = 0.5  # below this share of the question's weight, the best hit is "weak"
    expansion: ExpansionSettings = field(default_factory=ExpansionSettings)
    semantic: SemanticSettings = field(default_factory=SemanticSettings)

    def analysis_config(self) -> AnalysisConfig:
        return AnalysisConfig(self.language, self.stop_words, self.stemming, self.max_sentence_chars)

    @property
    def fingerprint(self) -> str:
        """Changes whenever the stored index would differ."""
        analyzer = self.analysis_config().analyzer()
        parts = [STORE_FORMAT, analyzer.fingerprint, SPLITTER_VERSION, str(self.max_sentence_chars)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


STORE_FORMAT = "corpus-bot-index-1"
_SURFACE_SENTENCES = 20  # sentences read for the written forms of a corrected word
_DATE_ORDER_FALLBACK = 50  # with no sentence holding every word, the best this many in date order
QUESTION_VECTORS = 4096  # embeddings of the latest distinct questions kept (1.5 KiB each)
_EXAMPLE_SAMPLE = 20_000  # sentences read to find example questions
# The confidence that an answer exists (see _confidence): penalties measured on the tuning questions.
_UNKNOWN_WORD_PENALTY = 0.2
_OTHER_YEARS_PENALTY = 0.2
_PHRASE_CONFIDENCE = 0.9
_YEAR = re.compile(r"\b(1\d{3}|20\d{2})\b")
_DECADE = re.compile(r"\b(1\d{2}|20\d)0'?s\b")  # "the 1850s", "1850's": every year of it
_WORD_SAMPLE = 50_000  # sentences read for the words as written, for typo look-ups (~1 s at most)
# A phrase is checked word by word in the candidates that hold all its words, best first: all of them when
# there are at most _PHRASE_EXACT (an exact total), else until the page is full, and never more than
# _PHRASE_VERIFY_LIMIT (a phrase of common words that seldom stand together). The total is then estimated
# from an even sample of the rest. A check costs ~0.1 ms: a few tens of ms for "of the" at 1M sentences.
_PHRASE_EXACT = 300
_PHRASE_SAMPLE = 200
_PHRASE_VERIFY_LIMIT = 2000
_PHRASE_SCREEN_LIMIT = 20_000  # candidates looked at (a quick pattern first: ~3 us each when it fails)
_SCAN_BYTES = 16 * 2**20  # text scanned for a phrase of stop words only (~0.1 s); beyond it, an estimate
_TOO_LONG = (
    f"Your question is longer than {MAX_QUESTION_CHARS:,} characters. Shorten it to the words that matter."
)
_NO_WORDS = "Your question has no words to search for. Try a few words from the topic you are after."
_ONLY_COMMON = "Your question has only very common words (like “the” or “what”). Add a more specific word."


class SearchIndex:
    """The searchable corpus: BM25 over sentences, with their texts and places."""

    def __init__(
        self,
        inverted: InvertedIndex,
        store: SentenceStore,
        settings: IndexSettings,
        *,
        fingerprint: str | None = None,
    ) -> None:
        """``fingerprint`` identifies the content (the cache keeps it); without it, it is computed."""
        self._inverted = inverted
        self._store = store
        self.settings = settings
        self._analyzer = settings.analysis_config().analyzer()
        if inverted.params != settings.ranking:
            inverted.set_params(settings.ranking)
        self._vector_build: VectorBuild | ComposedVectorBuild | None = None
        self.composition: Composition | None = None  # set by ``compose`` for an index of several segments
        # For a segment made by merging others: each merged segment's fingerprint -> where each of its
        # sentences went here (-1: removed by the merge), so that addresses from before it still resolve.
        self.forwards: dict[str, np.ndarray] = {}
        self._question_vector: Callable[[str], np.ndarray] = lambda text: np.zeros(0, np.float32)
        self._titles: InvertedIndex | None = None  # the documents' titles, indexed on first use
        self._title_terms: list[list[str]] | None = None  # each document's title, analysed (ditto)
        self._cjk_pair_map: dict[str, list[str]] | None = None  # CJK character -> indexed pairs holding it
        self._document_years: np.ndarray | None = None  # each document's year (0: undated), on first use
        dates = [d.date for d in store.documents if d.date]
        self._date_span = (min(dates).year, max(dates).year) if dates else None
        self._expander = QueryExpander(
            self._analyzer, inverted.term_ids, inverted.document_frequency, settings.expansion,
            # A function of the store, not a method of this index: the expander outlives no index, and a
            # bound method here would make each index a reference cycle, freed only by a full collection.
            surface_words=functools.partial(_sample_words, store, self._analyzer),
        )
        if fingerprint is None:
            digest = hashlib.sha256(settings.fingerprint.encode())
            digest.update(store.blob.all())
            digest.update(np.ascontiguousarray(store.offsets).tobytes())
            fingerprint = digest.hexdigest()[:16]
        self.fingerprint = fingerprint

    @classmethod
    def build(
        cls,
        documents: Sequence[Document],
        settings: IndexSettings | None = None,
        *,
        workers: int | None = 1,
        progress: Progress | None = None,
        background: bool = False,
    ) -> SearchIndex:
        """``background``: this process answers questions meanwhile (see ``build.build_parts``)."""
        settings = settings or IndexSettings()
        store, inverted = build_parts(
            documents, settings.analysis_config(), settings.ranking, workers=workers, progress=progress,
            background=background,
        )  # fmt: skip
        return cls(inverted, store, settings)

    # -- what the bot shows around results ------------------------------------------------------------

    @property
    def stats(self) -> IndexStats:
        dates = [d.date for d in self._store.documents if d.date]
        return IndexStats(
            documents=len(self._store.documents),
            sentences=len(self._store),
            terms=len(self._inverted.vocabulary),
            first_date=min(dates) if dates else None,
            last_date=max(dates) if dates else None,
            undated_documents=len(self._store.documents) - len(dates),
        )

    def hit(self, sentence_id: int) -> Hit:
        self._check_id(sentence_id)
        return self._make_hit(sentence_id, 0.0, ())

    def context(self, sentence_id: int, before: int = 2, after: int = 2) -> list[ContextSentence]:
        """The sentences around one, within its own document."""
        self._check_id(sentence_id)
        doc = self._store.document_of(sentence_id)
        first = max(doc.first_sentence, sentence_id - max(before, 0))
        last = min(doc.first_sentence + doc.n_sentences - 1, sentence_id + max(after, 0))
        paragraphs = self._store.sentence_paragraph
        return [
            ContextSentence(self._store.text(i), i, i == sentence_id, int(paragraphs[i]))
            for i in range(first, last + 1)
        ]

    def example_questions(self, n: int = 3) -> list[str]:
        """Short questions that really find something: the word pairs the corpus uses most ("basic research").

        Pairs are counted over an evenly spread sample of sentences, so this stays quick on a large corpus.
        """
        n_sentences = len(self._store)
        step = max(1, n_sentences // _EXAMPLE_SAMPLE)
        pairs: Counter[tuple[str, str]] = Counter()
        for sentence_id in range(0, n_sentences, step):
            text = self._store.text(sentence_id)
            for left, right in itertools.pairwise(self._analyzer.tokens(text)):
                first, second = text[left.start : left.end], text[right.start : right.end]
                if (
                    len(first) >= 4
                    and len(second) >= 4
                    and first.isalpha()
                    and second.isalpha()
                    and left.term != right.term
                    and text[left.end : right.start].isspace()  # next to each other: no stop word between
                ):
                    pairs[(first.casefold(), second.casefold())] += 1
        examples: list[str] = []
        used: set[str] = set()
        for (first, second), _count in pairs.most_common():
            if len(examples) >= n:
                break
            if first in used or second in used:
                continue
            question = f"{first} {second}"
            if self.search(question, k=1).hits:
                examples.append(question)
                used.update((first, second))
        return examples

    def suggest(self, word: str, n: int = 3) -> list[str]:
        """Corpus words that ``word`` is a plausible misspelling of (a small edit distance for its length),
        most frequent first, for "did you mean"; none for a word the corpus knows well."""
        folded = word.casefold()
        if not folded.isalpha():
            return []
        terms = self._analyzer.terms(folded)
        if len(terms) != 1:
            return []
        words: list[str] = []
        for term in self._expander.corrections(folded, terms[0]):
            surface = self._surface_word(term, near=folded)
            if surface and surface != folded and surface not in words:
                words.append(surface)
        return words[:n]

    def sentence_key(self, sentence_id: int) -> tuple[str, int]:
        """An address of the sentence that outlives this index: (its segment's fingerprint, its id in the
        segment). An index of one segment is its own segment."""
        self._check_id(sentence_id)
        if self.composition is None:
            return self.fingerprint, sentence_id
        return self.composition.origin(sentence_id)

    @property
    def segment_fingerprints(self) -> tuple[str, ...]:
        """The fingerprints of the segments this index is made of (its own, for an index of one)."""
        if self.composition is None:
            return (self.fingerprint,)
        return tuple(p.index.fingerprint for p in self.composition.parts)

    @property
    def known_segments(self) -> tuple[str, ...]:
        """The segments whose addresses :meth:`find_sentence` resolves: those of this index, and those
        merged into them."""
        parts = [p.index for p in self.composition.parts] if self.composition else [self]
        merged = [f for part in parts for f in part.forwards]
        return (*self.segment_fingerprints, *merged)

    def find_sentence(self, segment: str, local_id: int) -> int | None:
        """The id here of the sentence :meth:`sentence_key` gave as (``segment``, ``local_id``), maybe by
        an earlier index of the same corpus (a segment merged since is followed into the merged one);
        None when that sentence is no longer in the index."""
        if self.composition is None:
            if segment == self.fingerprint:
                return local_id if 0 <= local_id < len(self._store) else None
            return _forwarded(self.forwards.get(segment), local_id)
        found = self.composition.locate(segment, local_id)
        if found is not None:
            return found
        for part in self.composition.parts:
            moved = _forwarded(part.index.forwards.get(segment), local_id)
            if moved is not None:
                return self.composition.locate(part.index.fingerprint, moved)
        return None

    def adopt_warm_state(self, previous: SearchIndex) -> None:
        """Take over what ``previous`` (an index of nearly the same corpus) built on first use and this
        one would otherwise build again: the typo index (seconds at a million sentences)."""
        self._expander.adopt(previous._expander)

    def warm_up(self) -> None:
        """Build now what the first questions would otherwise wait for: the typo index over the vocabulary
        (5-9 s at a million sentences on one core), the word-form lexicon, the title index, and the BM25
        weights a composed index works out per term on first use (~0.3 s per ten million postings).
        Thread-safe; call it in the background after opening the index."""
        self._expander.warm_up()
        self._title_index()
        self._inverted.weights  # noqa: B018 - the property works out every weight not yet asked for

    # -- meaning ------------------------------------------------------------------------------------------

    def vector_build(
        self, encoder: Encoder, cache_dir: str | Path | None
    ) -> VectorBuild | ComposedVectorBuild:
        """The sentence embeddings of this index by ``encoder``: loaded from ``cache_dir`` when they are
        there, else to be made by the returned build's ``run()`` (slow: minutes per 10k sentences; run it
        off the event loop). Searches use them once attached with :meth:`attach_vectors`. A composed
        index's are its segments' own: only a segment never embedded before has to be."""
        if self.composition is not None:
            from retrieval.compose import ComposedVectorBuild

            builds = [p.index.vector_build(encoder, cache_dir) for p in self.composition.parts]
            return ComposedVectorBuild(builds, self.composition)
        return VectorBuild(
            encoder, self._store.text, len(self._store), self.fingerprint,
            Path(cache_dir) if cache_dir else None, titles=[d.title for d in self._store.documents],
        )

    def attach_vectors(self, build: VectorBuild | ComposedVectorBuild) -> None:
        """Rank by meaning too, as soon as ``build`` is complete (until then, BM25 alone). Thread-safe."""
        if build.total != len(self._store):
            raise ValueError("these embeddings belong to another index")
        # A question's embedding costs ~6 ms of CPU (all of the search's cost on a small corpus); the
        # same question comes back with every page turn and from many users, so the last ones are kept.
        encode = build.encoder.encode_query

        @functools.lru_cache(maxsize=QUESTION_VECTORS)
        def question_vector(text: str) -> np.ndarray:
            vector = encode(text)
            vector.setflags(write=False)  # shared by every search of the same question
            return vector

        self._question_vector = question_vector
        self._vector_build = build

    @property
    def semantic_progress(self) -> tuple[int, int] | None:
        """(sentences embedded, sentences) while meaning is attached; None when it is not."""
        build = self._vector_build
        return None if build is None else (build.done, build.total)

    @property
    def semantic_ready(self) -> bool:
        build = self._vector_build
        return self.settings.semantic.enabled and build is not None and build.vectors is not None

    # -- searching ------------------------------------------------------------------------------------

    def may_take_long(self, question: str) -> bool:
        """Whether ``search(question)`` may take more than a millisecond or two: a phrase is checked
        sentence by sentence (tens of ms for common words at a million sentences). Everything else is a
        walk over posting lists, well under a millisecond at that size. A caller on an event loop can
        run the first kind in a worker thread and the rest in line."""
        if self.semantic_ready:
            return True  # encoding the question: a few ms of CPU (the model releases the GIL)
        try:
            return bool(parse_query(question[:MAX_QUESTION_CHARS]).phrases)
        except QueryError:
            return False

    def search(self, question: str, k: int = 5, offset: int = 0) -> SearchResult:
        """Rank the sentences against ``question``. Never raises for what a user may type."""
        k, offset = max(0, k), max(0, offset)
        if len(question) > MAX_QUESTION_CHARS:  # refused, not cut: a cut would drop a trailing -word
            return SearchResult(question[:MAX_QUESTION_CHARS], (), 0, offset, error=_TOO_LONG)
        try:
            query = parse_query(question)
        except QueryError as error:
            return SearchResult(question, (), 0, offset, error=str(error))
        if query.is_empty:
            return SearchResult(question, (), 0, offset, error=_NO_WORDS)

        plan = self._plan(query)
        if not plan.question_terms and not plan.phrases:
            return SearchResult(question, (), 0, offset, error=_ONLY_COMMON)
        if query.sort != "relevance":
            return self._search_by_date(question, query, plan, k, offset)
        return self._search_by_relevance(question, query, plan, k, offset)

    def _search_by_relevance(
        self, question: str, query: Query, plan: QueryPlan, k: int, offset: int
    ) -> SearchResult:
        need = 2 * (offset + k) + 8  # distinct phrase matches to find: this page, the next, and some
        ids, scores, scanned_share, unchecked, best_cosine = self._rank(query, plan, need)
        total = self._count_distinct(ids)
        estimated = unchecked is not None or scanned_share < 1.0
        if estimated and total >= need:
            # Only with the next page in hand: matches the checks could not reach are never promised (a
            # later page walks the same ranking at least as far, so what is found here is found there).
            total = max(total, round((total + (unchecked or 0.0)) / scanned_share))
        weak = False
        coverage = 0.0
        if ids.size and plan.term_ids:
            best = int(ids[int(np.argmax(scores))])
            coverage = self._coverage(best, plan)
            weak = coverage < self.settings.weak_coverage
        if best_cosine is not None:
            # Meaning is the better judge of "is there an answer at all" than shared words (a paraphrase
            # shares few), so with it the weak-match notice rests on the confidence alone.
            confidence = self._confidence(best_cosine, query, plan)
            weak = confidence < self.settings.semantic.weak_similarity
        else:
            confidence = coverage
        if plan.phrases and ids.size:
            confidence = max(confidence, _PHRASE_CONFIDENCE)  # the very words asked for are there
        page = self._page(ids, scores, offset, k)
        term_set = {t.term for t in plan.terms}
        hits = []
        for sentence_id, score in page:
            text = self._store.text(sentence_id)
            spans = highlight_spans(text, self._analyzer, term_set, plan.phrases)
            hits.append(self._make_hit(sentence_id, score, spans, text))
        return SearchResult(question, tuple(hits), total, offset, weak, plan.unknown, plan.suggestions,
                            total_is_estimate=estimated, confidence=max(0.0, min(1.0, confidence)))

    def timeline(self, questions: Sequence[str]) -> Timeline:
        """How many sentences match each question per period, on one time axis for all.

        A match holds every question word in some form and every phrase, within the date filters and
        without the exclusions (:meth:`matching`); a sentence said in several documents counts once for
        each. Periods run from the earliest to the latest match of any question, a day, a month or a
        year each (:func:`retrieval.timeline.choose_granularity`).
        """
        found: list[tuple[str, np.ndarray, Query | None, QueryPlan | None, str | None]] = []
        for question in questions:
            try:
                query, plan, error = self._understood(question)
            except QueryError as failure:
                query, plan, error = None, None, str(failure)
            ids = self._matching(query, plan) if query is not None and plan is not None and not error \
                else np.zeros(0, np.int64)
            found.append((question, self._store.sentence_dates(ids), query, plan, error))
        dated = [dates[dates != UNKNOWN_DATE] for _, dates, *_ in found]
        every = np.concatenate(dated) if dated else np.zeros(0, np.int64)
        if not every.size:
            granularity: Granularity = "year"
            periods: list[dt.date] = []
        else:
            first, last = int(every.min()), int(every.max())
            granularity = choose_granularity(first, last)
            periods, _ = count_per_period(every[:0], granularity, first, last)
        series = []
        for (question, dates, _query, plan, error), known in zip(found, dated, strict=True):
            if periods:
                first, last = periods[0].toordinal(), int(every.max())
                _, counts = count_per_period(known, granularity, first, last)
            else:
                counts = np.zeros(0, np.int64)
            series.append(Series(
                question=question,
                counts=tuple(int(c) for c in counts.tolist()),
                total=int(dates.size),
                undated=int(dates.size - known.size),
                first=dt.date.fromordinal(int(known.min())) if known.size else None,
                last=dt.date.fromordinal(int(known.max())) if known.size else None,
                error=error,
                unknown_words=plan.unknown if plan is not None else (),
            ))
        return Timeline(granularity, tuple(periods), tuple(series))

    def matching(self, question: str) -> np.ndarray:
        """The ids of the sentences that match ``question`` for a timeline or a date order (sorted)."""
        query, plan, error = self._understood(question)
        return np.zeros(0, np.int64) if error or plan is None else self._matching(query, plan)

    def _understood(self, question: str) -> tuple[Query, QueryPlan | None, str | None]:
        """Parse and plan; raises QueryError for bad syntax, gives an error for nothing to look for."""
        if len(question) > MAX_QUESTION_CHARS:
            raise QueryError(_TOO_LONG)
        query = parse_query(question)
        if query.is_empty:
            return query, None, _NO_WORDS
        plan = self._plan(query)
        if not plan.question_terms and not plan.phrases:
            return query, plan, _ONLY_COMMON
        return query, plan, None

    # -- the stages of a search -----------------------------------------------------------------------

    def _matching(self, query: Query, plan: QueryPlan) -> np.ndarray:
        """Sentences holding every question word in some form (as asked, a spelling variant, a word form,
        a typo fix, or inside a compound), every phrase, within the date filters and without the
        exclusions: sorted ids, repeated sentences included. Words the corpus has in no form are left out
        (the result names them as unknown)."""
        inverted = self._inverted
        groups: dict[str, set[int]] = {}
        for weighted in plan.terms:
            term_id = inverted.term_ids.get(weighted.term)
            words = weighted.word.split() if weighted.source == COMPOUND else [weighted.word]
            for word in words:
                held = groups.setdefault(word, set())
                if term_id is not None:
                    held.add(term_id)
        lists = []
        for term_ids in groups.values():
            if not term_ids:
                continue
            postings = [inverted.postings(t) for t in sorted(term_ids)]
            lists.append(postings[0] if len(postings) == 1 else np.unique(np.concatenate(postings)))
        if lists:
            lists.sort(key=len)
            ids = lists[0]
            for other in lists[1:]:
                if not ids.size:
                    break
                ids = np.intersect1d(ids, other, assume_unique=True)
        elif plan.phrases:  # phrases of stop words only: found in the text
            ids, _ = self._scan_phrases(query.phrases, need=len(self._store))
        else:
            return np.zeros(0, np.int64)
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (query.excluded or query.phrases or query.has_date_filter):
            ids = ids[self._filter_mask(ids, query)]
        if ids.size and plan.phrases:
            ids = ids[[self._holds_phrases(int(i), plan.phrases) for i in ids.tolist()]]
        return ids

    def _rank(
        self, query: Query, plan: QueryPlan, need: int
    ) -> tuple[np.ndarray, np.ndarray, float, float | None, float | None]:
        """The relevance ranking: candidates, fused with meaning, filtered, phrases verified. Returns the
        ids and scores (unordered), the share of the text scanned, the phrase matches estimated among the
        candidates not checked, and the best cosine by meaning (None without meaning)."""
        ids, scores, scanned_share = self._candidates(query, plan, need)
        best_cosine: float | None = None
        if self.semantic_ready and (plan.term_ids or not plan.phrases):
            ids, scores, best_cosine = self._fuse(query, plan, ids, scores)
        if query.excluded or query.phrases or query.has_date_filter:
            keep = self._filter_mask(ids, query)
            ids, scores = ids[keep], scores[keep]
        unchecked: float | None = None  # phrase matches estimated among the candidates not checked
        if plan.phrases and ids.size:
            ids, scores, unchecked = self._verify_phrases(ids, scores, plan.phrases, need)
        return ids, scores, scanned_share, unchecked, best_cosine

    def _search_by_date(
        self, question: str, query: Query, plan: QueryPlan, k: int, offset: int
    ) -> SearchResult:
        """The date order stage: the matching sentences newest (or oldest) first, one per distinct text;
        equal dates by relevance, then by sentence id, so every page is cut from one stable list. When no
        sentence holds every word, the best matches by relevance are put in date order instead."""
        ids = self._matching(query, plan)
        if not ids.size:
            ranked, scores, *_ = self._rank(query, plan, _DATE_ORDER_FALLBACK)
            ids = np.sort(top_k(ranked, scores, _DATE_ORDER_FALLBACK)[0])
        dates = self._store.sentence_dates(ids)
        # Undated sentences last in either order; then relevance, best first; then id.
        date_key = np.where(dates == UNKNOWN_DATE, np.iinfo(np.int64).max,
                            -dates if query.sort == "new" else dates)
        want = offset + k
        ordered, scores = self._date_order(ids, date_key, plan, want)
        page: list[tuple[int, float]] = []
        seen: set[int] = set()
        for sentence_id, score in zip(ordered.tolist(), scores.tolist(), strict=True):
            group = int(self._store.duplicate_group[sentence_id])
            if group in seen:
                continue
            seen.add(group)
            page.append((sentence_id, score))
            if len(page) >= want:
                break
        term_set = {t.term for t in plan.terms}
        hits = []
        for sentence_id, score in page[offset:want]:
            text = self._store.text(sentence_id)
            spans = highlight_spans(text, self._analyzer, term_set, plan.phrases)
            hits.append(self._make_hit(sentence_id, score, spans, text))
        return SearchResult(question, tuple(hits), self._count_distinct(ids), offset, False, plan.unknown,
                            plan.suggestions, order=query.sort)

    def _date_order(
        self, ids: np.ndarray, date_key: np.ndarray, plan: QueryPlan, want: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The first sentences of ``ids`` by (date key, -score, id), with their scores: at least ``want``
        distinct texts' worth. Only the sentences up to the date where the page ends are scored and
        sorted; that date's sentences all are, so ties are broken the same way on every page."""
        if not ids.size:
            return ids, np.zeros(0)
        take = min(ids.size, max(4 * want, 64))
        while True:
            if take < ids.size:
                bound = np.partition(date_key, take - 1)[take - 1]
                chosen = np.flatnonzero(date_key <= bound)
            else:
                chosen = np.arange(ids.size)
            some = ids[chosen]
            scores = (self._inverted.score_sentences(some, plan.term_ids, plan.weights) if plan.term_ids
                      else np.ones(some.size))
            order = np.lexsort((some, -scores, date_key[chosen]))
            if take >= ids.size or self._count_distinct(some) >= want:
                return some[order], scores[order]
            take = min(ids.size, take * 4)

    def _plan(self, query: Query) -> QueryPlan:
        """Analyse and expand: the question's terms, the extra terms the corpus may use for them, phrases."""
        analyzer, inverted = self._analyzer, self._inverted
        terms = self._expander.expand(query.text)
        for phrase_text in query.phrases:
            terms.extend(WeightedTerm(t, 1.0, QUESTION, t) for t in analyzer.terms(phrase_text))
        # A lone CJK character is indexed only inside character pairs: it stands for every pair holding it.
        covered: set[str] = set()
        for weighted in list(terms):
            if weighted.source == QUESTION and weighted.term not in inverted.term_ids:
                pairs = self._cjk_pairs(weighted.term)
                if pairs:
                    covered.add(weighted.term)
                    terms.extend(WeightedTerm(pair, 1.0, WORD_FORM, weighted.word) for pair in pairs)
        phrases = [[w.term for w in analyzer.words(p)] for p in query.phrases]
        unknown = self._unknown_words(query.text, covered)
        corrections: dict[str, list[str]] = {}
        for weighted in terms:
            if weighted.source == TYPO:
                corrections.setdefault(weighted.word, []).append(weighted.term)
        suggestions: dict[str, tuple[str, ...]] = {}
        for word in unknown:
            typed = word.casefold()
            surfaces = [s for t in corrections.get(typed, ()) if (s := self._surface_word(t, near=typed))]
            if surfaces:
                suggestions[word] = tuple(dict.fromkeys(surfaces))
        known = [(inverted.term_ids[t.term], t.weight) for t in terms if t.term in inverted.term_ids]
        return QueryPlan(
            terms=tuple(terms),
            term_ids=tuple(i for i, _ in known),
            weights=tuple(w for _, w in known),
            phrases=tuple(p for p in phrases if p),
            unknown=unknown,
            suggestions=suggestions,
        )

    def _cjk_pairs(self, term: str) -> list[str]:
        """The indexed character pairs that hold ``term`` when it is one CJK character, else none."""
        if len(term) != 1 or _CJK.match(term) is None:
            return []
        pairs = self._cjk_pair_map
        if pairs is None:  # one pass over the vocabulary, on the first such question
            built: dict[str, list[str]] = {}
            for candidate in self._inverted.vocabulary:
                if len(candidate) == 2 and _CJK.match(candidate[0]) and _CJK.match(candidate[1]):
                    built.setdefault(candidate[0], []).append(candidate)
                    if candidate[1] != candidate[0]:
                        built.setdefault(candidate[1], []).append(candidate)
            pairs = self._cjk_pair_map = built
        return pairs.get(term, [])

    def _unknown_words(self, text: str, covered: set[str]) -> tuple[str, ...]:
        """The question's words the corpus does not have, as typed: the spans of unknown terms, overlapping
        ones (CJK character pairs) merged, so that a note never names half a word or a pair across two."""
        known_terms = self._inverted.term_ids
        tokens = self._analyzer.tokens(text)
        known = np.zeros(len(text) + 1, dtype=bool)  # characters inside a known term (a pair, for CJK)
        missing = np.zeros(len(text) + 1, dtype=bool)
        for token in tokens:
            if token.term in known_terms or token.term in covered:
                known[token.start : token.end] = True
        for token in tokens:
            if not (token.term in known_terms or token.term in covered):
                missing[token.start : token.end] = True
        missing &= ~known  # a pair across two known words ("研究" + "基础") is no unknown word
        words: list[str] = []
        start = None
        for i, flag in enumerate(missing.tolist()):
            if flag and start is None:
                start = i
            elif not flag and start is not None:
                words.append(text[start:i].strip())
                start = None
        return tuple(dict.fromkeys(w for w in words if w))

    def _candidates(
        self, query: Query, plan: QueryPlan, need: int = 0
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """The sentences worth ranking, with their scores, and the share of the corpus they come from."""
        if plan.term_ids:
            scored = self._inverted.score(plan.term_ids, plan.weights)
            return scored.ids, scored.scores, 1.0
        known = self._inverted.term_ids
        if plan.phrases and all(
            t in known or self._cjk_pairs(t) for p in query.phrases for t in self._analyzer.terms(p)
        ):
            # Phrases of stop words only (the free words, if any, are all unknown, which is no reason to
            # find nothing): no postings to use; the text is scanned, maybe only in part.
            ids, scanned_share = self._scan_phrases(query.phrases, need)
            return ids, np.ones(ids.size), scanned_share
        return np.zeros(0, np.int64), np.zeros(0), 1.0

    def _fuse(
        self, query: Query, plan: QueryPlan, ids: np.ndarray, scores: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Add the sentences nearest the question by meaning and rank all by both signals; also the best
        cosine in the whole corpus, the signal for "is there an answer at all"."""
        build = self._vector_build
        assert build is not None and build.vectors is not None
        vectors = build.vectors
        settings = self.settings.semantic
        fixes = {w: f for w, f in plan.suggestions.items() if self._expander.misspelled(w.casefold())}
        text = " ".join([_corrected(query.text, fixes), *query.phrases]).strip()
        question_vector = self._question_vector(text)
        dense = vectors.nearest(question_vector, settings.candidates)
        seen_best = [0.0]  # the best cosine among the candidates fuse asked about
        titles = build.titles if settings.title_similarity else None
        title_cosines = titles @ question_vector if titles is not None and len(titles) else None
        sentence_doc = self._store.sentence_doc

        def cosine_of(some: np.ndarray) -> np.ndarray:
            cosines = vectors.cosines(some, question_vector)
            if cosines.size and not np.isnan(cosines).all():
                seen_best[0] = max(seen_best[0], float(np.nanmax(cosines)))
            if title_cosines is not None:
                # What the document is about, by meaning: a sentence that leaves its subject unsaid ("He
                # said the tombs...") is still in the speech the question names.
                lent = np.nan_to_num(title_cosines[sentence_doc[some]])  # a title not embedded: nothing
                cosines = cosines + settings.title_similarity * lent
            return cosines

        fused = fuse(
            ids,
            scores,
            dense,
            lambda some: self._inverted.score_sentences(some, plan.term_ids, plan.weights),
            cosine_of,
            settings,
            Neighbourhood(
                self._neighbour_before, self._neighbour_after, self._inverted.lengths,
                title_bm25=lambda some: self._title_scores(some, plan),
                date_match=self._date_matcher(query),
            ),
            full_match=self._full_match(plan),
        )
        # The best cosine in the corpus, or, when the vectors are too many to scan, the best among the
        # candidates (the BM25 matches and their neighbours) stands in.
        best_cosine = float(dense.cosines[0]) if dense.cosines.size else seen_best[0]
        return fused.ids, fused.scores, best_cosine

    def _date_matcher(self, query: Query) -> Callable[[np.ndarray], np.ndarray] | None:
        """How well each sentence's document date fits the years the question names (a decade, "the 1850s",
        names each of its years): 1 in such a year, ``date_after`` in the year after it (what is reported
        of a year); None when it names none the corpus spans."""
        span = self._date_span
        years = {int(y) for y in _YEAR.findall(query.text)}
        for decade in _DECADE.findall(query.text):
            years.update(range(int(decade) * 10, int(decade) * 10 + 10))
        if span is None or not years or not any(span[0] <= y <= span[1] for y in years):
            return None
        after = self.settings.semantic.date_after
        wanted = np.fromiter(years, dtype=np.int32)
        document_years = self._document_years
        if document_years is None:  # two threads may both make it: the same array, and no harm
            document_years = self._document_years = np.array(
                [d.date.year if d.date else 0 for d in self._store.documents], dtype=np.int32)  # fmt: skip
        sentence_doc = self._store.sentence_doc

        def match(ids: np.ndarray) -> np.ndarray:
            year = document_years[sentence_doc[np.asarray(ids, dtype=np.int64)]]  # 0: undated
            return np.where(np.isin(year, wanted), 1.0, np.where(np.isin(year - 1, wanted), after, 0.0))

        return match

    def _confidence(self, best_cosine: float, query: Query, plan: QueryPlan) -> float:
        """How likely the corpus answers the question: the best cosine in the corpus, less a share for
        question words it has in no form (a typo with a correction counts as known), and less again when
        every year the question names lies outside the corpus's dates."""
        words = {t.word for t in plan.terms if t.source == QUESTION}
        missing = [w for w in plan.unknown if w.isalpha() and w not in plan.suggestions]
        confidence = best_cosine - _UNKNOWN_WORD_PENALTY * len(missing) / max(1, len(words))
        years = [int(y) for y in _YEAR.findall(query.text)]
        stats = self._date_span
        if years and stats is not None and all(not stats[0] <= y <= stats[1] for y in years):
            confidence -= _OTHER_YEARS_PENALTY
        return confidence

    def _title_index(self) -> InvertedIndex:
        titles = self._titles
        if titles is None:  # two threads may both build it: the same index, and no harm
            titles = self._titles = InvertedIndex.from_term_lists(self.title_terms())
        return titles

    def title_terms(self) -> list[list[str]]:
        """Each document's title as terms (a composed index takes its segments', analysed once)."""
        terms = self._title_terms
        if terms is None:
            terms = self._title_terms = [self._analyzer.terms(d.title) for d in self._store.documents]
        return terms

    def _title_scores(self, ids: np.ndarray, plan: QueryPlan) -> np.ndarray:
        """The question's BM25 against the title of each sentence's document (titles often name who
        speaks or what the piece is about, which its sentences then leave out)."""
        titles = self._title_index()
        weights: dict[int, float] = {}
        for weighted in plan.terms:
            term_id = titles.term_ids.get(weighted.term)
            if term_id is not None:
                weights[term_id] = weights.get(term_id, 0.0) + weighted.weight
        if not weights:
            return np.zeros(len(ids))
        scored = titles.score(list(weights), list(weights.values()))
        per_document = np.zeros(titles.n_sentences)
        per_document[scored.ids] = scored.scores
        return per_document[self._store.sentence_doc[np.asarray(ids, dtype=np.int64)]]

    def _full_match(self, plan: QueryPlan) -> float:
        """The BM25 score of an average-length sentence holding each question word once, in its best form
        (the word or a variant of it, at that variant's weight); a word found in no form counts as the
        rarest, so questions of words the corpus lacks get a high bar."""
        idf, term_ids = self._inverted.idf, self._inverted.term_ids
        unseen = math.log(len(self._store) + 0.5) - math.log(0.5)
        best: dict[str, float] = {}
        for weighted in plan.terms:
            if weighted.source == COMPOUND and " " in weighted.word:
                continue
            term_id = term_ids.get(weighted.term)
            mass = float(idf[term_id]) * weighted.weight if term_id is not None else 0.0
            best[weighted.word] = max(best.get(weighted.word, 0.0), mass)
        repeats = Counter(t.word for t in plan.terms if t.source == QUESTION)
        return sum((best.get(word) or unseen) * count for word, count in repeats.items())

    def _neighbour_before(self, ids: np.ndarray) -> np.ndarray:
        """The sentence before each of ``ids`` in its document, or -1 at the document's start."""
        doc = self._store.sentence_doc
        before = np.asarray(ids, dtype=np.int64) - 1
        inside = before >= 0
        inside[inside] = doc[before[inside]] == doc[ids[inside]]
        return np.where(inside, before, -1)

    def _neighbour_after(self, ids: np.ndarray) -> np.ndarray:
        """The sentence after each of ``ids`` in its document, or -1 at the document's end."""
        doc = self._store.sentence_doc
        after = np.asarray(ids, dtype=np.int64) + 1
        inside = after < doc.size
        inside[inside] = doc[after[inside]] == doc[ids[inside]]
        return np.where(inside, after, -1)

    def _coverage(self, sentence_id: int, plan: QueryPlan) -> float:
        """The share of the question's weight one sentence matches. Each question word weighs as its rarest
        known form (the word, or a spelling, form or correction of it the corpus has) and counts as matched
        when the sentence holds any of them; a word the corpus has in no form weighs as the rarest."""
        inverted = self._inverted
        idf, term_ids = inverted.idf, inverted.term_ids
        unseen = math.log(len(self._store) + 0.5) - math.log(0.5)
        repeats = Counter(t.word for t in plan.terms if t.source == QUESTION)
        forms: dict[str, list[int]] = {word: [] for word in repeats}  # word -> its known forms
        joined: dict[str, list[int]] = {word: [] for word in repeats}  # word -> compounds it is part of
        for weighted in plan.terms:
            term_id = term_ids.get(weighted.term)
            if term_id is None:
                continue
            if weighted.source == COMPOUND and " " in weighted.word:
                for word in weighted.word.split():
                    joined.setdefault(word, []).append(term_id)
            elif weighted.word in forms:
                forms[weighted.word].append(term_id)
        matched = total = 0.0
        for word, count in repeats.items():
            group = forms[word]
            mass = max((max(float(idf[t]), MIN_COVERAGE_WEIGHT) for t in group), default=unseen) * count
            total += mass
            if any(self._holds(sentence_id, t) for t in group + joined.get(word, [])):
                matched += mass
        return matched / total if total else 0.0

    def _holds(self, sentence_id: int, term_id: int) -> bool:
        postings = self._inverted.postings(term_id)
        where = int(np.searchsorted(postings, sentence_id))
        return where < postings.size and int(postings[where]) == sentence_id

    def _filter_mask(self, ids: np.ndarray, query: Query) -> np.ndarray:
        keep = np.ones(ids.size, dtype=bool)
        if not ids.size:
            return keep
        for excluded in query.excluded:
            excluded_terms = self._analyzer.terms(excluded)
            words = [w.term for w in self._analyzer.words(excluded)]
            holders = self._holding_all(ids, excluded_terms) if excluded_terms else np.zeros(ids.size, bool)
            if len(words) > 1 and holders.any():
                # "-\"a phrase\"" excludes the phrase, not each of its words.
                for j in np.flatnonzero(holders):
                    surface = [w.term for w in self._analyzer.words(self._store.text(int(ids[j])))]
                    holders[j] = bool(phrase_positions(surface, words))
            keep &= ~holders
        for phrase_text in query.phrases:
            # Analysed as a whole, so Chinese phrases give the same character pairs as the index holds.
            phrase_terms = self._analyzer.terms(phrase_text)
            if phrase_terms:
                keep &= self._holding_all(ids, phrase_terms)
        low, high = _date_range(query)
        if low is not None or high is not None:
            dates = self._store.sentence_dates(ids)
            keep &= dates != UNKNOWN_DATE
            if low is not None:
                keep &= dates >= low
            if high is not None:
                keep &= dates <= high
        return keep

    def _holding_all(self, ids: np.ndarray, terms: Sequence[str]) -> np.ndarray:
        """Which of ``ids`` contain every one of ``terms`` (postings are sorted, so a binary search each)."""
        holding = np.ones(ids.size, dtype=bool)
        for term in set(terms):
            term_id = self._inverted.term_ids.get(term)
            if term_id is None:
                pairs = self._cjk_pairs(term)  # a lone CJK character: held by any pair holding it
                if not pairs:
                    return np.zeros(ids.size, dtype=bool)
                any_pair = np.zeros(ids.size, dtype=bool)
                for pair in pairs:
                    any_pair |= self._holding_all(ids, [pair])
                holding &= any_pair
                continue
            postings = self._inverted.postings(term_id)
            where = np.searchsorted(postings, ids)
            holding &= (where < postings.size) & (postings[np.minimum(where, postings.size - 1)] == ids)
        return holding

    def _verify_phrases(
        self, ids: np.ndarray, scores: np.ndarray, phrases: Sequence[list[str]], need: int
    ) -> tuple[np.ndarray, np.ndarray, float | None]:
        """The candidates that hold every phrase, best first, and, when not all of them were checked, the
        number of distinct matches expected among the rest (from an even sample of them).

        The walk goes down the ranking until it has ``need`` distinct texts (and at least _PHRASE_EXACT
        looks), or hits a bound: _PHRASE_VERIFY_LIMIT word-by-word checks, _PHRASE_SCREEN_LIMIT looks. A
        look is cheap when a quick pattern rules the sentence out; the copies of a text checked once are
        not checked again. The walk depends on nothing but the ranking and ``need``, so a later page walks
        at least as far: every match found here is found there too."""
        order = np.lexsort((ids, -scores)).tolist()
        store = self._store
        groups_of = store.duplicate_group
        repeated = store.duplicate_count
        screen = _phrase_screen(phrases)
        good: list[int] = []
        found: set[int] = set()  # duplicate groups of the matches
        answers: dict[int, bool] = {}  # duplicate group -> holds the phrases (texts said in several places)
        looked = checks = 0
        for j in order:
            if (looked >= _PHRASE_EXACT and len(found) >= need) or looked >= _PHRASE_SCREEN_LIMIT:
                break
            if checks >= _PHRASE_VERIFY_LIMIT:
                break
            looked += 1
            sentence_id = int(ids[j])
            group = int(groups_of[sentence_id])
            holds = answers.get(group) if repeated[sentence_id] else None
            if holds is None:
                text = store.text(sentence_id)
                if screen is not None and text.isascii() and screen.search(text) is None:
                    holds = False
                else:
                    checks += 1
                    holds = self._text_holds_phrases(text, phrases)
                if repeated[sentence_id]:
                    answers[group] = holds
            if holds:
                good.append(j)
                found.add(group)
        chosen = np.asarray(good, dtype=np.int64)
        rest = order[looked:]
        if not rest:
            return ids[chosen], scores[chosen], None
        # The best-ranked candidates are not typical of the rest: estimate from an even sample instead,
        # counting distinct texts (a text in n places counts 1/n per copy; one already found, nothing).
        sample = [rest[int(i)] for i in np.linspace(0, len(rest) - 1, min(len(rest), _PHRASE_SAMPLE))]
        distinct = 0.0
        for j in dict.fromkeys(sample):
            sentence_id = int(ids[j])
            group = int(groups_of[sentence_id])
            if group not in found and self._holds_phrases(sentence_id, phrases):
                distinct += 1.0 / (1 + int(repeated[sentence_id]))
        return ids[chosen], scores[chosen], distinct / len(sample) * len(rest)

    def _holds_phrases(self, sentence_id: int, phrases: Sequence[list[str]]) -> bool:
        return self._text_holds_phrases(self._store.text(sentence_id), phrases)

    def _text_holds_phrases(self, text: str, phrases: Sequence[list[str]]) -> bool:
        surface = [w.term for w in self._analyzer.words(text)]
        return all(phrase_positions(surface, phrase) for phrase in phrases)

    def _scan_phrases(self, phrases: Sequence[str], need: int = 0) -> tuple[np.ndarray, float]:
        """Sentences holding a phrase made only of stop words (a scan of the text blob; the words are checked
        after), and the share of the text scanned: the scan stops once it has enough candidates (more for
        a later page, so that its walk extends this one's)."""
        words = [w.term for w in self._analyzer.words(phrases[0])]
        if not words:
            return np.zeros(0, np.int64), 1.0
        pattern = re.compile(
            rb"\W+".join(re.escape(w.encode("utf-8")) for w in words) + rb"(?!\w)",
            re.IGNORECASE,
        )
        # Enough matches for the phrase check, not every one ("of the" is in every other sentence), and not
        # more than _SCAN_BYTES of text (a rare pairing of stop words would mean reading all of it).
        size = self._store.blob.size
        text = self._store.blob.read(0, min(size, _SCAN_BYTES))
        end = len(text)
        found: list[int] = []
        for match in pattern.finditer(text):
            start = match.start()
            before = text[start - 1 : start] if start else b""
            if before.isalnum() or before == b"_":
                continue  # inside a word (checked here: a look-behind in the pattern is 2x slower)
            found.append(start)
            if len(found) >= max(_PHRASE_VERIFY_LIMIT, 2 * need):
                end = match.end()
                break
        scanned = end / size if size else 1.0
        if not found:
            return np.zeros(0, np.int64), scanned
        starts = np.asarray(found, dtype=np.int64)
        found_ids = np.unique(self._store.sentence_at_byte(starts))
        return found_ids[found_ids >= 0], scanned

    def _count_distinct(self, ids: np.ndarray) -> int:
        """Distinct sentence texts among ``ids``: only the few sentences said elsewhere too need a look."""
        repeated = ids[self._store.duplicate_count[ids] > 0]
        if not repeated.size:
            return int(ids.size)
        groups = np.unique(self._store.duplicate_group[repeated])
        return int(ids.size - repeated.size + groups.size)

    def _page(self, ids: np.ndarray, scores: np.ndarray, offset: int, k: int) -> list[tuple[int, float]]:
        """Hits ``offset .. offset + k`` in rank order, one per distinct text."""
        want = offset + k
        if not want or not ids.size:
            return []
        take = min(ids.size, max(2 * want, 16))
        while True:
            best_ids, best_scores = top_k(ids, scores, take)
            page: list[tuple[int, float]] = []
            seen: set[int] = set()
            for i, s in zip(best_ids.tolist(), best_scores.tolist(), strict=True):
                group = int(self._store.duplicate_group[i])
                if group not in seen:
                    seen.add(group)
                    page.append((i, s))
            if len(page) >= want or take >= ids.size:
                return page[offset:want]
            take = min(ids.size, take * 4)

    # -- helpers --------------------------------------------------------------------------------------

    def _make_hit(
        self, sentence_id: int, score: float, spans: tuple[tuple[int, int], ...], text: str | None = None
    ) -> Hit:
        store = self._store
        doc = store.document_of(sentence_id)
        segment, segment_sentence = self.sentence_key(sentence_id)
        return Hit(
            text=store.text(sentence_id) if text is None else text,
            date=doc.date,
            title=doc.title,
            doc=doc.name,
            score=float(score),
            sentence_id=sentence_id,
            paragraph=int(store.sentence_paragraph[sentence_id]),
            position=sentence_id - doc.first_sentence,
            spans=spans,
            duplicates=store.duplicates(sentence_id),
            url=doc.url,
            segment=segment,
            segment_sentence=segment_sentence,
        )

    def _check_id(self, sentence_id: int) -> None:
        if not 0 <= sentence_id < len(self._store):
            raise IndexError(f"no sentence {sentence_id} in this index")

    def _surface_word(self, term: str, near: str | None = None) -> str | None:
        """A word as written in the corpus that analyses to ``term``: of the forms its first sentences
        use, the one most like ``near`` (a typed word: "decoratr" -> "decorator", not "decorated"), else
        the first found."""
        term_id = self._inverted.term_ids.get(term)
        if term_id is None:
            return None
        forms: list[str] = []
        sentences = self._inverted.postings(term_id)[: 5 if near is None else _SURFACE_SENTENCES]
        for sentence_id in sentences.tolist():
            text = self._store.text(sentence_id)
            for token in self._analyzer.tokens(text):
                if token.term == term:
                    form = text[token.start : token.end].casefold()
                    if near is None:
                        return form
                    if form not in forms:
                        forms.append(form)
        if not forms:
            return None
        return max(forms, key=lambda f: difflib.SequenceMatcher(None, near, f).ratio())


def _phrase_screen(phrases: Sequence[list[str]]) -> re.Pattern[str] | None:
    """A quick test an ASCII sentence passes whenever it holds the phrases (it may pass without): each
    phrase's words in order, anything but letters and digits between, case ignored. Only for phrases of
    plain ASCII words (a comma in a number, NFKC or CJK would make the words differ from the text)."""
    patterns = []
    for phrase in phrases:
        if not all(word.isascii() and word.isalpha() for word in phrase):
            return None
        patterns.append(r"(?:'s)?[\W_]*".join(re.escape(word) for word in phrase))
    if not patterns:
        return None
    # Phrases in any order: a lookahead each.
    return re.compile("".join(f"(?=.*?{p})" for p in patterns) if len(patterns) > 1 else patterns[0],
                      re.IGNORECASE | re.DOTALL)


def _forwarded(moved: np.ndarray | None, local_id: int) -> int | None:
    if moved is None or not 0 <= local_id < moved.size or moved[local_id] < 0:
        return None
    return int(moved[local_id])


def _corrected(text: str, suggestions: dict[str, tuple[str, ...]]) -> str:
    """``text`` with each misspelled word replaced by its likeliest correction: the model reads a typo as
    unknown word pieces ("breakthrougs" is not near "breakthroughs" by meaning), words as words."""
    for word, fixes in suggestions.items():
        if fixes:
            text = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", fixes[0], text)
    return text


def _date_range(query: Query) -> tuple[int | None, int | None]:
    """The inclusive range of day ordinals the query's date filters allow."""
    low = query.after.toordinal() if query.after else None
    high = query.before.toordinal() if query.before else None
    if query.year is not None:
        year_low, year_high = dt.date(query.year, 1, 1).toordinal(), dt.date(query.year, 12, 31).toordinal()
        low = year_low if low is None else max(low, year_low)
        high = year_high if high is None else min(high, year_high)
    return low, high


def _sample_words(store: SentenceStore, analyzer: Analyzer) -> Iterator[str]:
    """The corpus's words as written (case-folded), from an even sample of ``store``'s sentences."""
    n_sentences = len(store)
    step = max(1, n_sentences // _WORD_SAMPLE)
    for sentence_id in range(0, n_sentences, step):
        for word in analyzer.words(store.text(sentence_id)):
            yield word.term
