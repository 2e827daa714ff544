"""The trainhub wire contract, shared by the client and the server.

Stdlib only: the client imports this module on the training thread's import path, so it must
stay cheap. Everything both sides must agree on lives here: the API prefix and paths, header
names, error codes, model statuses, checkpoint kinds, limits and the JSON payload shapes.

Native REST API (all under :data:`API_PREFIX`, every call needs an API key sent as
``Authorization: Bearer <key>`` or ``x-api-key: <key>``):

========================================================  =====================================
``GET    /health``                                        liveness, no key needed
``GET    /projects``                                      list projects
``POST   /projects``  :class:`ProjectCreate`               create a project (idempotent by name)
``GET    /models[?project=&q=&limit=]``                   list models, newest first
``POST   /models``    :class:`ModelCreate`                 create a model with a server-made id
``PUT    /models/{id}`` :class:`ModelCreate`               create-or-get with a client-made id
``GET    /models/{id}``                                   one model (:class:`ModelOut`)
``POST   /models/{id}/status`` :class:`StatusUpdate`       set the status (done, failed, ...)
``POST   /models/{id}/metrics`` :class:`MetricsBatch`      upsert epochs (a re-sent epoch replaces);
                                                          -> :class:`MetricsReply`
``GET    /models/{id}/metrics``                           every epoch row (:class:`EpochMetrics`)
``GET    /models/{id}/metrics/series?name=``              one metric as ``{"name", "epochs", "values"}``
``GET    /models/{id}/charts[?max_points=1500]``          every metric downsampled (min/max buckets,
                                                          keeps each series' min and max), grouped
                                                          like Ultralytics' plots; ETag / 304
``GET    /models/{id}/charts/series?name=&max_points=``   one metric downsampled
``GET    /compare?ids=&ids=&metric=``                     one metric of several models, their final
                                                          metrics and the train args that differ
``POST   /models/{id}/stop``                              ask the run to stop (next heartbeat reply)
``PUT    /models/{id}/checkpoints/{kind}``                 raw body upload, query ``epoch``,
                                                          ``is_best``, ``map``; headers
                                                          :data:`HEADER_SHA256`, Content-Length
``GET    /models/{id}/checkpoints``                       list (:class:`CheckpointOut`)
``GET    /models/{id}/checkpoints/{kind}/download``       the file
``POST   /models/{id}/heartbeat`` :class:`HeartbeatIn`     -> :class:`HeartbeatOut`
``POST   /models/{id}/uploads`` :class:`UploadCreate`      start a chunked checkpoint upload ->
                                                          :class:`UploadOut` (201; 200 when the
                                                          content is already stored or an open
                                                          session of the same file is resumed)
``GET    /models/{id}/uploads/{upload_id}``               -> :class:`UploadOut` (the parts it has)
``PUT    /models/{id}/uploads/{upload_id}/parts/{n}``     raw body of part ``n`` (1-based),
                                                          Content-Length -> :class:`UploadPartOut`
``POST   /models/{id}/uploads/{upload_id}/complete``      verify size + sha256, make the
                                                          checkpoint visible -> :class:`UploadOut`
``DELETE /models/{id}/uploads/{upload_id}``               abort (204)
``POST   /events``    :class:`EventsBatch`                 anonymous usage events -> :class:`EventsReply`
``GET    /events/summary``                                counts per kind and version
``GET/POST /keys``, ``DELETE /keys/{id}``                  API keys (admin keys only)
========================================================  =====================================

Delivery (see ``docs/delivery.md``): every write is idempotent, so a client may re-send anything it
is not sure arrived. ``PUT /models/{id}`` answers 201 when it created the model and 200 when it
existed; a metrics reply counts the epochs that were already stored (``replaced``); an events reply
counts the events whose ``id`` was already stored (``duplicates``, not stored twice). A key that
sends too fast gets 429 ``rate_limited`` with :data:`HEADER_RETRY_AFTER` (seconds).

Liveness: a model's ``status`` is computed when it is read. A ``training`` model whose last sign of
life (heartbeat, metrics or checkpoint) is older than :data:`STALLED_AFTER_INTERVALS` heartbeat
intervals (the interval the client sent with its last heartbeat, else
:data:`DEFAULT_HEARTBEAT_INTERVAL`) reads as ``stalled``; older than the server's crash timeout, as
``crashed``. Any later sign of life makes it ``training`` again. ``done``, ``failed`` and
``cancelled`` are final.

Chunked uploads (``/uploads``, see ``docs/uploads.md``): part ``n`` covers bytes
``[(n-1)*part_size, n*part_size)``; every part but the last is exactly ``part_size`` bytes. A re-sent
part replaces the stored one. Nothing is visible until ``complete`` has checked the total size and
sha256. A session untouched for :data:`UPLOAD_TTL_SECONDS` is expired (its parts deleted).

Errors are always JSON ``{"error": {"code": <ErrorCode>, "message": <str>}}`` with a 4xx status
(5xx only for real server faults, which are bugs).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Final, NotRequired, TypedDict

__all__ = [
    "API_PREFIX",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_PART_SIZE",
    "HEADER_API_KEY",
    "HEADER_IDEMPOTENCY_KEY",
    "HEADER_RETRY_AFTER",
    "HEADER_SHA256",
    "MAX_CHECKPOINT_BYTES",
    "MAX_EPOCH",
    "MAX_EPOCHS_PER_REQUEST",
    "MAX_EVENTS_PER_REQUEST",
    "MAX_JSON_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_METRICS_PER_EPOCH",
    "MAX_NAME_LENGTH",
    "MAX_PART_SIZE",
    "MAX_UPLOAD_PARTS",
    "MIN_PART_SIZE",
    "MODEL_ID_RE",
    "NAME_RE",
    "STALLED_AFTER_INTERVALS",
    "UPLOAD_TTL_SECONDS",
    "CheckpointKind",
    "CheckpointOut",
    "EpochMetrics",
    "ErrorBody",
    "ErrorCode",
    "EventIn",
    "EventsBatch",
    "EventsReply",
    "HeartbeatIn",
    "HeartbeatOut",
    "MetricsBatch",
    "MetricsReply",
    "ModelCreate",
    "ModelOut",
    "ModelStatus",
    "ProjectCreate",
    "StatusUpdate",
    "UploadCreate",
    "UploadOut",
    "UploadPartOut",
    "checkpoint_path",
    "model_path",
    "upload_path",
]

#: Root of the versioned native REST API.
API_PREFIX: Final = "/api/v1"

#: Header carrying the API key (``Authorization: Bearer`` is accepted as well).
HEADER_API_KEY: Final = "x-api-key"
#: Lowercase hex sha256 of a checkpoint body; the server rejects a mismatch.
HEADER_SHA256: Final = "x-trainhub-sha256"
#: Optional idempotency key of a request (the server also dedupes by content keys).
HEADER_IDEMPOTENCY_KEY: Final = "idempotency-key"
#: Seconds (or an HTTP date) to wait before the next request; sent with 429 and 503.
HEADER_RETRY_AFTER: Final = "retry-after"

#: Longest project, model, metric or key name, in characters.
MAX_NAME_LENGTH: Final = 200
#: Largest epoch (or step) number: the store keeps them in 32-bit integer columns.
MAX_EPOCH: Final = 2**31 - 1
#: Most epochs in one metrics request.
MAX_EPOCHS_PER_REQUEST: Final = 1_000
#: Most metric keys in one epoch.
MAX_METRICS_PER_EPOCH: Final = 1_000
#: Most events in one events request.
MAX_EVENTS_PER_REQUEST: Final = 1_000
#: Largest JSON request body, in bytes.
MAX_JSON_BODY_BYTES: Final = 8 * 1024 * 1024
#: Deepest nesting of arrays and objects in a JSON request body.
MAX_JSON_DEPTH: Final = 64
#: Default largest checkpoint, in bytes (the server setting can change it).
MAX_CHECKPOINT_BYTES: Final = 20 * 1024**3

#: Heartbeat interval, seconds, assumed for a client that does not send its own.
DEFAULT_HEARTBEAT_INTERVAL: Final = 30.0
#: A ``training`` model reads as ``stalled`` after this many heartbeat intervals without a sign of life.
STALLED_AFTER_INTERVALS: Final = 2

#: Part size of a chunked upload when the client has no reason to pick another (8 MiB).
DEFAULT_PART_SIZE: Final = 8 * 1024**2
#: Smallest part size (S3 multipart's minimum, so every storage backend can take it).
MIN_PART_SIZE: Final = 5 * 1024**2
#: Largest part size.
MAX_PART_SIZE: Final = 1024**3
#: Most parts of one upload (S3 multipart's maximum); bigger files need bigger parts.
MAX_UPLOAD_PARTS: Final = 10_000
#: An upload session that received no part (nor a create resuming it) for this long is expired.
UPLOAD_TTL_SECONDS: Final = 24 * 3600

#: Model ids: 1-64 of ``[A-Za-z0-9_-]`` (no ``.`` or ``/``: Ultralytics takes the URL stem as the id).
MODEL_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Project and model names: printable, no control characters, no path separators.
NAME_RE: Final = re.compile(r"^[^\x00-\x1f\x7f/\\]{1,200}$")


class ErrorCode(StrEnum):
    """Stable machine-readable error codes of the native API."""

    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    MODEL_NOT_FOUND = "model_not_found"
    CHECKPOINT_NOT_FOUND = "checkpoint_not_found"
    KEY_NOT_FOUND = "key_not_found"
    USER_NOT_FOUND = "user_not_found"
    TEAM_NOT_FOUND = "team_not_found"
    PROJECT_NOT_FOUND = "project_not_found"
    INVALID_JSON = "invalid_json"
    VALIDATION_ERROR = "validation_error"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    LENGTH_REQUIRED = "length_required"
    SIZE_MISMATCH = "size_mismatch"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    CONFLICT = "conflict"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    RATE_LIMITED = "rate_limited"
    UPLOAD_NOT_FOUND = "upload_not_found"  # unknown, expired or of another model
    UPLOAD_NOT_OPEN = "upload_not_open"  # aborted or failed: start a new session
    PART_OUT_OF_RANGE = "part_out_of_range"
    PARTS_MISSING = "parts_missing"
    INTERNAL_ERROR = "internal_error"


class ModelStatus(StrEnum):
    """Lifecycle of a model (one training run)."""

    NEW = "new"
    TRAINING = "training"
    STALLED = "stalled"
    CRASHED = "crashed"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class CheckpointKind(StrEnum):
    """Which checkpoint slot an upload fills. ``final`` marks the model done."""

    LAST = "last"
    BEST = "best"
    FINAL = "final"


class ErrorBody(TypedDict):
    """``{"error": ErrorBody}`` is the body of every error reply."""

    code: str
    message: str


class ProjectCreate(TypedDict):
    name: str


class ModelCreate(TypedDict):
    """Body of ``POST /models`` and ``PUT /models/{id}``."""

    name: str
    project: NotRequired[str]  # default project "default"
    config: NotRequired[dict[str, Any]]  # train args, JSON-able
    epochs: NotRequired[int | None]  # planned number of epochs, if known
    task: NotRequired[str | None]


class ModelOut(TypedDict):
    id: str
    name: str
    project: str
    status: str  # a ModelStatus value
    config: dict[str, Any]
    epochs: int | None
    task: str | None
    created_at: str  # ISO 8601 UTC
    updated_at: str
    last_heartbeat_at: str | None
    agent: str | None
    last_epoch: int | None
    best_metrics: dict[str, float | None]
    final_metrics: dict[str, float | None]
    stop_requested: bool
    url: str  # web page of the model


class StatusUpdate(TypedDict):
    """At least one of the two: a new status, and/or the metrics of the run's final evaluation."""

    status: NotRequired[str]  # a ModelStatus value
    final_metrics: NotRequired[dict[str, float | None]]


