"""``HubSession``: the user-facing session of one training run (one hub model).

The fields and methods of the seed (ultralytics' ``HUBTrainingSession`` as used by
``ultralytics/utils/callbacks/hub.py``) keep their names and meaning: ``rate_limits``, ``timers``,
``metrics_queue``, ``model_id``, ``model_url``, ``alive``, ``upload_metrics()`` and
``upload_model(epoch, weights, is_best=False, map=0.0, final=False)``.

Every call on the training thread writes to the spool and returns: no network, no fsync (the spool's
fsync thread makes each epoch's metrics durable against a power loss moments later; a commit already
survives the death of the process), a fraction of a millisecond, and it never raises (an internal
error is logged once). The one deliberate wait is ``upload_model(final=True)``: it waits up to
``final_timeout`` seconds for everything to reach the hub, with a progress bar, then says where
whatever is left is kept. ``close()`` (also run at interpreter exit) waits at most ``exit_timeout``.

Modes (``TRAINHUB_MODE``): ``online`` (worker + heartbeat threads), ``offline`` (spool only; send it
later), ``disabled`` (:func:`start_session` returns a :class:`NullSession`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec

from trainhub.client.errors import ConfigError, SpoolError, TrainhubError
from trainhub.client.guard import guarded, reraising
from trainhub.client.nullsession import NullSession
from trainhub.client.payloads import clean_metrics, jsonable, parse_model_url
from trainhub.client.ratelimit import RateLimiter
from trainhub.client.settings import ClientSettings
from trainhub.protocol import MODEL_ID_RE, ModelCreate

if TYPE_CHECKING:
    # Imported when a session is made, not by `import trainhub` (sqlite3, threads, httpx wrappers).
    from trainhub.client.heartbeat import Heartbeat
    from trainhub.client.retry import RetryPolicy
    from trainhub.client.spool import Spool
    from trainhub.client.transport import Transport
    from trainhub.client.worker import Worker

__all__ = ["HubSession", "start_session"]

log = logging.getLogger("trainhub")
P = ParamSpec("P")


class HubSession:
    """One training run streamed to a hub. Prefer :func:`start_session`, which honours ``disabled``.

    Args:
        url: hub root URL (else the root of ``model_url``, else ``TRAINHUB_URL``).
        api_key: API key (else ``TRAINHUB_API_KEY``).
        project: project of a new model (else ``TRAINHUB_PROJECT``, else the hub's default).
        name: name of a new model (default: its id).
        model_id: continue this model (20 hex made here when neither it nor ``model_url`` is given).
        model_url: ``<hub>/models/<id>``; the id (and the hub root, if ``url`` is not given) come from it.
        config: training arguments, stored with the model (made JSON-able: paths and unknown objects
            become strings, non-finite floats None).
        epochs: planned number of epochs.
        task: ``detect``, ``segment``...
        rate_limits: overrides of ``{"metrics": 3.0, "ckpt": 900.0, "heartbeat": 30.0}`` seconds.
        clock: monotonic clock of ``timers`` and the rate limits.
        spool_dir: directory of the spool files (else ``TRAINHUB_SPOOL_DIR``).
        settings: base settings (default: from the environment); the arguments above override them.
        mode: ``online`` or ``offline`` (else ``TRAINHUB_MODE``).
        http_transport: an ``httpx.BaseTransport`` (``httpx.MockTransport`` in tests).
        retry_policy: retry policy of the worker (default: ``RetryPolicy(deadline=retry_deadline)``).
        wait: the worker's ``wait(seconds) -> stop`` (tests inject one that does not sleep).

    Raises:
        ConfigError: invalid settings, model id or model URL, or ``mode="disabled"`` (use
            :func:`start_session` to get a :class:`NullSession` then).
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        project: str | None = None,
        name: str | None = None,
        model_id: str | None = None,
        model_url: str | None = None,
        config: Mapping[str, Any] | None = None,
        epochs: int | None = None,
        task: str | None = None,
        rate_limits: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        spool_dir: str | Path | None = None,
        settings: ClientSettings | None = None,
        mode: str | None = None,
        http_transport: Any = None,
        retry_policy: RetryPolicy | None = None,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        import secrets

        from trainhub.client.events import EventRecorder
        from trainhub.client.heartbeat import Heartbeat
        from trainhub.client.retry import RetryPolicy
        from trainhub.client.transport import Transport
        from trainhub.client.worker import Worker

        if model_url is not None:
            root, parsed_id = parse_model_url(model_url)
            url = url or root
            model_id = model_id or parsed_id
        overrides: dict[str, Any] = {
            "url": url,
            "api_key": api_key,
            "project": project,
            "spool_dir": spool_dir,
            "mode": mode,
        }
        s = settings.replace(**overrides) if settings else ClientSettings.from_env(**overrides)
        if s.mode == "disabled":
            raise ConfigError("mode is 'disabled': use trainhub.start_session() to get a NullSession")
        if model_id is not None and not MODEL_ID_RE.match(model_id):
            raise ConfigError(f"invalid model id {model_id!r}: 1-64 of [A-Za-z0-9_-]")
        self.settings = s
        self.model_id: str = model_id or secrets.token_hex(10)
        self.model_url = f"{s.url}/models/{self.model_id}"
        self.clock = clock
        self._limiter = RateLimiter(
            {
                "metrics": s.rate_limit_metrics,
                "ckpt": s.rate_limit_ckpt,
                "heartbeat": s.heartbeat_interval,
                **(rate_limits or {}),
            },
            clock,
        )
        #: Epoch -> JSON of that epoch's metrics, not yet released (the seed's field; the callback may
        #: also write to it and reset it after ``upload_metrics()``).
        self.metrics_queue: dict[int, str] = {}
        #: The seed merges this into ``metrics_queue``; always empty here, the spool retries instead.
        self.metrics_upload_failed_queue: dict[int, str] = {}
        self._spooled: dict[int, str] = {}  # epoch -> JSON already in the spool
        self._closed = False
        self._pid = os.getpid()

        self.spool = self._open_spool(s)
        self.spool.set_meta("model_id", self.model_id)
        self.spool.set_meta("url", s.url)
        self._events = EventRecorder(s.events, id_dir=s.spool_dir, clock=clock)
        self.transport: Transport | None = None
        self.worker: Worker | None = None
        self.heartbeat: Heartbeat | None = None
        if s.mode == "online":
            self.transport = Transport(s.url, s.api_key, timeout=s.request_timeout, transport=http_transport)
            self.transport.preload()  # before training starts, not on the worker during the first epochs
            policy = retry_policy or RetryPolicy(deadline=s.retry_deadline, cap=s.retry_max_delay)
            self.worker = Worker(self.spool, self.transport, self.model_id, policy=policy, wait=wait)
            self.heartbeat = Heartbeat(
                self.transport, self.model_id, self.rate_limits["heartbeat"], ready=self.worker.model_ready
            )

        body: ModelCreate = {"name": name or self.model_id, "config": jsonable(dict(config or {}))}
        if s.project:
            body["project"] = s.project
        if epochs is not None:
            body["epochs"] = int(epochs)
        if task is not None:
            body["task"] = task
        # replace=False: a model item an earlier process of this model left unsent carries the run's
        # real name and config; a process recovering the run must not overwrite it.
        self._put("model", body, key="model", durable=True, replace=False)
        if self.heartbeat is not None:
            self.heartbeat.start()
        atexit.register(self._atexit)

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> HubSession | NullSession:
        """Same as :func:`start_session`."""
        return start_session(*args, **kwargs)

    def _open_spool(self, s: ClientSettings) -> Spool:
        from trainhub.client.spool import MEMORY, OwnerLock, Spool

        path = Spool.model_path(s.spool_dir, self.model_id)
        # Tells `trainhub sync` that a live process owns this spool (it skips it); released by the OS
        # when this process dies, however it dies. Not holding it (another live process of the same
        # model) is no reason to lose data: open the spool anyway, the hub drops replays.
        self._owner_lock = OwnerLock.acquire(path)
        try:
            return Spool(path, max_bytes=s.spool_max_bytes)
        except SpoolError as exc:
            log.warning("trainhub: %s; keeping this run's data in memory only", exc)
            return Spool(MEMORY, max_bytes=s.spool_max_bytes)

    # -- the seed's fields -------------------------------------------------------------------------

    @property
    def rate_limits(self) -> dict[str, float]:
        """Seconds between flushes per category: ``metrics``, ``ckpt``, ``heartbeat``."""
        return self._limiter.limits

    @rate_limits.setter
    def rate_limits(self, value: Mapping[str, float]) -> None:
        self._limiter.limits = dict(value)

    @property
    def timers(self) -> dict[str, float]:
        """Clock reading (``self.clock``) of the last flush per category; the seed's callbacks set it."""
        return self._limiter.timers

    @timers.setter
    def timers(self, value: Mapping[str, float]) -> None:
        self._limiter.timers = dict(value)

    @property
    def limiter(self) -> RateLimiter:
        """The :class:`RateLimiter` behind ``rate_limits`` and ``timers``."""
        return self._limiter

    @property
    def alive(self) -> bool:
        """Whether heartbeats are sent; setting False stops them at once (the seed sets it at the end)."""
        return self.heartbeat is not None and self.heartbeat.running

    @alive.setter
    def alive(self, value: bool) -> None:
        if self.heartbeat is None:
            return
        if value and not self._closed:
            self.heartbeat.start()
        else:
            self.heartbeat.stop()

    @property
    def stop_requested(self) -> bool:
        """Whether the hub asked this run to stop (from the last heartbeat reply)."""
        return self.heartbeat is not None and self.heartbeat.stop_requested

    @property
    def stats(self) -> dict[str, Any]:
        """Spool contents and drops, worker counters, heartbeats and dropped events."""
        return {
            "model_id": self.model_id,
            "mode": self.settings.mode,
            "spool": self.spool.stats() if not self._closed else {"path": self.spool.path},
            "worker": self.worker.stats() if self.worker else {},
            "heartbeats": self.heartbeat.beats if self.heartbeat else 0,
            "events_dropped": dict(self._events.dropped),
        }

    # -- training-thread API: spool and return -----------------------------------------------------

    def _put(self, category: str, payload: Any, **kwargs: Any) -> None:
        self.spool.put(category, payload, **kwargs)
        if self.worker is not None and not kwargs.get("held"):
            self.worker.ensure_started()
            self.worker.wake()

    @guarded(None)
    def queue_metrics(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Spool one epoch's metrics, held until :meth:`upload_metrics`; non-finite -> None.

        Committed before it returns (safe from a crash of the process); the fsync that makes it safe
        from a power loss too is done by the spool's fsync thread, not this one."""
        clean = clean_metrics(metrics)
        text = json.dumps(clean)
        epoch = int(epoch)
        self.metrics_queue[epoch] = text
        self._spooled[epoch] = text
        payload = {"epoch": epoch, "metrics": clean}
        self._put("metrics", payload, key=f"metrics:{epoch}", held=True)
        self.spool.sync_soon()

    @guarded(None)
    def upload_metrics(self) -> None:
        """Release the queued epochs to the worker (epochs written straight into ``metrics_queue`` too)."""
        for epoch, text in list(self.metrics_queue.items()):
            if self._spooled.get(int(epoch)) != text:
                clean = clean_metrics(json.loads(text))
                self._put(
                    "metrics", {"epoch": int(epoch), "metrics": clean}, key=f"metrics:{int(epoch)}", held=True
                )
                self._spooled[int(epoch)] = text
        if self.spool.release("metrics") and self.worker is not None:
            self.worker.ensure_started()
            self.worker.wake()

    @guarded(None)
    def upload_model(
        self, epoch: int, weights: str | Path, is_best: bool = False, map: float = 0.0, final: bool = False
    ) -> None:
        """Spool a checkpoint upload (the file is read later, by the worker).

        A mid-run checkpoint goes to the ``last`` slot (``is_best`` also points ``best`` at it) and
        replaces an older one not sent yet. ``final=True`` fills the ``final`` slot (the hub marks the
        model done), then waits up to ``final_timeout`` for everything pending to be delivered.
        """
        path = Path(weights).resolve()
        if not path.is_file():
            log.warning("trainhub: checkpoint %s not found, not uploaded", path)
        else:
            kind = "final" if final else "last"
            mapv = float(map) if map is not None and math.isfinite(float(map)) else 0.0
            payload = {
                "path": str(path),
                "kind": kind,
                "epoch": int(epoch),
                "is_best": bool(is_best),
                "map": mapv,
            }
            # The commit survives a kill -9 (WAL, synchronous=NORMAL); only a power loss could take it,
            # and the next epoch's fsync (on the spool's fsync thread) makes it durable: the file it
            # points at (torch.save) is not fsynced either. The final one is fsynced at once.
            self._put("checkpoint", payload, key=f"checkpoint:{kind}", durable=final)
        if final:
            if self.heartbeat is not None:
                self.heartbeat.stop()  # finishing stops heartbeats at once: the run is over
            self._final_flush()

    def _final_flush(self) -> None:
        self.upload_metrics()
        if self.worker is None:
            log.info(
                "trainhub: offline mode: %d items kept in %s; send them with `trainhub sync`",
                self.spool.pending(include_held=True),
                self.spool.path,
            )
            return
        if not self.worker.flush(self.settings.final_timeout, progress=True):
            log.warning(
                "trainhub: could not reach the hub at %s within %.0f s; %d items not sent are kept "
                "in %s and will be retried",
                self.settings.url,
                self.settings.final_timeout,
                self.spool.pending(),
                self.spool.path,
            )

    @guarded(None)
    def set_final_metrics(self, metrics: Mapping[str, float], *, status: str | None = None) -> None:
        """Spool the metrics of the final evaluation as the model's ``final_metrics``.

        The status is left alone unless given: the final checkpoint upload marks the model done.
        """
        payload: dict[str, Any] = {"final_metrics": clean_metrics(metrics)}
        if status is not None:
            payload["status"] = str(status)
        self._put("status", payload, key="status:final", durable=True)

    @guarded(None)
    def set_status(self, status: str) -> None:
        """Spool a status change (``failed``, ``cancelled``, ``done``...)."""
        self._put("status", {"status": str(status)}, key="status", durable=True)

    @guarded(None)
    def send_event(self, kind: str, task: str | None = None, mode: str | None = None) -> None:
        """Spool an anonymous usage event if events are on (see :mod:`trainhub.client.events`)."""
        event = self._events.make(kind, task, mode)
        if event is not None:
            self._put("event", event, key=f"event:{event.get('id')}")

    # -- waiting and closing -----------------------------------------------------------------------

    @guarded(False)
    def flush(self, timeout: float | None = None, progress: bool = False) -> bool:
        """Release held metrics and wait until everything is delivered, at most ``timeout`` seconds
        (default ``final_timeout``); whether nothing is left. Offline: whether the spool is empty."""
        self.upload_metrics()
        if self.worker is None:
            return self.spool.pending() == 0
        return self.worker.flush(self.settings.final_timeout if timeout is None else timeout, progress)

    @guarded(None)
    def close(self, timeout: float | None = None) -> None:
        """Stop heartbeats, flush for at most ``timeout`` (default ``exit_timeout``) seconds, stop the
        worker, and say how many items are left and where. Idempotent."""
        if self._closed or self._pid != os.getpid():
            return
        atexit.unregister(self._atexit)
        if self.heartbeat is not None:
            self.heartbeat.stop()
        ok = self.flush(self.settings.exit_timeout if timeout is None else timeout)
        self._closed = True
        if self.worker is not None:
            self.worker.close(timeout=1.0)
        if not ok:
            counts = self.spool.counts()
            left: dict[str, int] = {}
            for state in ("held", "ready", "leased"):
                for category, n in counts.get(state, {}).items():
                    left[category] = left.get(category, 0) + n
            log.warning(
                "trainhub: %d items not sent yet (%s); kept in %s; %s",
                sum(left.values()),
                ", ".join(f"{c}: {n}" for c, n in sorted(left.items())) or "-",
                self.spool.path,
                "send them with `trainhub sync`"
                if self.worker is None
                else "the next run of this model or `trainhub sync` sends them",
            )
        dead = sum(self.spool.counts().get("dead", {}).values())
        if dead:
            log.warning("trainhub: %d items were rejected by the hub; kept in %s", dead, self.spool.path)
        if self.worker is None or not self.worker.running:
            self.spool.close()
            if self._owner_lock is not None:
                self._owner_lock.release()
            if self.transport is not None:
                self.transport.close()

    def _atexit(self) -> None:
        with contextlib.suppress(TrainhubError):
            self.close()

    def __enter__(self) -> HubSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HubSession(model_url={self.model_url!r}, mode={self.settings.mode!r})"


def _session_factory(make: Callable[P, HubSession]) -> Callable[P, HubSession | NullSession]:
    # Gives start_session exactly HubSession's (typed) signature without repeating it.
    def start_session(*args: P.args, **kwargs: P.kwargs) -> HubSession | NullSession:
        """A :class:`HubSession`, or a :class:`NullSession` when ``TRAINHUB_MODE=disabled`` or the
        configuration is invalid (logged). Takes :class:`HubSession`'s arguments; never raises."""
        try:
            settings = kwargs.get("settings")
            mode = kwargs.get("mode")
            if mode is None:
                mode = (
                    settings.mode if isinstance(settings, ClientSettings) else ClientSettings.from_env().mode
                )
            if mode == "disabled":
                return NullSession()
            return make(*args, **kwargs)
        except Exception as exc:
            if reraising():
                raise
            log.warning("trainhub: not sending this run to the hub: %s", exc)
            return NullSession()

    return start_session


start_session = _session_factory(HubSession)
