"""corpus-bot on Telegram: ask a question, get back the best-matching quotes with their dates.

The bot answers in private chats (any text), in groups (``/ask question``, a mention, or a reply to the
bot) and inline (``@botname question`` in any chat). Each answer is a page of whole sentences from the
corpus, ranked by BM25, each with its document's date and title, with buttons for the next page and for
the sentences around a quote. ``/start`` welcomes with example questions, ``/help`` explains the query
syntax, ``/about`` shows what the corpus holds.

Run it on a laptop (polling mode), with a token from @BotFather::

    TELEGRAM_BOT_TOKEN=123456:ABC... corpus-bot run [--config config.yaml]

Press Ctrl-C (or send SIGTERM) to stop it cleanly. :func:`build_application` is the one place the
python-telegram-bot ``Application`` is put together; polling (:mod:`bot.polling`) and webhook mode
(:mod:`bot.webhook`) both use it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from telegram import BotCommand, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from bot import handlers
from bot.config import Settings
from bot.delivery import DeliveryLimiter
from bot.handlers import BotContext, Services
from bot.http_client import AiohttpRequest
from bot.processing import OrderedUpdateProcessor

if TYPE_CHECKING:
    from telegram.request import BaseRequest

    from bot.inbox import Inbox
    from retrieval import LiveIndex, SearchIndex

logger = logging.getLogger(__name__)

ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY, Update.INLINE_QUERY]
COMMANDS = [
    BotCommand("start", "Welcome and example questions"),
    BotCommand("help", "How to ask: phrases, exclusions, dates"),
    BotCommand("about", "What the corpus holds"),
    BotCommand("ask", "Ask a question (for groups)"),
    BotCommand("timeline", "A topic over time, as a chart (a vs b compares)"),
]
NO_PREVIEWS = LinkPreviewOptions(is_disabled=True)
# Connections to the Bot API. Telegram lets a bot send about 30 messages a second; 8 connections carry far
# more than that, and a reply waits for a free one (up to telegram.read_timeout) rather than fail.
CONNECTION_POOL_SIZE = 8


def build_application(
    settings: Settings,
    index: SearchIndex | LiveIndex,
    token: str,
    *,
    request: BaseRequest | None = None,
    inbox: Inbox | None = None,
    wrap: Callable[[SearchIndex], SearchIndex] | None = None,
) -> Application:
    """The bot, ready to be fed updates by polling or a webhook: settings, handlers and the index wired in.

    ``index`` is a fixed ``SearchIndex`` or a ``LiveIndex`` (each answer then uses the generation current
    when it started); ``wrap`` is applied to each generation (webhook mode times the searches with it).

    ``request`` replaces the HTTP client of the Bot API calls (not of ``getUpdates``); webhook mode passes
    one that counts replies and errors for its metrics. Both clients are :class:`AiohttpRequest` objects
    with the timeouts of :func:`request_options`. Answers are paced and retried by
    :class:`~bot.delivery.DeliveryLimiter`; updates are handled in order per chat by
    :class:`~bot.processing.OrderedUpdateProcessor`, which closes each in ``inbox`` when it is done.
    """
    quiet_http_logs()
    protect_token_in_logs(token)
    tg, delivery = settings.telegram, settings.delivery
    limiter = DeliveryLimiter(
        retry_for=delivery.retry_for,
        private_rate=delivery.private_rate,
        group_rate=delivery.group_rate,
        overall_rate=delivery.overall_rate,
    )
    processor = OrderedUpdateProcessor(
        tg.concurrent_updates, inbox=inbox, max_age=delivery.max_age, drop_late=delivery.late == "drop"
    )
    builder = (
        ApplicationBuilder()
        .application_class(BotApplication)
        .token(token)
        .base_url(tg.base_url)
        .defaults(Defaults(parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEWS))
        .rate_limiter(limiter)
        .concurrent_updates(processor)
        .request(request or AiohttpRequest(**request_options(settings)))
        .get_updates_request(AiohttpRequest(**request_options(settings, connections=1)))
        .context_types(ContextTypes(context=BotContext))
        .updater(None)  # polling is bot.polling's: it keeps updates in the inbox before confirming them
        .post_init(setup_bot)
    )
    application = builder.build()
    application.bot_data[handlers.SERVICES_KEY] = Services.create(settings, index, wrap=wrap)
    add_handlers(application)
    return application


def request_options(settings: Settings, *, connections: int = CONNECTION_POOL_SIZE) -> dict[str, Any]:
    """Keyword arguments for an :class:`AiohttpRequest` (or a subclass) talking to the Bot API."""
    tg = settings.telegram
    return {
        "connection_pool_size": connections,
        "connect_timeout": tg.connect_timeout,
        "read_timeout": tg.read_timeout,
        "pool_timeout": tg.read_timeout,  # wait for a free connection rather than drop a reply
    }


def add_handlers(application: Application) -> None:
    """Who answers what. Edited messages and channel posts are not listened to: an edit must not answer
    a question twice."""
    new = filters.UpdateType.MESSAGE
    private, groups = filters.ChatType.PRIVATE, filters.ChatType.GROUPS
    text = filters.TEXT & ~filters.COMMAND & ~filters.VIA_BOT  # not quotes shared from inline mode
    application.add_handlers([
        CommandHandler("start", handlers.start, filters=new),
        CommandHandler("help", handlers.help_command, filters=new),
        CommandHandler("about", handlers.about, filters=new),
        CommandHandler("ask", handlers.question, filters=new),
        CommandHandler("timeline", handlers.timeline, filters=new),
        MessageHandler(new & private & text, handlers.question),
        MessageHandler(new & groups & text & handlers.AddressedToBot(), handlers.question),
        MessageHandler(new & private & filters.COMMAND, handlers.unknown_command),
        MessageHandler(new & private & ~filters.TEXT & ~filters.StatusUpdate.ALL, handlers.not_text),
        CallbackQueryHandler(handlers.button),
        InlineQueryHandler(handlers.inline_query),
    ])
    application.add_error_handler(handlers.on_error)


async def setup_bot(application: Application) -> None:
    """Once the bot is known to Telegram: register the command menu and warm up the example questions.

    Used as ``post_init`` by polling; a custom webhook server must await it itself after ``initialize()``.
    """
    bot = application.bot
    me = await bot.get_me()
    try:
        await bot.set_my_commands(COMMANDS)
    except TelegramError as error:  # the menu is a convenience: never a reason not to start
        logger.warning("could not register the command menu: %s", error)
    services: Services = application.bot_data[handlers.SERVICES_KEY]
    await services.examples()
    stats = services.stats
    logger.info("@%s is ready: %d documents, %d sentences", me.username, stats.documents, stats.sentences)


class BotApplication(Application):
    """python-telegram-bot's ``Application``, which also closes its HTTP clients when ``initialize()``
    fails (a rejected token, an unreachable Bot API).

    ``Application.shutdown()`` does nothing for an Application that never finished initialising, so
    the aiohttp sessions would stay open and be reported as leaked when the process exits.
    """

    async def initialize(self) -> None:
        try:
            await super().initialize()
        except Exception:
            await self.bot.shutdown()
            raise


# -- logging -------------------------------------------------------------------------------------------


def quiet_http_logs() -> None:
    """httpx logs every request URL at INFO, and Bot API URLs contain the token."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


class TokenRedactingFilter(logging.Filter):
    """Replaces the token in log records (message, arguments, traceback) with ``<token>``."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, "<token>"), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.token in record.exc_text:
            record.exc_text = record.exc_text.replace(self.token, "<token>")
        if record.stack_info and self.token in record.stack_info:
            record.stack_info = record.stack_info.replace(self.token, "<token>")
        return True


def protect_token_in_logs(token: str) -> None:
    """Attach :class:`TokenRedactingFilter` to every handler of the root logger (once per token)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, TokenRedactingFilter) and f.token == token for f in handler.filters):
            handler.addFilter(TokenRedactingFilter(token))
