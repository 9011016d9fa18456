"""Critical-difference diagram (Demšar 2006) as a standalone SVG string, no plotting library.

The axis runs over average ranks 1..k (best on the left). Each entry hangs from its average rank
to a label, the better half on the left, the rest on the right. A bar of length CD is drawn at
the top; thick bars join each maximal run of entries whose average ranks differ by less than CD
(not significantly different by the Nemenyi criterion).
"""

from __future__ import annotations

from evaluator.core.text import xml_text
from evaluator.scoring.stats import StatisticsReport

_WIDTH = 720
_MARGIN_X = 170
_AXIS_Y = 70
_ROW_H = 22
_FONT = "font-family='Helvetica,Arial,sans-serif' font-size='12'"


def cliques(average_ranks: dict[str, float], cd: float) -> list[list[str]]:
    """Return maximal runs (in rank order, ≥ 2 entries) whose rank spread is below ``cd``."""
    names = sorted(average_ranks, key=lambda n: (average_ranks[n], n))
    runs: list[tuple[int, int]] = []
    for i in range(len(names)):
        j = i
        while j + 1 < len(names) and average_ranks[names[j + 1]] - average_ranks[names[i]] < cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in runs):
            runs.append((i, j))
    return [names[a : b + 1] for a, b in runs]


def critical_difference_svg(
    average_ranks: dict[str, float], cd: float, *, title: str | None = None
) -> str:
    """Render the critical-difference diagram for the given average ranks and CD as SVG text."""
    names = sorted(average_ranks, key=lambda n: (average_ranks[n], n))
    k = max(len(names), 2)
    left = names[: (len(names) + 1) // 2]
    right = names[(len(names) + 1) // 2 :]
    runs = cliques(average_ranks, cd)
    x0, x1 = _MARGIN_X, _WIDTH - _MARGIN_X
    top = 28 if title else 8

    def x_of(rank: float) -> float:
        return x0 + (rank - 1.0) / (k - 1.0) * (x1 - x0)

    bars_y0 = _AXIS_Y + top + 14
    labels_y0 = bars_y0 + 10 * len(runs) + 16
    height = labels_y0 + _ROW_H * max(len(left), len(right)) + 10
    axis_y = _AXIS_Y + top
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_WIDTH}' height='{height}' "
        f"viewBox='0 0 {_WIDTH} {height}' role='img'>",
        "<rect width='100%' height='100%' fill='white'/>",
    ]
    if title:
        out.append(f"<text x='{_WIDTH / 2:.1f}' y='18' text-anchor='middle' {_FONT} "
                   f"font-weight='bold'>{xml_text(title)}</text>")
    cd_y = top + 20
    out.append(f"<line x1='{x0:.1f}' y1='{cd_y}' x2='{x0 + cd / (k - 1) * (x1 - x0):.1f}' "
               f"y2='{cd_y}' stroke='black' stroke-width='2'/>")
    out.append(f"<text x='{x0:.1f}' y='{cd_y - 6}' {_FONT}>CD = {cd:.3f}</text>")
    out.append(f"<line x1='{x0}' y1='{axis_y}' x2='{x1}' y2='{axis_y}' stroke='black'/>")
    for r in range(1, k + 1):
        x = x_of(r)
        out.append(f"<line x1='{x:.1f}' y1='{axis_y - 6}' x2='{x:.1f}' y2='{axis_y}' "
                   "stroke='black'/>")
        out.append(f"<text x='{x:.1f}' y='{axis_y - 10}' text-anchor='middle' {_FONT}>{r}</text>")
    for i, run in enumerate(runs):
        y = bars_y0 + 10 * i
        xa = x_of(average_ranks[run[0]]) - 4
        xb = x_of(average_ranks[run[-1]]) + 4
        out.append(f"<line class='clique' x1='{xa:.1f}' y1='{y}' x2='{xb:.1f}' y2='{y}' "
                   "stroke='black' stroke-width='4'/>")
    for side, members in (("left", left), ("right", right)):
        for i, name in enumerate(members if side == "left" else reversed(members)):
            rank = average_ranks[name]
            x = x_of(rank)
            y = labels_y0 + _ROW_H * i
            end = x0 - 10 if side == "left" else x1 + 10
            anchor = "end" if side == "left" else "start"
            tx = end - 4 if side == "left" else end + 4
            out.append(f"<polyline points='{x:.1f},{axis_y} {x:.1f},{y} {end:.1f},{y}' "
                       "fill='none' stroke='black'/>")
            out.append(f"<text class='entry' x='{tx:.1f}' y='{y + 4}' text-anchor='{anchor}' "
                       f"{_FONT}>{xml_text(name)} ({rank:.2f})</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def report_cd_svg(report: StatisticsReport) -> str | None:
    """Return the CD diagram of a report's Friedman/Nemenyi result, or None if it has none."""
    if report.friedman is None:
        return None
    n_datasets = report.friedman.n_datasets
    title = f"Critical difference (Nemenyi, alpha = {report.alpha:g}, {n_datasets} datasets)"
    return critical_difference_svg(
        report.friedman.average_ranks, report.friedman.critical_difference, title=title
    )
