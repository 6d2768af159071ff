"""A topic's timeline as a picture: a PNG of matches per period, made to be read on a phone.

matplotlib (Agg backend, no screen) is imported on the first chart only, so the bot starts without it.
The picture is 1280 x 720 pixels on a white card with dark text, which reads the same in Telegram's light
and dark themes; type is large (a phone shows the photo about 400 points wide). Dates go on the x axis
through matplotlib's ``AutoDateLocator`` and ``ConciseDateFormatter``, which pick ticks that do not overlap
at any span, from one day to centuries. Few periods are drawn as bars, many as a line (with the area under
it shaded), and two topics side by side get a legend.

    png = draw_timeline(timeline, title="inflation")     # bytes of a PNG
"""

from __future__ import annotations

import datetime as dt
import io
import threading
from typing import TYPE_CHECKING, Any

from retrieval.timeline import Granularity, Timeline

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["HEIGHT", "WIDTH", "build_figure", "draw_timeline"]

WIDTH, HEIGHT = 1280, 720  # pixels
_DPI = 100
BARS_UP_TO = 60  # periods; more are drawn as a line
MIN_SLOTS = 7  # the x axis is at least this many periods wide
_COLOURS = ("#1f6fd1", "#e0701b", "#2b9c52", "#a23bbf")
_TEXT, _GRID, _BACKGROUND = "#1d2733", "#d5dbe3", "#ffffff"
_FONT = 22
_LOCK = threading.Lock()  # matplotlib's state (fonts, rcParams) is not meant for threads at once


def draw_timeline(timeline: Timeline, title: str) -> bytes:
    """The PNG of ``timeline``: one bar or line per topic, the periods on the x axis."""
    with _LOCK:
        figure = build_figure(timeline, title)
        try:
            out = io.BytesIO()
            figure.savefig(out, format="png", dpi=_DPI, facecolor=_BACKGROUND)
            return out.getvalue()
        finally:
            figure.clear()


def build_figure(timeline: Timeline, title: str) -> Figure:
    """The matplotlib figure :func:`draw_timeline` saves (for tests that look at its ticks)."""
    figure = _figure()
    _draw(figure, timeline, title)
    return figure


def _figure() -> Figure:
    # A Figure on the Agg canvas directly: no pyplot, no global backend, nothing kept between charts.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH / _DPI, HEIGHT / _DPI), dpi=_DPI, facecolor=_BACKGROUND,
                    layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _draw(figure: Figure, timeline: Timeline, title: str) -> None:
    import matplotlib.dates as mdates

    axes = figure.add_subplot()
    axes.set_facecolor(_BACKGROUND)
    periods = list(timeline.periods)
    starts = [dt.datetime.combine(p, dt.time()) for p in periods]
    width = _bar_width(timeline.granularity)
    several = len(timeline.series) > 1
    bars = len(periods) <= BARS_UP_TO
    handles = []
    for n, series in enumerate(timeline.series):
        colour = _COLOURS[n % len(_COLOURS)]
        if bars:
            share = width / len(timeline.series)
            offset = dt.timedelta(days=share * n + share / 2)
            handles.append(axes.bar([s + offset for s in starts], series.counts, width=share * 0.9,
                                    color=colour, align="center"))
        else:
            middle = [s + dt.timedelta(days=width / 2) for s in starts]
            [line] = axes.plot(middle, series.counts, color=colour, linewidth=3)
            handles.append(line)
            if not several:
                axes.fill_between(middle, series.counts, color=colour, alpha=0.15, linewidth=0)
    if starts:
        # At least MIN_SLOTS periods wide, so that one day or one month is a bar, not the whole picture.
        spare = max(0, MIN_SLOTS - len(starts)) * width / 2
        low = starts[0] - dt.timedelta(days=spare)
        high = starts[-1] + dt.timedelta(days=width + spare)
        axes.set_xlim(low, high)
        if timeline.granularity == "day":  # whole days, named with their month; the year below
            days = (high - low).days + 1
            axes.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, -(-days // 7))))
            axes.xaxis.set_major_formatter(mdates.DateFormatter("%-d %b"))
            years = sorted({starts[0].year, starts[-1].year})
            axes.set_xlabel("–".join(str(y) for y in years), fontsize=_FONT, color=_TEXT)
        else:
            locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
            axes.xaxis.set_major_locator(locator)
            axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=True))
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.set_ylim(bottom=0)
    axes.set_ylabel(f"sentences per {timeline.granularity}", fontsize=_FONT, color=_TEXT)
    # The user's words are text, never matplotlib's "$math$" markup.
    axes.set_title(_shorten(title, 60), fontsize=_FONT + 8, color=_TEXT, loc="left",
                   pad=56 if several else 16, fontweight="bold", parse_math=False)
    _style(axes)
    if several:  # above the plot, under the title: never over a bar
        # Handles and labels given explicitly: a label starting with "_" would otherwise be left out.
        labels = [_shorten(series.question, 30) for series in timeline.series]
        legend = axes.legend(handles, labels, fontsize=_FONT, frameon=False, loc="lower left",
                             bbox_to_anchor=(0, 1.0), ncols=len(timeline.series), handlelength=1.2,
                             borderaxespad=0.2)
        for text in legend.get_texts():
            text.set_color(_TEXT)
            text.set_parse_math(False)


def _style(axes: Any) -> None:
    axes.tick_params(labelsize=_FONT, colors=_TEXT, length=6)
    axes.xaxis.get_offset_text().set_fontsize(_FONT)
    axes.xaxis.get_offset_text().set_color(_TEXT)
    axes.grid(axis="y", color=_GRID, linewidth=1)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        axes.spines[side].set_color(_TEXT)


def _bar_width(granularity: Granularity) -> float:
    """Days a period spans (on average), the width of its slot on the date axis."""
    return {"day": 1.0, "month": 30.44, "year": 365.25}[granularity]


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
