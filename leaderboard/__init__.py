"""The leaderboard web app (Flask): ranked entries per track and release with dataset filters,
entry, dataset and significance pages, figures as SVG, the JSON/CSV API with its OpenAPI
document, submissions over HTTP and admin actions.

``create_app()`` builds it; ``spared-bench serve`` runs it under waitress (``serving``), in the
embedded default and in the scaled stack alike. Imports neither docker nor torch.
"""

from leaderboard.app import create_app
from leaderboard.config import LeaderboardConfig

__all__ = ["LeaderboardConfig", "create_app"]
