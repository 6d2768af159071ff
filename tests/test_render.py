"""Reply rendering: any hit text gives valid Telegram HTML within 4096 UTF-16 units, with the matched words
in bold, and callback data that fits 64 bytes and decodes back to the same button."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html.parser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import render
from bot.callbacks import (
    CALLBACK_DATA_LIMIT,
    ContextButton,
    PageButton,
    decode_callback,
    encode_context,
    encode_page,
    short_fingerprint,
)
from bot.render import (
    TEXT_LIMIT,
    fit_quote,
    render_context,
    render_inline_results,
    render_results,
    utf16_len,
)
from retrieval import ContextSentence, Hit, IndexStats, SearchResult
from tests.fake_telegram import parse_html

ORDERS = ["Newest first", "Oldest first", "📈 Timeline"]  # the row under every page of quotes

ALLOWED_TAGS = {"b", "i", "code", "blockquote"}


class _TelegramHtml(html.parser.HTMLParser):
    """Collects the visible text and checks tags: only Telegram's, no attributes, properly nested."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.visible: list[str] = []
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.entities = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS or attrs:
            self.problems.append(f"tag <{tag} {attrs}>")
        self.stack.append(tag)
        self.entities += 1

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"misnested </{tag}>")

    def handle_data(self, data: str) -> None:
        self.visible.append(data)


def visible(markup: str) -> str:
    """The text Telegram would show for ``markup``, after checking that the markup is valid."""
    parser = _TelegramHtml()
    parser.feed(markup)
    parser.close()
    assert not parser.problems, parser.problems
    assert not parser.stack, f"unclosed {parser.stack}"
    assert parser.entities <= 100
    text = "".join(parser.visible)
    telegram_text, _ = parse_html(markup)  # the fake Bot API's parser agrees on the visible text
    assert telegram_text == text
    return text


def bold_runs(markup: str) -> list[str]:
    _, entities = parse_html(markup)
    text, _ = parse_html(markup)
    encoded = text.encode("utf-16-le")
    return [
        encoded[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le")
        for e in entities
        if e["type"] == "bold"
    ]


def make_hit(text: str, spans=(), *, sentence_id: int = 7, date=dt.date(2023, 8, 5), title="A title", dup=0,
             segment: str = "", segment_sentence: int = -1):
    return Hit(text, date, title, "doc.txt", 1.0, sentence_id, 0, 0, tuple(spans), dup,
               segment=segment, segment_sentence=segment_sentence)


def make_result(hits, *, question="basic research", total=None, offset=0, **kwargs):
    hits = tuple(hits)
    return SearchResult(question, hits, total if total is not None else offset + len(hits), offset, **kwargs)


def callback_data(reply: render.Reply) -> list[str]:
    if reply.keyboard is None:
        return []
    return [b.callback_data for row in reply.keyboard.inline_keyboard for b in row]


# -- strategies ----------------------------------------------------------------------------------------

any_text = st.text(min_size=0, max_size=3000)
NASTY = "ab <>&;\"'/\n\t\r\u200b\u200f\u202e\ufeff\x00\x7fé😀\U0001f3f3\ufe0f"
nasty_text = st.lists(st.sampled_from([*NASTY, "&amp;", "&#60;", "</b>"]), max_size=800).map("".join)
texts = st.one_of(any_text, nasty_text, st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=20),
                                                   st.integers(1, 800)))


@st.composite
def hits(draw, max_hits: int = 10) -> list[Hit]:
    page = []
    for sentence_id in draw(st.lists(st.integers(0, 10**9), min_size=1, max_size=max_hits, unique=True)):
        text = draw(texts)
        edge = st.integers(-5, len(text) + 5)
        spans = draw(st.lists(st.tuples(edge, edge), max_size=30))
        title = draw(st.one_of(st.text(max_size=300), nasty_text))
        date = draw(st.one_of(st.none(), st.dates()))
        page.append(make_hit(text, spans, sentence_id=sentence_id, date=date, title=title,
                             dup=draw(st.integers(0, 3))))
    return page


questions = st.one_of(st.text(max_size=1000), nasty_text)


