"""Search results -> Telegram HTML within Telegram's limits, keyboards, and the callback data behind them.

Nothing here talks to the network, so every rule Telegram enforces can be tested without it:

* Every piece of corpus or user text is HTML-escaped; only tags Telegram knows are produced.
* A message never exceeds 4096 characters *as Telegram counts them*: UTF-16 code units of the visible
  text, after the HTML is parsed. Texts are built as :class:`Fragment` s that carry their visible length
  next to their HTML, so the budget is exact, not guessed from the markup.
* A quote too long for its share of the budget is cut around its matched words, with "…" at the cuts.
* ``callback_data`` fits Telegram's 64 bytes and carries everything a button needs, so buttons keep
  working after a restart: "More" carries the offset (and the question, when it fits; otherwise the
  handler reads it from the message the reply answers), "Context" carries the quote's address: the short
  fingerprint of the index segment that holds it and its id there, which stays valid while the live
  index takes in other documents and tells a stale button from a live one (``bot.callbacks``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
)
from telegram.constants import InlineQueryLimit, MessageLimit, ParseMode

from bot.callbacks import (
    ContextButton,
    address_of,
    encode_context,
    encode_page,
    encode_question,
    encode_timeline,
)
from bot.wording import counted, format_date, format_timestamp
from retrieval.timeline import Timeline, period_filter, period_label

if TYPE_CHECKING:  # only the shapes of retrieval's results are needed here
    from retrieval import ContextSentence, Hit, IndexStats, SearchResult

TEXT_LIMIT: int = MessageLimit.MAX_TEXT_LENGTH  # 4096 UTF-16 code units of visible text
CAPTION_LIMIT: int = MessageLimit.CAPTION_LENGTH  # 1024 for a photo's caption
INLINE_RESULTS_LIMIT: int = InlineQueryLimit.RESULTS  # 50 results per answer
ELLIPSIS = "…"
MAX_CONTEXT_RADIUS = 10  # "More context" widens the view up to this many sentences each side

_TITLE_CHARS = 80  # a title longer than this is shortened in quote headers
_QUESTION_CHARS = 100  # the echoed question is shortened to this
_MAX_ENTITIES = 90  # Telegram ignores formatting beyond 100 entities per message; stay below
_MIN_QUOTE = 60  # a quote gets at least this much room, or the page shows fewer quotes
_MAX_QUOTE = 1000  # even alone on a page, a quote longer than this is cut: a reply is for reading
_INLINE_DESCRIPTION_CHARS = 200
_SNAP = 25  # how far a cut may move to land between words instead of inside one
_MAX_URL = 2048
_URL = re.compile(r"https?://[^\s/?#<>\"'\\]+[^\s<>\"\\]*", re.IGNORECASE)  # a host, then no space or quote
_SORT = re.compile(r"(?<!\S)sort:\S*", re.IGNORECASE)
ORDER_LABELS = {"relevance": "Best first", "new": "Newest first", "old": "Oldest first"}

# Control characters (except the ones handled below), lone surrogates and line breaks inside a quote
# would either be rejected by Telegram or break the layout; each is replaced by one character so that
# the highlight spans, which index into the original text, stay valid.
_CONTROLS = {i: " " for i in [*range(0x00, 0x20), 0x7F, 0x85, 0x2028, 0x2029]}
_SURROGATE = re.compile("[\ud800-\udfff]")


# -- measuring and escaping ----------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def clean_text(text: str) -> str:
    """``text`` made safe to send, one character for one (so character offsets into it stay valid)."""
    return _SURROGATE.sub("\ufffd", text.translate(_CONTROLS))


@dataclass(frozen=True, slots=True)
class Fragment:
    """A piece of message: its HTML and the length Telegram will count for it (visible UTF-16 units)."""

    html: str = ""
    length: int = 0
    entities: int = 0  # formatting entities (tags) in it; Telegram keeps at most 100 per message

    def __add__(self, other: Fragment) -> Fragment:
        return Fragment(self.html + other.html, self.length + other.length, self.entities + other.entities)

    def __bool__(self) -> bool:
        return bool(self.html)


def text(value: str) -> Fragment:
    """Plain text (from the corpus, the user or us), escaped. Line breaks become spaces."""
    value = clean_text(value)
    return Fragment(html.escape(value, quote=False), utf16_len(value))


NEWLINE = Fragment("\n", 1)
EMPTY = Fragment()


def tag(name: str, inner: Fragment) -> Fragment:
    """``inner`` wrapped in a formatting tag; tags add no visible length."""
    return Fragment(f"<{name}>{inner.html}</{name}>", inner.length, inner.entities + 1)


def bold(value: str | Fragment) -> Fragment:
    return tag("b", value if isinstance(value, Fragment) else text(value))


def italic(value: str | Fragment) -> Fragment:
    return tag("i", value if isinstance(value, Fragment) else text(value))


def link(url: str | None, inner: Fragment) -> Fragment:
    """``inner`` linked to ``url`` when it is a plain http(s) address; else ``inner`` alone."""
    safe = safe_url(url)
    if safe is None:
        return inner
    return Fragment(f'<a href="{html.escape(safe, quote=True)}">{inner.html}</a>', inner.length,
                    inner.entities + 1)


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an http or https address with a host and nothing that could break out of it."""
    if not url or len(url) > _MAX_URL or _URL.fullmatch(url) is None:
        return None
    return url