class EpochMetrics(TypedDict):
    """One epoch. Values are floats or ``None`` (non-finite values are sent as ``None``)."""

    epoch: int
    metrics: dict[str, float | None]


class MetricsBatch(TypedDict):
    epochs: list[EpochMetrics]


class MetricsReply(TypedDict):
    """Reply of ``POST /models/{id}/metrics``."""

    epochs: int  # distinct epochs in the request
    points: int  # (epoch, name) values written
    replaced: int  # of those epochs, how many the server already had (a re-send)


class CheckpointOut(TypedDict):
    kind: str  # a CheckpointKind value
    epoch: int | None
    is_best: bool
    map: float | None
    size: int
    sha256: str
    created_at: str
    download_url: str  # relative to the hub root


class UploadCreate(TypedDict):
    """Body of ``POST /models/{id}/uploads``: the whole file, described before any byte is sent."""

    kind: str  # a CheckpointKind value
    size: int  # bytes, at least 1
    sha256: str  # lowercase hex of the whole file
    part_size: NotRequired[int]  # default DEFAULT_PART_SIZE; MIN_PART_SIZE..MAX_PART_SIZE
    epoch: NotRequired[int | None]
    is_best: NotRequired[bool]
    map: NotRequired[float | None]


class UploadOut(TypedDict):
    """An upload session. ``state``: ``open`` -> ``complete`` | ``aborted`` | ``failed``."""

    upload_id: str
    state: str
    kind: str
    size: int
    sha256: str
    part_size: int
    part_count: int
    parts: list[int]  # part numbers the server has, ascending (empty once complete)
    bytes_received: int  # every part byte received so far, re-sent ones included (diagnostics)
    already_present: bool  # complete at create: the content was stored already, nothing to send
    expires_at: str  # ISO 8601 UTC; every part received (or a create resuming it) pushes it back
    checkpoint: CheckpointOut | None  # once complete


