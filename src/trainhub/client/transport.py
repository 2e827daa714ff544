"""One HTTP attempt against the hub, with a reused ``httpx.Client`` (keep-alive).

The transport never retries and never raises for a failed request: it returns a :class:`Result`
(status, decoded JSON body, raw ``Retry-After``, and for requests without an HTTP answer the error
kind ``"connection"`` or ``"timeout"``). Policy lives one level up, in the worker.

``httpx`` is imported lazily, on the first request, so ``import trainhub`` stays cheap.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from trainhub.client.errors import (
    AuthError,
    ConfigError,
    HubError,
    PermanentError,
    TransientError,
    UnreachableError,
)
from trainhub.client.retry import is_retryable
from trainhub.protocol import HEADER_RETRY_AFTER, HEADER_SHA256

if TYPE_CHECKING:
    import httpx

__all__ = ["CHUNK_SIZE", "PROGRESS_MIN_BYTES", "Result", "Transport", "file_sha256"]

#: Bytes read from disk per upload chunk.
CHUNK_SIZE = 1024 * 1024
#: Uploads at least this big show a progress bar on stderr.
PROGRESS_MIN_BYTES = 10 * 1024 * 1024

ErrorKind = Literal["connection", "timeout"]


@dataclass(frozen=True)
class Result:
    """The outcome of one HTTP attempt.

    Attributes:
        status: the HTTP status, or ``None`` when no answer arrived.
        body: the decoded JSON body (``None`` when empty or not JSON).
        retry_after: the raw ``Retry-After`` header, if any (parse with ``retry.parse_retry_after``).
        error: ``"connection"`` or ``"timeout"`` when no answer arrived, else ``None``.
        message: a description of the failure (the server's message for error replies).
    """

    status: int | None
    body: Any = None
    retry_after: str | None = None
    error: ErrorKind | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return self.status is not None and 200 <= self.status < 300

    def exception(self) -> HubError | None:
        """The failure as an exception of :mod:`trainhub.client.errors`, or None for a 2xx answer."""
        if self.ok:
            return None
        if self.status is None:
            return UnreachableError(None, self.error or "connection", self.message)
        code, message = "http_error", self.message
        err = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(err, dict):
            code = str(err.get("code", code))
            message = str(err.get("message", message))
        if is_retryable(self.status):
            return TransientError(self.status, code, message)
        if self.status in (401, 403):
            return AuthError(self.status, code, message)
        return PermanentError(self.status, code, message)


def file_sha256(path: str | Path) -> tuple[str, int]:
    """``(sha256 hex, size)`` of a file, read in chunks."""
    import hashlib

    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class Transport:
    """HTTP attempts against one hub.

    Args:
        url: hub root, e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``Authorization: Bearer <key>`` when set.
        timeout: connect/read/write/pool timeout of one request, seconds.
        transport: an ``httpx.BaseTransport`` to use instead of the network (``httpx.MockTransport`` in
            tests).
    """

    def __init__(
        self, url: str, api_key: str | None = None, *, timeout: float = 30.0, transport: Any = None
    ) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self._transport = transport
        self._client: httpx.Client | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def preload(self) -> None:
        """Build the HTTP client now, on the calling thread (a session does it when it starts).

        Left to the first request, importing httpx, httpcore and h11 and loading the CA bundle
        (~0.1 s of CPU) runs on the worker thread during the first epochs and takes the GIL from the
        training thread, call after call. A bad URL is left for the first request to report."""
        import encodings.idna  # noqa: F401 - what the first connect would import (host names)

        with contextlib.suppress(ConfigError):
            self._http()

    def _http(self) -> httpx.Client:
        import httpx  # lazy: keeps `import trainhub` fast

        from trainhub import __version__

        with self._lock:
            if self._client is None or self._pid != os.getpid():
                # After fork the parent's pooled sockets are shared with it: never reuse (or close) them.
                self._pid = os.getpid()
                headers = {"user-agent": f"trainhub-python/{__version__}"}
                if self.api_key:
                    headers["authorization"] = f"Bearer {self.api_key}"
                try:
                    self._client = httpx.Client(
                        base_url=self.url, headers=headers, timeout=self.timeout, transport=self._transport
                    )
                except (httpx.InvalidURL, ValueError) as exc:
                    raise ConfigError(f"invalid hub URL {self.url!r}: {exc}") from exc
            return self._client

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int | float | bool] | None = None,
        headers: Mapping[str, str] | None = None,
        content: Iterable[bytes] | None = None,
    ) -> Result:
        """One request to ``path`` (relative to the hub root): a JSON body, or a raw ``content`` body
        streamed from an iterable (then pass its Content-Length in ``headers``)."""
        if content is not None:
            return self._send(method, path, content=content, params=params, headers=headers)
        return self._send(method, path, json=json, params=params, headers=headers)

    def upload(
        self,
        path: str,
        file: str | Path,
        *,
        sha256: str,
        size: int,
        params: Mapping[str, str | int | float | bool] | None = None,
        headers: Mapping[str, str] | None = None,
        progress: bool | None = None,
    ) -> Result:
        """Stream ``file`` as the raw body of a ``PUT`` with Content-Length and the sha256 header.

        Exactly ``size`` bytes are sent (a file that shrank makes the request fail, one that grew is
        cut), so a file rewritten during the upload is caught by the server's checksum.
        ``progress`` defaults to a bar on stderr for files of :data:`PROGRESS_MIN_BYTES` or more.
        """
        show = size >= PROGRESS_MIN_BYTES if progress is None else progress
        all_headers = {
            "content-length": str(size),
            HEADER_SHA256: sha256,
            "content-type": "application/octet-stream",
        }
        all_headers.update(headers or {})
        return self._send("PUT", path, content=_chunks(file, size, show), params=params, headers=all_headers)

    def _send(self, method: str, path: str, **kwargs: Any) -> Result:
        import httpx

        params = kwargs.get("params")
        if params:
            kwargs["params"] = {k: _param(v) for k, v in params.items()}
        try:
            response = self._http().request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            return Result(None, error="timeout", message=f"{type(exc).__name__}: {exc}")
        except (httpx.TransportError, OSError) as exc:
            # TransportError covers connect/read/write/protocol errors; OSError a file vanishing or
            # shrinking mid-upload (see _chunks).
            return Result(None, error="connection", message=f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            # httpcore lets some h11 errors through unwrapped (e.g. "Too little data for declared
            # Content-Length"). One attempt failing must never kill the worker: report and retry.
            return Result(None, error="connection", message=f"{type(exc).__name__}: {exc}")
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        message = "" if response.is_success else response.text[:500]
        return Result(response.status_code, body, response.headers.get(HEADER_RETRY_AFTER), None, message)

    def close(self) -> None:
        """Close the connection pool (idempotent)."""
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
            self._client = None


def _param(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _chunks(file: str | Path, size: int, progress: bool) -> Iterator[bytes]:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            desc=f"trainhub: upload {Path(file).name}",
            leave=False,
        )
    try:
        remaining = size
        with open(file, "rb") as f:
            while remaining > 0:
                chunk = f.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    # Ultralytics rewrites last.pt in place (and strips it at the end): a file that
                    # shrank under us fails this attempt; the worker hashes it again and retries.
                    raise OSError(f"{file} shrank to {size - remaining} bytes during the upload")
                remaining -= len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
                yield chunk
    finally:
        if bar is not None:
            bar.close()
