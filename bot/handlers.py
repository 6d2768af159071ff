"""The bot's conversation: thin ``async (update, context)`` handlers that ask the index and render the answer.

Each handler does three things: work out what the user asked, run the search (in line when it is quick,
in a worker thread when the index says it may take long, so other chats go on meanwhile), and send what
:mod:`bot.render` made of the result. Anything a user can send ends in a sensible reply or in silence;
real failures go to :func:`on_error`, which logs them and keeps the bot running.

Where a question comes from:

* private chat: any text message (not a command);
* group: ``/ask question``, a message that mentions the bot, or a reply to one of the bot's messages;
  other chatter is ignored;
* inline: ``@botname question`` in any chat;
* buttons: the question is in the button's data, or else read back from the message the reply answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from telegram import (
    CallbackQuery,
    InlineQueryResultsButton,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatType
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import CallbackContext, ExtBot, filters

from bot import callbacks, render
from bot.limits import QuestionLimiter
from bot.processing import give_up, lateness

if TYPE_CHECKING:
    from bot.config import Settings
    from retrieval import ContextSentence, Hit, IndexStats, LiveIndex, SearchIndex, SearchResult

logger = logging.getLogger(__name__)

SERVICES_KEY = "services"
TYPING_AFTER = 0.5  # seconds a search may take before the chat shows "typing…"
_TYPING_EVERY = 4.5  # Telegram shows a chat action for about 5 seconds
CHARTS_KEPT = 32  # timeline charts kept, by their topics
MAX_TOPICS = 4  # "/timeline a vs b vs c vs d"
_VERSUS = re.compile(r"\s+(?:vs\.?|versus)\s+", re.IGNORECASE)
_INLINE_BURST = 3  # inline queries arrive as the user types: allow this many times the question limit
_MAX_INLINE_OFFSET = 1000

# Invisible characters that change nothing a search can use, but can make a question look empty or odd.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
# Answers to a button or an inline query that came too late: Telegram has forgotten the query.
_TOO_LATE = re.compile(r"query is too old|query id is invalid", re.IGNORECASE)
_ASK_COMMAND = re.compile(r"^/(?:ask|timeline)(?:@\w+)?(?=\s|$)", re.IGNORECASE)

_STALE = "This button is from an older answer. Please ask your question again."
_STALE_CORPUS = "The corpus has changed since this answer. Please ask your question again."
_SORRY = "Sorry, something went wrong on my side. Please try again in a moment."


@dataclass(frozen=True, slots=True)
class IndexStatus:
    """What /about and the metrics tell of the index beyond its statistics: its generation and segments,
    when it was made, and the updates since the bot started (a fixed index: generation 0, one segment,
    no update)."""

    generation: int = 0
    segments: int = 1
    last_update: float | None = None  # time.time() when the generation in use was made (None: not known)
    documents_added: int = 0
    documents_removed: int = 0
    update_errors: int = 0


@dataclass
class Services:
    """What the handlers need, kept in ``application.bot_data`` (see :class:`BotContext`).

    ``source`` is a fixed ``SearchIndex`` or a ``LiveIndex`` whose generations follow the corpus folder.
    :attr:`index` is the generation to answer with: a handler reads it once per update and uses that one
    object for the whole answer (sentence ids are only valid within one generation). ``wrap``, when
    given, is applied to each generation once (webhook mode times the searches with it).
    """

    settings: Settings
    source: SearchIndex | LiveIndex
    limiter: QuestionLimiter
    inline_limiter: QuestionLimiter
    typing_after: float = TYPING_AFTER
    wrap: Callable[[SearchIndex], SearchIndex] | None = None
    _live: LiveIndex | None = field(default=None, init=False, repr=False)
    _current: tuple[SearchIndex, SearchIndex] | None = field(default=None, init=False, repr=False)
    _stats: tuple[str, IndexStats] | None = field(default=None, init=False, repr=False)
    _examples: list[str] | None = field(default=None, repr=False)
    _charts: OrderedDict[tuple[str, tuple[str, ...]], tuple[bytes, render.Reply]] = field(
        default_factory=OrderedDict, repr=False
    )

    def __post_init__(self) -> None:
        from retrieval.live import LiveIndex  # the index is loaded by now: no cost

        self._live = self.source if isinstance(self.source, LiveIndex) else None

    @property
    def live(self) -> LiveIndex | None:
        """The live index behind :attr:`index`; None when it is fixed."""
        return self._live

    @property
    def index(self) -> SearchIndex:
        """The current generation (wrapped by ``wrap``). Read it once per answer."""
        raw = self._live.index if self._live is not None else self.source
        if self.wrap is None:
            return raw  # type: ignore[return-value]
        current = self._current
        if current is None or current[0] is not raw:
            current = (raw, self.wrap(raw))  # type: ignore[arg-type]
            self._current = current  # one assignment: a reader in another thread sees a whole pair
        return current[1]

    def stats_of(self, index: SearchIndex) -> IndexStats:
        """``index.stats``, computed once per generation."""
        kept = self._stats
        if kept is None or kept[0] != index.fingerprint:
            kept = (index.fingerprint, index.stats)
            self._stats = kept
        return kept[1]

    @property
    def stats(self) -> IndexStats:
        """The statistics of the current generation."""
        return self.stats_of(self.index)

    def status(self, index: SearchIndex | None = None) -> IndexStatus:
        """The generation, segments and updates of the index; ``segments`` counted in ``index`` (default:
        the current generation)."""
        live = self._live
        if live is None:
            return IndexStatus()
        segments = len((index if index is not None else live.index).segment_fingerprints)
        return IndexStatus(live.generation, segments, live.last_update, live.documents_added,
                           live.documents_removed, live.update_errors)  # fmt: skip

    async def chart(self, topics: tuple[str, ...]) -> tuple[bytes, render.Reply] | str:
        """The timeline picture and caption of ``topics`` in the current generation, or a notice when
        there is nothing to draw.

        Counting and drawing run in a worker thread; the last ``CHARTS_KEPT`` charts are kept, by the
        fingerprint of the generation they were drawn from (a chart of an older one is out of date)."""
        index = self.index
        key = (index.fingerprint, topics)
        kept = self._charts.get(key)
        if kept is not None:
            self._charts.move_to_end(key)
            return kept
        timeline = await asyncio.to_thread(index.timeline, list(topics))
        errors = [s.error for s in timeline.series if s.error]
        if errors:
            return errors[0]
        if timeline.empty:
            return "No sentence holds all the words of " + " or ".join(f"“{t}”" for t in topics) + "."
        if not timeline.periods:
            return "Every sentence that matches is in an undated document: there is no timeline to draw."
        from bot.chart import draw_timeline  # matplotlib only once a chart is asked for

        png = await asyncio.to_thread(draw_timeline, timeline, " vs ".join(topics))
        made = (png, render.render_timeline(timeline, topics))
        self._charts[key] = made
        while len(self._charts) > CHARTS_KEPT:
            self._charts.popitem(last=False)
        return made

    @classmethod
    def create(
        cls,
        settings: Settings,
        index: SearchIndex | LiveIndex,
        *,
        wrap: Callable[[SearchIndex], SearchIndex] | None = None,
    ) -> Services:
        per_minute = settings.limits.questions_per_minute
        return cls(
            settings=settings,
            source=index,
            limiter=QuestionLimiter(per_minute),
            inline_limiter=QuestionLimiter(per_minute * _INLINE_BURST),
            wrap=wrap,
        )

    async def examples(self) -> list[str]:
        """Example questions that really find something (computed once, off the event loop: they stay
        good examples while the corpus grows)."""
        if self._examples is None:
            self._examples = await asyncio.to_thread(self.index.example_questions, 3)
        return self._examples


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """The callback context with typed access to :class:`Services`."""

    @property
    def services(self) -> Services:
        return self.bot_data[SERVICES_KEY]


# -- what was asked ------------------------------------------------------------------------------------


def normalize_question(raw: str) -> str:
    """One line of visible text: invisible and control characters dropped, spaces collapsed."""
    return " ".join(render.clean_text(_INVISIBLE.sub("", raw)).split())


def _mention(username: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w@])@{re.escape(username)}\b", re.IGNORECASE)


def question_from_message(message: Message, bot_username: str | None) -> str:
    """The question in a message: its text without a leading ``/ask`` and without mentions of the bot."""
    raw = message.text or ""
    raw = _ASK_COMMAND.sub("", raw, count=1)
    if bot_username:
        raw = _mention(bot_username).sub(" ", raw)
    return normalize_question(raw)


class AddressedToBot(filters.MessageFilter):
    """Group messages meant for the bot: they mention it, or reply to one of its messages."""

    def filter(self, message: Message) -> bool:
        bot = message.get_bot()
        replied = message.reply_to_message
        if replied is not None and replied.from_user is not None and replied.from_user.id == bot.id:
            return True
        if not bot.username or not message.text:
            return False
        for entity in message.entities:
            if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot.id:
                return True
        return bool(_mention(bot.username).search(message.text))


def _accessible(query: CallbackQuery) -> Message | None:
    """The message a button sits on, if the bot can still see it."""
    message = query.message
    return message if isinstance(message, Message) else None


def _reply_to(message: Message) -> ReplyParameters:
    # Replies quote the question: it keeps groups readable and lets "More" read the question back.
    return ReplyParameters(message_id=message.message_id, allow_sending_without_reply=True)


# -- searching -----------------------------------------------------------------------------------------


async def _search(
    context: BotContext,
    index: SearchIndex,
    question: str,
    *,
    k: int,
    offset: int = 0,
    chat_id: int | None = None,
) -> SearchResult:
    """Search ``index`` (the generation the handler read for this answer); show "typing…" in ``chat_id``
    while it takes more than a moment.

    Most questions take well under a millisecond even at a million sentences: they run right here, since
    handing them to a thread costs more than the search (under load it made the replies' p99 latency ten
    times worse, ``benchmarks/bench_webhook.py``). The ones the index says may take long (phrases) run in
    a worker thread, so other chats go on meanwhile.
    """
    services = context.services
    started = time.perf_counter()
    if index.may_take_long(question):
        search = asyncio.ensure_future(asyncio.to_thread(index.search, question, k, offset))
        if chat_id is not None:
            await _typing_until_done(context, chat_id, search, services.typing_after)
        result = await search
    else:
        result = index.search(question, k, offset)
    logger.debug(
        "search: %d chars, offset %d -> %d of %d hits%s in %.0f ms",
        len(question), offset, len(result.hits), result.total,
        " (weak)" if result.weak else "", 1000 * (time.perf_counter() - started),
    )
    return result


async def _typing_until_done(
    context: BotContext, chat_id: int, task: asyncio.Future[Any], delay: float,
    action: str = ChatAction.TYPING,
) -> None:
    await asyncio.wait({task}, timeout=delay)
    while not task.done():
        try:
            await context.bot.send_chat_action(chat_id, action)
        except TelegramError as error:  # a missing "typing…" is no reason to fail the answer
            logger.debug("chat action failed: %s", error)
        await asyncio.wait({task}, timeout=_TYPING_EVERY)


def _admit(services: Services, user_id: int, *, inline: bool = False) -> str | None:
    """None if the user may ask now, else the refusal to tell, as plain text ("": say nothing).

    Questions and the buttons that search or send a new message share one limiter per user, so pressing
    "Context" in a loop costs what asking in a loop does, and one notice covers the whole streak.
    """
    admission = (services.inline_limiter if inline else services.limiter).admit(user_id)
    if admission.allowed:
        return None
    logger.info("user %s is over the question limit", user_id)
    if not admission.notify:
        return ""
    wait = max(1, round(admission.retry_after))
    return f"You are asking faster than I can read 🙂 Please wait {wait} seconds and ask again."


async def _refuse_button(query: CallbackQuery, refusal: str) -> None:
    """Answer a refused press: the notice once, then silently (the button must stop spinning either way)."""
    await query.answer(refusal or None)


# -- commands ------------------------------------------------------------------------------------------


async def start(update: Update, context: BotContext) -> None:
    """/start: what the corpus holds, and three questions that find something."""
    services = context.services
    if context.args and context.args[0] == "help":  # the deep link behind inline mode's "how to ask"
        await help_command(update, context)
        return
    group = update.effective_chat is not None and update.effective_chat.type != ChatType.PRIVATE
    welcome = render.render_welcome(
        services.stats, await services.examples(), context.bot.username, group=group
    )
    await update.effective_message.reply_text(welcome)


async def help_command(update: Update, context: BotContext) -> None:
    """/help: how to ask, the query syntax, the commands."""
    max_chars = context.services.settings.limits.max_question_chars
    await update.effective_message.reply_text(render.render_help(context.bot.username, max_chars))


async def about(update: Update, context: BotContext) -> None:
    """/about: corpus statistics, and how the live index has changed."""
    services = context.services
    ranking = services.settings.ranking
    index = services.index
    progress = index.semantic_progress
    meaning = None if progress is None else (*progress, index.semantic_ready)
    status = services.status(index)
    text = render.render_about(
        services.stats_of(index), ranking.algorithm, ranking.k1, ranking.b, meaning,
        segments=status.segments, generation=status.generation, last_update=status.last_update,
    )
    await update.effective_message.reply_text(text)


async def unknown_command(update: Update, context: BotContext) -> None:
    """A command the bot does not have (private chats only; in groups it may be another bot's)."""
    await update.effective_message.reply_text(
        render.render_notice("I don't know that command. /help lists what I can do.")
    )


async def not_text(update: Update, context: BotContext) -> None:
    """A sticker, photo, voice message… in a private chat."""
    await update.effective_message.reply_text(
        render.render_notice("I can only read text. Send me your question in words, or see /help.")
    )


# -- questions -----------------------------------------------------------------------------------------


async def question(update: Update, context: BotContext) -> None:
    """A question: text in a private chat, or ``/ask``, a mention or a reply to the bot in a group."""
    message = update.effective_message
    asked = question_from_message(message, context.bot.username)
    services = context.services
    limits = services.settings.limits
    if not asked:
        await message.reply_text(await _ask_hint(message, context), reply_parameters=_reply_to(message))
        return
    if len(asked) > limits.max_question_chars:
        notice = (
            f"That question is {len(asked):,} characters long; I take at most {limits.max_question_chars:,}. "
            "A few distinctive words work best."
        )
        await _notice(message, notice)
        return
    if await _refused(services, message):
        return
    replies = services.settings.replies
    index = services.index
    result = await _search(context, index, asked, k=replies.results_per_page, chat_id=message.chat_id)
    examples = await services.examples() if result.empty and not result.error else ()
    late = lateness()
    note = render.late_note(late[1]) if late else None
    reply = _page_of(services, index, result, examples=examples, note=note)
    await message.reply_text(reply.text, reply_markup=reply.keyboard, reply_parameters=_reply_to(message))


async def timeline(update: Update, context: BotContext) -> None:
    """/timeline topic (or ``a vs b``): a chart of the topic's sentences per period, as a photo."""
    message = update.effective_message
    asked = question_from_message(message, context.bot.username)
    services = context.services
    if not asked:
        example = (await services.examples() or ["basic research"])[0]
        await _notice(message, f"Name a topic after the command, for example: /timeline {example} "
                               "(or /timeline a vs b)")
        return
    if len(asked) > services.settings.limits.max_question_chars:
        notice = f"That topic is {len(asked):,} characters long; a few distinctive words work best."
        await _notice(message, notice)
        return
    if await _refused(services, message):
        return
    await _send_timeline(message, asked, context, reply_to=message)


def split_topics(asked: str) -> list[str]:
    """``"inflation vs unemployment"`` -> the topics to draw on one chart (at most MAX_TOPICS)."""
    return [t for t in (" ".join(p.split()) for p in _VERSUS.split(asked)) if t][:MAX_TOPICS]


async def _send_timeline(message: Message, asked: str, context: BotContext, *, reply_to: Message) -> None:
    topics = tuple(split_topics(asked))
    chart = context.services.chart(topics)
    drawn = asyncio.ensure_future(chart)
    await _typing_until_done(context, message.chat_id, drawn, context.services.typing_after,
                             action=ChatAction.UPLOAD_PHOTO)
    made = await drawn
    if isinstance(made, str):
        await message.reply_text(render.render_notice(made), reply_parameters=_reply_to(reply_to))
        return
    png, caption = made
    await message.reply_photo(png, caption=caption.text, reply_markup=caption.keyboard,
                              reply_parameters=_reply_to(reply_to))


async def _notice(message: Message, notice: str) -> None:
    """A short message of ours (a hint, a refusal) in reply to ``message``."""
    await message.reply_text(render.render_notice(notice), reply_parameters=_reply_to(message))


async def _refused(services: Services, message: Message) -> bool:
    """True if the sender is over the question limit (told so once per streak)."""
    refusal = _admit(services, message.from_user.id if message.from_user else message.chat_id)
    if refusal is None:
        return False
    if refusal:
        await _notice(message, refusal)
    return True


def _page_of(
    services: Services,
    index: SearchIndex,
    result: SearchResult,
    *,
    examples: Sequence[str] = (),
    note: str | None = None,
) -> render.Reply:
    """A page of quotes of ``index`` laid out with the reply settings (page size, pages, context radius)."""
    replies = services.settings.replies
    return render.render_results(
        result,
        page_size=replies.results_per_page,
        max_pages=replies.max_pages,
        fingerprint=callbacks.short_fingerprint(index.fingerprint),
        context_radius=replies.context_sentences,
        examples=examples,
        note=note,
    )


async def _ask_hint(message: Message, context: BotContext) -> str:
    example = (await context.services.examples() or ["basic research"])[0]
    if _ASK_COMMAND.match(message.text or ""):
        hint = f"Ask me something after the command, for example: /ask {example}"
    elif message.chat.type != ChatType.PRIVATE:
        hint = f"Ask me something after the mention, for example: @{context.bot.username} {example}"
    else:
        hint = f"Send me a question in a few words, for example: {example}"
    return render.render_notice(hint)


# -- buttons -------------------------------------------------------------------------------------------


async def button(update: Update, context: BotContext) -> None:
    """A press on More / Back / Context / More context; anything else gets a polite "ask again"."""
    query = update.callback_query
    pressed = callbacks.decode_callback(query.data)
    if isinstance(pressed, callbacks.PageButton):
        await _turn_page(query, pressed, context)
    elif isinstance(pressed, callbacks.ContextButton):
        await _show_context(query, pressed, context)
    elif isinstance(pressed, callbacks.QuestionButton | callbacks.TimelineButton):
        await _answer_anew(query, pressed, context)
    else:
        await query.answer(_STALE)


async def _answer_anew(
    query: CallbackQuery, pressed: callbacks.QuestionButton | callbacks.TimelineButton, context: BotContext
) -> None:
    """A button that answers with a new message: a question's first page, or a timeline chart."""
    services = context.services
    message = _accessible(query)
    asked = normalize_question(pressed.question)
    if message is None or not asked:
        await query.answer(_STALE)
        return
    refusal = _admit(services, query.from_user.id)
    if refusal is not None:
        await _refuse_button(query, refusal)
        return
    await query.answer()
    if isinstance(pressed, callbacks.TimelineButton):
        await _send_timeline(message, asked, context, reply_to=message)
        return
    replies = services.settings.replies
    index = services.index
    result = await _search(context, index, asked, k=replies.results_per_page, chat_id=message.chat_id)
    reply = _page_of(services, index, result)
    await message.reply_text(reply.text, reply_markup=reply.keyboard, reply_parameters=_reply_to(message))


async def _turn_page(query: CallbackQuery, pressed: callbacks.PageButton, context: BotContext) -> None:
    services = context.services
    replies = services.settings.replies
    message = _accessible(query)
    asked = normalize_question(pressed.question or "")
    if not asked and message is not None and message.reply_to_message is not None:
        asked = question_from_message(message.reply_to_message, context.bot.username)
    if message is None or not asked:
        await query.answer(_STALE)
        return
    if pressed.offset >= replies.results_per_page * replies.max_pages:
        await query.answer("That's as far as I go. Try a more specific question.")
        return
    refusal = _admit(services, query.from_user.id)
    if refusal is not None:
        await _refuse_button(query, refusal)
        return
    index = services.index
    result = await _search(context, index, asked, k=replies.results_per_page, offset=pressed.offset)
    if result.empty or result.error:
        await query.answer("No more quotes for this question.")
        return
    reply = _page_of(services, index, result)
    await query.answer()
    await _edit(query, reply)


async def _show_context(query: CallbackQuery, pressed: callbacks.ContextButton, context: BotContext) -> None:
    """The sentences around the quote the button names, found again by its address in the current
    generation: still there after other documents came or went; gone (or never ours) is "ask again"."""
    services = context.services
    message = _accessible(query)
    if message is None:
        await query.answer(_STALE)
        return
    index = services.index
    sentence_id = callbacks.resolve_sentence(index, pressed.fingerprint, pressed.sentence_id)
    if sentence_id is None:
        await query.answer(_STALE_CORPUS)
        return
    if not pressed.edit:  # a new message each press ("More context" edits the one it is on)
        refusal = _admit(services, query.from_user.id)
        if refusal is not None:
            await _refuse_button(query, refusal)
            return
    radius = min(pressed.radius, render.MAX_CONTEXT_RADIUS)

    def look_up() -> tuple[Hit, list[ContextSentence]]:
        return index.hit(sentence_id), index.context(sentence_id, radius, radius)

    try:
        hit, sentences = await asyncio.to_thread(look_up)
    except IndexError:
        await query.answer(_STALE_CORPUS)
        return
    fingerprint = callbacks.short_fingerprint(index.fingerprint)
    reply = render.render_context(hit, sentences, fingerprint=fingerprint, radius=radius)
    await query.answer()
    if pressed.edit:
        await _edit(query, reply)
    else:
        await message.reply_text(reply.text, reply_markup=reply.keyboard, reply_parameters=_reply_to(message))


async def _edit(query: CallbackQuery, reply: render.Reply) -> None:
    """Show ``reply`` in place of the message the button is on (or below it, if that cannot be edited)."""
    try:
        await query.edit_message_text(reply.text, reply_markup=reply.keyboard)
    except BadRequest as error:
        reason = str(error).lower()
        if "not modified" in reason:  # a double press shows the same page: nothing to do
            return
        message = _accessible(query)
        if message is None or not ("can't be edited" in reason or "not found" in reason):
            raise
        await message.reply_text(reply.text, reply_markup=reply.keyboard, reply_parameters=_reply_to(message))


# -- inline mode ---------------------------------------------------------------------------------------


async def inline_query(update: Update, context: BotContext) -> None:
    """``@botname question`` in any chat: the best quotes as results to share, pages via ``next_offset``."""
    query = update.inline_query
    services = context.services
    replies = services.settings.replies
    asked = normalize_question(query.query)
    cache_time = replies.inline_cache_time
    if not asked:
        await query.answer([], cache_time=cache_time, button=_inline_button("Type a question to find quotes"))
        return
    if _admit(services, query.from_user.id, inline=True) is not None:
        busy = _inline_button("Too many questions: wait a bit")
        await query.answer([], cache_time=0, is_personal=True, button=busy)
        return
    offset = callbacks.parse_count(query.offset, _MAX_INLINE_OFFSET) if query.offset else 0
    if offset is None or len(asked) > services.settings.limits.max_question_chars:
        # A forged or out-of-range offset: nothing more to show (Telegram only sends our next_offset back).
        await query.answer([], cache_time=cache_time)
        return
    index = services.index
    result = await _search(context, index, asked, k=replies.inline_results, offset=offset)
    articles = render.render_inline_results(result, callbacks.short_fingerprint(index.fingerprint))
    following = offset + len(articles)
    next_offset = str(following) if articles and following < result.total else None
    button = None
    if not articles and offset == 0:
        label = "Can't search that: how to ask" if result.error else "No quotes found: how to ask"
        button = _inline_button(label)
    await query.answer(articles, cache_time=cache_time, next_offset=next_offset, button=button)


def _inline_button(label: str) -> InlineQueryResultsButton:
    # Opens a private chat with the bot and sends /start, which explains how to ask.
    return InlineQueryResultsButton(text=label, start_parameter="help")


# -- failures ------------------------------------------------------------------------------------------


async def on_error(update: object, context: BotContext) -> None:
    """Log what went wrong; tell the user only when the failure is ours, not Telegram's or the network's."""
    error = context.error
    if isinstance(error, Forbidden):
        logger.info("not allowed to write to a chat (blocked or removed): %s", error)
        return
    if isinstance(error, ChatMigrated) or (isinstance(error, BadRequest) and _TOO_LATE.search(str(error))):
        logger.warning("update %s could not be answered: %s", _update_id(update), error)
        return
    if isinstance(error, RetryAfter | TimedOut) or (
        isinstance(error, NetworkError) and not isinstance(error, BadRequest)
    ):
        # The delivery limiter retried for delivery.retry_for seconds already; a "sorry" now would fail
        # the same way.
        give_up()
        logger.error("update %s given up: its answer could not be delivered: %s: %s",
                     _update_id(update), type(error).__name__, error)
        return
    logger.error("error while handling update %s", _update_id(update), exc_info=error)
    if not isinstance(update, Update):
        return
    with contextlib.suppress(TelegramError):
        if update.callback_query is not None:
            await update.callback_query.answer(_SORRY)
        elif update.effective_message is not None and update.inline_query is None:
            await update.effective_message.reply_text(render.render_notice(_SORRY))


def _update_id(update: object) -> str:
    return str(update.update_id) if isinstance(update, Update) else "(none)"
