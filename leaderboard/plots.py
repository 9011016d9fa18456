"""The leaderboard's figures as hand-written SVG (numpy only; no plotting library on the request
path): the paper's Fig. 8a violin of normalized MSE with mean ± std and its pie of datasets won,
Fig. 8b normalized MSE against parameter count, Fig. 6 PCC-Gene per dataset, raw vs spackle,
and the ranks with their 95 % dataset-bootstrap intervals.

Entries are told apart by colour (Okabe-Ito, colour-blind safe, by rank; it repeats after 8, so
every mark also carries its entry's label) and baselines by a dashed outline and "(baseline)",
never by a shared grey: with only baselines on the board every mark would look the same.

Each function takes a computed view and returns SVG text; the blueprint caches it per
(release, track, filter, store version).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from evaluator.core.text import xml_text
from leaderboard.schemas import EntryOut, LeaderboardOut

FONT = "font-family='DejaVu Sans,Helvetica,Arial,sans-serif'"
# Okabe-Ito (Okabe & Ito 2008; Wong, Nat. Methods 2011): distinguishable with any of the common
# colour-vision deficiencies. Cycled for many entries; labels tell repeats apart.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000")
RAW_COLOUR = "#d62728"
SPACKLE_COLOUR = "#1f5fbf"


def colour(index: int) -> str:
    """The palette colour of the index-th entry."""
    return PALETTE[index % len(PALETTE)]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0) * 0.1
    raw_step = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    start = math.floor(low / step) * step
    count_needed = math.ceil((high - start) / step - 1e-9)
    ticks = [round(start + i * step, 12) for i in range(count_needed + 1)]
    return ticks if len(ticks) >= 2 else [start, start + step]


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.2g}"
    return f"{value:.3g}"


def _svg_open(width: float, height: float, title: str) -> list[str]:
    return [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' height='{height:.0f}' "
            f"viewBox='0 0 {width:.0f} {height:.0f}' role='img' aria-label='{xml_text(title)}' "
            f"{FONT} font-size='12'>",
            f"<title>{xml_text(title)}</title>",
            "<rect width='100%' height='100%' fill='white'/>",
            f"<text x='{width / 2:.1f}' y='20' text-anchor='middle' font-size='14' "
            f"font-weight='bold'>{xml_text(title)}</text>"]


def message_svg(title: str, message: str, width: int = 640, height: int = 120) -> str:
    out = _svg_open(width, height, title)
    out.append(f"<text x='{width / 2}' y='{height / 2 + 10}' text-anchor='middle' "
               f"fill='#555'>{xml_text(message)}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _y_axis(out: list[str], ticks: Sequence[float], y_of: Callable[[float], float], x0: float,
            x1: float, label: str, top: float, bottom: float) -> None:
    for tick in ticks:
        y = y_of(tick)
        out.append(f"<line x1='{x0:.1f}' y1='{y:.1f}' x2='{x1:.1f}' y2='{y:.1f}' "
                   "stroke='#e3e3e3'/>")
        out.append(f"<text x='{x0 - 6:.1f}' y='{y + 4:.1f}' text-anchor='end'>"
                   f"{_fmt(tick)}</text>")
    mid = (top + bottom) / 2
    out.append(f"<text transform='translate(16,{mid:.1f}) rotate(-90)' text-anchor='middle'>"
               f"{xml_text(label)}</text>")
    out.append(f"<line x1='{x0:.1f}' y1='{top:.1f}' x2='{x0:.1f}' y2='{bottom:.1f}' "
               "stroke='#333'/>")


def gaussian_kde(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of ``values`` on ``grid`` (Scott's bandwidth; a spike-free
    fallback width when all values are equal)."""
    n = values.size
    spread = float(values.std(ddof=1)) if n > 1 else 0.0
    bandwidth = 1.06 * spread * n ** (-0.2) if spread > 0 else max(abs(float(values.mean())),
                                                                     1.0) * 0.02
    z = (grid[:, None] - values[None, :]) / bandwidth
    return np.exp(-0.5 * z * z).sum(axis=1) / (n * bandwidth * math.sqrt(2 * math.pi))


