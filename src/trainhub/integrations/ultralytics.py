"""Report Ultralytics YOLO training to a trainhub server.

In code, attach the hub callbacks to a model before training::

    from ultralytics import YOLO
    from trainhub.integrations.ultralytics import attach

    model = YOLO("yolov8n.yaml")
    attach(model, project="demo")  # url/api_key default to TRAINHUB_URL / TRAINHUB_API_KEY
    model.train(data="coco8.yaml", epochs=3)

When training starts, :func:`attach`'s callback creates ``trainer.hub_session`` (a
:class:`trainhub.HubSession` for this run, made with :func:`trainhub.start_session`, so
``TRAINHUB_MODE=disabled`` turns reporting off) and the callbacks of :mod:`trainhub.callbacks.hub`
stream metrics, checkpoints and the final weights to it. At the end the model URL is printed.

Without changing any code, run the ``yolo`` command through this module instead; it takes the
same arguments, and the hub address and key come from the environment::

    TRAINHUB_URL=http://127.0.0.1:8000 TRAINHUB_API_KEY=ul_... \\
        python -m trainhub.integrations.ultralytics train model=yolov8n.yaml data=coco8.yaml epochs=3

That calls :func:`install`, which adds the callbacks to Ultralytics' process-wide default
callbacks (so every model created afterwards has them), then runs Ultralytics' own CLI entry
point. Scripts can call :func:`install` themselves, once, before creating models.

Notes:
    * Only the main process (``RANK`` -1 or 0) reports. With multi-GPU DDP, Ultralytics does not
      run callbacks in the launching process and does not pass custom callbacks to its workers,
      so nothing is reported; train on one device, or use a Ultralytics version without that
      limitation.
    * If Ultralytics' own HUB callbacks (ultralytics <= 8.4.114) are registered, they are removed
      from the model, the trainer and the final evaluation's validator (which re-adds them), so
      the two do not both send through ``trainer.hub_session``.
    * Importing this module does not import Ultralytics; it only checks that it is installed.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import sys
from collections.abc import Callable, MutableMapping, Sequence
from pathlib import PurePath
from typing import Any

from trainhub.callbacks import hub

if importlib.util.find_spec("ultralytics") is None:  # pragma: no cover - depends on the environment
    raise ImportError(
        "trainhub.integrations.ultralytics needs the ultralytics package: pip install 'trainhub[ultralytics]'"
    )

__all__ = ["attach", "install", "main", "uninstall"]

LOGGER = logging.getLogger("trainhub")

# Module of the HUB callbacks that ultralytics <= 8.4.114 registers on every trainer.
_ULTRALYTICS_HUB_MODULE = "ultralytics.utils.callbacks.hub"
# Modules whose callbacks are ours; used to make attach()/install() idempotent.
_OWN_MODULES = frozenset({hub.__name__, __name__})

CallbackMap = MutableMapping[str, list[Callable[..., Any]]]


def _module_of(func: Callable[..., Any]) -> str:
    return str(getattr(func, "__module__", "") or "")


def _is_ours(func: Callable[..., Any]) -> bool:
    return _module_of(func) in _OWN_MODULES


def _is_ultralytics_hub(func: Callable[..., Any]) -> bool:
    return _module_of(func) == _ULTRALYTICS_HUB_MODULE


def _drop(callbacks: CallbackMap, unwanted: Callable[[Callable[..., Any]], bool]) -> None:
    # Assign new lists instead of removing in place: the trainer may be iterating one of these
    # lists right now (we are called from inside run_callbacks), and removing an element before
    # the iterator's position would make it skip a callback.
    for event in list(callbacks):
        kept = [func for func in callbacks[event] if not unwanted(func)]
        if len(kept) != len(callbacks[event]):
            callbacks[event] = kept


def _jsonable(value: Any) -> Any:
    """Turn trainer arguments into JSON values (paths and other objects become strings)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    return str(value)


def _rank() -> int:
    # The same rule as ``ultralytics.utils.RANK``, read here so this module needs no Ultralytics
    # import: DDP workers get RANK and WORLD_SIZE from the launcher.
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return int(os.environ.get("RANK", "-1"))
    return -1


def _make_session_starter(
    *,
    url: str | None,
    api_key: str | None,
    project: str | None,
    name: str | None,
    rate_limits: dict[str, float] | None,
    session_kwargs: dict[str, Any],
) -> Callable[[Any], None]:
    def on_pretrain_routine_start(trainer: Any) -> None:
        """Create ``trainer.hub_session`` for this training run (main process only)."""
        if _rank() not in {-1, 0}:
            return
        callbacks = getattr(trainer, "callbacks", None)
        if isinstance(callbacks, MutableMapping):
            _drop(callbacks, _is_ultralytics_hub)

        from trainhub import HubSession, NullSession, start_session

        existing = getattr(trainer, "hub_session", None)
        if isinstance(existing, HubSession | NullSession):
            return
        if existing is not None:
            LOGGER.warning("%sreplacing the Ultralytics HUB session of this trainer", hub.PREFIX)

        args = trainer.args
        # Without a project, pass None rather than "default" so TRAINHUB_PROJECT still applies; the
        # hub files the model under "default" when neither is set.
        args_project = getattr(args, "project", None)
        run_project = project or (PurePath(str(args_project)).name if args_project else None)
        # start_session rather than HubSession(): it gives a do-nothing NullSession when
        # TRAINHUB_MODE=disabled or the settings are invalid, instead of raising.
        trainer.hub_session = start_session(
            url=url,
            api_key=api_key,
            project=run_project,
            name=name or str(args.name),
            config=_jsonable(dict(vars(args))),
            epochs=getattr(trainer, "epochs", None),
            task=getattr(args, "task", None),
            rate_limits=rate_limits,
            **session_kwargs,
        )
        model_url = getattr(trainer.hub_session, "model_url", None)
        if model_url:  # a NullSession (disabled) has no page
            message = f"{hub.PREFIX}View model at {model_url}"
            LOGGER.info(message)
            print(message, flush=True)

    return hub.guarded(on_pretrain_routine_start)


