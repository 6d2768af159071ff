"""The ``corpus-bot`` command line: ask a question, build the index, run the bot.

    corpus-bot ask "basic research" [--top-k N] [--corpus DIR] [--config PATH] [--json]
    corpus-bot index [--corpus DIR] [--config PATH] [--rebuild] [--merge]
    corpus-bot timeline "topic" [--out chart.png] [--json] [--corpus DIR] [--config PATH]
    corpus-bot webhook info|delete [--drop-pending-updates] [--config PATH]
    corpus-bot run [--config PATH] [--mode polling|webhook]

Every failure a user can cause (no corpus folder, an empty corpus, a bad config file, no token) ends in one
line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings, read_token
from bot.inbox import InboxError
from bot.wording import counted, format_date, format_timestamp
from retrieval import (
    CorpusError,
    Hit,
    LiveIndex,
    SearchResult,
    freeze_loaded_objects,
    lower_this_threads_priority,
    map_large_blocks_apart,
)
from retrieval.timeline import Timeline

EXIT_USAGE = 2
EXIT_FAILURE = 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    # Known options only: a question word such as "-research" (an exclusion) is not an option.
    args, extra = parser.parse_known_args(argv)
    if args.command in (_ask, _timeline):
        unknown = [word for word in extra if word.startswith("--")]
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        name = "question" if args.command is _ask else "topic"
        setattr(args, name, " ".join([*getattr(args, name), *extra]))
        if not getattr(args, name).strip():
            parser.error(f"the following arguments are required: {name}")
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    map_large_blocks_apart()  # before the index loads: its freed arrays go back to the system
    try:
        settings = load_settings(args.config)
        return int(args.command(args, settings))
    except (ConfigError, CorpusError) as error:
        _fail(str(error), as_json=getattr(args, "json", False))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corpus-bot", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def add(name: str, help_text: str, command) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(command=command)
        sub.add_argument("--config", type=Path, default=None, help="config file (default: ./config.yaml)")
        return sub

    ask = add("ask", "answer one question from the corpus in the terminal", _ask)
    ask.add_argument(
        "question", nargs="*", help='the question; supports "phrases", -word, after:/before:/year:'
    )
    ask.add_argument(
        "--top-k", type=_positive_int, default=5, metavar="N", help="how many quotes (default 5)"
    )
    ask.add_argument(
        "--corpus", type=Path, default=None, metavar="DIR", help="corpus folder (overrides config)"
    )
    ask.add_argument("--json", action="store_true", help="print the hits as a JSON list")

    index = add("index", "build or refresh the on-disk index and print the load summary", _index)
    index.add_argument(
        "--corpus", type=Path, default=None, metavar="DIR", help="corpus folder (overrides config)"
    )
    index.add_argument("--rebuild", action="store_true", help="rebuild even if the cache is up to date")
    index.add_argument("--merge", action="store_true", help="fold the index's segments into one now")

    timeline = add("timeline", "count a topic's sentences per day, month or year; draw the chart", _timeline)
    timeline.add_argument("topic", nargs="*", help='the topic ("a vs b" compares); the question syntax works')
    timeline.add_argument("--out", type=Path, default=None, metavar="PNG", help="write the chart here")
    timeline.add_argument("--json", action="store_true", help="print the counts per period as JSON")
    timeline.add_argument(
        "--corpus", type=Path, default=None, metavar="DIR", help="corpus folder (overrides config)"
    )

    webhook = add("webhook", "show or remove the webhook Telegram has for this bot (token from the "
                  "environment)", _webhook)
    webhook.add_argument("action", choices=("info", "delete"),
                         help="info: what Telegram has; delete: remove it")
    webhook.add_argument("--drop-pending-updates", action="store_true",
                         help="with delete: also drop the updates Telegram holds for the bot")

    run = add("run", "run the Telegram bot", _run)
    run.add_argument("--mode", choices=("polling", "webhook"), default=None, help="overrides telegram.mode")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _open(
    settings: Settings,
    corpus: Path | None,
    *,
    rebuild: bool = False,
    show_progress: bool = False,
    meaning_threads: int | None = None,
) -> LiveIndex:
    """The corpus's index, brought up to date with the folder (only new and changed files are read);
    ``meaning_threads``: the model is loaded meanwhile, for ``open_vectors`` with these threads."""
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc="indexing", file=sys.stderr, leave=False)
        bar.update(done - bar.n)

    try:
        return LiveIndex.open(
            corpus or settings.corpus.path,
            settings.index_settings(),
            settings.index.cache_dir,
            progress=progress if show_progress else None,
            rebuild=rebuild,
            meaning_threads=meaning_threads,
        )
    finally:
        if bar is not None:
            bar.close()


_STOP_WAIT = 30.0  # seconds to wait for the background embedding to stop after its current chunk
# `ask` embeds at most this many sentences itself (~1 minute); a larger corpus needs `corpus-bot index` first.
_ASK_EMBEDS_AT_MOST = 5_000


def _meaning(opened: LiveIndex, settings: Settings, *, foreground: bool, show_progress: bool) -> None:
    """Attach ranking by meaning to the index: finish the embeddings here (``foreground``) or say why not."""
    build = opened.open_vectors(threads=2 if foreground else 1)
    if build is None or build.complete:
        return
    missing = build.total - build.done
    if not foreground:
        print(
            f"note: ranking by meaning is not built yet ({missing:,} sentences to embed); "
            "`corpus-bot index` builds it, words alone rank meanwhile",
            file=sys.stderr,
        )
        return
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if not show_progress:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=done, unit=" sentences", desc="embedding", file=sys.stderr,
                       leave=False)
        bar.update(done - bar.n)

    try:
        build.run(progress)
    finally:
        if bar is not None:
            bar.close()


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    opened = _open(settings, args.corpus)
    build_here = opened.index.stats.sentences <= _ASK_EMBEDS_AT_MOST
    _meaning(opened, settings, foreground=build_here, show_progress=sys.stderr.isatty())
    if opened.problems:
        skipped = opened.skipped
        warnings = sum(1 for p in opened.problems if not p.skipped)
        print(
            f"note: {skipped} files skipped, {warnings} warnings (`corpus-bot index` lists them)",
            file=sys.stderr,
        )
    result = opened.index.search(args.question, k=args.top_k)
    if result.error is not None:
        _fail(result.error, as_json=args.json)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps([_hit_json(hit) for hit in result.hits], ensure_ascii=False, indent=2))
    else:
        print(_format_result(result, bold=sys.stdout.isatty()))
    return 0 if result.error is None else EXIT_FAILURE


def _timeline(args: argparse.Namespace, settings: Settings) -> int:
    from bot.handlers import split_topics

    opened = _open(settings, args.corpus)
    topics = split_topics(args.topic)
    timeline = opened.index.timeline(topics)
    errors = [s.error for s in timeline.series if s.error]
    if errors:
        _fail(errors[0], as_json=args.json)
        return EXIT_FAILURE
    if args.out is not None and timeline.periods:
        from bot.chart import draw_timeline

        try:
            args.out.write_bytes(draw_timeline(timeline, " vs ".join(topics)))
        except OSError as error:
            _fail(f"cannot write {args.out}: {error.strerror or error}", as_json=args.json)
            return EXIT_FAILURE
    if args.json:
        print(json.dumps(_timeline_json(timeline), ensure_ascii=False, indent=2))
    else:
        print(_format_timeline(timeline))
        if args.out is not None:
            print(f"chart: {args.out}" if timeline.periods else "no chart: nothing dated matches")
    return 0


def _timeline_json(timeline: Timeline) -> dict[str, object]:
    return {
        "granularity": timeline.granularity,
        "periods": [p.isoformat() for p in timeline.periods],
        "series": [
            {
                "topic": s.question,
                "counts": list(s.counts),
                "total": s.total,
                "undated": s.undated,
                "first": s.first.isoformat() if s.first else None,
                "last": s.last.isoformat() if s.last else None,
                "busiest": timeline.periods[s.busiest].isoformat() if s.busiest is not None else None,
            }
            for s in timeline.series
        ],
    }


def _format_timeline(timeline: Timeline) -> str:
    from retrieval.timeline import period_label

    out = []
    for series in timeline.series:
        if not series.total:
            out.append(f"{series.question}: no sentence holds all of its words")
            continue
        line = f"{series.question}: {counted(series.total, 'sentence')}"
        if series.first and series.last:
            line += f", first {series.first}, last {series.last}"
        if series.busiest is not None:
            busiest = series.busiest
            line += f"; busiest {period_label(timeline.periods[busiest], timeline.granularity)} " \
                    f"({series.counts[busiest]:,})"
        if series.undated:
            line += f"; {series.undated:,} in undated documents"
        out.append(line)
    width = max((len(period_label(p, timeline.granularity)) for p in timeline.periods), default=0)
    for n, start in enumerate(timeline.periods):
        counts = "  ".join(f"{s.counts[n]:>6,}" for s in timeline.series)
        out.append(f"  {period_label(start, timeline.granularity):<{width}}  {counts}")
    return "\n".join(out)


def _webhook(args: argparse.Namespace, settings: Settings) -> int:
    """``corpus-bot webhook info|delete``: the token is read from the environment, never a command line."""
    import asyncio

    from telegram import Bot
    from telegram.error import InvalidToken, TelegramError

    from bot.app import protect_token_in_logs

    token = read_token(settings)
    protect_token_in_logs(token)

    async def call() -> str:
        async with Bot(token, base_url=settings.telegram.base_url) as bot:
            if args.action == "delete":
                await bot.delete_webhook(drop_pending_updates=args.drop_pending_updates)
                dropped = " and the pending updates dropped" if args.drop_pending_updates else ""
                return f"webhook removed{dropped}: the bot can poll now (corpus-bot run --mode polling)"
            info = await bot.get_webhook_info()
            if not info.url:
                return f"no webhook set (polling mode); {info.pending_update_count} update(s) pending"
            lines = [f"url: {info.url}", f"pending updates: {info.pending_update_count}",
                     f"max connections: {info.max_connections}",
                     f"allowed updates: {', '.join(info.allowed_updates or ()) or 'all'}"]
            if info.last_error_message:
                lines.append(f"last error: {info.last_error_message} at {info.last_error_date}")
            return "\n".join(lines)

    try:
        print(asyncio.run(call()))
    except InvalidToken:
        raise ConfigError(f"Telegram rejected the bot token in {settings.telegram.token_env} "
                          "(telegram.token_env)") from None
    except TelegramError as error:
        where = settings.telegram.base_url
        raise ConfigError(f"the Bot API at {where} failed: {error} (telegram.base_url)") from None
    return 0


def _fail(message: str, *, as_json: bool) -> None:
    """One line on stderr; with ``--json``, also ``{"error": ...}`` on stdout for the program reading it."""
    if as_json:
        print(json.dumps({"error": message}, ensure_ascii=False))
    print(f"corpus-bot: error: {message}", file=sys.stderr)


def _hit_json(hit: Hit) -> dict[str, object]:
    return {
        "text": hit.text,
        "date": hit.date.isoformat() if hit.date else None,
        "title": hit.title,
        "doc": hit.doc,
        "url": hit.url,
        "score": round(_shown_score(hit), 6),
    }


def _shown_score(hit: Hit) -> float:
    """The score as users see it: BM25's idf goes negative for a word in most sentences (a one-sentence or
    all-identical corpus), which means "no evidence", not "worse than nothing", so it shows as 0."""
    return max(0.0, hit.score)


def _format_result(result: SearchResult, *, bold: bool) -> str:
    if result.error:
        return result.error
    lines: list[str] = []
    if result.empty or result.weak:
        lines.append("No good match." if result.empty else "Only weak matches:")
    for word, options in result.suggestions.items():
        lines.append(f"  did you mean {' or '.join(options)} (for “{word}”)?")
    for rank, hit in enumerate(result.hits, start=1):
        line = f"{rank}. {format_date(hit.date)} · {hit.title}  [{hit.doc}, score {_shown_score(hit):.2f}]"
        lines.append(line)
        lines.append(f"   {_emphasise(hit, bold)}")
        if hit.duplicates:
            lines.append(f"   (also in {counted(hit.duplicates, 'other place')})")
    return "\n".join(lines)


def _emphasise(hit: Hit, bold: bool) -> str:
    if not bold:
        return hit.text
    out, last = [], 0
    for start, end in hit.spans:
        out += [hit.text[last:start], "\033[1m", hit.text[start:end], "\033[0m"]
        last = end
    out.append(hit.text[last:])
    return "".join(out)


def _index(args: argparse.Namespace, settings: Settings) -> int:
    opened = _open(
        settings, args.corpus, rebuild=args.rebuild, show_progress=sys.stderr.isatty(), meaning_threads=2
    )
    for problem in opened.problems:
        print(problem, file=sys.stderr)
    print(opened.summary())
    merged = opened.merge(force=args.merge)
    if merged is not None:
        print(f"segments merged into one ({merged.seconds:.2f} s)")
    for line in _segment_lines(opened):
        print(line)
    if opened.manifest_path:
        print(f"cache: {opened.manifest_path}")
    started = time.perf_counter()
    _meaning(opened, settings, foreground=True, show_progress=sys.stderr.isatty())
    progress = opened.index.semantic_progress
    if progress is None:
        print("ranking by meaning: off")
    elif opened.index.semantic_ready:
        took = time.perf_counter() - started
        print(f"ranking by meaning: {progress[1]:,} sentences embedded ({took:.1f} s)")
    else:
        done, total = progress
        print(f"ranking by meaning: failed after {done:,} of {total:,} sentences", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def _segment_lines(live: LiveIndex) -> list[str]:
    """What ``corpus-bot index`` shows of the segments and the last update."""
    when = "never" if live.last_update is None else format_timestamp(live.last_update)
    lines = [f"segments: {len(live.segments)} (generation {live.generation}, last update {when})"]
    for segment in live.segments:
        removed = len(segment.removed & segment.files.keys())
        gone = f", {removed:,} removed since" if removed else ""
        sentences = len(segment.index._store)
        lines.append(f"  {segment.entry or 'in memory'}: {counted(len(segment.files), 'document')}{gone}, "
                     f"{counted(sentences, 'sentence')}")  # fmt: skip
    return lines


def _start_meaning(opened: LiveIndex, settings: Settings) -> Callable[[], None]:
    """Warm the typo index up and embed the corpus in a background thread, while the bot answers with
    BM25 (the embedding uses one core; the other answers). Returns what stops that thread and waits for
    it, to be called before the process exits."""
    build = opened.open_vectors(threads=1)

    def warm_up() -> None:
        opened.index.warm_up()
        freeze_loaded_objects()  # what is loaded now stays; the collector's later pauses stay short

    if build is None or build.complete:
        warm = threading.Thread(target=warm_up, name="warm-up", daemon=True)
        warm.start()
        return lambda: warm.join(timeout=_STOP_WAIT)
    log = logging.getLogger("corpus_bot")
    log.info("ranking by meaning: embedding %s sentences in the background", f"{build.total - build.done:,}")
    last = [time.monotonic()]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] >= 60:
            last[0] = time.monotonic()
            log.info("ranking by meaning: %s of %s sentences embedded", f"{done:,}", f"{total:,}")

    def run() -> None:
        lower_this_threads_priority()  # questions are answered first, by words alone meanwhile
        warm_up()
        if build.run(progress) is not None:
            log.info("ranking by meaning: ready (%s sentences, %.0f s)", f"{build.total:,}", build.seconds)

    worker = threading.Thread(target=run, name="embed-corpus", daemon=True)
    worker.start()

    def stop() -> None:
        build.stop()
        worker.join(timeout=_STOP_WAIT)
        if not build.complete:
            log.info("ranking by meaning: %s of %s sentences embedded; the next start goes on from there",
                     f"{build.done:,}", f"{build.total:,}")

    return stop


def _run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(
        level=settings.logging.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    mode = args.mode or settings.telegram.mode
    token = read_token(settings)
    if mode == "webhook":  # a wrong URL or a missing secret fails now, not after loading the index
        from bot.webhook import check_webhook_settings

        check_webhook_settings(settings)
    opened = _open(settings, None, meaning_threads=1)
    logging.getLogger("corpus_bot").info("index ready: %s", opened.summary())
    stop_meaning = _start_meaning(opened, settings)
    stop_watching = _start_watching(opened, settings)
    try:
        if mode == "webhook":
            from bot.webhook import run_webhook

            run_webhook(settings, opened, token)
        else:
            from bot.polling import run_polling

            run_polling(settings, opened, token)
    except InboxError as error:
        raise ConfigError(f"{error} (delivery.path)") from None
    finally:
        stop_watching()
        stop_meaning()
        opened.close()
    return 0


def _start_watching(live: LiveIndex, settings: Settings) -> Callable[[], None]:
    """Follow the corpus folder (``corpus.watch``) and refresh on SIGHUP; returns what stops both."""
    from retrieval.watch import CorpusWatcher

    corpus = settings.corpus
    watcher = CorpusWatcher(live, settle=corpus.settle_seconds, poll_every=corpus.poll_seconds)
    previous = None
    if hasattr(signal, "SIGHUP"):
        # A signal handler runs in the main thread between two bytecodes, the event loop's or not: it only
        # wakes the watcher, which does the work in its own thread.
        previous = signal.signal(signal.SIGHUP, lambda _signum, _frame: watcher.request())
    if corpus.watch:
        watcher.start()
        logging.getLogger("corpus_bot").info("following %s: new, changed, removed files go live", live.root)
    else:
        watcher.start_on_request()

    def stop() -> None:
        watcher.stop()
        if previous is not None:
            signal.signal(signal.SIGHUP, previous)

    return stop
