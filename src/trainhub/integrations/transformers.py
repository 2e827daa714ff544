"""Report Hugging Face Transformers ``Trainer`` runs to a trainhub server with one callback.

::

    from transformers import Trainer
    from trainhub.integrations.transformers import HubCallback

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                      callbacks=[HubCallback(project="demo", name="bert-tiny")])
    trainer.train()                        # TRAINHUB_URL / TRAINHUB_API_KEY from the environment

What :class:`HubCallback` does (through a :class:`trainhub.Run`, so all of it spools and returns):

* ``on_train_begin``: starts the run (a new hub model, or the one recorded in the checkpoint being
  resumed); the model's ``config`` is the ``TrainingArguments`` (``to_dict()``, tokens masked),
  its planned epochs ``num_train_epochs``. Heartbeats run from here until the end.
* ``on_log`` / ``on_evaluate``: the logged numbers, renamed like the Trainer's own W&B callback
  (``loss`` -> ``train/loss``, ``eval_loss`` -> ``eval/loss``, ``test_x`` -> ``test/x``), merged per
  epoch: epoch ``e`` is the 0-based epoch a log falls in (``ceil(state.epoch) - 1``); with
  ``x_axis="step"`` the key is ``state.global_step`` instead. The summary the Trainer logs at the end
  (``train_runtime``, ``train_loss``...) becomes the model's final metrics, with the last evaluation.
* ``on_save``: the ``checkpoint-N`` directory just written, as the ``last`` checkpoint (packed into a
  zip that :func:`trainhub.pull` unpacks), rate limited (``rate_limits["ckpt"]``, 15 min by default,
  the first one at once); ``is_best`` when it is ``state.best_model_checkpoint``. The zip is written
  on the training thread (as fast as a file copy).
* ``on_step_end``: a stop requested in the hub (seen by a heartbeat) sets
  ``control.should_training_stop``; the Trainer ends after this step, normally. With several
  processes the decision is rank 0's, broadcast at the end of each epoch.
* ``on_train_end``: the trained model (``save_pretrained``, with the processing class if any; the
  best one with ``load_best_model_at_end``) as the final model; the hub marks the model ``done``.
  This waits (bounded, ``final_timeout``) for the uploads.
* The Trainer has no exception hook: if the process exits after ``on_train_begin`` without
  ``on_train_end`` (an exception ended ``train()``), the model is marked ``failed`` (``cancelled``
  after Ctrl-C) at interpreter exit. A process that is killed cannot say anything: the hub shows the
  model ``stalled``, then ``crashed``, when its heartbeats stop.
* Only the world process zero (``state.is_world_process_zero``) talks to the hub. The hub model id
  is saved in the checkpoint's ``trainer_state.json`` (this callback is an ``ExportableState``), so
  ``trainer.train(resume_from_checkpoint=...)`` continues the same hub model, e.g. with the last
  checkpoint from the hub: ``resume_from_checkpoint=str(trainhub.pull(model_id))``.

No hook lets an exception reach the Trainer: each runs inside trainhub's guard (logged once).
Importing this module imports ``transformers``; without it the ImportError says
``pip install 'trainhub[transformers]'``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
    from transformers.trainer_callback import ExportableState
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "trainhub.integrations.transformers needs Hugging Face Transformers: "
        "pip install 'trainhub[transformers]'"
    ) from exc

from trainhub.client.guard import guarded
from trainhub.client.run import STAGING_DIR, Run, start

__all__ = ["HubCallback", "rename_logs"]

log = logging.getLogger("trainhub")

#: Keys of the Trainer's end-of-training summary log.
_SUMMARY_KEYS = frozenset({"train_runtime", "train_samples_per_second", "train_steps_per_second"})


def rename_logs(logs: Mapping[str, Any]) -> dict[str, float]:
    """Numbers of a Trainer log, renamed ``eval_x`` -> ``eval/x``, ``test_x`` -> ``test/x``, else
    ``train/x`` (``train_x`` -> ``train/x``); ``epoch`` and non-numbers are left out."""
    out: dict[str, float] = {}
    for key, value in logs.items():
        if key == "epoch" or isinstance(value, bool):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        for prefix in ("eval", "test", "train"):
            if key.startswith(prefix + "_"):
                out[f"{prefix}/{key[len(prefix) + 1 :]}"] = number
                break
        else:
            out[f"train/{key}"] = number
    return out


def _epoch_index(state: TrainerState) -> int:
    # state.epoch runs from 0 to num_train_epochs as a float: (0, 1] is epoch 0, (1, 2] epoch 1...
    return max(0, math.ceil((state.epoch or 0.0) - 1e-9) - 1)


class HubCallback(TrainerCallback, ExportableState):
    """Stream a Transformers ``Trainer`` run to the hub: logs, checkpoints, final model, heartbeats.

    Args:
        project: project of a new model (else ``TRAINHUB_PROJECT``, else the hub's default).
        name: name of a new model (default: its id).
        model: continue this hub model (id or URL) instead of making one; default: the model
            recorded in the checkpoint being resumed, if any.
        url: hub root URL (else ``TRAINHUB_URL``).
        api_key: API key (else ``TRAINHUB_API_KEY``).
        rate_limits: overrides of ``{"metrics": 3.0, "ckpt": 900.0, "heartbeat": 30.0}`` seconds.
        x_axis: ``"epoch"`` (default) keys the hub's points by 0-based epoch, ``"step"`` by global step.
        **session_kwargs: more :func:`trainhub.start` / :class:`trainhub.HubSession` arguments.

    Attributes:
        run: the :class:`trainhub.Run` of the current training on process zero, else ``None``.
        model_id: the hub model id of the current (or last) training.
    """

    def __init__(
        self,
        *,
        project: str | None = None,
        name: str | None = None,
        model: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        rate_limits: dict[str, float] | None = None,
        x_axis: Literal["epoch", "step"] = "epoch",
        **session_kwargs: Any,
    ) -> None:
        if x_axis not in ("epoch", "step"):
            raise ValueError(f"x_axis must be 'epoch' or 'step', not {x_axis!r}")
        # Kept in trainer_state.json (state()); never the API key.
        self._args: dict[str, Any] = {
            "project": project,
            "name": name,
            "url": url,
            "rate_limits": rate_limits,
            "x_axis": x_axis,
        }
        self._start_kwargs: dict[str, Any] = {**self._args, "api_key": api_key, **session_kwargs}
        del self._start_kwargs["x_axis"]
        self._model = model
        self._x_axis = x_axis
        self.run: Run | None = None
        self.model_id: str | None = None
        self._point: tuple[int, dict[str, float]] | None = None  # the point being filled
        self._last_eval: dict[str, float] = {}
        self._summary: dict[str, float] = {}

    # -- ExportableState: the hub model id travels in every checkpoint -------------------------------

    def state(self) -> dict[str, Any]:
        """``{"args": <constructor arguments but the key>, "attributes": {"model_id": ...}}``."""
        return {"args": dict(self._args), "attributes": {"model_id": self.model_id}}

    def _stored_model_id(self, state: TrainerState) -> str | None:
        stored_all: Any = state.stateful_callbacks or {}  # a dict once loaded (typed as a list)
        stored = stored_all.get(type(self).__name__) if isinstance(stored_all, Mapping) else None
        for entry in stored if isinstance(stored, list) else [stored]:
            if isinstance(entry, Mapping):
                model_id = (entry.get("attributes") or {}).get("model_id")
                if model_id:
                    return str(model_id)
        return None

    # -- hooks -------------------------------------------------------------------------------------

    @guarded(None)
    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Start the hub run (world process zero only)."""
        if not state.is_world_process_zero:
            return
        self._point, self._last_eval, self._summary = None, {}, {}
        epochs = math.ceil(state.num_train_epochs) if state.num_train_epochs else None
        self.run = start(
            model=self._model or self._stored_model_id(state),
            config=args.to_dict(),  # type: ignore[no-untyped-call]
            epochs=epochs,
            **self._start_kwargs,
        )
        self.model_id = self.run.model_id
        atexit.register(self._at_exit)

    @guarded(None)
    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Merge the logged numbers into the current epoch (or step) and send it (rate limited)."""
        if self.run is None or not logs:
            return
        if _SUMMARY_KEYS & set(logs):
            self._summary = rename_logs(logs)
            return
        self._record(state, logs)

    @guarded(None)
    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Merge the evaluation's metrics into the current epoch (or step); keep them as final."""
        if self.run is None or not metrics:
            return
        self._last_eval = rename_logs(metrics)
        self._record(state, metrics)

    @guarded(None)
    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Upload the checkpoint directory just written (rate limited)."""
        if self.run is None:
            return
        folder = Path(str(args.output_dir)) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if not folder.is_dir():
            log.debug("trainhub: no checkpoint at %s, nothing uploaded", folder)
            return
        best = state.best_model_checkpoint
        is_best = best is not None and Path(best).resolve() == folder.resolve()
        self.run.save_checkpoint(folder, self._key(state), is_best=is_best)

    @guarded(None)
    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Stop the training when the hub asked (one process; see ``on_epoch_end`` for several)."""
        if args.world_size == 1 and self.run is not None and self.run.stop_requested:
            if not control.should_training_stop:
                log.info("trainhub: stop requested from the hub, ending training after this step")
            control.should_training_stop = True

    @guarded(None)
    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """With several processes, every one stops when rank 0 was asked to (a broadcast)."""
        if args.world_size > 1:
            import torch
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                asked = self.run is not None and self.run.stop_requested
                flag = torch.tensor([1 if asked else 0], device=args.device)
                dist.broadcast(flag, src=0)
                if int(flag.item()):
                    control.should_training_stop = True

    @guarded(None)
    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Upload the trained model as the final model; the hub marks the model done. Waits, bounded."""
        run, self.run = self.run, None
        atexit.unregister(self._at_exit)
        if run is None:
            return
        final = self._save_final(args, run, kwargs.get("model"), kwargs.get("processing_class"))
        try:
            run.finish(final, {**self._last_eval, **self._summary}, epoch=self._key(state))
        finally:
            if final is not None:  # finish() uploaded its own snapshot of it
                if final.is_dir():
                    shutil.rmtree(final, ignore_errors=True)
                else:
                    final.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    final.parent.rmdir()  # only when empty: a snapshot not delivered yet stays

    # -- internals ---------------------------------------------------------------------------------

    def _key(self, state: TrainerState) -> int:
        return int(state.global_step) if self._x_axis == "step" else _epoch_index(state)

    def _record(self, state: TrainerState, logs: Mapping[str, Any]) -> None:
        assert self.run is not None
        key = self._key(state)
        # One point per key: a later log of the same epoch adds to it (the session replaces the
        # whole epoch, so it always gets the merged values). Older points are done: not kept.
        if self._point is None or self._point[0] != key:
            self._point = (key, {})
        point, new = self._point[1], rename_logs(logs)
        if new.items() <= point.items():
            return  # on_evaluate hands over what on_log has just had
        point.update(new)
        self.run.log(key, point)

    def _save_final(
        self, args: TrainingArguments, run: Run, model: Any, processing_class: Any
    ) -> Path | None:
        if model is None or run.model_id is None:
            return None
        staging = Path(str(args.output_dir)) / STAGING_DIR
        staging.mkdir(parents=True, exist_ok=True)
        if callable(getattr(model, "save_pretrained", None)):
            folder = staging / f"{run.model_id}-model"
            shutil.rmtree(folder, ignore_errors=True)
            model.save_pretrained(folder)
            if callable(getattr(processing_class, "save_pretrained", None)):
                processing_class.save_pretrained(folder)
            return folder
        import torch

        path = staging / f"{run.model_id}-model.pt"
        torch.save(model.state_dict(), path)
        return path

    def _at_exit(self) -> None:
        # train() began but never reached on_train_end: it raised. The interpreter is exiting,
        # after printing the error (sys.last_value), or after the script caught it.
        run, self.run = self.run, None
        if run is not None:
            run.fail(getattr(sys, "last_value", None))
