"""Placeholder of the leaderboard web app: a health endpoint over the results database.

GET /healthz answers 200 with the schema revision and the number of stored results when the
database answers, 503 otherwise; the submission API answers 501 until the web app exists.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify
from sqlalchemy import func, text
from sqlmodel import select

from evaluator.core.settings import Settings
from evaluator.store import Result, current_revision, open_store, redact_url, session_scope

app = Flask(__name__)
SETTINGS = Settings.from_env()


@app.get("/healthz")
def healthz() -> Any:
    """Report whether the database answers, its schema revision and the results stored."""
    url = SETTINGS.resolved_database_url
    try:
        engine = open_store(url, wait_s=2)
        with session_scope(engine) as session:
            session.exec(text("SELECT 1"))
            results = session.exec(select(func.count()).select_from(Result)).one()
        return jsonify(status="ok", database=redact_url(url),
                       revision=current_revision(engine), results=int(results))
    except Exception as error:
        return jsonify(status="unavailable", database=redact_url(url),
                       error=str(error).splitlines()[0]), 503


@app.route("/api/submissions", methods=["GET", "POST"])
def submissions_api() -> Any:
    """Not yet: the leaderboard web app will serve the submission API here."""
    return jsonify(error="the leaderboard web app is not deployed yet: submit with "
                         "`spared-bench submit` on a machine of the stack"), 501


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
