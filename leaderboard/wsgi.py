"""A WSGI entry point for any WSGI server (``spared-bench serve`` uses ``leaderboard.serving``);
settings from the environment: ``DATABASE_URL``, ``QUEUE_URL``, ``SPARED_BENCH_HOME``,
``SPARED_LEADERBOARD_*``."""

from leaderboard.app import create_app

app = create_app(warm=True)
