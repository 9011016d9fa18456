#!/bin/sh
# Serve the leaderboard web app (`spared-bench serve`: waitress, requests buffered before an app
# thread runs them, time limits on slow clients) when the image holds it; the health placeholder
# (health.py) otherwise. Settings come from the environment (DATABASE_URL...).
if python3 -c "import importlib.util as u, sys; sys.exit(0 if u.find_spec('waitress') and u.find_spec('leaderboard.serving') else 1)"; then
    exec spared-bench serve --host 0.0.0.0 --port 8080 --workers "${SPARED_WEB_WORKERS:-2}" \
        --threads "${SPARED_WEB_THREADS:-8}"
fi
echo "leaderboard web app not in this image: serving the health placeholder" >&2
exec python3 /app/health.py
