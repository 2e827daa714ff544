"""The floor of one request on this machine's Python HTTP stack: an ASGI app that does nothing.

    python -m uvicorn benchmarks.floor:app --host 127.0.0.1 --port PORT

The same uvicorn (uvloop + httptools) that ``trainhub serve`` runs, with no framework, no auth and
no database: every request reads its body and gets a fixed 200 JSON reply. The one-epoch workload
against it (:class:`benchmarks.workloads.FloorTarget`) measures what the client, the loopback and
uvicorn cost alone; no server written on this stack can answer an epoch faster.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

_REPLY = b'{"epochs":1,"points":15,"replaced":0}'


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the request body, answer 200 with :data:`_REPLY`."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = bool(message.get("more_body", False))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_REPLY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _REPLY})
