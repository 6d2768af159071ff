"""Text -> terms: the one analyzer shared by documents and questions, so that both meet on the same terms.

Analysis is, in order: find word tokens in the original text; normalise each token on its own (NFKC, case
folding, one apostrophe), so that spans always point at the original characters; drop stop words; stem.

* A word token is a run of letters and digits (``\\w`` without ``_``, combining marks allowed inside), with
  internal apostrophes ("don't", "Xi’s") and, between digits, a decimal point ("3.5") or a thousands comma
  ("1,000" -> "1000"). A possessive "'s" is dropped ("Xi’s" -> "xi").
* CJK text (Han, kana, Hangul) has no spaces between words, so each run of CJK characters is indexed as
  overlapping character bigrams ("基础研究" -> "基础", "础研", "研究"; a lone character is a unigram).
* :meth:`Analyzer.words` gives the surface words instead (no stemming, stop words kept, CJK one character
  per word) for phrase matching.

:meth:`Analyzer.terms` is the hot path of an index build: one precompiled regex, ``findall`` and a memo from
raw token to its terms, so a word seen before costs one dict look-up.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass

import Stemmer
import stop_words as stop_word_lists

# Bump whenever a change here can change what terms(), tokens() or words() return: the index cache keys on it.
ANALYSIS_VERSION = 1

# The memos are emptied when they reach this many entries. Zipf's law means a few thousand words make up
# most tokens, and those are back in the memo within a few sentences, so dropping everything now and then
# costs little, while a memo that only grows could hold every number and typo of a big corpus (~200 bytes
# an entry). Emptying needs no bookkeeping on the hot path, unlike an LRU.
MEMO_LIMIT = 1 << 18

# The Snowball English stop-word list (snowballstem.org/algorithms/english/stop.txt).
ENGLISH_STOP_WORDS: frozenset[str] = frozenset(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
    herself it its itself they them their theirs themselves what which who whom this that these those am is
    are was were be been being have has had having do does did doing would should could ought i'm you're
    he's she's it's we're they're i've you've we've they've i'd you'd he'd she'd we'd they'd i'll you'll
    he'll she'll we'll they'll isn't aren't wasn't weren't hasn't haven't hadn't doesn't don't didn't won't
    wouldn't shan't shouldn't can't cannot couldn't mustn't let's that's who's what's here's there's when's
    where's why's how's a an the and but if or because as until while of at by for with about against
    between into through during before after above below to from up down in out on off over under again
    further then once here there when where why how all any both each few more most other some such no nor
    not only own same so than too very
    """.split()  # noqa: SIM905 - a word list reads better as text
)

# The lists of the other Snowball languages come from the stop-words package (data files it ships, no
# download); Snowball names it spells differently are mapped here. English keeps the list above, unchanged:
# terms() output, and so the index cache, must not move under an existing English index.
_OWN_STOP_WORDS = {"english": ENGLISH_STOP_WORDS, "porter": ENGLISH_STOP_WORDS}
_STOP_LIST_NAMES = {"dutch_porter": "dutch"}
# The package's Greek list is Ancient Greek (polytonic: "καί", "ὁ"); Snowball's stemmer is for Modern Greek,
# whose text it would never match.
_NO_STOP_LIST = frozenset({"greek"})


def stop_word_languages() -> list[str]:
    """The Snowball languages (``Stemmer.algorithms()``) that have a stop-word list."""
    return [language for language in Stemmer.algorithms() if stop_words_for(language) is not None]


@functools.cache
def stop_words_for(language: str) -> frozenset[str] | None:
    """The stop words of a Snowball language, normalised like tokens (NFKC, case folding, one apostrophe),
    or None when there is no list for it."""
    own = _OWN_STOP_WORDS.get(language)
    if own is not None:
        return own
    name = _STOP_LIST_NAMES.get(language, language)
    if name in _NO_STOP_LIST or name not in stop_word_lists.AVAILABLE_LANGUAGES:
        return None
    try:
        words = stop_word_lists.get_stop_words(name)
    except stop_word_lists.StopWordError:  # a broken install: as if there were no list
        return None
    return frozenset(_normalise(word) for word in words if word.strip()) or None


def _mark_class() -> str:
    """A regex character class body of the combining marks (Mn, Mc, Me) of the Basic Multilingual Plane:
    never ``\\w``, but part of words ("e" + U+0301 is "é"; Indic vowel signs). Only the BMP, because a class
    with a character beyond it is matched range by range (~300 of them), which halves tokenising speed;
    the marks left out belong to historic scripts and musical notation."""
    ranges: list[list[int]] = []
    for code in range(0x10000):
        if unicodedata.category(chr(code))[0] == "M":
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return "".join(f"{chr(a)}-{chr(b)}" if a != b else chr(a) for a, b in ranges)


