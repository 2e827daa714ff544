"""Authentication: API keys on ``/api/v1`` and web sessions for pages.

* Every ``/api/v1`` route except ``/health`` needs an unrevoked key, as
  ``Authorization: Bearer <key>`` or ``x-api-key: <key>``; GET/HEAD requests may instead carry
  the web session cookie (so links from pages to downloads work). Otherwise: 401 ``unauthorized``.
* Other methods (the page's Stop button) may use the session cookie only together with the
  session's CSRF token in the :data:`CSRF_HEADER` header (403 ``forbidden`` if it is missing or
  wrong). The token is an HMAC of the cookie, so it needs no storage; pages put it in a
  ``<meta name="csrf-token">`` tag. Another site can make a browser send the cookie but cannot
  read the page, so it cannot send the token (SameSite=Lax already stops most such posts).
* A read-only key (or a web session of one) may only GET/HEAD: anything else is 403
  ``forbidden``, here and on the compatibility APIs (``compat/http.py``).
* A key acts for its user (``services/users.py``): it sees the projects of its user and of the
  user's teams (an admin user sees all), and may write only to the projects it lists, if it
  lists any (``server/access.py`` checks each request). A disabled user's keys and sessions fail.
* Web sessions are started with a key or with a user's password (``POST /login``); a password
  session acts as the user with full (non-admin-scope unless the user is an admin) rights.
* Key management routes need an admin key (403 ``forbidden``), see :func:`require_admin`.
* ``last_used_at`` (and a ``key.use`` audit entry) is written at most once per
  :data:`TOUCH_INTERVAL_SECONDS` per key and process, so a busy client does not turn every read
  into a write.

The check is ASGI middleware rather than a FastAPI dependency because FastAPI parses the body
before it runs dependencies: an anonymous request with bad JSON must still get 401, not 400.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from trainhub.protocol import API_PREFIX, HEADER_API_KEY, ErrorCode
from trainhub.server.errors import ApiError, error_response
from trainhub.server.services import audit
from trainhub.server.services.keys import KEY_RE, hash_secret
from trainhub.server.services.users import default_project
from trainhub.server.store import keys as q
from trainhub.server.store import users as user_q
from trainhub.server.store.engine import Store
from trainhub.server.store.tables import utcnow

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "SESSION_TTL",
    "TOUCH_INTERVAL_SECONDS",
    "ApiAuthMiddleware",
    "Authenticator",
    "Principal",
    "csrf_token",
    "require_admin",
]

SESSION_COOKIE = "trainhub_session"
#: Header carrying the web session's CSRF token on cookie-authenticated non-GET API calls.
CSRF_HEADER = "x-trainhub-csrf"
SESSION_TTL = timedelta(days=14)
TOUCH_INTERVAL_SECONDS = 60.0
_PUBLIC_PATHS = frozenset({f"{API_PREFIX}/health"})
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key (or a user's password session) and the user it acts for.

    ``is_admin``: the key has the admin scope (admin routes); ``read_only``: it may only read;
    ``projects``: the only projects it may write to (None: all its user may). ``user_admin``:
    the user sees every project; ``team_ids``: the user's teams.
    """

    key_id: str
    name: str
    is_admin: bool
    read_only: bool = False
    user_id: str | None = None
    user_name: str = ""
    user_admin: bool = False
    team_ids: frozenset[str] = frozenset()
    projects: frozenset[str] | None = None

    @property
    def actor(self) -> str:
        """Who to name in the audit log: the key id, or ``user:<id>`` for a password session."""
        return self.key_id or f"user:{self.user_id}"

    @property
    def default_project(self) -> str:
        """The project models go to when the client names none."""
        return default_project(self.user_name, self.user_admin)

    def may(self, method: str) -> bool:
        """Whether this principal may make a request with this HTTP method."""
        return not self.read_only or method.upper() in _READ_METHODS


