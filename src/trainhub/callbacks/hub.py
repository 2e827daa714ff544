"""Training lifecycle callbacks that report to a trainhub :class:`~trainhub.HubSession`.

The functions here have Ultralytics' callback signature (one argument: the trainer, validator,
predictor or exporter) and the names and meaning of the callbacks of the original Ultralytics HUB
client, so any framework that calls hooks by these names can use them. Each one looks up the
session on ``trainer.hub_session`` and does nothing when there is none.

What each callback does:

``on_pretrain_routine_end``
    Starts the rate-limit timers: ``session.timers = {"metrics": now, "ckpt": now}``.
``on_train_start``
    Sends a ``"train"`` usage event.
``on_train_epoch_end``
    Records the epoch whose training pass just ended (see ``on_fit_epoch_end``).
``on_fit_epoch_end``
    Queues the epoch's train losses, validation metrics and learning rates (plus model info at
    epoch 0) with ``session.queue_metrics`` and, when ``rate_limits["metrics"]`` seconds have
    passed since the last upload, calls ``session.upload_metrics()``. The extra call that the
    trainer's final evaluation makes (epoch = last epoch + 1, with no training pass before it) is
    stored with ``session.set_final_metrics`` instead of becoming one more epoch. If the hub asked
    the run to stop (``session.stop_requested``), sets ``trainer.stop`` so the run ends cleanly
    after this epoch.
``on_model_save``
    Uploads ``last.pt`` when ``rate_limits["ckpt"]`` seconds have passed since the last upload.
``on_train_end``
    Uploads every metric still queued, uploads ``best.pt`` as the final checkpoint (this is the one
    call that waits, bounded), stops the heartbeats, closes the session and prints the model URL.
``on_val_start`` / ``on_predict_start`` / ``on_export_start``
    Send ``"val"`` / ``"predict"`` / ``"export"`` usage events. Validators, predictors and
    exporters carry no session, so these use the process default session
    (:func:`set_default_session`) when the object has none.

No callback lets an exception reach the training loop: each body runs inside a guard that logs
the first failure of each callback (later ones at debug level) and carries on. Set
``TRAINHUB_RAISE_CALLBACK_ERRORS=1`` or :data:`raise_errors` ``= True`` to re-raise instead, which
the test suite does so that bugs are not hidden.

This module does not import Ultralytics (only ``model_info_for_loggers``, lazily, at epoch 0).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "callbacks",
    "clock",
    "get_default_session",
    "guarded",
    "on_export_start",
    "on_fit_epoch_end",
    "on_model_save",
    "on_predict_start",
    "on_pretrain_routine_end",
    "on_train_end",
    "on_train_epoch_end",
    "on_train_start",
    "on_val_start",
    "raise_errors",
    "set_default_session",
]

LOGGER = logging.getLogger("trainhub")
PREFIX = "trainhub: "

#: Time source of the rate limits, used when the session has no ``clock`` of its own. A module
#: attribute (looked up at call time) so tests can replace it instead of sleeping.
clock: Callable[[], float] = time.monotonic

#: Re-raise exceptions from callback bodies instead of logging them. ``None`` defers to the
#: ``TRAINHUB_RAISE_CALLBACK_ERRORS`` environment variable.
raise_errors: bool | None = None

# Trainer attribute holding the epoch of the last ``on_train_epoch_end``. Kept on the trainer
# (not the session) because it describes the trainer's loop, and a session may outlive a trainer.
_TRAIN_EPOCH_ATTR = "_trainhub_train_epoch"

# Callback names whose failure was already logged with a traceback; later failures of the same
# callback would repeat the same traceback every epoch.
_reported: set[str] = set()

_default_session: HubSessionLike | None = None


class HubSessionLike(Protocol):
    """The part of :class:`trainhub.HubSession` these callbacks use (a structural type)."""

    timers: dict[str, float]
    metrics_queue: dict[int, str]
    alive: bool

    # Read-only here (properties), so that a session may declare narrower types for them.
    @property
    def rate_limits(self) -> Mapping[str, float]: ...

    @property
    def model_url(self) -> str | None: ...

    def queue_metrics(self, epoch: int, metrics: Mapping[str, Any]) -> None: ...

    def upload_metrics(self) -> None: ...

    def upload_model(
        self,
        epoch: int,
        weights: str | Path,
        is_best: bool = False,
        map: float = 0.0,
        final: bool = False,
    ) -> None: ...

    def set_final_metrics(self, metrics: Mapping[str, Any]) -> None: ...

    def send_event(self, kind: str, task: str | None = None, mode: str | None = None) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


def set_default_session(session: HubSessionLike | None) -> None:
    """Set the session used by callbacks whose object carries none (validators, predictors, exporters).

    Args:
        session: the session to use, or ``None`` to clear it.
    """
    global _default_session
    _default_session = session


def get_default_session() -> HubSessionLike | None:
    """Return the session set with :func:`set_default_session`, or ``None``."""
    return _default_session


def _should_raise() -> bool:
    if raise_errors is not None:
        return raise_errors
    return os.environ.get("TRAINHUB_RAISE_CALLBACK_ERRORS", "").strip().lower() in {"1", "true", "yes", "on"}


def guarded(func: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wrap a callback so that an exception in it never reaches the caller (the training loop).

    The first failure of each callback (by function name) is logged with its traceback, later
    ones at debug level. With :data:`raise_errors` (or ``TRAINHUB_RAISE_CALLBACK_ERRORS=1``) the
    exception is re-raised instead.

    Args:
        func: a one-argument callback.

    Returns:
        The wrapped callback, with ``func``'s name and docstring.
    """
    name = func.__name__

    @functools.wraps(func)
    def wrapper(obj: Any) -> None:
        try:
            func(obj)
        except Exception:
            if _should_raise():
                raise
            if name in _reported:
                LOGGER.debug("%s%s failed again", PREFIX, name, exc_info=True)
            else:
                _reported.add(name)
                LOGGER.exception(
                    "%s%s failed; training continues (further failures of this callback are logged at "
                    "debug level)",
                    PREFIX,
                    name,
                )

    return wrapper