# CJK scripts: Han (with its iteration marks and numerals), Hiragana, Katakana (and half-width), Bopomofo,
# Hangul (syllables, jamo, half-width). Only characters that are also \w matter: the rest never reach here.
_CJK_CLASS = (
    "\u1100-\u11ff\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303c\u3041-\u309f\u30a0-\u30ff"
    "\u3100-\u312f\u3131-\u318e\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f"
    "\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff\uff66-\uff9f\uffa0-\uffdc"
    "\U0001b000-\U0001b16f\U00020000-\U0003134f"
)
_MARKS = f"[{_mark_class()}]"
# A run of letters and digits (\w minus _), marks allowed inside. Possessive: a part is always taken whole
# (what follows it is never a letter, digit or mark), and without them a part that fails to complete a
# fullmatch (``_STRICT`` on "a" + marks + "(") retried every way of splitting its marks: exponential.
_PART = f"[^\\W_]++(?:{_MARKS}++[^\\W_]*+)*+"
# Raw tokens: parts joined by an apostrophe, "." or ",". Only the memo miss path sees the stricter rule
# (``_STRICT``: "." between digits, "," before three digits), so the hot regex stays simple and fast.
_TOKEN = re.compile(f"{_PART}(?:[.,'’＇]{_PART})*")
# The same on ASCII text (str.isascii() is O(1)), twice as fast again: no Unicode classes, no marks.
_ASCII_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[.,'][A-Za-z0-9]+)*")
_STRICT = re.compile(f"{_PART}(?:(?:['’＇]|(?<=\\d)\\.(?=\\d)|(?<=\\d),(?=\\d{{3}}(?!\\d))){_PART})*")
_CJK = re.compile(f"[{_CJK_CLASS}]")
_CJK_SPLIT = re.compile(f"([{_CJK_CLASS}]+)|[^{_CJK_CLASS}]+")
_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'", ",": None})  # after NFKC (which maps ＇ to ')
_TOKEN_MEMO_CHARS = 40
_CJK_MEMO_CHARS = 4  # longer CJK runs are mostly unique (whole clauses): not worth a memo entry


@dataclass(frozen=True, slots=True)
class Token:
    """One analysed term (or, from :meth:`Analyzer.words`, one surface word) and where it is in the text."""

    term: str  # the analysed term (normalised, case-folded, stemmed) or the plain word for words()
    start: int  # character span in the ORIGINAL text
    end: int


# A raw token analysed: (text, start, end) with start/end relative to the raw token.
_Piece = tuple[str, int, int]


