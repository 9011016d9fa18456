"""The figures as SVG, each cached per (release, track, filter, store version)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response

from evaluator.scoring import report_cd_svg
from leaderboard import plots as figures
from leaderboard.db import db, state, version
from leaderboard.views.common import cached_response, current_release, current_view

plots = Blueprint("plots", __name__, url_prefix="/plots")

SVG = "image/svg+xml"


def _board_figure(name: str, draw: Callable[[Any], str]) -> Response:
    view = current_view()
    board = state().board

    def build() -> tuple[bytes, str]:
        out = board.leaderboard(db(), version(), view.release, view.track, view.filt)
        return draw(out).encode(), SVG

    return cached_response(("plot", name, *view.key), build, max_age_s=60)


@plots.get("/violin.svg")
def violin() -> Response:
    """Fig. 8a: normalized MSE per dataset of each ranked entry, mean ± std."""
    return _board_figure("violin", figures.violin_svg)


@plots.get("/wins.svg")
def wins() -> Response:
    """Fig. 8a (pie): share of datasets won."""
    return _board_figure("wins", figures.wins_pie_svg)


@plots.get("/ranks.svg")
def ranks() -> Response:
    """Ranks and mean normalized MSE with their 95 % dataset-bootstrap intervals."""
    return _board_figure("ranks", figures.ranks_svg)


@plots.get("/params.svg")
def params() -> Response:
    """Fig. 8b: mean normalized MSE against parameter count."""
    return _board_figure("params", figures.params_svg)


@plots.get("/spackle.svg")
def spackle() -> Response:
    """Fig. 6: PCC-Gene per dataset, raw vs spackle track, every entry and the best."""
    view = current_view()
    board = state().board

    def build() -> tuple[bytes, str]:
        pcc = board.pcc_by_dataset(db(), version(), view.release, view.filt)
        return figures.spackle_effect_svg(pcc).encode(), SVG

    return cached_response(("plot", "spackle", view.release.release_id, view.filt.key), build,
                           max_age_s=60)


@plots.get("/cd.svg")
def critical_difference() -> Response:
    """The Friedman/Nemenyi critical-difference diagram (Demšar 2006)."""
    view = current_view()
    board = state().board

    def build() -> tuple[bytes, str]:
        report, _ = board.statistics(db(), version(), view.release, view.track, view.filt)
        svg = report_cd_svg(report) if report is not None else None
        if svg is None:
            reason = (report.friedman_reason if report is not None else None) or \
                "no dataset matches the filter"
            svg = figures.message_svg("Critical difference (Nemenyi)", reason)
        return svg.encode(), SVG

    return cached_response(("plot", "cd", *view.key), build, max_age_s=60)


@plots.get("/entries/<int:submission_id>/spackle.svg")
def entry_spackle(submission_id: int) -> Response:
    """Fig. 6 for one entry: its PCC-Gene per dataset, raw vs spackle."""
    release = current_release()
    board = state().board

    def build() -> tuple[bytes, str]:
        out = board.entry(db(), version(), release, submission_id)
        return figures.entry_effect_svg(out).encode(), SVG

    return cached_response(("plot", "entry", release.release_id, submission_id), build,
                           max_age_s=60)
