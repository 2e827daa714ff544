"""Server-rendered web pages: login/logout, projects and models, one model's live page, compare.

Pages need a web session (cookie set by ``POST /login`` after checking a user name and password,
or an API key); without one they redirect to ``/login?next=<page>`` (fragments answer 401).
Every page shows only what the session's principal sees (:mod:`trainhub.server.access`): the
lists hold only visible models, and another tenant's model answers 404 like a missing one.
The cookie is HttpOnly and SameSite=Lax. Pages carry the session's CSRF token in
``<meta name="csrf-token">``; the page's JavaScript sends it back in the ``x-trainhub-csrf``
header on API posts (the Stop button, shown only to a principal that may write to the run), see
:mod:`trainhub.server.auth`.

Live updates: the model page polls ``/models/{id}/panel`` (this module: the header, checkpoints,
events and epoch table re-rendered by the same templates) and ``/api/v1/models/{id}/charts``
(JSON with an ETag) while the run is active. Chart drawing is our own small SVG code in
``web/static/chart.js``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from trainhub.protocol import MAX_NAME_LENGTH
from trainhub.server import access
from trainhub.server.auth import CSRF_HEADER, SESSION_COOKIE, SESSION_TTL, Principal, csrf_token
from trainhub.server.errors import ApiError
from trainhub.server.routes.deps import AuthDep, BaseUrl, StoreDep
from trainhub.server.services import audit
from trainhub.server.services import charts as chart_svc
from trainhub.server.services import checkpoints as ckpt_svc
from trainhub.server.services import models as model_svc
from trainhub.server.services import users as user_svc
from trainhub.web import TEMPLATES_DIR

__all__ = ["router", "templates"]

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

#: Statuses of a run that may still change by itself: the page keeps polling fast.
ACTIVE_STATUSES = frozenset({"new", "training", "stalled"})
#: Epochs shown in the model page's table (all of them are in ``GET /api/v1/models/{id}/metrics``).
TABLE_EPOCHS = 100
#: Models listed on the home page.
HOME_MODELS = 500
#: Models offered for selection on the compare page.
COMPARE_CHOICES = 200
#: Most models compared at once.
MAX_COMPARE = 20


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.5g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600:02d} h"


def _age(ts: str | None) -> Markup:
    """``<time>`` with the age of an ISO timestamp; ``static/app.js`` keeps it ticking."""
    when = _parse(ts)
    if when is None or ts is None:
        return Markup('<span class="muted">never</span>')
    text = _duration((datetime.now(UTC) - when).total_seconds()) + " ago"
    return Markup('<time class="age" datetime="{0}" title="{0}">{1}</time>').format(ts, text)


def _when(ts: str | None) -> str:
    return (ts or "")[:19].replace("T", " ") + (" UTC" if ts else "")


templates.env.filters["fmt"] = _fmt
templates.env.filters["size"] = _size
templates.env.filters["age"] = _age
templates.env.filters["when"] = _when


def _safe_next(target: str | None) -> str:
    # Only same-site paths: never redirect to another host after login.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _session(request: Request, auth: Any) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    principal: Principal | None = auth.authenticate_session(token)
    return principal


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _ctx(request: Request, principal: Principal, **values: Any) -> dict[str, Any]:
    """Template context of a logged-in page: the principal, CSRF token and server time."""
    token = request.cookies.get(SESSION_COOKIE, "")
    return {
        "principal": principal,
        "csrf_token": csrf_token(token),
        "csrf_header": CSRF_HEADER,
        "server_now": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        **values,
    }


def _login_failed(request: Request, next: str, username: str, error: str) -> Response:
    client = request.client.host if request.client else None
    # The attempted name only when it could be one (never a key or password typed in the wrong box).
    who = f"user={username} " if user_svc.USER_NAME_RE.match(username) else ""
    audit.record(request.app.state.store, audit.NOBODY, "login.failed", None, f"{who}from {client}")
    ctx = {"next": _safe_next(next), "error": error, "username": username}
    return templates.TemplateResponse(request, "login.html", ctx, status_code=401)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    """The login form: a user name and password, or an API key."""
    ctx = {"next": _safe_next(next), "error": None, "username": ""}
    return templates.TemplateResponse(request, "login.html", ctx)


@router.post("/login")
def login(
    request: Request,
    auth: AuthDep,
    store: StoreDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    api_key: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the password (or the key), start a web session, redirect to ``next``.

    An API key, when given, wins over the user name and password.
    """
    username = username.strip().lower()
    principal: Principal | None
    if api_key.strip():
        principal = auth.authenticate_key(api_key.strip())
        if principal is None:
            return _login_failed(request, next, username, "That API key is not valid (or was revoked).")
        target, detail = principal.key_id, f"name={principal.name}"
    elif username and password:
        user = user_svc.check_password(store, username, password)
        if user is None:
            return _login_failed(request, next, username, "Wrong user name or password.")
        principal = auth.user_principal(user)
        target, detail = str(user["id"]), f"user={user['name']}"
    else:
        return _login_failed(request, next, username, "Enter a user name and password, or an API key.")
    token = auth.create_session(principal)
    audit.record(store, principal.actor, "login", target, detail)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.api_route("/logout", methods=["GET", "POST"])
