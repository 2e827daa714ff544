"""Security headers on every reply (see docs/security.md).

* Every reply: ``X-Content-Type-Options: nosniff`` (a served checkpoint or JSON body is never
  sniffed into HTML), ``X-Frame-Options: DENY`` and ``Referrer-Policy: same-origin``.
* HTML pages: a Content-Security-Policy that allows only the hub's own scripts, styles, images
  and fetches, no plugins, no framing (``frame-ancestors 'none'``, against clickjacking the Stop
  button), and forms posting only to the hub. Inline style attributes are allowed (progress bars
  and the chart library set them); inline scripts are not.
* Other replies: ``default-src 'none'; frame-ancestors 'none'`` (nothing in a JSON or file reply
  may load anything).

The interactive API docs (``/docs``) load Swagger UI from a CDN with an inline script, so they
get the headers but not the page CSP.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PAGE_CSP", "SecurityHeadersMiddleware"]

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_OTHER_CSP = "default-src 'none'; frame-ancestors 'none'"
_NO_PAGE_CSP = ("/docs", "/openapi.json")


class SecurityHeadersMiddleware:
    """Adds the headers above to every HTTP reply (existing values are kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("x-content-type-options", "nosniff")
                headers.setdefault("x-frame-options", "DENY")
                headers.setdefault("referrer-policy", "same-origin")
                if not path.startswith(_NO_PAGE_CSP):
                    html = headers.get("content-type", "").startswith("text/html")
                    headers.setdefault("content-security-policy", PAGE_CSP if html else _OTHER_CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)
