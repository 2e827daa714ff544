"""Pure conversions between the Ultralytics wire shapes and trainhub's own (no I/O).

* metric values: lenient (JSON strings with ``NaN``/``Infinity``, numbers as strings, nulls);
  non-finite values become None, anything non-numeric is dropped;
* train args: HUB ``train_args`` must hold only keys Ultralytics accepts (it raises on unknown
  ones) and never ``project`` (which would switch on the Platform callbacks in 8.4.x);
* Platform ``trainArgs`` arrive with every value ``str()``-ed; simple literals are turned back.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "HUB_TRAIN_ARG_KEYS",
    "coerce_literal",
    "hub_train_args",
    "is_final_eval",
    "metric_dict",
    "metric_value",
    "parse_json_lenient",
    "slugify",
    "split_platform_project",
]

#: Train and hyperparameter keys of Ultralytics' ``default.yaml`` (8.4.114 and 8.4.190 agree) that a
#: HUB ``train_args`` may carry. ``data`` is set by the server; ``project``, ``name``, ``model``,
#: ``resume`` and ``mode`` never go out.
HUB_TRAIN_ARG_KEYS = frozenset(
    [
        "task",
        "epochs",
        "time",
        "patience",
        "batch",
        "imgsz",
        "save",
        "save_period",
        "cache",
        "device",
        "workers",
        "exist_ok",
        "pretrained",
        "optimizer",
        "verbose",
        "seed",
        "deterministic",
        "single_cls",
        "rect",
        "cos_lr",
        "close_mosaic",
        "amp",
        "fraction",
        "profile",
        "freeze",
        "multi_scale",
        "compile",
        "overlap_mask",
        "mask_ratio",
        "dropout",
        "val",
        "split",
        "save_json",
        "conf",
        "iou",
        "max_det",
        "plots",
        "lr0",
        "lrf",
        "momentum",
        "weight_decay",
        "warmup_epochs",
        "warmup_momentum",
        "warmup_bias_lr",
        "box",
        "cls",
        "dfl",
        "pose",
        "kobj",
        "nbs",
        "hsv_h",
        "hsv_s",
        "hsv_v",
        "degrees",
        "translate",
        "scale",
        "shear",
        "perspective",
        "flipud",
        "fliplr",
        "bgr",
        "mosaic",
        "mixup",
        "cutmix",
        "copy_paste",
        "copy_paste_mode",
        "auto_augment",
        "erasing",
        "classes",
    ]
)
_LITERALS = {"True": True, "False": False, "None": None, "true": True, "false": False, "null": None}
_NUMBER_RE = re.compile(r"^-?\d+(\.\d*)?([eE][-+]?\d+)?$")


def parse_json_lenient(raw: bytes | str) -> Any:
    """JSON with the ``NaN``/``Infinity``/``-Infinity`` tokens Python's ``json.dumps`` writes.

    Raises:
        ValueError: not JSON.
    """
    return json.loads(raw)


def metric_value(value: Any) -> tuple[bool, float | None]:
    """``(keep, value)``: floats (and numeric strings) kept, non-finite as None, others dropped."""
    if isinstance(value, bool):
        return False, None
    if value is None:
        return True, None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return False, None
    else:
        return False, None
    return True, (number if math.isfinite(number) else None)


def metric_dict(raw: Any) -> dict[str, float | None]:
    """A flat ``{name: value}`` from a dict or a JSON string of one; other shapes give ``{}``."""
    if isinstance(raw, str):
        try:
            raw = parse_json_lenient(raw)
        except ValueError:
            return {}
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, float | None] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name or len(name) > 200:
            continue
        keep, number = metric_value(value)
        if keep:
            out[name] = number
    return out


def is_final_eval(
    epoch: int, metrics: Mapping[str, Any], *, planned_epochs: int | None, validated_before: bool
) -> bool:
    """Whether an epoch report is the trainer's final evaluation of best.pt (quirk 2).

    Ultralytics re-runs the epoch-end callbacks after training with ``epoch = last + 1``: that is
    ``epochs`` for a complete run, less for a cancelled or early-stopped one. That report has no
    ``val/*`` losses, while the run's validated epochs have them.
    """
    if planned_epochs is not None and epoch >= planned_epochs:
        return True
    has_val = any(k.startswith("val/") for k in metrics)
    has_metrics = any(k.startswith("metrics/") for k in metrics)
    return validated_before and has_metrics and not has_val and epoch > 0


def coerce_literal(value: Any) -> Any:
    """``"True"`` -> True, ``"64"`` -> 64, ``"0.01"`` -> 0.01, ``"None"`` -> None; else unchanged."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text in _LITERALS:
        return _LITERALS[text]
    if _NUMBER_RE.match(text):
        try:
            number = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return value
        return number if isinstance(number, int | float) else value
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return value
        return parsed if isinstance(parsed, list) else value
    return value


def hub_train_args(config: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a model config that may go into a HUB ``train_args`` (literals coerced)."""
    return {k: coerce_literal(v) for k, v in config.items() if k in HUB_TRAIN_ARG_KEYS}


def slugify(text: str) -> str:
    """Ultralytics' Platform slug: lower case, ``[a-z0-9 -]`` only, spaces to ``-``, ≤ 128 chars."""
    text = re.sub(r"[^a-z0-9 -]", "", text.lower())
    text = re.sub(r"-+", "-", text.replace(" ", "-")).strip("-")
    return text[:128]


def split_platform_project(project: str) -> tuple[str | None, str]:
    """``"owner/proj"`` -> ``("owner", "proj")``; ``"proj"`` -> ``(None, "proj")``.

    trainhub project names cannot hold ``/`` and are unique on the hub, so the owner is kept aside
    (who owns the project is the trainhub user of the key, see :mod:`trainhub.server.access`).
    """
    owner, sep, rest = project.partition("/")
    if not sep:
        return None, project.replace("\\", "-") or "default"
    return owner or None, rest.replace("/", "-").replace("\\", "-") or "default"