def logout(request: Request, auth: AuthDep) -> Response:
    """End the web session."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        auth.end_session(token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _by_project(models: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Models grouped by project; projects ordered by their newest model (models come newest first)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for m in models:
        groups.setdefault(m["project"], []).append(m)
    return [{"name": name, "models": ms} for name, ms in groups.items()]


@router.get("/", response_class=HTMLResponse)
def index(
    request: Request,
    store: StoreDep,
    auth: AuthDep,
    base: BaseUrl,
    q: Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)] = None,
    project: Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)] = None,
) -> Response:
    """Projects with their models, newest first; ``q`` filters by model name, ``project`` by project."""
    principal = _session(request, auth)
    if principal is None:
        return _to_login(request)
    query = (q or "").strip() or None
    models = model_svc.list_models(
        store, principal, base, project=project or None, q_text=query, limit=HOME_MODELS
    )
    ctx = _ctx(
        request,
        principal,
        projects=_by_project(models),
        q=query or "",
        project_filter=project or "",
        count=len(models),
    )
    return templates.TemplateResponse(request, "models.html", ctx)


def _elapsed(model: Mapping[str, Any]) -> float:
    start = _parse(model["created_at"]) or datetime.now(UTC)
    if model["status"] in ACTIVE_STATUSES:
        return (datetime.now(UTC) - start).total_seconds()
    ends = [t for t in (_parse(model["updated_at"]), _parse(model["last_heartbeat_at"])) if t is not None]
    return (max(ends) - start).total_seconds() if ends else 0.0


def _events(model: Mapping[str, Any], checkpoints: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The run's timeline, newest first, derived from what the hub stores about it."""
    events: list[dict[str, Any]] = [{"at": model["created_at"], "text": "Run created"}]
    for c in checkpoints:
        epoch = "" if c["epoch"] is None else f" (epoch {c['epoch']})"
        events.append(
            {"at": c["created_at"], "text": f"Checkpoint {c['kind']} saved{epoch}, {_size(c['size'])}"}
        )
    if model["last_heartbeat_at"]:
        agent = f" from {model['agent']}" if model["agent"] else ""
        events.append({"at": model["last_heartbeat_at"], "text": f"Last heartbeat{agent}"})
    if model["status"] not in ACTIVE_STATUSES:
        events.append({"at": model["updated_at"], "text": f"Run {model['status']}"})
    events.sort(key=lambda e: e["at"] or "", reverse=True)
    if model["stop_requested"]:
        events.insert(0, {"at": None, "text": "Stop requested from the hub"})
    return events


