#!/bin/sh
# Serve the leaderboard web app (gunicorn, leaderboard.wsgi:app) when the image holds it; the
# health placeholder (health.py) otherwise. Settings come from the environment (DATABASE_URL...).
if python3 -c "import importlib.util as u, sys; sys.exit(0 if u.find_spec('gunicorn') and u.find_spec('leaderboard.wsgi') else 1)"; then
    exec gunicorn --bind 0.0.0.0:8080 --workers "${SPARED_WEB_WORKERS:-2}" \
        --access-logfile - leaderboard.wsgi:app
fi
echo "leaderboard web app not in this image: serving the health placeholder" >&2
exec python3 /app/health.py
