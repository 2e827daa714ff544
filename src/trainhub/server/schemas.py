"""Pydantic models of request and response bodies, mirroring the TypedDicts of
:mod:`trainhub.protocol` (which stays stdlib-only for the client).

Metric values are floats or null. Clients send non-finite values as null; for leniency the
server also accepts the JSON extensions ``NaN``, ``Infinity`` and ``-Infinity`` (Python's JSON
parser reads them) and stores every non-finite value as null. Unknown fields are ignored so
newer clients keep working with an older server.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from trainhub.protocol import MAX_EPOCH, MAX_NAME_LENGTH, MODEL_ID_RE, NAME_RE, ModelStatus

__all__ = [
    "RAW_BODY_MODELS",
    "CheckpointOutSchema",
    "EpochMetricsIn",
    "EventIn",
    "EventsBatchIn",
    "HeartbeatInSchema",
    "HeartbeatOutSchema",
    "KeyCreateIn",
    "MetricValue",
    "MetricsBatchIn",
    "ModelCreateIn",
    "ModelOutSchema",
    "ProjectCreateIn",
    "StatusUpdateIn",
    "check_model_id",
    "finite_or_none",
]


def finite_or_none(value: float | None) -> float | None:
    """NaN and +-inf become None (JSON has no portable spelling for them)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(f"must be 1-{MAX_NAME_LENGTH} characters without control characters, '/' or '\\'")
    return value


#: One regex search instead of a Python loop over the characters: every metric name of every
#: batch passes here (1,000 per full request).
_CONTROL_CHAR = re.compile("[\x00-\x1f\x7f]")


def _check_label(value: str) -> str:
    if _CONTROL_CHAR.search(value):
        raise ValueError("must not contain control characters")
    return value


def check_model_id(value: str) -> str:
    """Raise ValueError unless ``value`` matches :data:`trainhub.protocol.MODEL_ID_RE`."""
    if not MODEL_ID_RE.match(value):
        raise ValueError("model id must be 1-64 characters of [A-Za-z0-9_-]")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
#: Metric names may contain "/" ("metrics/mAP50(B)"), but no control characters.
MetricName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(_check_label)]
Label = Annotated[str, Field(max_length=MAX_NAME_LENGTH), AfterValidator(_check_label)]
#: A float (ints accepted, bools and strings refused) or null; non-finite values become null.
MetricValue = Annotated[float | None, Field(strict=True), AfterValidator(finite_or_none)]


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ProjectCreateIn(_In):
    """Body of ``POST /projects``."""

    name: Name
    #: The team that owns the new project (the caller must be in it); else the caller's user.
    team: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class ModelCreateIn(_In):
    """Body of ``POST /models`` and ``PUT /models/{id}``."""

    name: Name
    #: None or ``"default"``: the caller's default project (``default`` for admin users, else
    #: the project named after the user).
    project: Name | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    epochs: int | None = Field(default=None, ge=0, le=MAX_EPOCH, strict=True)
    task: Label | None = None


class StatusUpdateIn(_In):
    """Body of ``POST /models/{id}/status``."""

    status: ModelStatus | None = None
    final_metrics: dict[MetricName, MetricValue] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> StatusUpdateIn:
        if self.status is None and self.final_metrics is None:
            raise ValueError("give a status, final_metrics or both")
        return self


class EpochMetricsIn(_In):
    """One epoch of metrics."""

    epoch: int = Field(ge=0, le=MAX_EPOCH, strict=True)
    metrics: dict[MetricName, MetricValue]


class MetricsBatchIn(_In):
    """Body of ``POST /models/{id}/metrics``."""

    epochs: list[EpochMetricsIn]


#: Request bodies that routes parse themselves but document in the OpenAPI schema by name.
RAW_BODY_MODELS: tuple[type[BaseModel], ...] = (MetricsBatchIn,)


class HeartbeatInSchema(_In):
    """Body of ``POST /models/{id}/heartbeat``."""

    agent: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(_check_label)]
    agent_id: Label | None = None
    #: Seconds until the client's next heartbeat (liveness: ``stalled`` after two missed ones).
    interval: Annotated[float, Field(gt=0, le=86_400)] | None = None


class HeartbeatOutSchema(BaseModel):
    """Reply of ``POST /models/{id}/heartbeat``."""

    agent_id: str
    status: str
    stop_requested: bool


class EventIn(_In):
    """One anonymous usage event."""

    kind: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_label)]
    #: Client-made id of the event; stored once (a re-sent event is a duplicate, not a new event).
    id: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_label)] | None = None
    install_id: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(_check_label)]
    task: Label | None = None
    mode: Label | None = None
    versions: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=64)]] = Field(
        default_factory=dict
    )
    ts: float | None = None


class EventsBatchIn(_In):
    """Body of ``POST /events``."""

    events: list[EventIn]


class KeyCreateIn(_In):
    """Body of ``POST /keys``."""

    name: Label = ""
    is_admin: bool = False
    #: A read-only key may only GET/HEAD, on every API (403 ``forbidden`` otherwise).
    read_only: bool = False
    #: The user the key acts for (id or name); default: the caller's user.
    user: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    #: The only projects the key may write to (default: all its user may).
    projects: Annotated[list[Name], Field(max_length=100)] | None = None


class UserCreateIn(_In):
    """Body of ``POST /users``."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=8, max_length=1024)] | None = None
    is_admin: bool = False


class TeamCreateIn(_In):
    """Body of ``POST /teams``."""

    name: Annotated[str, Field(min_length=1, max_length=64)]


class ModelOutSchema(BaseModel):
    """A model as returned by the API (:class:`trainhub.protocol.ModelOut`)."""

    id: str
    name: str
    project: str
    status: str
    config: dict[str, Any]
    epochs: int | None
    task: str | None
    created_at: str
    updated_at: str
    last_heartbeat_at: str | None
    agent: str | None
    last_epoch: int | None
    best_metrics: dict[str, float | None]
    final_metrics: dict[str, float | None]
    stop_requested: bool
    url: str


class CheckpointOutSchema(BaseModel):
    """A checkpoint slot (:class:`trainhub.protocol.CheckpointOut`)."""

    kind: str
    epoch: int | None
    is_best: bool
    map: float | None
    size: int
    sha256: str
    created_at: str
    download_url: str
