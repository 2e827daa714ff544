"""Server-rendered web pages: login/logout, the model list, and one model's page.

Pages need a web session (cookie set by ``POST /login`` after checking an API key); without
one they redirect to ``/login?next=<page>``. The cookie is HttpOnly and SameSite=Lax, which
also keeps other sites from posting forms on a user's behalf.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from trainhub.server.auth import SESSION_COOKIE, SESSION_TTL, Principal
from trainhub.server.errors import ApiError
from trainhub.server.routes.deps import AuthDep, BaseUrl, StoreDep
from trainhub.server.services import checkpoints as ckpt_svc
from trainhub.server.services import metrics as metrics_svc
from trainhub.server.services import models as model_svc
from trainhub.web import TEMPLATES_DIR

__all__ = ["router", "templates"]

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


templates.env.filters["fmt"] = _fmt
templates.env.filters["size"] = _size


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


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    """The login form (asks for an API key)."""
    return templates.TemplateResponse(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login")
def login(
    request: Request, auth: AuthDep, api_key: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/"
) -> Response:
    """Check the key, start a web session, redirect to ``next``."""
    principal = auth.authenticate_key(api_key.strip())
    if principal is None:
        ctx = {"next": _safe_next(next), "error": "That API key is not valid (or was revoked)."}
        return templates.TemplateResponse(request, "login.html", ctx, status_code=401)
    token = auth.create_session(principal)
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


@router.get("/", response_class=HTMLResponse)
def index(request: Request, store: StoreDep, auth: AuthDep, base: BaseUrl) -> Response:
    """Every model, newest first."""
    principal = _session(request, auth)
    if principal is None:
        return _to_login(request)
    models = model_svc.list_models(store, base, limit=500)
    return templates.TemplateResponse(request, "models.html", {"models": models, "principal": principal})


@router.get("/models/{model_id}", response_class=HTMLResponse)
def model_page(model_id: str, request: Request, store: StoreDep, auth: AuthDep, base: BaseUrl) -> Response:
    """One model: status, progress, metrics per epoch, checkpoints."""
    principal = _session(request, auth)
    if principal is None:
        return _to_login(request)
    try:
        model = model_svc.get_model(store, model_id, base)
    except ApiError as exc:
        ctx = {"message": exc.message, "principal": principal}
        return templates.TemplateResponse(request, "not_found.html", ctx, status_code=exc.status)
    epochs = metrics_svc.read_epochs(store, model_id)
    columns = sorted({name for ep in epochs for name in ep["metrics"]})
    ctx = {
        "model": model,
        "epochs": epochs,
        "columns": columns,
        "checkpoints": ckpt_svc.list_checkpoints(store, model_id),
        "principal": principal,
    }
    return templates.TemplateResponse(request, "model.html", ctx)