class Analyzer:
    """Turns text into index terms; the same object (same settings) must analyse documents and questions.

    ``language`` is a Snowball stemmer name (``Stemmer.algorithms()``); ``stop_words=True`` needs a
    language with a stop-word list (:func:`stop_word_languages`).
    """

    def __init__(self, *, language: str = "english", stop_words: bool = True, stemming: bool = True) -> None:
        language = language.strip().lower()
        if language not in Stemmer.algorithms():
            known = ", ".join(a for a in Stemmer.algorithms())
            raise ValueError(f"unknown language {language!r} for stemming; choose one of: {known}")
        stop = stop_words_for(language) if stop_words else frozenset()
        if stop is None:
            raise ValueError(
                f"there is no stop-word list for {language!r}; turn stop words off for it "
                f"(lists exist for: {', '.join(stop_word_languages())})"
            )
        self.language = language
        self.stop_words = stop_words
        self.stemming = stemming
        self._stop: frozenset[str] = stop
        self._stemmer = Stemmer.Stemmer(language) if stemming else None
        self._stems: dict[str, str] = {}  # normalised word -> stem
        # The memo of terms(): raw token -> its term ("" for none, i.e. a stop word), and, apart, the raw
        # tokens with several terms (CJK runs, "e.g"), which are rare and would slow the common case.
        self._single: dict[str, str] = {}
        self._multi: dict[str, tuple[str, ...]] = {}
        self._pieces: dict[str, list[_Piece]] = {}  # the memo of tokens(): raw token -> its analysed pieces

    def __repr__(self) -> str:
        return f"Analyzer(language={self.language!r}, stop_words={self.stop_words}, stemming={self.stemming})"

    @property
    def fingerprint(self) -> str:
        """Changes whenever analysis output could change: the settings, this module's version, the Unicode
        data of this Python (NFKC, case folding, ``\\w``) and the Snowball stemmer's version."""
        stemmer = Stemmer.version() if self.stemming else "-"
        fingerprint = (
            f"analysis-{ANALYSIS_VERSION}|{self.language}|stop={int(self.stop_words)}"
            f"|stem={int(self.stemming)}|snowball={stemmer}|unicode={unicodedata.unidata_version}"
        )
        if self._stop and self.language not in _OWN_STOP_WORDS:  # a packaged list: it may change
            listed = "\n".join(sorted(self._stop)).encode()
            fingerprint += f"|stoplist={hashlib.blake2s(listed, digest_size=6).hexdigest()}"
        return fingerprint

    # -- public API -------------------------------------------------------------------------------------

    def terms(self, text: str) -> list[str]:
        """Index terms, in order, duplicates kept (BM25 needs term frequencies)."""
        if not text.isascii():
            text = _asciify(text)
        raws = (_ASCII_TOKEN if text.isascii() else _TOKEN).findall(text)
        try:
            # Every token seen before, each with one term or none: no Python-level loop at all.
            return list(filter(None, map(self._single.__getitem__, raws)))
        except KeyError:
            return self._terms_slowly(raws)

    def tokens(self, text: str) -> list[Token]:
        """The terms of :meth:`terms` with their spans in ``text`` (for highlighting)."""
        out: list[Token] = []
        memo = self._pieces
        for match in (_ASCII_TOKEN if text.isascii() else _TOKEN).finditer(text):
            raw = match.group()
            pieces = memo.get(raw)
            if pieces is None:
                pieces = self._analyse(raw)
                if len(raw) <= _TOKEN_MEMO_CHARS:  # long CJK runs are mostly unique and would bloat it
                    if len(memo) >= MEMO_LIMIT:
                        memo.clear()
                    memo[raw] = pieces
            base = match.start()
            out.extend([Token(term, base + start, base + end) for term, start, end in pieces])
        return out

    def matching_tokens(self, text: str, terms: Collection[str]) -> list[Token]:
        """The :meth:`tokens` whose term is one of ``terms``: highlighting's hot path, which skips the many
        words already known to analyse to something else without building a token for them."""
        out: list[Token] = []
        known, memo = self._single, self._pieces
        for match in (_ASCII_TOKEN if text.isascii() else _TOKEN).finditer(text):
            raw = match.group()
            term = known.get(raw)
            if term is not None and term not in terms:
                continue
            pieces = memo.get(raw)
            if pieces is None:
                pieces = self._analyse(raw)
                if len(pieces) < 2 and term is None:  # learn it the way terms() would
                    if len(known) >= MEMO_LIMIT:
                        known.clear()
                    known[raw] = pieces[0][0] if pieces else ""
                    if not pieces or pieces[0][0] not in terms:
                        continue
            base = match.start()
            out.extend([Token(t, base + start, base + end) for t, start, end in pieces if t in terms])
        return out

    def words(self, text: str) -> list[Token]:
        """Normalised, case-folded surface words with their spans: no stemming, stop words kept, a possessive
        "'s" dropped, CJK one character per word. For phrase matching."""
        out: list[Token] = []
        for match in (_ASCII_TOKEN if text.isascii() else _TOKEN).finditer(text):
            base = match.start()
            for word, start, end in _words(match.group()):
                out.append(Token(word, base + start, base + end))
        return out

    def is_stop_word(self, word: str) -> bool:
        """Whether this analyzer drops ``word`` (always False with stop words off). Case and apostrophe style
        do not matter."""
        if not self._stop:
            return False
        folded = _normalise(word)
        return folded in self._stop or (folded.endswith("'s") and folded[:-2] in self._stop)

    def stem(self, word: str) -> str:
        """The stem of ``word`` after normalisation and case folding (just the normalised word with stemming
        off). A possessive "'s" is not dropped here: pass a word as :meth:`words` gives it."""
        return self._stem(_normalise(word))

    # -- internals --------------------------------------------------------------------------------------

    def _terms_slowly(self, raws: list[str]) -> list[str]:
        """:meth:`terms` when a token is new or has several terms; learns the new ones."""
        single, multi = self._single, self._multi
        out: list[str] = []
        for raw in raws:
            term = single.get(raw)
            if term is not None:
                if term:
                    out.append(term)
                continue
            found = multi.get(raw)
            if found is None:
                found = tuple(piece[0] for piece in self._analyse(raw))
                memo = single if len(found) < 2 else multi
                if len(memo) >= MEMO_LIMIT:
                    memo.clear()
                if len(found) < 2:
                    single[raw] = found[0] if found else ""
                elif len(raw) <= _CJK_MEMO_CHARS or _CJK.search(raw) is None:
                    multi[raw] = found
            out += found
        return out

    def _stem(self, word: str) -> str:
        stemmer = self._stemmer
        if stemmer is None:
            return word
        stems = self._stems
        stem = stems.get(word)
        if stem is None:
            stem = stemmer.stemWord(word)
            if len(stems) >= MEMO_LIMIT:
                stems.clear()
            stems[word] = stem
        return stem

    def _analyse(self, raw: str) -> list[_Piece]:
        """One raw token (a ``_TOKEN`` match) -> its terms, spans relative to it."""
        stop = self._stop
        out: list[_Piece] = []
        for kind, text, start, end in _segments(raw):
            if kind == _WORD:
                if text in stop:
                    continue
                if text.endswith("'s"):
                    text = text[:-2]
                    if text in stop:
                        continue
                stem = self._stem(text)
                if stem:
                    out.append((stem, start, end))
            else:
                out.extend(_cjk_bigrams(kind, text, start, end))
        return out