def _may_stop(principal: Principal, model: Mapping[str, Any]) -> bool:
    """Whether the principal (who sees the model) may write to it: the Stop button."""
    if principal.read_only:
        return False
    return principal.projects is None or model["project"] in principal.projects


def _model_ctx(store: StoreDep, principal: Principal, model_id: str, base: str) -> dict[str, Any]:
    """What the model page and its panel show; ApiError 404 for a missing or invisible model."""
    access.check_model(store, principal, model_id, write=False)
    model = model_svc.get_model(store, model_id, base)
    checkpoints = ckpt_svc.list_checkpoints(store, model_id)
    table = chart_svc.epoch_tail(store, model_id, TABLE_EPOCHS)
    return {
        "model": model,
        "active": model["status"] in ACTIVE_STATUSES,
        "elapsed": _duration(_elapsed(model)),
        "checkpoints": checkpoints,
        "events": _events(model, checkpoints),
        "table": table,
        "may_stop": _may_stop(principal, model),
    }


@router.get("/models/{model_id}", response_class=HTMLResponse)
def model_page(model_id: str, request: Request, store: StoreDep, auth: AuthDep, base: BaseUrl) -> Response:
    """One model: status, progress, live charts, epochs, checkpoints, train args, events, Stop."""
    principal = _session(request, auth)
    if principal is None:
        return _to_login(request)
    try:
        values = _model_ctx(store, principal, model_id, base)
    except ApiError as exc:
        ctx = _ctx(request, principal, message=exc.message)
        return templates.TemplateResponse(request, "not_found.html", ctx, status_code=exc.status)
    ctx = _ctx(request, principal, max_points=chart_svc.DEFAULT_MAX_POINTS, **values)
    return templates.TemplateResponse(request, "model.html", ctx)


@router.get("/models/{model_id}/panel", response_class=HTMLResponse)
def model_panel(model_id: str, request: Request, store: StoreDep, auth: AuthDep, base: BaseUrl) -> Response:
    """The live part of the model page (header, checkpoints, events, epochs), for polling."""
    principal = _session(request, auth)
    if principal is None:
        return Response("log in again", status_code=401, media_type="text/plain")
    try:
        values = _model_ctx(store, principal, model_id, base)
    except ApiError as exc:
        return Response(exc.message, status_code=exc.status, media_type="text/plain")
    headers = {"cache-control": "no-store"}
    return templates.TemplateResponse(
        request, "_panel.html", _ctx(request, principal, **values), headers=headers
    )


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    store: StoreDep,
    auth: AuthDep,
    base: BaseUrl,
    ids: Annotated[list[str] | None, Query()] = None,
    metric: Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)] = None,
    q: Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)] = None,
) -> Response:
    """Pick models; overlay one metric; tables of final metrics and of the train args that differ."""
    principal = _session(request, auth)
    if principal is None:
        return _to_login(request)
    chosen_ids = list(dict.fromkeys(ids or []))[:MAX_COMPARE]
    chosen: list[dict[str, Any]] = []
    missing: list[str] = []
    for model_id in chosen_ids:
        try:  # a model the principal cannot see is missing, like one that does not exist
            access.check_model(store, principal, model_id, write=False)
            chosen.append(model_svc.get_model(store, model_id, base))
        except ApiError:
            missing.append(model_id)
    q_text = (q or "").strip() or None
    choices = model_svc.list_models(store, principal, base, q_text=q_text, limit=COMPARE_CHOICES)
    known = {m["id"] for m in choices}
    choices = [m for m in chosen if m["id"] not in known] + choices
    result = chart_svc.compare(store, chosen, metric) if chosen else None
    ctx = _ctx(
        request,
        principal,
        choices=choices,
        chosen=chosen,
        chosen_ids=[m["id"] for m in chosen],
        missing=missing,
        result=result,
        q=q or "",
    )
    return templates.TemplateResponse(request, "compare.html", ctx)
