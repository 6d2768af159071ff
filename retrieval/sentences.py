"""Sentence boundaries as a careful editor would place them, in linear time.

Every sentence becomes a BM25 document and is quoted back to users whole, so a bad split hurts twice; and a
build splits millions of them, so the splitter must be fast as well as careful (pySBD is careful but slow and
superlinear on long paragraphs; a plain regex is fast but splits after "Mr." and "U.S.").

Design: one compiled regex finds every candidate boundary -- a run of terminators (``.`` ``?`` ``!``,
ellipses, CJK ``。！？``) with any closing quotes or brackets, followed by whitespace (CJK: by anything).
The fast path settles most candidates with cheap checks: a lowercase word after means "no"; an ordinary word
before and a capitalised word after mean "yes". Only candidates after an abbreviation, an initial, a number
or an ellipsis take the careful path, whose rules follow the English "Golden Rules" of pySBD /
pragmatic_segmenter; only paragraphs with something list-like in them pay for the list scan. Every pattern
and look-around is bounded, so megabyte paragraphs stay linear; runs too long to quote are cut at a clause
or word boundary.
"""

from __future__ import annotations

import re

__all__ = ["MAX_SENTENCE_CHARS", "SPLITTER_VERSION", "split_sentences"]

SPLITTER_VERSION = "1"
MAX_SENTENCE_CHARS = 600


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_CJK_TERMINATORS = "。｡！？"
_TERMINATORS = ".!?‽…‼⁇⁈⁉।॥؟۔" + _CJK_TERMINATORS
_QUESTION_EXCLAMATION = frozenset("!?‽‼⁇⁈⁉؟")
_CLOSERS = ")\\]}\"'”’»›」』》〉）】〕〗〙〛＂＇"
_CJK_LETTERS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
_BULLETS = "•◦▪▫‣⁃●○■□◆◇►▸"
_OPENERS = "\"'“‘„‚«‹([{¿¡「『（"

# A candidate starts at the first terminator of a run: the look-behinds stop the engine from retrying inside a
# run, which would be quadratic on a long run of dots. Spaced ellipses (". . .") belong to the run. Western
# terminators need whitespace (or CJK) after them, CJK ones nothing. Footnote marks ("[12]") count as closers:
# they belong to the sentence before them. The pattern opens with a character class so that the engine can
# skip quickly from one terminator to the next.
_CANDIDATE = re.compile(
    rf"([{_TERMINATORS}](?<![{_TERMINATORS}][{_TERMINATORS}])(?<![{_TERMINATORS}] [{_TERMINATORS}])"
    rf"(?:[{_TERMINATORS}]| \.)*)"
    rf"(?:(?<=[{_CJK_TERMINATORS}])(?:[{_CLOSERS}]|\[\d{{1,3}}\])*+"
    rf"|(?:[{_CLOSERS}]|\[\d{{1,3}}\])*+(?=\s|\Z|[{_CJK_LETTERS}]))"
)
# What follows a candidate: perhaps a bullet ("below). * Simple"), opening punctuation, then the first word
# (all bounded, so that no stretch of text is scanned again for the next candidate).
_NEXT = re.compile(rf"\s*+((?:[-*–—{_BULLETS}]\s++)?[^\w\s]{{0,40}}+)(\w{{0,40}})")
# List markers ("1.", "2.)", "a)") and bullets, each with the whitespace or bullet before it (the text is
# searched with a space in front); again a leading character class, for speed.
_LIST_ITEM = re.compile(
    rf"[\s{_BULLETS}](?:(?:(\d{{1,2}})|([A-Za-z]))(\.\)|\.|\))(?=\s)|(?<=\s)(?=([{_BULLETS}])))"
)
_CONTENT = re.compile(rf"[^\s{_BULLETS}]")
_MULTI_PERIOD_ABBREVIATION = re.compile(r"(?:[A-Za-z]{1,2}\.)+[A-Za-z]{1,2}")  # "U.S", "a.m", "Ph.D"
_CLAUSE_GAP = re.compile(r"(?s).*[,;:—–)](\s+)")
_WORD_GAP = re.compile(r"(?s).*\S(\s+)")
_SPACE = re.compile(r"\s*+")
_CITATION_END = frozenset(".,;")

