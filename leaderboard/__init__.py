"""Leaderboard web app (Flask). Reads the store and the statistics; never runs containers."""

__all__: list[str] = []
