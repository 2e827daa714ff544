"""Client settings: constructor arguments first, then ``TRAINHUB_*`` environment variables, then defaults.

See :class:`ClientSettings` for every field and its variable.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from trainhub.client.errors import ConfigError

__all__ = ["DEFAULT_URL", "ClientSettings", "Mode"]

Mode = Literal["online", "offline", "disabled"]
DEFAULT_URL = "http://127.0.0.1:8000"
_MODES: tuple[Mode, ...] = ("online", "offline", "disabled")


def _default_spool_dir() -> Path:
    return Path.home() / ".cache" / "trainhub" / "spool"


@dataclass(frozen=True)
class ClientSettings:
    """Everything the client can be configured with.

    Build it with :meth:`from_env`; an explicit argument wins over the environment variable.

    Attributes:
        url: hub root URL, no trailing slash (``TRAINHUB_URL``, default ``http://127.0.0.1:8000``).
        api_key: API key sent as ``Authorization: Bearer <key>`` (``TRAINHUB_API_KEY``, default none).
        project: project new models go to (``TRAINHUB_PROJECT``; the hub uses ``"default"`` when unset).
        mode: ``online`` sends in the background, ``offline`` only writes the spool (send it later),
            ``disabled`` makes a null session that does nothing (``TRAINHUB_MODE``, default ``online``).
        spool_dir: directory of the per-model spool files ``<model_id>.db``
            (``TRAINHUB_SPOOL_DIR``, default ``~/.cache/trainhub/spool``).
        spool_max_bytes: bound of one spool's payload bytes; when full, usage events are dropped oldest
            first, metrics never (``TRAINHUB_SPOOL_MAX_BYTES``, default 256 MiB).
        events: send anonymous usage events to this hub (``TRAINHUB_EVENTS=0|1``; ``DO_NOT_TRACK=1``
            turns them off; off by default under CI or pytest; see :mod:`trainhub.client.events`).
        heartbeat_interval: seconds between heartbeats (``TRAINHUB_HEARTBEAT_INTERVAL``, default 30).
        rate_limit_metrics: seconds between metric flushes (``TRAINHUB_RATE_LIMIT_METRICS``, default 3).
        rate_limit_ckpt: seconds between mid-run checkpoint uploads (``TRAINHUB_RATE_LIMIT_CKPT``,
            default 900).
        final_timeout: longest wait, seconds, for everything to be delivered after the final checkpoint
            (``TRAINHUB_FINAL_TIMEOUT``, default 120); the rest stays in the spool.
        exit_timeout: longest wait, seconds, at ``close()`` and interpreter exit
            (``TRAINHUB_EXIT_TIMEOUT``, default 5).
        request_timeout: connect/read/write timeout of one HTTP request, seconds
            (``TRAINHUB_REQUEST_TIMEOUT``, default 30).
        retry_deadline: how long one series of retries of the same request runs before the worker
            warns and slows down to one attempt per 30 s; items are never dropped for it
            (``TRAINHUB_RETRY_DEADLINE``, default 300).
        retry_max_delay: longest wait between two attempts of the same request, seconds, unless the
            hub's ``Retry-After`` asks for more (``TRAINHUB_RETRY_MAX_DELAY``, default 30).
    """

    url: str = DEFAULT_URL
    api_key: str | None = None
    project: str | None = None
    mode: Mode = "online"
    spool_dir: Path = dataclasses.field(default_factory=_default_spool_dir)
    spool_max_bytes: int = 256 * 1024**2
    events: bool = False
    heartbeat_interval: float = 30.0
    rate_limit_metrics: float = 3.0
    rate_limit_ckpt: float = 900.0
    final_timeout: float = 120.0
    exit_timeout: float = 5.0
    request_timeout: float = 30.0
    retry_deadline: float = 300.0
    retry_max_delay: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientSettings:
        """Settings from ``overrides`` (``None`` values ignored), then ``environ`` (default ``os.environ``).

        Raises:
            ConfigError: an unknown field, an invalid mode, URL or number.
        """
        from trainhub.client.events import events_enabled  # late: events is optional machinery

        env = os.environ if environ is None else environ
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise ConfigError(f"unknown client settings: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            given = overrides.get(f.name)
            if given is not None:
                values[f.name] = given
                continue
            raw = env.get(f"TRAINHUB_{f.name.upper()}")
            if f.name == "events":
                values["events"] = events_enabled(env)
            elif raw not in (None, ""):
                values[f.name] = raw
        return cls._validated(values)

    def replace(self, **overrides: Any) -> ClientSettings:
        """A copy with ``overrides`` (``None`` values ignored) applied and validated.

        Raises:
            ConfigError: an unknown field or an invalid value.
        """
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(overrides) - names
        if unknown:
            raise ConfigError(f"unknown client settings: {', '.join(sorted(unknown))}")
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return self._validated(values)

    @classmethod
    def _validated(cls, values: dict[str, Any]) -> ClientSettings:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in values:
                continue
            value = values[f.name]
            if value is None:
                continue  # the field's default
            default = f.default if f.default is not dataclasses.MISSING else None
            if isinstance(default, float) or f.name == "spool_max_bytes":
                try:
                    number = float(value)
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"{f.name} must be a number, got {value!r}") from exc
                if not math.isfinite(number) or number < 0:
                    raise ConfigError(f"{f.name} must be a finite number >= 0, got {value!r}")
                out[f.name] = int(number) if f.name == "spool_max_bytes" else number
            elif f.name == "spool_dir":
                out[f.name] = Path(value).expanduser()
            elif f.name == "events":
                out[f.name] = bool(value)
            else:
                out[f.name] = str(value)
        if "mode" in out:
            mode = out["mode"].strip().lower()
            if mode not in _MODES:
                raise ConfigError(f"mode must be one of {', '.join(_MODES)}, got {out['mode']!r}")
            out["mode"] = cast(Mode, mode)
        if "url" in out:
            url = out["url"].strip().rstrip("/")
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"url must start with http:// or https://, got {out['url']!r}")
            out["url"] = url
        return cls(**out)