class Authenticator:
    """Checks keys and sessions against the store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def _principal(self, row: Any) -> Principal:
        self._maybe_touch(row["id"])
        user_id = row["user_id"]
        user_admin = bool(row["user_is_admin"])
        teams: frozenset[str] = frozenset()
        if user_id is not None and not user_admin:
            with self._store.read() as conn:
                teams = user_q.team_ids_of(conn, user_id)
        listed = row["projects"]
        return Principal(
            key_id=row["id"],
            name=row["name"],
            # The admin scope counts only on an admin user's key.
            is_admin=bool(row["is_admin"]) and user_admin,
            read_only=bool(row["read_only"]),
            user_id=user_id,
            user_name=row["user_name"] or "",
            user_admin=user_admin,
            team_ids=teams,
            projects=frozenset(listed) if isinstance(listed, list) else None,
        )

    def _user_principal(self, row: Any) -> Principal:
        user_admin = bool(row["is_admin"])
        teams: frozenset[str] = frozenset()
        if not user_admin:
            with self._store.read() as conn:
                teams = user_q.team_ids_of(conn, row["id"])
        return Principal(
            key_id="",
            name=f"web login of {row['name']}",
            is_admin=user_admin,
            user_id=row["id"],
            user_name=row["name"],
            user_admin=user_admin,
            team_ids=teams,
        )

    def _maybe_touch(self, key_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._touched.get(key_id)
            if last is not None and now - last < TOUCH_INTERVAL_SECONDS:
                return
            self._touched[key_id] = now
        with self._store.write() as conn:
            q.touch_key(conn, key_id, utcnow())
            audit.record_in(conn, key_id, "key.use")

    def authenticate_key(self, key: str) -> Principal | None:
        """The principal of a valid, unrevoked key, else None."""
        if not KEY_RE.match(key):
            return None  # never query for something that cannot be a key
        with self._store.read() as conn:
            row = q.find_key(conn, hash_secret(key))
        if row is None or row["revoked_at"] is not None or row["user_disabled_at"] is not None:
            return None
        return self._principal(row)

    def authenticate_session(self, token: str) -> Principal | None:
        """The principal behind a valid web session token, else None."""
        if not token or len(token) > 128:
            return None
        token_hash, now = hash_secret(token), utcnow()
        with self._store.read() as conn:
            row = q.find_session_key(conn, token_hash, now)
            user = q.find_session_user(conn, token_hash, now) if row is None else None
        if row is not None:
            return self._principal(row)
        return self._user_principal(user) if user is not None else None

    def create_session(self, principal: Principal) -> str:
        """Start a web session for a key, or for a user (a principal without a key id);
        returns the cookie token (only its hash is stored)."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        with self._store.write() as conn:
            if principal.key_id:
                q.insert_session(conn, hash_secret(token), now, now + SESSION_TTL, key_id=principal.key_id)
            else:
                q.insert_session(conn, hash_secret(token), now, now + SESSION_TTL, user_id=principal.user_id)
        return token

    def user_principal(self, user: Any) -> Principal:
        """The principal of a user who logged in with a password."""
        return self._user_principal(user)

    def end_session(self, token: str) -> None:
        """Forget a web session."""
        with self._store.write() as conn:
            q.delete_session(conn, hash_secret(token))


def csrf_token(session_token: str) -> str:
    """The CSRF token of a web session (derived from the secret cookie, never stored)."""
    return hmac.new(session_token.encode(), b"trainhub-csrf-v1", hashlib.sha256).hexdigest()


def key_from_headers(headers: Headers) -> str | None:
    """The API key of a request (Bearer or x-api-key), if any."""
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get(HEADER_API_KEY) or None


class ApiAuthMiddleware:
    """Rejects unauthenticated ``/api/v1`` requests with 401 before anything else runs."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(API_PREFIX + "/") or path in _PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        principal: Principal | None = None
        key = key_from_headers(headers)
        if key is not None:
            principal = await run_in_threadpool(self.authenticator.authenticate_key, key)
        else:
            token = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE)
            if token and scope.get("method") not in ("GET", "HEAD"):
                sent = headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(sent.encode(), csrf_token(token).encode()):
                    response = error_response(403, ErrorCode.FORBIDDEN, "missing or wrong CSRF token")
                    await response(scope, receive, send)
                    return
            if token:
                principal = await run_in_threadpool(self.authenticator.authenticate_session, token)
        if principal is None:
            message = "invalid or revoked API key" if key else "an API key is required"
            response = error_response(401, ErrorCode.UNAUTHORIZED, message, {"www-authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        if not principal.may(scope.get("method", "GET")):
            response = error_response(403, ErrorCode.FORBIDDEN, "this API key is read-only")
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


async def require_admin(request: Request) -> Principal:
    """FastAPI dependency: the caller must hold an admin key (403 ``forbidden``).

    ``async`` so that FastAPI does not run it in the thread pool (see ``routes/deps.py``)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal) or not principal.is_admin:
        raise ApiError(403, ErrorCode.FORBIDDEN, "this route needs an admin key")
    return principal
