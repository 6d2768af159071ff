"""Timeline charts as a user sees them: the right size, readable dates that never overlap, at any span."""

from __future__ import annotations

import datetime as dt
import itertools
import struct

import numpy as np
import pytest

from bot.chart import HEIGHT, WIDTH, build_figure, draw_timeline
from retrieval.timeline import Series, Timeline, choose_granularity, count_per_period

SPANS = [0, 1, 6, 30, 91, 92, 200, 365, 2 * 365, 6 * 365, 7 * 365, 30 * 365, 100 * 365, 300 * 365]


def _timeline(days: int, topics: int = 1, seed: int = 0) -> Timeline:
    rng = np.random.default_rng(seed)
    first = dt.date(1990, 6, 15).toordinal() - days // 2
    last = first + days
    granularity = choose_granularity(first, last)
    series, periods = [], []
    for n in range(topics):
        ordinals = rng.integers(first, last + 1, size=400)
        periods, counts = count_per_period(ordinals, granularity, first, last)
        series.append(Series(f"topic {n}", tuple(counts.tolist()), 400, 0, None, None))
    return Timeline(granularity, tuple(periods), tuple(series))


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


@pytest.mark.parametrize("days", SPANS)
def test_tick_labels_never_overlap_from_one_day_to_three_centuries(days):
    figure = build_figure(_timeline(days), "topic")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    [axes] = figure.axes
    low, high = axes.get_xlim()  # the locator may place ticks beyond the axis: those are not drawn
    labels = [t for t in axes.get_xticklabels()
              if t.get_text() and t.get_visible() and low <= t.get_position()[0] <= high]
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
    assert 2 <= len(boxes) <= 10, [t.get_text() for t in labels]
    for left, right in itertools.pairwise(boxes):
        assert left.x1 < right.x0, [t.get_text() for t in labels]
    assert all(b.x0 >= 0 and b.x1 <= WIDTH for b in boxes)  # none cut off at the picture's edge
    assert all(t.get_fontsize() >= 20 for t in labels)  # readable on a phone


@pytest.mark.parametrize(("days", "topics"), [(0, 1), (60, 2), (3 * 365, 2), (250 * 365, 1)])
def test_the_png_is_1280_by_720_and_small_enough_to_send(days, topics):
    png = draw_timeline(_timeline(days, topics), "inflation vs unemployment"[: 9 if topics == 1 else None])
    assert _png_size(png) == (WIDTH, HEIGHT)
    assert len(png) < 1_000_000  # Telegram takes photos up to 10 MB; a chart is far below


def test_few_periods_are_bars_and_many_a_line():
    bars = build_figure(_timeline(6 * 365), "x").axes[0]
    assert bars.patches and not bars.lines
    line = build_figure(_timeline(300 * 365), "x").axes[0]
    assert line.lines


def test_two_topics_get_a_legend_above_the_plot():
    [axes] = build_figure(_timeline(3 * 365, topics=2), "a vs b").axes
    legend = axes.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["topic 0", "topic 1"]