def _session(obj: Any) -> HubSessionLike | None:
    session: HubSessionLike | None = getattr(obj, "hub_session", None)
    return session


def _now(session: Any) -> float:
    session_clock = getattr(session, "clock", None)
    return float(session_clock() if callable(session_clock) else clock())


def _allowed(session: HubSessionLike, kind: str) -> bool:
    """Whether ``rate_limits[kind]`` seconds have passed since ``timers[kind]``.

    A missing timer (``on_pretrain_routine_end`` never ran, e.g. the callbacks were attached to a
    trainer that had already started) starts now, so the limit still holds from here on.
    """
    now = _now(session)
    started = session.timers.get(kind)
    if started is None:
        session.timers[kind] = now
        return False
    return now - started > float(session.rate_limits[kind])


def _as_float(value: Any) -> float | None:
    # Ultralytics hands over numpy scalars and 0-d tensors next to floats; the wire needs plain
    # floats. Anything that is not a number is left out rather than sent as a string.
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _floats(*parts: Any) -> dict[str, float]:
    merged: dict[str, float] = {}
    for part in parts:
        # ``label_loss_items(None)`` returns the key list, and ``metrics`` is None before the
        # first validation: skip whatever is not a mapping.
        if not isinstance(part, Mapping):
            continue
        for key, value in part.items():
            number = _as_float(value)
            if number is not None:
                merged[str(key)] = number
    return merged


def _task_and_mode(obj: Any) -> tuple[str | None, str | None]:
    args = getattr(obj, "args", None)
    task = getattr(args, "task", None)
    mode = getattr(args, "mode", None)
    return (str(task) if task is not None else None, str(mode) if mode is not None else None)


@guarded
def on_pretrain_routine_end(trainer: Any) -> None:
    """Start the metrics and checkpoint rate-limit timers before training begins."""
    if (session := _session(trainer)) is not None:
        now = _now(session)
        session.timers = {"metrics": now, "ckpt": now}


@guarded
def on_train_start(trainer: Any) -> None:
    """Send a ``"train"`` usage event."""
    if (session := _session(trainer)) is not None:
        task, mode = _task_and_mode(trainer)
        session.send_event("train", task=task, mode=mode or "train")


@guarded
def on_train_epoch_end(trainer: Any) -> None:
    """Record that a training pass ended for ``trainer.epoch``.

    ``on_fit_epoch_end`` uses this to tell a real epoch from the trainer's final evaluation, which
    runs the fit-epoch-end callbacks once more with ``epoch = last + 1`` and no training pass.
    """
    if _session(trainer) is not None:
        setattr(trainer, _TRAIN_EPOCH_ATTR, trainer.epoch)