# Titles before a name ("Mr. Smith"): never a sentence end.
_PREPOSITIVE = _words(
    """mr mrs ms mx dr prof st mt gen sen rep gov capt cpt col lt sgt cpl pvt adm maj cmdr cdr rev hon pres
    messrs mmes mme mlle msgr fr ft supt insp det atty amb gens sens reps"""
)
_STREET_OR_TITLE = _words("st dr")  # "Main St. The house" and "Mulholland Dr. The view" do end sentences
# Abbreviations that may end a sentence ("Pitt, Briggs & Co. It closed"): a boundary only before a word that
# typically opens one.
_ABBREVIATIONS = _words(
    """co corp inc ltd llc plc jr sr esq bros dept depts univ assn assoc approx fig figs vol vols nos pp
    ch chap eds al jan feb apr jun jul aug sep sept oct nov dec tues thurs ave blvd rd hwy pkwy govt intl natl
    mfg mgr cf avg hr hrs mins secs yr yrs mos wk wks tel ext ref refs cit ibid seq incl excl misc sq lb lbs
    oz ala ariz ark calif colo conn fla ga kan kans ky md mich minn mont neb nev okla tenn tex va vt wis wyo
    dak mass wash ind del ore pa la mo est min max apt rm ste bldg rte nr para paras eq eqs pt pts n° nº"""
)
# Also ordinary words ("no", "ill", "miss"): abbreviations only when capitalised.
_CAPITALISED_ABBREVIATIONS = _words("no art sec ed ex mar sun sat wed mon fri thu tue ill miss op ca")
# Always followed by more of the sentence ("Roe vs. Wade", "e.g. Paris").
_NEVER_BEFORE_BOUNDARY = _words("e.g i.e vs viz cf")
_TIMES = _words("a.m p.m")
# Words that typically open an English sentence, and rarely follow "U.S." or "Co." inside one. Names that are
# also such words ("Will", "May") are left out.
_SENTENCE_OPENERS = _words(
    """a an the it its he she they we i you his her their our my your this that these those there then but and
    or so yet if when whenever while as in on at for from by with after before since although though however
    meanwhile what who whom whose how why where which some many most all not each every both such still also
    even only now today yesterday tomorrow here is are was were do does did can could would should shall has
    have had must let please thus hence therefore instead indeed further furthermore moreover nevertheless
    nonetheless besides later earlier once because unlike despite during under over according among between
    through about against without within other another several few more less neither either nor whether until
    unless otherwise no yes to of last next first finally"""
)
_NOT_ORDINARY = _PREPOSITIVE | _ABBREVIATIONS | _CAPITALISED_ABBREVIATIONS | _NEVER_BEFORE_BOUNDARY
_TITLE_WORDS = _PREPOSITIVE | frozenset(w.capitalize() for w in _PREPOSITIVE)
# A sentence is not just a short prepositional phrase such as "At 5 a.m."
_PREPOSITIONS = _words("at by in on around about before after until since from near during throughout across")


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[tuple[int, int]]:
    """(start, end) character spans into `text`, in order, non-overlapping, each span stripped of
    surrounding whitespace (text[start:end] == text[start:end].strip() and non-empty), together covering
    every non-whitespace character of `text`. No span longer than max_chars: over-long runs (e.g. no
    punctuation at all) are cut at word boundaries (a single 'word' longer than max_chars is cut hard)."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, not {max_chars}")
    spans: list[tuple[int, int]] = []
    start = 0
    for cut in _boundaries(text):
        _emit(text, start, cut, max_chars, spans)
        start = cut
    _emit(text, start, len(text), max_chars, spans)
    return spans


def _emit(text: str, start: int, end: int, max_chars: int, spans: list[tuple[int, int]]) -> None:
    piece = text[start:end]
    stripped = piece.lstrip()
    if not stripped:
        return
    start += len(piece) - len(stripped)
    end = start + len(stripped.rstrip())
    while end - start > max_chars:
        # A quote cut after a comma or semicolon reads better than one cut mid-clause, if it is not too short.
        window = text[start : start + max_chars + 1]
        gap = _CLAUSE_GAP.match(window)
        if gap is None or gap.start(1) < max_chars // 2:
            gap = _WORD_GAP.match(window)
        if gap is None:
            spans.append((start, start + max_chars))  # a single word longer than max_chars
            start += max_chars
        else:
            spans.append((start, start + gap.start(1)))
            start = _SPACE.match(text, start + gap.end(1)).end()
    spans.append((start, end))


def _boundaries(text: str) -> list[int]:
    """Cut positions, increasing; the pieces between them are stripped afterwards."""
    padded = " " + text
    forced, markers = _list_items(text, padded) if _LIST_ITEM.search(padded) else ([], frozenset())
    cuts: list[int] = []
    sentence_start = 0
    f = 0
    for m in _CANDIDATE.finditer(text):
        first = m.start()
        while f < len(forced) and forced[f] <= first:
            if not cuts or forced[f] > cuts[-1]:
                cuts.append(forced[f])
                sentence_start = forced[f]
            f += 1
        if first in markers:
            continue
        cut = _decide(text, m, sentence_start)
        if cut >= 0 and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
            sentence_start = cut
    for position in forced[f:]:
        if not cuts or position > cuts[-1]:
            cuts.append(position)
    return cuts


def _decide(text: str, m: re.Match[str], sentence_start: int) -> int:
    """Where candidate `m` cuts the text, or -1 if it is no sentence boundary."""
    first, last = m.span(1)
    end = m.end()
    if last - first == 1:
        terminator = text[first]
        if terminator in _CJK_TERMINATORS:
            return end
    else:
        run = text[first:last]
        if any(c in run for c in _CJK_TERMINATORS):
            return end
        if any(c in run for c in _QUESTION_EXCLAMATION):
            terminator = "?"
        else:
            terminator = "." if run.count(".") + 3 * run.count("…") < 3 else "…"
    nxt = _NEXT.match(text, end)
    word = nxt.group(2)
    if not word:
        # At the end of the text any cut will do; before a dash, a symbol or an emoji, no new sentence starts.
        return end if nxt.end() == len(text) else -1
    initial = word[0]
    if initial.islower():
        return -1
    if terminator in _QUESTION_EXCLAMATION:
        return end
    if terminator == "…":
        return _decide_ellipsis(text, first, last, end, word)
    if "(" in nxt.group(1) and _is_citation(text, nxt.start(1)):
        return -1

    # A period before a capital (or a digit): it depends on the word the period ends.
    if first == 0 or text[first - 1].isspace():
        return end
    before = text[max(0, first - 24) : first].rsplit(None, 1)
    token = before[-1].lstrip(_OPENERS) if before else ""
    if len(token) > 2 and "." not in token and token.lower() not in _NOT_ORDINARY:
        # The fast path: an ordinary word. Before a number only a lowercase word or a number ("in 2023. 2024
        # will") ends a sentence: "Rte. 66" may be an abbreviation missing from the lists above.
        return end if not initial.isdigit() or not token[0].isupper() else -1
    if initial.isdigit():
        # "No. 5", "p. 55", "N°. 1026": after an abbreviation a number continues the sentence.
        if "." in token and token[0] in "0123456789$€£¥" and not _MULTI_PERIOD_ABBREVIATION.fullmatch(token):
            return end  # "She has $100.00. 5 more"
        return -1
    return _decide_period(text, first, end, sentence_start, token, nxt, word)


def _decide_ellipsis(text: str, first: int, last: int, end: int, word: str) -> int:
    if text[first - 1 : first] in ("[", "("):
        return -1  # "[...]" marks an omission inside a quotation
    if last - first >= 7 and text[first + 1] == " " and not text[first - 1 : first].isspace():
        # "compounds. . . . The": a full stop, then an ellipsis that opens the next sentence.
        return first + 1 if not word.isdigit() else -1
    if not word[0].isalpha():
        return -1
    run = text[first:last]
    if word == "I" and run.count(".") + 3 * run.count("…") < 4:
        return -1  # "the thing is . . . I didn't": "I" is capitalised anyway, so it proves nothing
    return end


def _decide_period(
    text: str, first: int, end: int, sentence_start: int, token: str, nxt: re.Match[str], word: str
) -> int:
    if not token:
        return end
    low = token.lower()
    if low in _NEVER_BEFORE_BOUNDARY:
        return -1
    if "." in token:
        if not _MULTI_PERIOD_ABBREVIATION.fullmatch(token):
            return end  # a URL, an e-mail address, a number such as 100.00
        opens = _opens_sentence(text, nxt, word) or (low in _TIMES and word in _TITLE_WORDS)
        return end if opens and not _prepositional_opening(text, sentence_start, first) else -1
    if len(token) == 1 or (len(token) == 2 and token.isdigit()):
        if _is_list_marker(text, sentence_start, first, token):
            return -1
        if not token.isalpha():
            return end
        if token == "I" and _previous_word(text, first, token)[:1].islower():
            return end  # "you and I. Did you": the pronoun, not an initial
        return end if _opens_sentence(text, nxt, word) else -1  # "Jonas E. Smith", but "Plan B. The"
    if low in _PREPOSITIVE:
        is_street = low in _STREET_OR_TITLE and _follows_name(text, first, token)
        if token[0].isupper() and not is_street:
            return -1
    elif low not in _ABBREVIATIONS and not (token[0].isupper() and low in _CAPITALISED_ABBREVIATIONS):
        return end
    if _opens_sentence(text, nxt, word) and not _prepositional_opening(text, sentence_start, first):
        return end
    return -1


def _opens_sentence(text: str, nxt: re.Match[str], word: str) -> bool:
    if word.lower() not in _SENTENCE_OPENERS:
        return False
    # "J. A. Smith": a capital letter with a period is another initial, not the article "A".
    return not (len(word) == 1 and word != "I" and text[nxt.end() : nxt.end() + 1] == ".")


def _prepositional_opening(text: str, sentence_start: int, first: int) -> bool:
    if first - sentence_start > 80:  # also keeps a paragraph of "U.S. U.S. U.S. ..." linear
        return False
    words = text[sentence_start:first].split(None, 5)
    return 0 < len(words) <= 4 and words[0].lstrip(_OPENERS).lower() in _PREPOSITIONS


def _previous_word(text: str, first: int, token: str) -> str:
    words = text[max(0, first - len(token) - 40) : first].split()
    return words[-2] if len(words) >= 2 else ""


def _follows_name(text: str, first: int, token: str) -> bool:
    """'Main St.' or '5th St.' (a street), not 'in St. Louis' or 'Paris. St. Louis' (a saint)."""
    previous = _previous_word(text, first, token)
    return (previous[:1].isupper() or previous[:1].isdigit()) and previous[-1] not in _TERMINATORS


def _is_list_marker(text: str, sentence_start: int, first: int, token: str) -> bool:
    """A lone number or letter opening a sentence ("1. The first item") numbers it; it ends nothing."""
    if first - sentence_start > 16:
        return False
    return text[sentence_start:first].strip().lstrip(_BULLETS).strip() == token


def _is_citation(text: str, paren: int) -> bool:
    """'... stairways." (Smith 55).': a parenthesis followed by punctuation belongs to the sentence before."""
    close = text.find(")", paren, paren + 80)
    return close > 0 and text[close - 1] not in _TERMINATORS and text[close + 1 : close + 2] in _CITATION_END


def _list_items(text: str, padded: str) -> tuple[list[int], frozenset[int]]:
    """Cuts before bullets and before the items of numbered or lettered lists, and the positions of the list
    markers' periods (which end no sentence). `padded` is " " + text."""
    cuts: list[int] = []
    periods: set[int] = set()
    runs: dict[tuple[str, str], list[tuple[int, int, int]]] = {}  # style -> [(value, start, end)] in order
    for m in _LIST_ITEM.finditer(padded):
        start, end = m.start(), m.end() - 1  # the marker (or the bullet) itself, as offsets into `text`
        if m.group(4):
            if not _after_colon(text, start):
                cuts.append(start)
            continue
        digits, letter, suffix = m.group(1), m.group(2), m.group(3)
        if digits:
            style, value = ("9", suffix), int(digits)
        else:
            style, value = ("a" if letter.islower() else "A", suffix), ord(letter)
        following = _SPACE.match(text, end).end()
        if text[following : following + 1].islower():
            continue  # "options a) red and b) blue" is an inline enumeration, not a list of sentences
        runs.setdefault(style, []).append((value, start, end))
    for items in runs.values():
        chain: list[tuple[int, int, int]] = []
        for item in [*items, (-1, -1, -1)]:
            if chain and item[0] == chain[-1][0] + 1 and _CONTENT.search(text, chain[-1][2], item[1]):
                chain.append(item)
                continue
            # "John A. Smith met Mary B. Jones" is no list: a list opens a paragraph, or follows a colon or
            # the end of a sentence.
            if len(chain) >= 2 and _is_anchored(text, chain[0][1]):
                for _, start, end in chain:
                    if not _after_colon(text, start):  # "Steps: 1) Open the box." keeps its lead-in
                        cuts.append(_before_bullet(text, start))
                    if "." in text[start:end]:
                        periods.add(text.index(".", start, end))
            chain = [item]
    cuts.sort()
    return cuts, frozenset(periods)


def _text_before(text: str, start: int) -> str:
    return text[max(0, start - 200) : start].rstrip().rstrip(_BULLETS).rstrip()


def _is_anchored(text: str, start: int) -> bool:
    before = _text_before(text, start)
    return not before or before[-1] in ":;" + _TERMINATORS + _CLOSERS


def _after_colon(text: str, start: int) -> bool:
    return _text_before(text, start)[-1:] == ":"


def _before_bullet(text: str, start: int) -> int:
    i = start
    while i > 0 and text[i - 1].isspace():
        i -= 1
    return i - 1 if i > 0 and text[i - 1] in _BULLETS else start