class UploadPartOut(TypedDict):
    number: int
    size: int


class HeartbeatIn(TypedDict):
    agent: str  # e.g. "python-3.11.7-linux"; never a host name
    agent_id: NotRequired[str | None]  # echo of the id the server returned last time
    interval: NotRequired[float | None]  # seconds until the next heartbeat (liveness uses it)


class HeartbeatOut(TypedDict):
    agent_id: str
    status: str
    stop_requested: bool


class EventIn(TypedDict):
    """An anonymous usage event. See :mod:`trainhub.client.events` for every field."""

    kind: str  # "train" | "val" | "predict" | "export"
    install_id: str
    id: NotRequired[str]  # random, unique per event: the server stores each id once
    task: NotRequired[str | None]
    mode: NotRequired[str | None]
    versions: NotRequired[dict[str, str]]
    ts: NotRequired[float]


class EventsBatch(TypedDict):
    events: list[EventIn]


class EventsReply(TypedDict):
    """Reply of ``POST /events``."""

    accepted: int  # events stored now
    duplicates: int  # events whose id was already stored (not stored again)


def model_path(model_id: str) -> str:
    """API path of a model."""
    return f"{API_PREFIX}/models/{model_id}"


def checkpoint_path(model_id: str, kind: str) -> str:
    """API path of a model's checkpoint slot."""
    return f"{API_PREFIX}/models/{model_id}/checkpoints/{kind}"


def upload_path(model_id: str, upload_id: str | None = None) -> str:
    """API path of a model's upload sessions, or of one session."""
    base = f"{API_PREFIX}/models/{model_id}/uploads"
    return base if upload_id is None else f"{base}/{upload_id}"