def code(value: str) -> Fragment:
    return tag("code", text(value))


def join(fragments: Iterable[Fragment], separator: Fragment = EMPTY) -> Fragment:
    result = EMPTY
    for i, fragment in enumerate(fragments):
        result = result + (separator + fragment if i else fragment)
    return result


def _join_paragraphs(pieces: Sequence[tuple[Fragment, int]]) -> Fragment:
    """Sentences of one paragraph joined by a space, paragraphs by a line break (both one unit long)."""
    result = EMPTY
    for i, (fragment, paragraph) in enumerate(pieces):
        if i:
            result = result + (NEWLINE if paragraph != pieces[i - 1][1] else text(" "))
        result = result + fragment
    return result


def lines(*parts: Fragment | None) -> Fragment:
    """Non-empty parts, one per line."""
    return join((p for p in parts if p), NEWLINE)


# -- cutting text to fit -------------------------------------------------------------------------------


def shorten(value: str, limit: int) -> str:
    """``value`` cut at its end to at most ``limit`` UTF-16 units, with "…" if cut (for titles, labels)."""
    value = clean_text(value).strip()
    if utf16_len(value) <= limit:
        return value
    if limit <= 0:
        return ""
    cum = _prefix_units(value)
    end = bisect.bisect_right(cum, limit - 1) - 1
    end = _snap_end(value, 0, end)
    return value[:end].rstrip() + ELLIPSIS


def _prefix_units(value: str) -> Sequence[int]:
    """``cum[i]`` = UTF-16 length of ``value[:i]``."""
    if value.isascii() or utf16_len(value) == len(value):  # no character outside the BMP: one unit each
        return range(len(value) + 1)
    cum = [0] * (len(value) + 1)
    total = 0
    for i, char in enumerate(value):
        total += 2 if ord(char) > 0xFFFF else 1
        cum[i + 1] = total
    return cum


def _snap_start(value: str, start: int, limit: int) -> int:
    """Move a cut at ``start`` forward to the next word start (not past ``limit``), if one is close."""
    if start <= 0 or value[start - 1].isspace():
        return start
    for i in range(start, min(limit, start + _SNAP)):
        if value[i].isspace():
            return i + 1
    return start


def _snap_end(value: str, limit: int, end: int) -> int:
    """Move a cut at ``end`` back to the previous word end (not before ``limit``), if one is close."""
    if end >= len(value) or value[end].isspace():
        return end
    for i in range(end - 1, max(limit, end - _SNAP) - 1, -1):
        if value[i].isspace():
            return i
    return end