def violin_svg(board: LeaderboardOut) -> str:
    """Fig. 8a: normalized MSE per dataset of each ranked entry, mean ± std on top."""
    title = f"Normalized MSE per dataset ({board.track} track, {len(board.datasets)} datasets)"
    entries = board.entries
    if not entries:
        return message_svg(title, "no complete entry to plot")
    series = []
    for entry in entries:
        values = np.array([v for v in board.normalized_mse.get(entry.entry, {}).values()
                           if v is not None], dtype=float)
        series.append(values)
    all_values = np.concatenate([s for s in series if s.size]) if series else np.array([1.0])
    low = 1.0
    high = float(all_values.max()) if all_values.size else 1.0
    ticks = nice_ticks(low, high + (high - low) * 0.05)
    low, high = min(ticks[0], low), max(ticks[-1], high)
    slot = 64.0
    left, right, top, bottom_pad = 64.0, 170.0, 64.0, 150.0
    plot_h = 300.0
    width = left + right + slot * len(entries)
    height = top + plot_h + bottom_pad
    bottom = top + plot_h

    def y_of(value: float) -> float:
        return bottom - (value - low) / (high - low or 1.0) * plot_h

    out = _svg_open(max(width, 520), height, title)
    _y_axis(out, ticks, y_of, left, left + slot * len(entries), "MSE / best MSE on the dataset",
            top, bottom)
    grid = np.linspace(low, high, 80)
    for i, (entry, values) in enumerate(zip(entries, series, strict=True)):
        cx = left + slot * (i + 0.5)
        fill = colour(i)
        if values.size:
            density = gaussian_kde(values, grid)
            inside = (grid >= values.min() - (high - low) * 0.03) & \
                     (grid <= values.max() + (high - low) * 0.03)
            ys, ds = grid[inside], density[inside]
            if ds.size >= 2 and ds.max() > 0:
                half = ds / ds.max() * slot * 0.42
                right_side = " ".join(f"{cx + h:.1f},{y_of(y):.1f}"
                                      for y, h in zip(ys, half, strict=True))
                left_side = " ".join(f"{cx - h:.1f},{y_of(y):.1f}"
                                     for y, h in zip(ys[::-1], half[::-1], strict=True))
                dash = " stroke-dasharray='4 2'" if entry.is_baseline else ""
                out.append(f"<polygon class='violin' points='{right_side} {left_side}' "
                           f"fill='{fill}' fill-opacity='0.55' stroke='{fill}'{dash}/>")
            for value in values:
                out.append(f"<circle cx='{cx:.1f}' cy='{y_of(value):.1f}' r='1.8' "
                           "fill='#222' fill-opacity='0.6'/>")
        mean = entry.mean_normalized_mse
        std = entry.std_normalized_mse or 0.0
        if mean is not None:
            out.append(f"<line x1='{cx:.1f}' y1='{y_of(max(low, mean - std)):.1f}' "
                       f"x2='{cx:.1f}' y2='{y_of(min(high, mean + std)):.1f}' stroke='#111' "
                       "stroke-width='2'/>")
            out.append(f"<circle class='mean' cx='{cx:.1f}' cy='{y_of(mean):.1f}' r='3.5' "
                       "fill='white' stroke='#111'/>")
            out.append(f"<text x='{cx:.1f}' y='{top - 10:.1f}' text-anchor='middle' "
                       f"font-size='10'>{mean:.2f}±{std:.2f}</text>")
        label = entry.entry + (" (baseline)" if entry.is_baseline else "")
        out.append(f"<text class='entry' transform='translate({cx - 4:.1f},{bottom + 14:.1f}) "
                   f"rotate(40)' text-anchor='start' font-size='11'>{xml_text(label[:40])}</text>")
    out.append(f"<line x1='{left}' y1='{bottom:.1f}' x2='{left + slot * len(entries):.1f}' "
               f"y2='{bottom:.1f}' stroke='#333'/>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def wins_pie_svg(board: LeaderboardOut) -> str:
    """Fig. 8a (pie): share of datasets on which each entry has the lowest MSE (ties split)."""
    title = f"Share of datasets won ({board.track} track)"
    shares: dict[str, float] = {}
    for winners in board.winners.values():
        for label in winners:
            shares[label] = shares.get(label, 0.0) + 1.0 / len(winners)
    total = sum(shares.values())
    if total <= 0:
        return message_svg(title, "no dataset has a winner yet")
    order = [e.entry for e in board.entries if e.entry in shares]
    baseline = {e.entry for e in board.entries if e.is_baseline}
    index = {e.entry: i for i, e in enumerate(board.entries)}
    labels: list[str] = []
    width, height = 640.0, 340.0
    cx, cy, radius = 170.0, 185.0, 130.0
    out = _svg_open(width, height, title)
    angle = -math.pi / 2
    for label in order:
        share = shares[label] / total
        fill = colour(index[label])
        dash = " stroke-dasharray='6 3'" if label in baseline else ""
        middle = angle + share * math.pi
        if share >= 0.08:
            # The slice's own number, inside it, on a white chip so any fill keeps it legible.
            tx, ty = cx + radius * 0.62 * math.cos(middle), cy + radius * 0.62 * math.sin(middle)
            labels.append(f"<rect x='{tx - 17:.1f}' y='{ty - 9:.1f}' width='34' height='15' "
                          "rx='3' fill='white' fill-opacity='0.85'/>"
                          f"<text class='slice-label' x='{tx:.1f}' y='{ty + 3:.1f}' "
                          f"text-anchor='middle' font-size='11'>{100 * share:.0f}%</text>")
        if share >= 1.0 - 1e-9:
            out.append(f"<circle class='slice' cx='{cx}' cy='{cy}' r='{radius}' fill='{fill}' "
                       f"stroke='#222'{dash}><title>{xml_text(label)}</title></circle>")
        else:
            end = angle + share * 2 * math.pi
            x0, y0 = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
            x1, y1 = cx + radius * math.cos(end), cy + radius * math.sin(end)
            large = 1 if share > 0.5 else 0
            out.append(f"<path class='slice' d='M{cx},{cy} L{x0:.2f},{y0:.2f} "
                       f"A{radius},{radius} 0 {large} 1 {x1:.2f},{y1:.2f} Z' fill='{fill}' "
                       f"stroke='white' stroke-width='1.5'><title>{xml_text(label)}</title></path>")
            angle = end
    out.extend(labels)
    for row, label in enumerate(order[:14]):
        y = 70 + row * 19
        fill = colour(index[label])
        dash = " stroke='#222' stroke-dasharray='3 2'" if label in baseline else ""
        suffix = " (baseline)" if label in baseline else ""
        out.append(f"<rect x='330' y='{y - 10}' width='12' height='12' fill='{fill}'{dash}/>")
        out.append(f"<text class='legend' x='348' y='{y}'>{xml_text(label[:36])}{suffix} "
                   f"{100 * shares[label] / total:.0f}%</text>")
    if len(order) > 14:
        out.append(f"<text x='348' y='{70 + 14 * 19}' fill='#555'>… and {len(order) - 14} "
                   "more</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def params_svg(board: LeaderboardOut) -> str:
    """Fig. 8b: mean normalized MSE against the number of trainable parameters (log scale)."""
    title = f"Mean normalized MSE vs parameters ({board.track} track)"
    points = [(e, float(e.parameter_count)) for e in board.entries
              if e.parameter_count and e.mean_normalized_mse is not None]
    missing = len(board.entries) - len(points)
    if not points:
        return message_svg(title, "no ranked entry states its parameter count in model.json")
    logs = np.log10([p for _, p in points])
    means = np.array([e.mean_normalized_mse for e, _ in points], dtype=float)
    x_ticks = list(range(math.floor(logs.min()), math.ceil(logs.max()) + 1))
    if len(x_ticks) < 2:
        x_ticks = [x_ticks[0], x_ticks[0] + 1]
    y_ticks = nice_ticks(min(1.0, float(means.min())), float(means.max()) * 1.02)
    width, height = 680.0, 380.0
    left, right, top, bottom = 70.0, 40.0, 40.0, 320.0

    def x_of(value: float) -> float:
        return left + (value - x_ticks[0]) / (x_ticks[-1] - x_ticks[0]) * (width - left - right)

    def y_of(value: float) -> float:
        return bottom - (value - y_ticks[0]) / (y_ticks[-1] - y_ticks[0] or 1.0) * (bottom - top)

    out = _svg_open(width, height, title)
    _y_axis(out, y_ticks, y_of, left, width - right, "mean normalized MSE", top, bottom)
    for tick in x_ticks:
        x = x_of(tick)
        out.append(f"<line x1='{x:.1f}' y1='{bottom}' x2='{x:.1f}' y2='{bottom + 5}' "
                   "stroke='#333'/>")
        out.append(f"<text x='{x:.1f}' y='{bottom + 18}' text-anchor='middle'>1e{tick}</text>")
    out.append(f"<line x1='{left}' y1='{bottom}' x2='{width - right}' y2='{bottom}' "
               "stroke='#333'/>")
    out.append(f"<text x='{(left + width - right) / 2:.1f}' y='{bottom + 38}' "
               "text-anchor='middle'>trainable parameters (log scale, from model.json)</text>")
    index = {e.entry: i for i, e in enumerate(board.entries)}
    for (entry, _), lx, mean in zip(points, logs, means, strict=True):
        fill = colour(index[entry.entry])
        x, y = x_of(float(lx)), y_of(float(mean))
        out.append(f"<circle class='point' cx='{x:.1f}' cy='{y:.1f}' r='6' fill='{fill}' "
                   "stroke='#222'/>")
        near_right = x > width - right - 160
        out.append(f"<text x='{x - 9 if near_right else x + 9:.1f}' y='{y + 4:.1f}' "
                   f"text-anchor='{'end' if near_right else 'start'}' font-size='11'>"
                   f"{xml_text(entry.entry[:30])}</text>")
    if missing:
        out.append(f"<text x='{left}' y='{height - 6}' fill='#555' font-size='11'>{missing} "
                   "ranked entr(y/ies) without a parameter count in model.json not shown</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def ranks_svg(board: LeaderboardOut) -> str:
    """Each ranked entry's rank with its 95 % rank interval, and its mean normalized MSE with
    its interval (both from resampling datasets), one row per entry in rank order."""
    title = f"Ranks with 95 % intervals ({board.track} track, {len(board.datasets)} datasets)"
    entries = [e for e in board.entries if e.rank_low is not None and e.rank_high is not None]
    if not entries:
        return message_svg(title, "no ranked entry with a bootstrap interval to plot")
    k = len(board.entries)
    row_h = 22.0
    label_w, rank_w, gap, mse_w = 230.0, 360.0, 40.0, 260.0
    top = 62.0
    width = label_w + rank_w + gap + mse_w + 30
    height = top + row_h * len(entries) + 50
    bottom = top + row_h * len(entries)

    def x_rank(rank: float) -> float:
        return label_w + (rank - 0.5) / max(k, 1) * rank_w

    lows = [e.mean_normalized_mse_low or e.mean_normalized_mse or 1.0 for e in entries]
    highs = [e.mean_normalized_mse_high or e.mean_normalized_mse or 1.0 for e in entries]
    ticks = nice_ticks(min(1.0, min(lows)), max(highs) * 1.01)
    x0_mse = label_w + rank_w + gap

    def x_mse(value: float) -> float:
        return x0_mse + (value - ticks[0]) / (ticks[-1] - ticks[0] or 1.0) * mse_w

    out = _svg_open(width, height, title)
    step = max(1, math.ceil(k / 10))
    for rank in sorted({1, k, *range(1, k + 1, step)}):
        x = x_rank(rank)
        out.append(f"<line x1='{x:.1f}' y1='{top - 6}' x2='{x:.1f}' y2='{bottom:.1f}' "
                   "stroke='#e3e3e3'/>")
        out.append(f"<text x='{x:.1f}' y='{bottom + 16:.1f}' text-anchor='middle'>{rank}</text>")
    for tick in ticks:
        x = x_mse(tick)
        out.append(f"<line x1='{x:.1f}' y1='{top - 6}' x2='{x:.1f}' y2='{bottom:.1f}' "
                   "stroke='#e3e3e3'/>")
        out.append(f"<text x='{x:.1f}' y='{bottom + 16:.1f}' text-anchor='middle'>"
                   f"{_fmt(tick)}</text>")
    out.append(f"<text x='{label_w + rank_w / 2:.1f}' y='{bottom + 36:.1f}' "
               "text-anchor='middle'>rank (dot) and 95 % rank interval (bar)</text>")
    out.append(f"<text x='{x0_mse + mse_w / 2:.1f}' y='{bottom + 36:.1f}' "
               "text-anchor='middle'>mean normalized MSE [95 % interval]</text>")
    for i, entry in enumerate(entries):
        y = top + row_h * (i + 0.5)
        fill = colour(i)
        dash = " stroke-dasharray='4 2'" if entry.is_baseline else ""
        label = entry.entry + (" (baseline)" if entry.is_baseline else "")
        out.append(f"<text class='entry' x='{label_w - 8:.1f}' y='{y + 4:.1f}' "
                   f"text-anchor='end' font-size='11'>{xml_text(label[:34])}</text>")
        low, high = x_rank(float(entry.rank_low or 1)), x_rank(float(entry.rank_high or 1))
        out.append(f"<rect class='rank-interval' x='{low - 5:.1f}' y='{y - 5:.1f}' "
                   f"width='{high - low + 10:.1f}' height='10' rx='5' fill='{fill}' "
                   f"fill-opacity='0.35' stroke='{fill}'{dash}>"
                   f"<title>{xml_text(entry.entry)}: rank {entry.rank}, 95 % interval "
                   f"{entry.rank_low}–{entry.rank_high}</title></rect>")
        out.append(f"<circle class='rank' cx='{x_rank(float(entry.rank)):.1f}' cy='{y:.1f}' "
                   f"r='4.5' fill='{fill}' stroke='#111'/>")
        mean = entry.mean_normalized_mse
        if mean is not None:
            lo = entry.mean_normalized_mse_low if entry.mean_normalized_mse_low is not None \
                else mean
            hi = entry.mean_normalized_mse_high if entry.mean_normalized_mse_high is not None \
                else mean
            out.append(f"<line x1='{x_mse(lo):.1f}' y1='{y:.1f}' x2='{x_mse(hi):.1f}' "
                       f"y2='{y:.1f}' stroke='{fill}' stroke-width='3'{dash}/>")
            out.append(f"<circle cx='{x_mse(mean):.1f}' cy='{y:.1f}' r='4' fill='white' "
                       f"stroke='{fill}' stroke-width='2'/>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _dataset_axis(out: list[str], datasets: Sequence[str], left: float, slot: float,
                  bottom: float) -> None:
    out.append(f"<line x1='{left}' y1='{bottom}' x2='{left + slot * len(datasets):.1f}' "
               f"y2='{bottom}' stroke='#333'/>")
    for i, dataset in enumerate(datasets):
        cx = left + slot * (i + 0.5)
        out.append(f"<text class='dataset' transform='translate({cx - 3:.1f},{bottom + 12}) "
                   f"rotate(45)' text-anchor='start' font-size='10'>"
                   f"{xml_text(dataset[:34])}</text>")


def _legend(out: list[str], x: float, y: float) -> None:
    out.append(f"<circle cx='{x}' cy='{y}' r='5' fill='{RAW_COLOUR}'/>")
    out.append(f"<text x='{x + 10}' y='{y + 4}'>raw training data</text>")
    out.append(f"<circle cx='{x + 140}' cy='{y}' r='5' fill='{SPACKLE_COLOUR}'/>")
    out.append(f"<text x='{x + 150}' y='{y + 4}'>SpaCKLE-completed training data</text>")


def spackle_effect_svg(pcc: dict[str, dict[str, list[tuple[str, float]]]], *,
                       title: str = "PCC-Gene per dataset: raw vs spackle track") -> str:
    """Fig. 6: every entry's PCC-Gene per dataset in both tracks (small dots), the best of each
    track (large dots) joined by a line. ``pcc``: dataset -> track -> [(entry, pcc)]."""
    datasets = sorted(pcc)
    values = [v for per in pcc.values() for pairs in per.values() for _, v in pairs]
    if not datasets or not values:
        return message_svg(title, "no PCC-Gene result in either track yet")
    ticks = nice_ticks(min(0.0, min(values)), max(values) * 1.05 if max(values) > 0 else 1.0)
    slot = max(28.0, min(60.0, 900.0 / len(datasets)))
    left, top, plot_h = 64.0, 62.0, 300.0
    bottom = top + plot_h
    width = max(560.0, left + 170 + slot * len(datasets))
    height = bottom + 200

    def y_of(value: float) -> float:
        return bottom - (value - ticks[0]) / (ticks[-1] - ticks[0] or 1.0) * plot_h

    out = _svg_open(width, height, title)
    _y_axis(out, ticks, y_of, left, left + slot * len(datasets), "PCC-Gene", top, bottom)
    for i, dataset in enumerate(datasets):
        cx = left + slot * (i + 0.5)
        best: dict[str, float] = {}
        for track, fill, dx in (("raw", RAW_COLOUR, -slot * 0.12),
                                ("spackle", SPACKLE_COLOUR, slot * 0.12)):
            pairs = pcc[dataset].get(track, [])
            for _, value in pairs:
                out.append(f"<circle cx='{cx + dx:.1f}' cy='{y_of(value):.1f}' r='2.2' "
                           f"fill='{fill}' fill-opacity='0.35'/>")
            if pairs:
                best[track] = max(v for _, v in pairs)
        if "raw" in best and "spackle" in best:
            out.append(f"<line x1='{cx:.1f}' y1='{y_of(best['raw']):.1f}' x2='{cx:.1f}' "
                       f"y2='{y_of(best['spackle']):.1f}' stroke='#555'/>")
        for track, fill in (("raw", RAW_COLOUR), ("spackle", SPACKLE_COLOUR)):
            if track in best:
                out.append(f"<circle class='best-{track}' cx='{cx:.1f}' "
                           f"cy='{y_of(best[track]):.1f}' r='5' fill='{fill}'>"
                           f"<title>{xml_text(dataset)} {track}: best PCC-Gene "
                           f"{best[track]:.3f}</title></circle>")
    _dataset_axis(out, datasets, left, slot, bottom)
    _legend(out, left, 42)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def entry_effect_svg(entry: EntryOut) -> str:
    """Fig. 6 for one entry: its PCC-Gene per dataset trained on raw vs SpaCKLE-completed data."""
    title = f"{entry.entry}: PCC-Gene per dataset, raw vs spackle"
    pcc = {d: {t: [(entry.entry, v)] for t in ("raw", "spackle")
               if (v := effect.get(t)) is not None}
           for d, effect in entry.spackle_effect.items()}
    return spackle_effect_svg(pcc, title=title)
