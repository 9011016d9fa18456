"""The blueprints: ``pages`` (HTML), ``api`` (JSON, CSV, OpenAPI, submissions, admin) and
``plots`` (SVG)."""

from leaderboard.views.api import api
from leaderboard.views.pages import pages
from leaderboard.views.plots import plots

__all__ = ["api", "pages", "plots"]