def normalize_spans(value: str, spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans clipped to ``value``, sorted, overlapping ones merged, and ones apart by spaces only joined
    (so "basic research" is one bold run, not two)."""
    clipped = sorted((max(0, s), min(len(value), e)) for s, e in spans if min(len(value), e) > max(0, s))
    merged: list[tuple[int, int]] = []
    for start, end in clipped:
        if merged and (start <= merged[-1][1] or not value[merged[-1][1] : start].strip()):
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def fit_quote(value: str, spans: Sequence[tuple[int, int]], limit: int, max_bold: int = 20) -> Fragment:
    """``value`` with its ``spans`` in bold, within ``limit`` visible UTF-16 units.

    A text that does not fit is cut to a window around the densest run of matched words, widened evenly on
    both sides, moved to word boundaries, and marked with "…" where it was cut.
    """
    if limit <= 0:
        return EMPTY
    value = clean_text(value)
    marks = normalize_spans(value, spans)
    cum = _prefix_units(value)
    if cum[-1] <= limit:
        start, end = 0, len(value)
    else:
        start, end = _window(value, marks, cum, max(1, limit - 2))
    # Trim spaces at the cuts (a quote should not start with " …").
    while start < end and value[start].isspace():
        start += 1
    while end > start and value[end - 1].isspace():
        end -= 1
    out = EMPTY
    if start > 0:
        out += text(ELLIPSIS)
    position, used = start, 0
    for span_start, span_end in marks:
        s, e = max(span_start, start), min(span_end, end)
        if s >= e:
            continue
        if used >= max_bold:
            break
        out += text(value[position:s]) + bold(value[s:e])
        position, used = e, used + 1
    out += text(value[position:end])
    if end < len(value):
        out += text(ELLIPSIS)
    if out.length > limit:  # only when a limit under 3 leaves no room for the ellipses
        return text(shorten(value[start:end], limit))
    return out


def _window(value: str, marks: list[tuple[int, int]], cum: Sequence[int], budget: int) -> tuple[int, int]:
    """The ``[start, end)`` of ``value`` (at most ``budget`` units) that best shows the matched words."""
    n = len(value)
    best: tuple[int, int] | None = None
    best_count = 0
    j = 0
    for i in range(len(marks)):  # the run of spans with the most matched words that fits
        j = max(j, i)
        while j + 1 < len(marks) and cum[marks[j + 1][1]] - cum[marks[i][0]] <= budget:
            j += 1
        if cum[marks[j][1]] - cum[marks[i][0]] <= budget and j - i + 1 > best_count:
            best, best_count = (marks[i][0], marks[j][1]), j - i + 1
    if best is None:  # no match at all, or one longer than the budget: show from its start
        start = marks[0][0] if marks else 0
        end = bisect.bisect_right(cum, cum[start] + budget) - 1
        return start, _snap_end(value, start + 1, end)
    core_start, core_end = best
    slack = budget - (cum[core_end] - cum[core_start])
    start = bisect.bisect_left(cum, cum[core_start] - slack // 2)
    end = bisect.bisect_right(cum, cum[start] + budget) - 1
    if end >= n:  # the end of the text came first: give the rest of the room to the left
        end = n
        start = bisect.bisect_left(cum, cum[n] - budget)
    start = _snap_start(value, start, core_start)
    end = _snap_end(value, core_end, end)
    return start, end


def _cut_head(value: str, limit: int) -> Fragment:
    """The start of ``value`` within ``limit`` units, "…" at the end if cut."""
    return text(shorten(value, limit)) if limit > 1 else EMPTY


def _cut_tail(value: str, limit: int) -> Fragment:
    """The end of ``value`` within ``limit`` units, "…" at the start if cut."""
    value = clean_text(value).strip()
    if utf16_len(value) <= limit:
        return text(value)
    if limit <= 1:
        return EMPTY
    cum = _prefix_units(value)
    start = bisect.bisect_left(cum, cum[-1] - (limit - 1))
    start = _snap_start(value, start, len(value))
    return text(ELLIPSIS + value[start:].lstrip())


# -- pieces shared by replies --------------------------------------------------------------------------




def _hit_header(number: int | None, hit: Hit) -> Fragment:
    """``1. 2023-08-05 · Title`` (the title last, so right-to-left text in it cannot reorder the rest)."""
    parts = [bold(f"{number}.") + text(" ")] if number is not None else []
    parts.append(text(f"📅 {format_date(hit.date)} · "))
    parts.append(link(hit.url, italic(shorten(hit.title, _TITLE_CHARS) or "untitled")))
    if hit.duplicates:
        parts.append(text(f" (also in {counted(hit.duplicates, 'other place')})"))
    return join(parts)


def _question_line(prefix: str, question: str) -> Fragment:
    return text(prefix) + italic(shorten(question, _QUESTION_CHARS))


def _suggestions_line(result: SearchResult) -> Fragment:
    """ "reserch" is not in the corpus — did you mean research, researcher? """
    parts = []
    for word in result.unknown_words[:3]:
        options = result.suggestions.get(word, ())[:3]
        line = text("“") + text(shorten(word, 40)) + text("” is not in the corpus")
        if options:
            line += text(" — did you mean ") + join((bold(o) for o in options), text(", ")) + text("?")
        parts.append(line)
    return lines(*parts)


@dataclass(frozen=True)
class Reply:
    """A message ready to send: HTML text, its keyboard, and how many quotes it shows."""

    text: str
    keyboard: InlineKeyboardMarkup | None = None
    shown: int = 0


# -- the answer to a question --------------------------------------------------------------------------


def render_results(
    result: SearchResult,
    *,
    page_size: int,
    max_pages: int,
    fingerprint: str,
    context_radius: int = 2,
    examples: Sequence[str] = (),
    limit: int = TEXT_LIMIT,
    note: str | None = None,
) -> Reply:
    """One page of quotes (or why there are none), with its More / Context buttons.

    ``note`` is a line of our own put first (that the answer comes late, say). ``fingerprint`` is the
    short fingerprint of the index, carried by the Context buttons of hits that do not name their segment
    (``bot.callbacks.address_of``).
    """
    first = text(note) if note else None
    if result.error:
        body = lines(first, text("⚠️ " + result.error), text("/help shows how to ask."))
        return Reply(body.html)
    if result.empty:
        return Reply(lines(first, _render_nothing(result, examples)).html)

    notes = lines(
        first,
        text("⚠️ Only weak matches: these quotes share few of your words.") if result.weak else None,
        _suggestions_line(result),
    )
    hits = list(result.hits)
    while True:  # drop quotes from the end of the page until each remaining one has room to be read
        heads = [_hit_header(result.offset + i + 1, hit) for i, hit in enumerate(hits)]
        top = lines(_results_header(result, len(hits)), notes)
        fixed = top.length + sum(h.length + 3 for h in heads)  # "\n\n" before each, "\n" to its quote
        room = limit - fixed
        if len(hits) == 1 or room >= _MIN_QUOTE * len(hits):
            break
        hits.pop()
    bold_each = max(1, (_MAX_ENTITIES - top.entities - sum(h.entities + 1 for h in heads)) // len(hits))
    shares = _share(room, [min(_MAX_QUOTE, utf16_len(clean_text(h.text))) for h in hits])
    blocks = [
        head + NEWLINE + tag("blockquote", fit_quote(hit.text, hit.spans, share, bold_each))
        for head, hit, share in zip(heads, hits, shares, strict=True)
    ]
    body = top + NEWLINE + NEWLINE + join(blocks, NEWLINE + NEWLINE)
    keyboard = _results_keyboard(result, hits, page_size, max_pages, fingerprint, context_radius)
    return Reply(body.html, keyboard, len(hits))


def _results_header(result: SearchResult, shown: int) -> Fragment:
    first, last = result.offset + 1, result.offset + shown
    of = f"of about {result.total:,}" if result.total_is_estimate else f"of {result.total:,}"
    if result.total == 1 and not result.total_is_estimate:
        counted = "🔎 The one quote for "
    elif shown == 1:
        counted = f"🔎 Quote {first} {of} for "
    else:
        counted = f"🔎 Quotes {first}–{last} {of} for "
    line = _question_line(counted, with_order(result.question, "relevance"))
    if result.order != "relevance":
        line += text(f", {ORDER_LABELS[result.order].lower()}")
    return line


def _share(room: int, wants: list[int]) -> list[int]:
    """Split ``room`` among quotes: short ones take what they need, the rest share what is left evenly."""
    shares = [0] * len(wants)
    left, remaining = max(room, 0), len(wants)
    for i in sorted(range(len(wants)), key=wants.__getitem__):
        shares[i] = min(wants[i], left // remaining)
        left -= shares[i]
        remaining -= 1
    return shares


def _results_keyboard(
    result: SearchResult,
    hits: Sequence[Hit],
    page_size: int,
    max_pages: int,
    fingerprint: str,
    radius: int,
) -> InlineKeyboardMarkup:
    context_buttons = [
        InlineKeyboardButton(
            f"Context {result.offset + i + 1}",
            callback_data=encode_context(ContextButton(*address_of(hit, fingerprint), radius)),
        )
        for i, hit in enumerate(hits)
    ]
    rows = [context_buttons[i : i + 3] for i in range(0, len(context_buttons), 3)]
    navigation = []
    if result.offset > 0:
        back = max(0, result.offset - page_size)
        navigation.append(InlineKeyboardButton("« Back", callback_data=encode_page(back, result.question)))
    following = result.offset + len(hits)
    if following < result.total and following < page_size * max_pages:
        more = encode_page(following, result.question)
        navigation.append(InlineKeyboardButton("More »", callback_data=more))
    if navigation:
        rows.append(navigation)
    rows.append(_order_row(result))
    return InlineKeyboardMarkup([row for row in rows if row])


def with_order(question: str, order: str) -> str:
    """``question`` with its ``sort:`` replaced by ``order`` (none for relevance)."""
    bare = " ".join(_SORT.sub(" ", question).split())
    return bare if order == "relevance" else f"{bare} sort:{order}"


def _order_row(result: SearchResult) -> list[InlineKeyboardButton]:
    """The other two orders (shown in place) and the question's timeline chart, where they fit."""
    row = []
    for order in ("new", "old", "relevance"):
        if order == result.order:
            continue
        data = encode_page(0, with_order(result.question, order))
        if data.endswith("|"):  # too long to carry: it would read back the question without the order
            continue
        row.append(InlineKeyboardButton(ORDER_LABELS[order], callback_data=data))
    chart = encode_timeline(with_order(result.question, "relevance"))
    if chart is not None:
        row.append(InlineKeyboardButton("📈 Timeline", callback_data=chart))
    return row


def _render_nothing(result: SearchResult, examples: Sequence[str]) -> Fragment:
    tips = text("Try fewer or other words, or drop a date filter or an exclusion")
    if examples:
        tips += text(", or an example like ") + code(examples[0])
    return lines(
        _question_line("🔎 No quotes found for ", result.question),
        _suggestions_line(result),
        tips + text(". /help shows how to ask."),
    )


# -- context around a quote ----------------------------------------------------------------------------


def render_context(
    hit: Hit,
    sentences: Sequence[ContextSentence],
    *,
    fingerprint: str,
    radius: int,
    limit: int = TEXT_LIMIT,
) -> Reply:
    """The quote in bold among the sentences around it, nearest first when room runs out."""
    header = text("📖 Context: ") + _hit_header(None, hit)
    room = limit - header.length - 1
    centre = next((i for i, s in enumerate(sentences) if s.is_hit), None)
    if centre is None:  # should not happen; show the quote alone
        sentences, centre = [], 0
    own = sentences[centre].text if sentences else hit.text
    middle = fit_quote(own, [(0, len(own))], min(room, max(room // 2, 1000)))
    room -= middle.length
    before: list[tuple[Fragment, int]] = []
    after: list[tuple[Fragment, int]] = []
    cut = False
    sides = {"before": list(reversed(sentences[:centre])), "after": list(sentences[centre + 1 :])}
    for step in range(max(len(sides["before"]), len(sides["after"]))):
        for side in ("after", "before"):  # alternate, so both sides grow together
            if step >= len(sides[side]) or room <= 1:
                continue
            sentence = sides[side][step].text
            paragraph = sides[side][step].paragraph
            need = utf16_len(clean_text(sentence).strip()) + 1  # plus the joining space
            if need > room:
                piece = _cut_head(sentence, room - 1) if side == "after" else _cut_tail(sentence, room - 1)
                sides[side] = sides[side][: step + 1]  # nothing beyond a cut sentence
                cut = True
            else:
                piece = text(clean_text(sentence).strip())
            if piece:
                (after if side == "after" else before).append((piece, paragraph))
                room -= piece.length + 1
    own_paragraph = sentences[centre].paragraph if sentences else 0
    quote = _join_paragraphs([*reversed(before), (middle, own_paragraph), *after])
    body = header + NEWLINE + tag("blockquote", quote)
    keyboard = None
    reaches_further = centre >= radius or len(sentences) - centre - 1 >= radius
    if not cut and reaches_further and radius < MAX_CONTEXT_RADIUS:
        wider = ContextButton(*address_of(hit, fingerprint), min(MAX_CONTEXT_RADIUS, radius + 3), edit=True)
        widen = InlineKeyboardButton("More context", callback_data=encode_context(wider))
        keyboard = InlineKeyboardMarkup([[widen]])
    return Reply(body.html, keyboard, 1)


# -- inline mode ---------------------------------------------------------------------------------------


def render_inline_results(result: SearchResult, fingerprint: str) -> list[InlineQueryResultArticle]:
    """Each hit as an article to share: the list shows date, title and the sentence; choosing one sends
    the quote with its date and title."""
    articles = []
    for hit in result.hits[:INLINE_RESULTS_LIMIT]:
        segment, sentence = address_of(hit, fingerprint)  # unique within one answer, as ids must be
        message = lines(
            _hit_header(None, hit),
            tag("blockquote", fit_quote(hit.text, hit.spans, TEXT_LIMIT - 400)),
        )
        articles.append(
            InlineQueryResultArticle(
                id=f"{segment}-{sentence}",
                title=shorten(f"{format_date(hit.date)} · {hit.title}", 100),
                description=shorten(hit.text, _INLINE_DESCRIPTION_CHARS),
                input_message_content=InputTextMessageContent(message.html, parse_mode=ParseMode.HTML),
                url=safe_url(hit.url),
            )
        )
    return articles


# -- commands ------------------------------------------------------------------------------------------


def _date_range(stats: IndexStats) -> str:
    if stats.first_date is None or stats.last_date is None:
        return "none of them dated"
    if stats.first_date == stats.last_date:
        span = f"dated {stats.first_date.isoformat()}"
    else:
        span = f"dated {stats.first_date.isoformat()} to {stats.last_date.isoformat()}"
    if stats.undated_documents:
        span += f", {stats.undated_documents:,} without a date"
    return span


def render_welcome(stats: IndexStats, examples: Sequence[str], bot_username: str, *, group: bool) -> str:
    how = (
        f"Ask with /ask your question, or mention @{bot_username} with it."
        if group
        else "Send me a question in a few words"
    )
    intro = text("👋 Hi! I answer questions with quotes from ") + bold(counted(stats.documents, "document"))
    intro += text(f" ({_date_range(stats)}).")
    parts = [intro, EMPTY]
    if examples:
        parts.append(text(how + (", for example:" if not group else " For example:")))
        parts.extend(text("• ") + code(example) for example in examples[:3])
    else:
        parts.append(text(how + "."))
    parts += [
        EMPTY,
        text("Each answer shows whole sentences with their document's date and title. "
             "/help explains the search syntax, /about shows what the corpus holds."),
    ]
    return join(parts, NEWLINE).html


def render_help(bot_username: str, max_question_chars: int) -> str:
    mention = f"@{bot_username}"
    parts = [
        bold("How to ask"),
        text("In a private chat, just send your question. In a group, use /ask your question, mention "
             f"{mention} with it, or reply to one of my messages. In any chat, type {mention} and a question "
             f"to share a quote. Questions can be up to {max_question_chars:,} characters."),
        EMPTY,
        bold("Search syntax"),
        code('"basic research"') + text(" — an exact phrase"),
        code("-military") + text(" or ") + code('-"a phrase"') + text(" — leave out sentences holding it"),
        code("after:2023-01-01") + text(", ") + code("before:2023-08") + text(
            " — documents dated on or after / on or before (YYYY, YYYY-MM or YYYY-MM-DD)"
        ),
        code("year:2023") + text(" — documents of one year (date filters leave out undated documents)"),
        code("on:2023-08-05") + text(", ") + code("on:2023-08") + text(" — documents of one day or month"),
        code("sort:new") + text(", ") + code("sort:old") + text(
            " — the quotes that hold all your words, newest or oldest first (undated ones last)"
        ),
        text("Word forms match each other (research, researchers); very common words are ignored."),
        EMPTY,
        bold("Buttons"),
        text("More — the next quotes. Context — the sentences around a quote. Newest first / Oldest first "
             "— the same quotes by date. Timeline — a chart of when the topic comes up."),
        EMPTY,
        bold("Commands"),
        text("/start — welcome and example questions"),
        text("/ask question — ask (for groups)"),
        text("/timeline topic — a chart of the topic over time; /timeline a vs b compares two"),
        text("/about — what the corpus holds"),
        text("/help — this help"),
    ]
    return join(parts, NEWLINE).html


def render_about(
    stats: IndexStats,
    algorithm: str,
    k1: float,
    b: float,
    meaning: tuple[int, int, bool] | None = None,
    *,
    segments: int = 1,
    generation: int = 0,
    last_update: float | None = None,
) -> str:
    """``meaning``: (sentences embedded, sentences, ready) when ranking by meaning is on, else None.
    ``segments``, ``generation`` and ``last_update`` (``time.time()`` when the generation in use was made;
    None when it is not known to have changed) describe a live index (1, 0 and None for a fixed one)."""
    if stats.first_date and stats.last_date:
        dates = f"{stats.first_date.isoformat()} – {stats.last_date.isoformat()}"
    else:
        dates = "none"
    parts = [
        bold("About this corpus"),
        text(f"Documents: {stats.documents:,}"),
        text(f"Sentences: {stats.sentences:,}"),
        text(f"Distinct terms: {stats.terms:,}"),
        text(f"Dates: {dates}"),
        text(f"Undated documents: {stats.undated_documents:,}"),
        text(f"Segments: {segments:,}"),
        text(f"Generation: {generation:,}"),
        text(f"Last update: {_update_time(last_update)}"),
        text(f"Ranking: BM25 ({algorithm}, k1={k1:g}, b={b:g}) over single sentences"),
        text(_meaning_line(meaning)),
    ]
    return join(parts, NEWLINE).html


def _update_time(when: float | None) -> str:
    return "none since start" if when is None else format_timestamp(when)


def _meaning_line(meaning: tuple[int, int, bool] | None) -> str:
    if meaning is None:
        return "By meaning: off (words only)"
    done, total, ready = meaning
    if ready:
        return f"By meaning: on, fused with BM25 ({total:,} sentences embedded)"
    share = 100 * done / total if total else 100.0
    progress = f"{share:.0f} % ({done:,} of {total:,} sentences)"
    return f"By meaning: being prepared, {progress}; words only until then"


def late_note(received: float) -> str:
    """The line that tells a user their question waited (in an outage, or while the bot restarted)."""
    asked = dt.datetime.fromtimestamp(received, dt.UTC)
    return f"⏳ Sorry for the late answer: you asked this on {asked.day} {asked:%b %Y at %H:%M} UTC."


def render_timeline(timeline: Timeline, questions: Sequence[str]) -> Reply:
    """The caption under a timeline chart (at most 1,024 characters) and its buttons: the earliest and
    latest quotes, and those of the busiest period."""
    granularity = timeline.granularity
    parts = []
    for series in timeline.series:
        topic = italic(shorten(series.question, 60))
        if series.error:
            parts.append(topic + text(f": {series.error}"))
            continue
        if not series.total:
            parts.append(topic + text(": no sentence holds all of its words"))
            continue
        line = topic + text(f": {counted(series.total, 'sentence')}")
        if series.first and series.last:
            line += text(f", first {format_date(series.first)}, last {format_date(series.last)}")
        busiest = series.busiest
        if busiest is not None:
            period = period_label(timeline.periods[busiest], granularity)
            line += text(f"; busiest {period} ({series.counts[busiest]:,})")
        if series.undated:
            line += text(f"; {series.undated:,} in undated documents, not drawn")
        if series.unknown_words:
            missing = ", ".join(f"“{shorten(w, 30)}”" for w in series.unknown_words[:3])
            line += text(f" ({missing} not in the corpus, left out)")
        parts.append(line)
    caption = lines(text("📈 Sentences per " + granularity), *parts)
    if caption.length > CAPTION_LIMIT:
        caption = text(shorten("📈 " + "; ".join(s.question for s in timeline.series), CAPTION_LIMIT))
    rows = []
    for series in timeline.series[:2]:
        if not series.total or series.error:
            continue
        topic = with_order(series.question, "relevance")
        label = f" “{shorten(series.question, 16)}”" if len(timeline.series) > 1 else ""
        row = [(f"Earliest{label}", with_order(topic, "old")), (f"Latest{label}", with_order(topic, "new"))]
        busiest = series.busiest
        if busiest is not None and len(timeline.periods) > 1:
            start = timeline.periods[busiest]
            row.append((f"Busiest: {period_label(start, granularity)}",
                        f"{topic} {period_filter(start, granularity)}"))
        buttons = [InlineKeyboardButton(label, callback_data=data) for label, question in row
                   if (data := encode_question(question)) is not None]
        if buttons:
            rows.append(buttons)
    return Reply(caption.html, InlineKeyboardMarkup(rows) if rows else None)


def render_notice(message: str) -> str:
    """A short message of our own (a hint, a refusal), escaped like everything else."""
    return text(message).html