_WORD, _RUN, _LUMP = 0, 1, 2  # a normalised word; a CJK run as in the text; CJK made by NFKC (one span)
_Segment = tuple[int, str, int, int]  # kind, text, start, end (relative to the raw token)


def _asciify(text: str) -> str:
    """``text`` with the non-ASCII punctuation common in English (’ “ ” — –) replaced, character for
    character, by ASCII that plays the same part in ``_TOKEN``, so that most sentences of English take the
    fast ASCII regex. Only for :meth:`Analyzer.terms`, which keeps no spans. ’ stays a joiner as ', and the
    term of a token with ’ equals that with ' anyway."""
    text = text.replace("’", "'")
    if not text.isascii():
        text = text.replace("“", '"').replace("”", '"').replace("—", "-").replace("–", "-")
    return text


def _normalise(word: str) -> str:
    """NFKC, case folding and one apostrophe (') for a single token; thousands commas removed."""
    if word.isascii():
        word = word.lower()
        return word.replace(",", "") if "," in word else word
    word = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", word).casefold())
    return word.translate(_APOSTROPHES)


def _segments(raw: str) -> list[_Segment]:
    """One raw token -> its normalised words and CJK runs, spans relative to it."""
    if "." in raw or "," in raw:
        pieces = [(m.group(), m.start()) for m in _STRICT.finditer(raw)]
        if len(pieces) != 1 or pieces[0][0] != raw:  # "e.g", "cats,dogs", "1,2": several tokens
            return [
                (kind, text, start + offset, end + offset)
                for piece, offset in pieces
                for kind, text, start, end in _joined_segments(piece)
            ]
    return _joined_segments(raw)


def _joined_segments(raw: str) -> list[_Segment]:
    """:func:`_segments` of a token that matches ``_STRICT`` whole."""
    if raw.isascii():
        word = raw.lower()
        return [(_WORD, word.replace(",", "") if "," in word else word, 0, len(raw))]
    if _CJK.search(raw) is None:
        parts = [(False, raw, 0, len(raw))]
    else:
        parts = [(m.group(1) is not None, m.group(), m.start(), m.end()) for m in _CJK_SPLIT.finditer(raw)]
    out: list[_Segment] = []
    for cjk, text, start, end in parts:
        if cjk:
            out.append((_RUN, text, start, end))
            continue
        word = _normalise(text)
        if word == "'s" and out:
            continue  # a possessive after a CJK run ("中国’s")
        if _STRICT.fullmatch(word) is not None and _CJK.search(word) is None:
            out.append((_WORD, word, start, end))
            continue
        # NFKC made several tokens ("⑴" -> "(1)") or CJK ("㊀" -> "一"), or a part after a CJK run is not
        # a whole token ("中国's" -> "'s"): split again; every piece keeps the whole span of the part.
        for match in _STRICT.finditer(word):
            for sub in _CJK_SPLIT.finditer(match.group()):
                if sub.group(1) is not None:
                    out.append((_LUMP, sub.group(), start, end))
                else:
                    out.extend((_WORD, w, start, end) for w in _STRICT.findall(sub.group()))
    return out


def _words(raw: str) -> list[_Piece]:
    """One raw token -> surface words for :meth:`Analyzer.words`, spans relative to it."""
    out: list[_Piece] = []
    for kind, text, start, end in _segments(raw):
        if kind == _WORD:
            out.append((text[:-2] if text.endswith("'s") else text, start, end))
        elif kind == _RUN:
            out.extend((unit, start + i, start + i + 1) for i, unit in enumerate(_cjk_units(text)))
        else:
            out.extend((unit, start, end) for unit in text)
    return out


def _cjk_units(run: str) -> list[str]:
    """The characters of a CJK run, NFKC-normalised one by one (so unit i is character i of the text)."""
    if unicodedata.is_normalized("NFKC", run):
        return list(run)
    return [unicodedata.normalize("NFKC", char) for char in run]


def _cjk_bigrams(kind: int, text: str, start: int, end: int) -> list[_Piece]:
    """Overlapping character bigrams of a CJK run (a lone character: a unigram)."""
    if kind == _RUN:
        units = _cjk_units(text)
        if len(units) == 1:
            return [(units[0], start, end)]
        return [(units[i] + units[i + 1], start + i, start + i + 2) for i in range(len(units) - 1)]
    if len(text) == 1:
        return [(text, start, end)]
    return [(text[i : i + 2], start, end) for i in range(len(text) - 1)]
