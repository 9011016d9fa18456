"""Jinja filters and globals of the pages: number formats, p-values, dates, links that keep the
current release, track and filter."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Flask, request
from markupsafe import Markup, escape

from evaluator.core.vocabulary import METRICS, RESULT_METRICS, TRACK_LABELS, TRACKS
from evaluator.scoring.uncertainty import format_interval

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
VIEW_PARAMS: tuple[str, ...] = ("release", "track", "organism", "tissue", "generalization",
                                "genes")


def fmt(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; an em dash for missing or non-finite values."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    number = float(value)
    if not math.isfinite(number):
        return "—"
    return f"{number:.{digits}f}"


def interval(value: Any, low: Any, high: Any, digits: int = 3) -> str:
    """``1.035 [1.01, 1.07]``: the value and its 95 % interval (bounds to 2 decimals)."""
    def number(x: Any) -> float | None:
        return None if x is None else float(x)

    return format_interval(number(value), number(low), number(high), digits)


def rank_interval(low: Any, high: Any) -> str:
    """``rank 1–3`` (``rank 2`` when both ends agree; empty when unknown)."""
    if low is None or high is None:
        return ""
    return f"rank {low}" if low == high else f"rank {low}–{high}"


def pvalue(value: Any) -> Markup:
    """A p-value the way the paper's Table 3 prints it: ``0.178`` or ``8.782×10⁻³``."""
    if value is None or not math.isfinite(float(value)):
        return Markup("—")
    number = float(value)
    if number >= 0.01 or number == 0:
        return Markup(escape(f"{number:.3f}"))
    mantissa, exponent = f"{number:.3e}".split("e")
    return Markup(escape(f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"))


def count(value: Any) -> str:
    """An integer count with thin grouping (``86 000 000``); ``—`` when missing."""
    if value is None:
        return "—"
    number = int(value)
    if number >= 10**9:
        return f"{number / 1e9:.2f} G"
    if number >= 10**6:
        return f"{number / 1e6:.2f} M"
    if number >= 10**4:
        return f"{number / 1e3:.1f} k"
    return str(number)


def date(value: datetime | None) -> str:
    """``2025-01-31`` (UTC)."""
    return value.strftime("%Y-%m-%d") if value else "—"


def datetime_utc(value: datetime | None) -> str:
    """``2025-01-31 12:00 UTC``."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def size(value: Any) -> str:
    """Bytes as MB or GB."""
    number = float(value or 0)
    return f"{number / 2**30:.2f} GB" if number >= 2**30 else f"{number / 2**20:.1f} MB"


def url_with(**overrides: Any) -> str:
    """The current path with the view parameters kept and ``overrides`` applied (None drops)."""
    return request.path + view_query(**overrides)


def view_query(**overrides: Any) -> str:
    """The view parameters of this request as a query string (``?release=..&track=..``)."""
    params = {k: request.args[k] for k in VIEW_PARAMS if request.args.get(k)}
    for key, value in overrides.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params) if params else ""


def register_filters(app: Flask) -> None:
    """Install the filters and globals on ``app``'s Jinja environment."""
    app.jinja_env.filters.update(fmt=fmt, pvalue=pvalue, count=count, date=date,
                                 datetime_utc=datetime_utc, size=size)
    app.jinja_env.globals.update(interval=interval, rank_interval=rank_interval)
    app.jinja_env.globals.update(url_with=url_with, view_query=view_query)
    # Tables of results take their columns from the specification (``templates/_metrics.html``).
    app.jinja_env.globals.update(tracks=TRACKS, track_labels=TRACK_LABELS,
                                 result_metrics=RESULT_METRICS, spared_metrics=METRICS)
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
