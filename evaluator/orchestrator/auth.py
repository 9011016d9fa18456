"""Teams and API tokens: tokens are shown once and stored as SHA-256 digests.

A token is ``sbt_`` + 43 URL-safe characters (256 random bits): guessing one is hopeless, so a
fast hash suffices (no dictionary attack applies), and lookups are one indexed equality.

Workers have tokens of their own (``sbw_``, table ``worker_tokens``): one per worker name, made
by an admin (``spared-bench workers add NAME``), revoked by name and refused at once. A worker
token opens only the worker endpoints (``/api/worker/...``); a team token opens none of them,
and a worker token no team or admin endpoint (``WrongTokenKind``, answered 403).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from evaluator.core.text import name_problem
from evaluator.orchestrator.errors import AuthError, OrchestratorError, WrongTokenKind
from evaluator.store import ApiToken, Team, WorkerToken, get_team, utcnow

R = TypeVar("R", ApiToken, WorkerToken)

TOKEN_PREFIX = "sbt_"
WORKER_TOKEN_PREFIX = "sbw_"
WORKER_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_team(session: Session, name: str, *, admin: bool = False,
                daily_limit: int | None = None) -> Team:
    """Create a team; raises ``OrchestratorError`` when the name is taken or malformed."""
    name = name.strip()
    if not name or len(name) > 100 or "/" in name:
        raise OrchestratorError(f"team name {name!r}: expected 1-100 characters without '/', "
                                "found otherwise")
    problem = name_problem(name)
    if problem is not None:
        raise OrchestratorError(f"team name {name!r}: {problem}")
    if session.exec(select(Team).where(Team.name == name)).first() is not None:
        raise OrchestratorError(f"team {name!r} already exists: expected a new name")
    team = Team(name=name, is_admin=admin, daily_submission_limit=daily_limit)
    session.add(team)
    session.flush()
    return team


def ensure_team(session: Session, name: str, *, admin: bool = False) -> Team:
    """The team of that name, created when missing (local use and baselines).

    Two first submissions of a new team at once both find it missing; the second insert then
    breaks the unique name, and that team (created by the other) is the one returned.
    """
    team = session.exec(select(Team).where(Team.name == name)).first()
    if team is not None:
        return team
    try:
        with session.begin_nested():  # a savepoint: the caller's transaction survives
            return create_team(session, name, admin=admin)
    except IntegrityError:
        team = session.exec(select(Team).where(Team.name == name.strip())).first()
        if team is None:
            raise
        return team


def issue_token(session: Session, team_name: str, *, label: str = "") -> str:
    """Create a token for a team and return the secret (shown once, stored hashed)."""
    team = get_team(session, team_name)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(team_id=team.id or 0, token_hash=hash_token(secret),
                         prefix=secret[:12], label=label))
    session.flush()
    return secret


def _active_row(session: Session, model: type[R], token: str, kind: str, hint: str) -> R:
    """The stored, unrevoked row of ``token`` (``AuthError`` otherwise); records its use."""
    row = session.exec(select(model).where(model.token_hash == hash_token(token))).first()
    if row is None:
        raise AuthError(f"token {token[:12]}...: expected a valid {kind}, found an unknown "
                        f"one{hint}")
    if row.revoked_at is not None:
        raise AuthError(f"{kind} {row.prefix}...: expected an active token, found it revoked "
                        f"on {row.revoked_at:%Y-%m-%d}")
    row.last_used_at = utcnow()
    session.add(row)
    return row


def authenticate(session: Session, token: str | None) -> Team:
    """The team a token belongs to; raises ``AuthError`` for a missing, unknown or revoked one.

    Records the token's last use.
    """
    if not token:
        raise AuthError("expected an API token (--token or SPARED_BENCH_TOKEN), found none")
    if token.startswith(WORKER_TOKEN_PREFIX):
        raise WrongTokenKind(f"token {token[:12]}...: expected a team's API token, found a "
                             "worker token (it opens only the worker endpoints)")
    row = _active_row(session, ApiToken, token, "API token",
                      "; ask the maintainers for a token")
    team = session.get(Team, row.team_id)
    if team is None:
        raise AuthError(f"token {row.prefix}...: its team no longer exists")
    return team


def revoke_token(session: Session, prefix: str) -> int:
    """Revoke the tokens starting with ``prefix`` (at least 8 characters); returns how many."""
    if len(prefix) < 8:
        raise OrchestratorError(f"token prefix {prefix!r}: expected at least 8 characters")
    rows = session.exec(select(ApiToken).where(col(ApiToken.prefix).startswith(prefix[:12]),
                                               col(ApiToken.revoked_at).is_(None))).all()
    for row in rows:
        row.revoked_at = utcnow()
        session.add(row)
    return len(rows)


def require_admin(team: Team, action: str) -> None:
    """Raise ``AuthError`` unless the team is an admin team."""
    if not team.is_admin:
        raise AuthError(f"{action}: expected an admin token, found one of team {team.name!r}")


# -- worker tokens -------------------------------------------------------------------------------


def add_worker_token(session: Session, name: str) -> str:
    """Create the token of worker ``name`` and return the secret (shown once, stored hashed).

    A revoked name may be added again (a new secret; the old one stays refused); an active one
    is refused (``OrchestratorError``): revoke it first.
    """
    if not re.fullmatch(WORKER_NAME_PATTERN, name):
        raise OrchestratorError(f"worker name {name[:120]!r}: expected 1-100 letters, digits, "
                                "'_', '.' or '-' starting with a letter or digit, found otherwise")
    row = session.exec(select(WorkerToken).where(WorkerToken.name == name)).first()
    if row is not None and row.revoked_at is None:
        raise OrchestratorError(f"worker {name!r} already has an active token: expected a new "
                                f"name, or `spared-bench workers revoke {name}` first")
    secret = WORKER_TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = row or WorkerToken(name=name, token_hash="", prefix="")
    row.token_hash, row.prefix = hash_token(secret), secret[:12]
    row.created_at, row.last_used_at, row.revoked_at = utcnow(), None, None
    session.add(row)
    session.flush()
    return secret


def revoke_worker_token(session: Session, name: str) -> bool:
    """Revoke worker ``name``'s token; False when it has none active. Refused from the next
    request on (every request looks the token up)."""
    row = session.exec(select(WorkerToken).where(WorkerToken.name == name,
                                                 col(WorkerToken.revoked_at).is_(None))).first()
    if row is None:
        return False
    row.revoked_at = utcnow()
    session.add(row)
    return True


def list_worker_tokens(session: Session) -> list[WorkerToken]:
    """Every worker token, by name (revoked ones too)."""
    return list(session.exec(select(WorkerToken).order_by(col(WorkerToken.name))).all())


def authenticate_worker(session: Session, token: str | None) -> str:
    """The worker name a token belongs to; ``AuthError`` for a missing, unknown or revoked one,
    ``WrongTokenKind`` for a team's token. Records the token's last use."""
    if not token:
        raise AuthError("expected a worker token (SPARED_BENCH_WORKER_TOKEN), found none")
    if token.startswith(TOKEN_PREFIX):
        raise WrongTokenKind(f"token {token[:12]}...: expected a worker token, found a team's "
                             "API token (worker endpoints take only worker tokens: "
                             "`spared-bench workers add NAME`)")
    row = _active_row(session, WorkerToken, token, "worker token", "")
    return row.name