@guarded
def on_fit_epoch_end(trainer: Any) -> None:
    """Queue the epoch's metrics and upload the queue when the metrics rate limit allows.

    The final-evaluation call (no ``on_train_epoch_end`` for its epoch) goes to
    ``session.set_final_metrics`` instead.
    """
    session = _session(trainer)
    if session is None:
        return
    epoch = int(trainer.epoch)
    trained_epoch = getattr(trainer, _TRAIN_EPOCH_ATTR, None)
    # ``None`` means on_train_epoch_end was not registered: fall back to the seed's behaviour
    # (every call is an epoch) rather than guessing.
    if trained_epoch is not None and trained_epoch != epoch:
        # The final evaluation validates best.pt; its numbers describe the run, not an epoch, and
        # the training losses at hand belong to the last epoch, so only the metrics are kept.
        session.set_final_metrics(_floats(trainer.metrics))
        return

    metrics = _floats(
        trainer.label_loss_items(trainer.tloss, prefix="train"),
        trainer.metrics,
        getattr(trainer, "lr", None),
    )
    if epoch == 0:
        from ultralytics.utils import torch_utils

        # Through a typed name: Ultralytics has no annotations, which mypy --strict rejects in calls.
        model_info: Callable[[Any], Any] = torch_utils.model_info_for_loggers
        metrics.update(_floats(model_info(trainer)))
    session.queue_metrics(epoch, metrics)

    if _allowed(session, "metrics"):
        session.upload_metrics()
        session.timers["metrics"] = _now(session)
        session.metrics_queue = {}

    if getattr(session, "stop_requested", False) and not getattr(trainer, "stop", False):
        # The trainer checks ``stop`` right after this callback, so the run still gets its final
        # evaluation, last checkpoints and on_train_end.
        LOGGER.info("%sstop requested from the hub, ending training after epoch %d", PREFIX, epoch)
        trainer.stop = True


@guarded
def on_model_save(trainer: Any) -> None:
    """Upload ``trainer.last`` when the checkpoint rate limit allows."""
    session = _session(trainer)
    if session is None:
        return
    if _allowed(session, "ckpt"):
        is_best = trainer.best_fitness == trainer.fitness
        LOGGER.debug("%suploading checkpoint of epoch %s to %s", PREFIX, trainer.epoch, session.model_url)
        session.upload_model(trainer.epoch, trainer.last, is_best=is_best)
        session.timers["ckpt"] = _now(session)


@guarded
def on_train_end(trainer: Any) -> None:
    """Upload the pending metrics and the final weights, stop heartbeats, close the session.

    Prints ``View model at <url>`` when done.
    """
    session = _session(trainer)
    if session is None:
        return
    try:
        # The seed only uploaded from on_fit_epoch_end when the rate limit allowed, so the last
        # epochs of every run could stay in the queue forever; flush them unconditionally here.
        session.upload_metrics()
        session.metrics_queue = {}
        metrics = trainer.metrics or {}
        session.upload_model(
            trainer.epoch,
            trainer.best,
            map=_as_float(metrics.get("metrics/mAP50-95(B)", 0.0)) or 0.0,
            final=True,
        )
    finally:
        # Even when an upload call failed, the heartbeat thread must stop and the worker must be
        # given its bounded chance to drain the spool.
        session.alive = False
        session.close()
    if session.model_url:  # a NullSession (TRAINHUB_MODE=disabled) has no model page
        message = f"{PREFIX}View model at {session.model_url}"
        LOGGER.info(message)
        print(message, flush=True)


def _event_session(obj: Any) -> HubSessionLike | None:
    session = _session(obj)
    return session if session is not None else _default_session


@guarded
def on_val_start(validator: Any) -> None:
    """Send a ``"val"`` usage event for a standalone validation (not the trainer's own)."""
    # The trainer validates every epoch and once more at the end (with a fresh validator that
    # keeps mode="train"); those are part of the "train" event, not validations of their own.
    task, mode = _task_and_mode(validator)
    if getattr(validator, "training", False) or mode == "train":
        return
    if (session := _event_session(validator)) is not None:
        session.send_event("val", task=task, mode=mode or "val")


@guarded
def on_predict_start(predictor: Any) -> None:
    """Send a ``"predict"`` usage event."""
    if (session := _event_session(predictor)) is not None:
        task, mode = _task_and_mode(predictor)
        session.send_event("predict", task=task, mode=mode or "predict")


@guarded
def on_export_start(exporter: Any) -> None:
    """Send an ``"export"`` usage event."""
    if (session := _event_session(exporter)) is not None:
        task, mode = _task_and_mode(exporter)
        session.send_event("export", task=task, mode=mode or "export")


#: Callback name -> function, in the order the trainer calls them.
callbacks: dict[str, Callable[[Any], None]] = {
    "on_pretrain_routine_end": on_pretrain_routine_end,
    "on_train_start": on_train_start,
    "on_train_epoch_end": on_train_epoch_end,
    "on_fit_epoch_end": on_fit_epoch_end,
    "on_model_save": on_model_save,
    "on_train_end": on_train_end,
    "on_val_start": on_val_start,
    "on_predict_start": on_predict_start,
    "on_export_start": on_export_start,
}