@hub.guarded
def drop_ultralytics_hub_callbacks(validator: Any) -> None:
    """Remove ultralytics' own HUB callbacks that a standalone validation has just re-added.

    In ultralytics <= 8.4.114 a validator shares the trainer's callback dict (no copy) and, when
    it runs outside the training loop (the trainer's final evaluation of best.pt), calls
    ``add_integration_callbacks`` on it, which appends the HUB callbacks again right before the
    final ``on_fit_epoch_end`` and ``on_train_end``. They would then send through our
    ``trainer.hub_session``. ``on_val_start`` is the first hook after that call.
    """
    callbacks = getattr(validator, "callbacks", None)
    if isinstance(callbacks, MutableMapping):
        _drop(callbacks, _is_ultralytics_hub)


def _our_callbacks(
    *,
    url: str | None,
    api_key: str | None,
    project: str | None,
    name: str | None,
    rate_limits: dict[str, float] | None,
    session_kwargs: dict[str, Any],
) -> dict[str, list[Callable[[Any], None]]]:
    starter = _make_session_starter(
        url=url,
        api_key=api_key,
        project=project,
        name=name,
        rate_limits=rate_limits,
        session_kwargs=session_kwargs,
    )
    ours = {"on_pretrain_routine_start": starter, **hub.callbacks}
    # Two functions for on_val_start: the returned dict maps an event to a list.
    return {event: [func] for event, func in ours.items()} | {
        "on_val_start": [drop_ultralytics_hub_callbacks, hub.on_val_start]
    }


def attach(
    model: Any,
    *,
    url: str | None = None,
    api_key: str | None = None,
    project: str | None = None,
    name: str | None = None,
    rate_limits: dict[str, float] | None = None,
    **session_kwargs: Any,
) -> None:
    """Register the trainhub callbacks on an Ultralytics model.

    Each later ``model.train()`` creates a :class:`trainhub.HubSession` when its trainer starts
    and reports to it; ``model.val()``, ``predict()`` and ``export()`` send usage events when a
    default session is set (:func:`trainhub.callbacks.hub.set_default_session`). Calling
    ``attach`` again replaces the earlier registration.

    Args:
        model: an ``ultralytics`` model (``YOLO(...)`` or any ``ultralytics.engine.model.Model``).
        url: hub root URL; default from the session settings (``TRAINHUB_URL``).
        api_key: API key; default from the session settings (``TRAINHUB_API_KEY``).
        project: project name; default the last part of the ``project`` train argument, else the
            session's default (``TRAINHUB_PROJECT``, else the hub's ``"default"``).
        name: model (run) name; default the trainer's run name (``train``, ``train2``, ...).
        rate_limits: seconds between uploads, keys ``"metrics"``, ``"ckpt"``, ``"heartbeat"``;
            default the session's.
        **session_kwargs: passed on to :func:`trainhub.start_session` / :class:`trainhub.HubSession`.

    Raises:
        TypeError: ``model`` has no ``add_callback`` / ``callbacks``.
    """
    if not callable(getattr(model, "add_callback", None)) or not isinstance(
        getattr(model, "callbacks", None), MutableMapping
    ):
        raise TypeError(f"expected an ultralytics model with add_callback(), got {type(model).__name__}")
    _drop(model.callbacks, lambda func: _is_ours(func) or _is_ultralytics_hub(func))
    ours = _our_callbacks(
        url=url,
        api_key=api_key,
        project=project,
        name=name,
        rate_limits=rate_limits,
        session_kwargs=session_kwargs,
    )
    for event, funcs in ours.items():
        for func in funcs:
            model.add_callback(event, func)


def install(
    *,
    url: str | None = None,
    api_key: str | None = None,
    project: str | None = None,
    name: str | None = None,
    rate_limits: dict[str, float] | None = None,
    **session_kwargs: Any,
) -> None:
    """Add the trainhub callbacks to Ultralytics' default callbacks, for every model made afterwards.

    Models that already exist are not changed (use :func:`attach` for them). Calling ``install``
    again replaces the earlier registration. The arguments are those of :func:`attach`.
    """
    from ultralytics.utils.callbacks import base

    defaults: CallbackMap = base.default_callbacks
    _drop(defaults, _is_ours)
    ours = _our_callbacks(
        url=url,
        api_key=api_key,
        project=project,
        name=name,
        rate_limits=rate_limits,
        session_kwargs=session_kwargs,
    )
    for event, funcs in ours.items():
        defaults.setdefault(event, []).extend(funcs)


def uninstall() -> None:
    """Remove the callbacks that :func:`install` added to Ultralytics' default callbacks."""
    from ultralytics.utils.callbacks import base

    _drop(base.default_callbacks, _is_ours)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``yolo`` command line with the trainhub callbacks installed.

    Args:
        argv: the ``yolo`` arguments (default ``sys.argv[1:]``), e.g.
            ``["train", "model=yolov8n.yaml", "data=coco8.yaml"]``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    # Not "yolo": Ultralytics only turns on its third-party error reporting when argv[0] is "yolo".
    sys.argv = ["trainhub-ultralytics", *args]
    install()
    import ultralytics.cfg

    # ultralytics.cfg copies sys.argv when it is first imported, which may have happened already.
    ultralytics.cfg.ARGV = sys.argv
    ultralytics.cfg.entrypoint()


if __name__ == "__main__":
    main()