# -- properties ----------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=texts, data=st.data(), limit=st.integers(1, 5000))
def test_fit_quote_is_valid_html_within_the_limit(value, data, limit):
    edge = st.integers(0, len(value))
    spans = data.draw(st.lists(st.tuples(edge, edge), max_size=10))
    fragment = fit_quote(value, spans, limit)
    shown = visible(fragment.html)
    assert utf16_len(shown) == fragment.length <= limit
    core = shown.removeprefix(render.ELLIPSIS).removesuffix(render.ELLIPSIS)
    assert core in render.clean_text(value)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    page=hits(),
    question=questions,
    extra=st.integers(0, 10_000),
    offset=st.integers(0, 200),
    weak=st.booleans(),
    unknown=st.lists(st.text(min_size=1, max_size=60), max_size=4),
    page_size=st.integers(1, 10),
)
def test_any_page_of_hits_is_valid_html_within_4096(page, question, extra, offset, weak, unknown, page_size):
    suggestions = {w: ("research", "<b>&amp;") for w in unknown}
    result = make_result(page, question=question, total=offset + len(page) + extra, offset=offset, weak=weak,
                         unknown_words=tuple(unknown), suggestions=suggestions)
    reply = render_results(result, page_size=page_size, max_pages=10, fingerprint="0123abcd")
    shown = visible(reply.text)
    assert utf16_len(shown) <= TEXT_LIMIT
    assert 1 <= reply.shown <= len(page)
    for data in callback_data(reply):
        assert 1 <= len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT
        assert decode_callback(data) is not None


@settings(max_examples=60, deadline=None)
@given(
    before=st.lists(texts, max_size=6),
    own=texts,
    after=st.lists(texts, max_size=6),
    title=st.text(max_size=400),
    radius=st.integers(0, 10),
)
def test_any_context_is_valid_html_within_4096(before, own, after, title, radius):
    sentences = [ContextSentence(t, i, False) for i, t in enumerate(before)]
    sentences.append(ContextSentence(own, len(before), True))
    sentences += [ContextSentence(t, len(before) + 1 + i, False) for i, t in enumerate(after)]
    hit = make_hit(own, sentence_id=len(before), title=title)
    reply = render_context(hit, sentences, fingerprint="0123abcd", radius=radius)
    assert utf16_len(visible(reply.text)) <= TEXT_LIMIT
    for data in callback_data(reply):
        assert len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT


@settings(max_examples=60, deadline=None)
@given(page=hits(max_hits=50), question=questions)
def test_inline_results_are_valid_messages(page, question):
    articles = render_inline_results(make_result(page, question=question), "0123abcd")
    assert len(articles) == len(page) <= render.INLINE_RESULTS_LIMIT
    assert len({a.id for a in articles}) == len(articles)
    for article in articles:
        assert len(article.id.encode("utf-8")) <= 64
        assert utf16_len(visible(article.input_message_content.message_text)) <= TEXT_LIMIT
        assert article.title


@given(offset=st.integers(0, 10**6), question=questions)
def test_page_buttons_fit_and_decode_to_the_same_page(offset, question):
    data = encode_page(offset, question)
    assert len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT
    button = decode_callback(data)
    assert isinstance(button, PageButton) and button.offset == offset
    assert button.question in (question or None, None)  # too long to carry: read from the message instead


@given(segment=st.text(min_size=1, max_size=40), sentence_id=st.integers(0, 10**12),
       radius=st.integers(0, 10), edit=st.booleans())
def test_context_buttons_fit_and_decode(segment, sentence_id, radius, edit):
    button = ContextButton(short_fingerprint(segment), sentence_id, radius, edit)
    data = encode_context(button)
    assert len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT
    assert decode_callback(data) == button


@given(st.text(max_size=64))
def test_decoding_foreign_callback_data_never_raises(data):
    decode_callback(data)


# -- examples ------------------------------------------------------------------------------------------


def test_a_reply_shows_numbered_quotes_with_date_title_and_bold_matches():
    text = "China has placed great emphasis on basic research in recent years."
    start = text.index("basic research")
    result = make_result(
        [
            make_hit(
                text, [(start, start + 5), (start + 6, start + 14)],
                title="Strengthening <Basic> Research",
            ),
            make_hit("An undated sentence about research.", [(26, 34)], sentence_id=8, date=None, title="N"),
        ],
        total=5,
    )
    reply = render_results(result, page_size=2, max_pages=10, fingerprint="0123abcd")
    shown = visible(reply.text)
    assert shown.startswith("🔎 Quotes 1–2 of 5 for basic research")
    assert "1. 📅 2023-08-05 · Strengthening <Basic> Research" in shown
    assert "2. 📅 date unknown · N" in shown
    assert "&lt;Basic&gt;" in reply.text
    assert bold_runs(reply.text)[:3] == ["1.", "basic research", "2."]
    assert "<blockquote>" in reply.text
    assert callback_data(reply) == ["c|0123abcd|7|2", "c|0123abcd|8|2", "m|2|basic research",
                                    "m|0|basic research sort:new", "m|0|basic research sort:old",
                                    "t|basic research"]


