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
``POST   /models/{id}/metrics`` :class:`MetricsBatch`      upsert epochs (a re-sent epoch replaces)
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
``POST   /events``    :class:`EventsBatch`                 anonymous usage events
``GET    /events/summary``                                counts per kind and version
``GET/POST /keys``, ``DELETE /keys/{id}``                  API keys (admin keys only)
========================================================  =====================================

Errors are always JSON ``{"error": {"code": <ErrorCode>, "message": <str>}}`` with a 4xx status
(5xx only for real server faults, which are bugs).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Final, NotRequired, TypedDict

__all__ = [
    "API_PREFIX",
    "HEADER_API_KEY",
    "HEADER_IDEMPOTENCY_KEY",
    "HEADER_RETRY_AFTER",
    "HEADER_SHA256",
    "MAX_CHECKPOINT_BYTES",
    "MAX_EPOCHS_PER_REQUEST",
    "MAX_EVENTS_PER_REQUEST",
    "MAX_JSON_BODY_BYTES",
    "MAX_METRICS_PER_EPOCH",
    "MAX_NAME_LENGTH",
    "MODEL_ID_RE",
    "NAME_RE",
    "CheckpointKind",
    "CheckpointOut",
    "EpochMetrics",
    "ErrorBody",
    "ErrorCode",
    "EventIn",
    "EventsBatch",
    "HeartbeatIn",
    "HeartbeatOut",
    "MetricsBatch",
    "ModelCreate",
    "ModelOut",
    "ModelStatus",
    "ProjectCreate",
    "StatusUpdate",
    "checkpoint_path",
    "model_path",
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
#: Most epochs in one metrics request.
MAX_EPOCHS_PER_REQUEST: Final = 1_000
#: Most metric keys in one epoch.
MAX_METRICS_PER_EPOCH: Final = 1_000
#: Most events in one events request.
MAX_EVENTS_PER_REQUEST: Final = 1_000
#: Largest JSON request body, in bytes.
MAX_JSON_BODY_BYTES: Final = 8 * 1024 * 1024
#: Default largest checkpoint, in bytes (the server setting can change it).
MAX_CHECKPOINT_BYTES: Final = 20 * 1024**3

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
    INVALID_JSON = "invalid_json"
    VALIDATION_ERROR = "validation_error"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    LENGTH_REQUIRED = "length_required"
    SIZE_MISMATCH = "size_mismatch"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    CONFLICT = "conflict"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    RATE_LIMITED = "rate_limited"
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


class CheckpointOut(TypedDict):
    kind: str  # a CheckpointKind value
    epoch: int | None
    is_best: bool
    map: float | None
    size: int
    sha256: str
    created_at: str
    download_url: str  # relative to the hub root


class HeartbeatIn(TypedDict):
    agent: str  # e.g. "python-3.11.7-linux"; never a host name
    agent_id: NotRequired[str | None]  # echo of the id the server returned last time


class HeartbeatOut(TypedDict):
    agent_id: str
    status: str
    stop_requested: bool


class EventIn(TypedDict):
    """An anonymous usage event. See :mod:`trainhub.client.events` for every field."""

    kind: str  # "train" | "val" | "predict" | "export"
    install_id: str
    task: NotRequired[str | None]
    mode: NotRequired[str | None]
    versions: NotRequired[dict[str, str]]
    ts: NotRequired[float]


class EventsBatch(TypedDict):
    events: list[EventIn]


def model_path(model_id: str) -> str:
    """API path of a model."""
    return f"{API_PREFIX}/models/{model_id}"


def checkpoint_path(model_id: str, kind: str) -> str:
    """API path of a model's checkpoint slot."""
    return f"{API_PREFIX}/models/{model_id}/checkpoints/{kind}"
