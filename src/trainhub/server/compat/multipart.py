"""Streaming ``multipart/form-data`` reader for the HUB upload routes.

hub-sdk posts checkpoints (``last.pt`` ~30 MB, ``best.pt`` ~6 MB for yolov8n, much more for large
models) and dataset zips as one multipart body: small text fields first, then one file part,
with no Content-Type on any part. :func:`read_multipart` feeds the body to python-multipart's
push parser chunk by chunk: text fields are kept (capped), the file part is written straight into
an object-store upload (hashed on the fly) and committed only once the closing boundary has
arrived. So the file is never held in memory, and a cut-off body leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from trainhub.protocol import ErrorCode
from trainhub.server.errors import ApiError
from trainhub.server.objects import BlobInfo, ObjectStore, Upload

__all__ = ["FilePart", "MultipartBody", "read_multipart"]

#: Largest text field, and most text fields, in one body.
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 64
#: Bytes buffered before one write goes to a worker thread.
_WRITE_BUFFER = 1024 * 1024


@dataclass(frozen=True)
class FilePart:
    """The file part of a body: its form name, file name, first bytes and the committed blob."""

    name: str
    filename: str
    head: bytes
    blob: BlobInfo


@dataclass
class MultipartBody:
    """Text fields (decoded as UTF-8) and the file part, if any."""

    fields: dict[str, str] = field(default_factory=dict)
    file: FilePart | None = None


class _State:
    """Callback state of one parse (python-multipart calls back synchronously from ``write``)."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self.fields: dict[str, str] = {}
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[str, str] = {}
        self.name = ""
        self.filename: str | None = None
        self.value = bytearray()
        self.upload: Upload | None = None
        self.file_name = ""
        self.file_filename = ""
        self.head = b""
        self.pending = bytearray()  # file bytes not yet written (written off the event loop)
        self.ended = False
        self.error: str | None = None

    def on_part_begin(self) -> None:
        self.headers = {}
        self.name, self.filename = "", None
        self.value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        key = self.header_field.decode("latin-1").strip().lower()
        self.headers[key] = self.header_value.decode("latin-1").strip()
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", ""))
        self.name = options.get(b"name", b"").decode("utf-8", "replace")
        raw = options.get(b"filename")
        self.filename = raw.decode("utf-8", "replace") if raw is not None else None
        if self.filename is not None:
            if self.upload is not None:
                self.error = "only one file part is accepted"
                return
            self.upload = self.objects.begin_upload()
            self.file_name, self.file_filename = self.name, self.filename

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.filename is not None:
            if len(self.head) < 16:
                self.head += chunk[: 16 - len(self.head)]
            self.pending += chunk
        else:
            self.value += chunk
            if len(self.value) > MAX_FIELD_BYTES:
                self.error = f"form field {self.name!r} is longer than {MAX_FIELD_BYTES} bytes"

    def on_part_end(self) -> None:
        if self.filename is None:
            if len(self.fields) >= MAX_FIELDS:
                self.error = f"more than {MAX_FIELDS} form fields"
                return
            self.fields[self.name] = self.value.decode("utf-8", "replace")

    def on_end(self) -> None:
        self.ended = True


async def read_multipart(request: Request, objects: ObjectStore, *, max_bytes: int) -> MultipartBody:
    """Parse a multipart body, streaming its (single) file part into a committed blob.

    Raises:
        ApiError: 400 ``validation_error`` (not multipart, malformed, cut off, two file parts,
            oversized text field), 413 ``payload_too_large`` (body over ``max_bytes``).
        starlette.requests.ClientDisconnect: the client went away (nothing is kept).
    """
    ctype, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "expected a multipart/form-data body with a boundary")
    state = _State(objects)
    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": state.on_part_begin,
            "on_part_data": state.on_part_data,
            "on_part_end": state.on_part_end,
            "on_header_field": state.on_header_field,
            "on_header_value": state.on_header_value,
            "on_header_end": state.on_header_end,
            "on_headers_finished": state.on_headers_finished,
            "on_end": state.on_end,
        },
    )
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, f"upload larger than {max_bytes} bytes")
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise ApiError(400, ErrorCode.VALIDATION_ERROR, f"malformed multipart body: {exc}") from exc
            if state.error:
                raise ApiError(400, ErrorCode.VALIDATION_ERROR, state.error)
            upload = state.upload
            if upload is not None and len(state.pending) >= _WRITE_BUFFER:
                data, state.pending = bytes(state.pending), bytearray()
                await run_in_threadpool(upload.write, data)
        if not state.ended:
            raise ApiError(
                400, ErrorCode.VALIDATION_ERROR, "multipart body ended before its closing boundary"
            )
        body = MultipartBody(fields=state.fields)
        upload = state.upload
        if upload is not None:
            if state.pending:
                await run_in_threadpool(upload.write, bytes(state.pending))
                state.pending.clear()
            blob = await run_in_threadpool(upload.commit)
            body.file = FilePart(state.file_name, state.file_filename, state.head, blob)
        return body
    except BaseException:
        # Includes ClientDisconnect and cancellation: the temp object must never outlive the request.
        if state.upload is not None:
            state.upload.abort()
        raise