def test_the_next_page_has_back_and_stops_at_max_pages():
    result = make_result([make_hit("x y z", sentence_id=i) for i in range(3)], total=100, offset=3)
    reply = render_results(result, page_size=3, max_pages=2, fingerprint="f")
    labels = [b.text for row in reply.keyboard.inline_keyboard for b in row]
    assert labels == ["Context 4", "Context 5", "Context 6", "« Back", *ORDERS]
    assert visible(reply.text).startswith("🔎 Quotes 4–6 of 100")


def test_a_long_sentence_is_cut_around_the_matched_words():
    filler = "lorem ipsum dolor sit amet " * 400
    text = filler + "the lighthouse keeper counted ships " + filler
    start = text.index("lighthouse")
    reply = render_results(make_result([make_hit(text, [(start, start + 10)])]), page_size=3, max_pages=1,
                           fingerprint="f")
    shown = visible(reply.text)
    assert utf16_len(shown) <= TEXT_LIMIT
    quote = shown.split("\n")[-1]
    assert quote.startswith("…") and quote.endswith("…")
    assert "lighthouse keeper counted ships" in quote
    assert bold_runs(reply.text)[-1] == "lighthouse"
    words = set(filler.split()) | {"the"}
    assert quote[1:].split()[0] in words and quote[:-1].split()[-1] in words  # cut between words


def test_ten_huge_quotes_of_astral_characters_still_fit():
    text = "😀" * 3000 + " match " + "😀" * 3000
    start = text.index("match")
    page = [make_hit(text, [(start, start + 5)], sentence_id=i, title="𝔗" * 500) for i in range(10)]
    reply = render_results(make_result(page, total=50), page_size=10, max_pages=10, fingerprint="f")
    assert utf16_len(visible(reply.text)) <= TEXT_LIMIT
    assert reply.shown >= 5
    assert bold_runs(reply.text).count("match") == reply.shown


def test_nothing_found_suggests_words_and_an_example():
    result = make_result([], question="reserch", total=0, unknown_words=("reserch",),
                         suggestions={"reserch": ("research", "researcher")})
    reply = render_results(result, page_size=3, max_pages=10, fingerprint="f", examples=["basic research"])
    shown = visible(reply.text)
    assert "No quotes found for reserch" in shown
    assert "“reserch” is not in the corpus — did you mean research, researcher?" in shown
    assert "basic research" in shown
    assert reply.keyboard is None


def test_an_error_is_shown_with_a_pointer_to_help():
    result = SearchResult("after:2023-13-01", (), 0, error="after:2023-13-01 is not a valid date")
    shown = visible(render_results(result, page_size=3, max_pages=10, fingerprint="f").text)
    assert "not a valid date" in shown and "/help" in shown


def test_weak_matches_say_so():
    result = make_result([make_hit("some text", [(0, 4)])], weak=True)
    reply = render_results(result, page_size=3, max_pages=1, fingerprint="f")
    assert "Only weak matches" in visible(reply.text)


def test_context_bolds_the_quote_among_its_neighbours():
    sentences = [ContextSentence("Before it.", 1, False), ContextSentence("The quote.", 2, True),
                 ContextSentence("After it.", 3, False)]
    reply = render_context(make_hit("The quote.", sentence_id=2), sentences, fingerprint="f", radius=1)
    shown = visible(reply.text)
    assert shown.endswith("Before it. The quote. After it.")
    assert "2023-08-05" in shown
    assert bold_runs(reply.text) == ["The quote."]
    assert callback_data(reply) == ["x|f|2|4"]  # there may be more around: offer a wider view


def test_commands_render_valid_html():
    stats = IndexStats(12, 3400, 5000, dt.date(2020, 1, 2), dt.date(2023, 8, 5), 1)
    welcome = visible(render.render_welcome(stats, ["basic research", "<x>"], "corpus_test_bot", group=False))
    assert "12 documents" in welcome and "2020-01-02 to 2023-08-05" in welcome
    assert "1 without a date" in welcome
    assert "• <x>" in welcome
    assert "/ask" in visible(render.render_welcome(stats, [], "corpus_test_bot", group=True))
    help_text = visible(render.render_help("corpus_test_bot", 1000))
    for piece in ('"basic research"', "-military", "after:2023-01-01", "year:2023", "@corpus_test_bot"):
        assert piece in help_text
    assert "/about" in help_text
    about = visible(render.render_about(stats, "bm25okapi", 1.5, 0.75))
    assert "Documents: 12" in about and "Sentences: 3,400" in about and "Undated documents: 1" in about
    assert "Segments: 1" in about and "Generation: 0" in about and "Last update: none since start" in about


