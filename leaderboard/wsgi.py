"""The WSGI entry point for gunicorn: ``gunicorn leaderboard.wsgi:app`` (settings from the
environment: ``DATABASE_URL``, ``QUEUE_URL``, ``SPARED_BENCH_HOME``, ``SPARED_LEADERBOARD_*``)."""

from leaderboard.app import create_app

app = create_app(warm=True)
