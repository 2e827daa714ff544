"""Wire payloads from user input: metrics as finite floats or None, configs as JSON, model URLs parsed."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from trainhub.client.errors import ConfigError
from trainhub.protocol import MODEL_ID_RE

__all__ = ["clean_metrics", "jsonable", "parse_model_url"]


def parse_model_url(model_url: str) -> tuple[str, str]:
    """``(hub root, model id)`` of ``<hub>/models/<id>``.

    Raises:
        ConfigError: not a model URL, or an invalid id.
    """
    import urllib.parse

    parts = urllib.parse.urlsplit(model_url.strip())
    segments = parts.path.rstrip("/").split("/")
    if len(segments) < 2 or segments[-2] != "models" or not MODEL_ID_RE.match(segments[-1]):
        raise ConfigError(f"not a model URL (<hub>/models/<id>): {model_url!r}")
    prefix = "/".join(segments[:-2])
    return f"{parts.scheme}://{parts.netloc}{prefix}", segments[-1]


def _finite(value: Any) -> float | None:
    # float() also takes numpy scalars and 0-d tensors, which is what trainers hand over.
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def clean_metrics(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """Metric values as floats; non-finite and non-numeric values become None."""
    return {str(k): _finite(v) for k, v in metrics.items()}


def jsonable(value: Any) -> Any:
    """``value`` with paths and unknown objects as strings, non-finite floats as None."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)