def test_about_tells_the_segments_generation_and_last_update_of_a_live_index():
    stats = IndexStats(12, 3400, 5000, dt.date(2020, 1, 2), dt.date(2023, 8, 5), 1)
    when = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC).timestamp()
    about = visible(render.render_about(stats, "bm25okapi", 1.5, 0.75, (3400, 3400, True),
                                        segments=3, generation=1_204, last_update=when))
    assert "Documents: 12" in about
    assert "Segments: 3" in about and "Generation: 1,204" in about
    assert "Last update: 2026-03-04 05:06 UTC" in about
    assert "By meaning: on" in about


def test_buttons_and_inline_ids_carry_the_segment_address_of_each_hit():
    """A hit's address (its segment and its id there) outlives updates of a live index; its id in the
    index does not. A hit that does not name its segment falls back to the index's fingerprint and id."""
    located = make_hit("The harbour was busy.", [(4, 11)], sentence_id=41, segment="f" * 16,
                       segment_sentence=3)
    plain = make_hit("The harbour was quiet.", [(4, 11)], sentence_id=42)
    reply = render_results(make_result([located, plain]), page_size=3, max_pages=10, fingerprint="0123abcd",
                           context_radius=2)
    short = short_fingerprint("f" * 16)
    assert callback_data(reply)[:2] == [f"c|{short}|3|2", "c|0123abcd|42|2"]
    assert decode_callback(callback_data(reply)[0]) == ContextButton(short, 3, 2)
    articles = render_inline_results(make_result([located, plain]), "0123abcd")
    assert [a.id for a in articles] == [f"{short}-3", "0123abcd-42"]
    sentences = [ContextSentence("Before.", 40, False), ContextSentence("The harbour was busy.", 41, True)]
    context = render_context(located, sentences, fingerprint="0123abcd", radius=1)
    assert callback_data(context) == [f"x|{short}|3|4"]


@pytest.mark.parametrize(
    "data",
    [None, "", "m|x|q", "c|f|1", "c|f|x|2", "z|1|2", "q|", "t| ", "m|", "x|f|1|2|3",
     # forged numbers: str.isdigit() accepts them, int() fails or reads another script's digits; too big
     "m|²|q", "m|١٢|q", "c|f|²|2", "c|f|1|٣", "x|f|1|²", "m|+1|q", "m| 1|q", "m|1_0|q",
     "c|f|" + "9" * 40 + "|2",
     # the segment is a short fingerprint: lowercase hex, at most 16 characters
     "c||1|2", "c|F00D|1|2", "c|xyz|1|2", "c|ab cd|1|2", "c|" + "a" * 17 + "|1|2", "x|٣|1|2", "c|ａ|1|2"],
)
def test_malformed_callback_data_decodes_to_none(data):
    assert decode_callback(data) is None


def test_utf16_length_counts_like_telegram():
    assert utf16_len("abc") == 3
    assert utf16_len("😀") == 2
    assert utf16_len("é") == 1


def test_an_estimated_total_says_about():
    result = make_result([make_hit("Of the people, by the people.")], total=1_400, total_is_estimate=True)
    reply = render_results(result, page_size=3, max_pages=10, fingerprint="f")
    assert "Quote 1 of about 1,400 for" in reply.text
    one = make_result([make_hit("Of the people.")], total=1, total_is_estimate=True)
    assert "of about 1 for" in render_results(one, page_size=3, max_pages=10, fingerprint="f").text


@pytest.mark.parametrize(("url", "linked"), [
    ("https://example.org/a?b=1&c=2", True),
    ("http://example.org/x", True),
    ("https://example.org/Path_(x)", True),
    ('https://example.org/"><b>x</b>', False),
    ("javascript:alert(1)", False),
    ("ftp://example.org/file", False),
    ("https://", False),
    ("https://exa mple.org", False),
    (None, False),
])
def test_a_title_links_to_its_source_only_for_plain_http_addresses(url, linked):
    hit = dataclasses.replace(make_hit("The harbour was busy."), url=url)
    reply = render_results(make_result([hit]), page_size=3, max_pages=10, fingerprint="0123abcd")
    plain, entities = parse_html(reply.text)
    links = [e for e in entities if e["type"] == "text_link"]
    if linked:
        assert [e["url"] for e in links] == [url]
        units = plain.encode("utf-16-le")  # entity offsets count UTF-16 units
        start, length = 2 * links[0]["offset"], 2 * links[0]["length"]
        assert units[start : start + length].decode("utf-16-le") == "A title"
    else:
        assert not links and "href" not in reply.text
    [article] = render_inline_results(make_result([hit]), "0123abcd")
    assert article.url == (url if linked else None)
