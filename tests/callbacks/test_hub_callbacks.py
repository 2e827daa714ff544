"""Behaviour of the lifecycle callbacks in trainhub.callbacks.hub, against a recording fake session."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hub_fakes import FakeClock, FakeSession, make_trainer

from trainhub.callbacks import hub

EXPECTED_EPOCH_KEYS = {
    "train/box_loss",
    "train/cls_loss",
    "train/dfl_loss",
    "metrics/mAP50(B)",
    "metrics/mAP50-95(B)",
    "val/box_loss",
    "lr/pg0",
}


def run_epoch(trainer: SimpleNamespace, epoch: int) -> None:
    """What the trainer calls for one epoch, in its order."""
    trainer.epoch = epoch
    hub.on_train_epoch_end(trainer)
    hub.on_model_save(trainer)
    hub.on_fit_epoch_end(trainer)


def run_final_eval(trainer: SimpleNamespace) -> None:
    """BaseTrainer.final_eval: on_fit_epoch_end again with epoch + 1, no training pass before it."""
    trainer.epoch += 1
    hub.on_fit_epoch_end(trainer)
    trainer.epoch -= 1


# -- timers and metrics --------------------------------------------------------------------------


def test_pretrain_routine_end_starts_both_timers_now(session: FakeSession, fake_clock: FakeClock) -> None:
    hub.on_pretrain_routine_end(make_trainer(session))
    assert session.timers == {"metrics": fake_clock.now, "ckpt": fake_clock.now}


def test_session_clock_is_preferred_over_module_clock(session: FakeSession, fake_clock: FakeClock) -> None:
    session.clock = FakeClock(now=5.0)  # type: ignore[attr-defined]
    hub.on_pretrain_routine_end(make_trainer(session))
    assert session.timers == {"metrics": 5.0, "ckpt": 5.0}


def test_epoch_metrics_hold_losses_metrics_and_learning_rates(
    session: FakeSession, fake_clock: FakeClock, model_info: dict[str, float]
) -> None:
    trainer = make_trainer(session)
    hub.on_pretrain_routine_end(trainer)
    run_epoch(trainer, 1)
    [(_, epoch, metrics)] = [c for c in session.calls if c[0] == "queue_metrics"]
    assert epoch == 1
    assert metrics == {
        "train/box_loss": 1.5,
        "train/cls_loss": 2.5,
        "train/dfl_loss": 1.25,
        "metrics/mAP50(B)": 0.5,
        "metrics/mAP50-95(B)": 0.25,
        "val/box_loss": 1.75,
        "lr/pg0": 0.01,
    }


def test_epoch_zero_also_holds_model_info(
    session: FakeSession, fake_clock: FakeClock, model_info: dict[str, float]
) -> None:
    trainer = make_trainer(session)
    hub.on_pretrain_routine_end(trainer)
    run_epoch(trainer, 0)
    run_epoch(trainer, 1)
    queued = {c[1]: c[2] for c in session.calls if c[0] == "queue_metrics"}
    assert set(queued[0]) == EXPECTED_EPOCH_KEYS | set(model_info)
    assert queued[0]["model/parameters"] == model_info["model/parameters"]
    assert set(queued[1]) == EXPECTED_EPOCH_KEYS


def test_metric_values_become_plain_floats_and_non_numbers_are_left_out(
    session: FakeSession, fake_clock: FakeClock
) -> None:
    class Scalar:  # like a numpy scalar or a 0-d tensor
        def __float__(self) -> float:
            return 0.75

    trainer = make_trainer(
        session, metrics={"metrics/mAP50(B)": Scalar(), "note": "text", "nan": float("nan")}
    )
    hub.on_pretrain_routine_end(trainer)
    run_epoch(trainer, 2)
    [(_, _, queued)] = [c for c in session.calls if c[0] == "queue_metrics"]
    assert type(queued["metrics/mAP50(B)"]) is float and queued["metrics/mAP50(B)"] == 0.75
    assert "note" not in queued
    assert queued["nan"] != queued["nan"]  # NaN is kept; the session sends it as null


def test_metrics_wait_in_the_queue_until_the_rate_limit_passes(
    session: FakeSession, fake_clock: FakeClock, model_info: dict[str, float]
) -> None:
    trainer = make_trainer(session)
    hub.on_pretrain_routine_end(trainer)
    run_epoch(trainer, 0)
    fake_clock.advance(1.0)
    run_epoch(trainer, 1)
    assert "upload_metrics" not in session.names()
    assert sorted(session.metrics_queue) == [0, 1]

    fake_clock.advance(2.5)  # 3.5 s since the timers started: more than the 3 s limit
    run_epoch(trainer, 2)
    assert session.calls[-1] == ("upload_metrics", [0, 1, 2])


def test_queue_is_emptied_and_timer_restarted_after_an_upload(
    session: FakeSession, fake_clock: FakeClock, model_info: dict[str, float]
) -> None:
    trainer = make_trainer(session)
    hub.on_pretrain_routine_end(trainer)
    fake_clock.advance(10.0)
    run_epoch(trainer, 0)
    assert session.metrics_queue == {}
    assert session.timers["metrics"] == fake_clock.now

    fake_clock.advance(1.0)  # within the limit of the new timer
    run_epoch(trainer, 1)
    assert session.names().count("upload_metrics") == 1
    assert list(session.metrics_queue) == [1]


def test_limit_is_exclusive_like_the_seed(session: FakeSession, fake_clock: FakeClock) -> None:
    trainer = make_trainer(session)
    hub.on_pretrain_routine_end(trainer)
    fake_clock.advance(3.0)  # exactly the limit: not yet
    run_epoch(trainer, 1)
    assert "upload_metrics" not in session.names()


def test_missing_timer_starts_now_instead_of_failing(session: FakeSession, fake_clock: FakeClock) -> None:
    trainer = make_trainer(session)  # on_pretrain_routine_end never ran
    run_epoch(trainer, 1)
    assert "upload_metrics" not in session.names()
    assert session.timers["metrics"] == fake_clock.now


def test_epoch_without_validation_queues_only_losses_and_lr(
    session: FakeSession, fake_clock: FakeClock
) -> None:
    trainer = make_trainer(session, metrics=None)
    run_epoch(trainer, 1)
    [(_, _, metrics)] = [c for c in session.calls if c[0] == "queue_metrics"]
    assert set(metrics) == {"train/box_loss", "train/cls_loss", "train/dfl_loss", "lr/pg0"}


# -- final evaluation ----------------------------------------------------------------------------


def test_final_eval_goes_to_final_metrics_not_to_an_extra_epoch(
    session: FakeSession, fake_clock: FakeClock, model_info: dict[str, float]
) -> None:
    trainer = make_trainer(session)
    hub.on_pretrain_routine_end(trainer)
    for epoch in range(3):
        run_epoch(trainer, epoch)
    trainer.metrics = {"metrics/mAP50-95(B)": 0.5, "metrics/mAP50(B)": 0.75}
    run_final_eval(trainer)

    assert [c[1] for c in session.calls if c[0] == "queue_metrics"] == [0, 1, 2]
    assert 3 not in session.metrics_queue
    assert session.calls[-1] == ("set_final_metrics", {"metrics/mAP50-95(B)": 0.5, "metrics/mAP50(B)": 0.75})


def test_final_eval_of_an_early_stopped_run_is_detected_too(
    session: FakeSession, fake_clock: FakeClock
) -> None:
    trainer = make_trainer(session, epochs=10)
    hub.on_pretrain_routine_end(trainer)
    run_epoch(trainer, 4)  # stopped after epoch 4 of 10: final eval comes as epoch 5
    run_final_eval(trainer)
    assert [c[0] for c in session.calls if c[0] in {"queue_metrics", "set_final_metrics"}] == [
        "queue_metrics",
        "set_final_metrics",
    ]


def test_without_train_epoch_end_every_call_counts_as_an_epoch(
    session: FakeSession, fake_clock: FakeClock
) -> None:
    # Only on_fit_epoch_end registered (as the seed did): nothing to tell final eval apart by.
    trainer = make_trainer(session, epoch=3)
    hub.on_fit_epoch_end(trainer)
    assert [c[:2] for c in session.calls] == [("queue_metrics", 3)]


def test_stop_requested_by_the_hub_stops_the_trainer_after_the_epoch(
    session: FakeSession, fake_clock: FakeClock
) -> None:
    trainer = make_trainer(session)
    run_epoch(trainer, 1)
    assert trainer.stop is False
    session.stop_requested = True
    run_epoch(trainer, 2)
    assert trainer.stop is True
    assert [c[1] for c in session.calls if c[0] == "queue_metrics"] == [1, 2]


# -- checkpoints ---------------------------------------------------------------------------------


def test_model_save_uploads_last_only_when_the_ckpt_limit_passed(
    session: FakeSession, fake_clock: FakeClock
) -> None:
    trainer = make_trainer(session)
    hub.on_pretrain_routine_end(trainer)
    fake_clock.advance(899.0)
    hub.on_model_save(trainer)
    assert session.calls == []

    fake_clock.advance(2.0)
    trainer.epoch = 7
    hub.on_model_save(trainer)
    assert session.calls == [("upload_model", 7, trainer.last, {"is_best": True, "map": 0.0, "final": False})]
    assert session.timers["ckpt"] == fake_clock.now

    fake_clock.advance(100.0)  # the limit runs from the last upload
    hub.on_model_save(trainer)
    assert len(session.calls) == 1


@pytest.mark.parametrize(("best_fitness", "fitness", "is_best"), [(0.5, 0.5, True), (0.5, 0.25, False)])
def test_model_save_passes_is_best(
    session: FakeSession, fake_clock: FakeClock, best_fitness: float, fitness: float, is_best: bool
) -> None:
    session.rate_limits["ckpt"] = 0.0
    trainer = make_trainer(session, best_fitness=best_fitness, fitness=fitness)
    hub.on_pretrain_routine_end(trainer)
    fake_clock.advance(0.5)
    hub.on_model_save(trainer)
    assert session.calls[-1][3]["is_best"] is is_best


# -- end of training -----------------------------------------------------------------------------


def test_train_end_flushes_uploads_final_weights_stops_and_closes(
    session: FakeSession,
    fake_clock: FakeClock,
    model_info: dict[str, float],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    trainer = make_trainer(session)
    hub.on_pretrain_routine_end(trainer)
    for epoch in range(3):
        run_epoch(trainer, epoch)  # no time passes: every epoch stays queued
    trainer.metrics = {"metrics/mAP50-95(B)": 0.625}
    run_final_eval(trainer)
    session.calls.clear()

    with caplog.at_level(logging.INFO, logger="trainhub"):
        hub.on_train_end(trainer)

    assert session.calls == [
        ("upload_metrics", [0, 1, 2]),
        ("upload_model", 2, trainer.best, {"is_best": False, "map": 0.625, "final": True}),
        ("close", False),  # alive was already False when close() ran
    ]
    assert session.alive is False
    assert session.metrics_queue == {}
    message = f"View model at {session.model_url}"
    assert message in capsys.readouterr().out
    assert any(message in record.getMessage() for record in caplog.records)


def test_train_end_sends_map_zero_without_box_map(session: FakeSession, fake_clock: FakeClock) -> None:
    trainer = make_trainer(session, metrics={"metrics/accuracy_top1": 0.9})
    hub.on_train_end(trainer)
    [upload] = [c for c in session.calls if c[0] == "upload_model"]
    assert upload[3] == {"is_best": False, "map": 0.0, "final": True}


def test_train_end_still_stops_and_closes_when_an_upload_fails(
    session: FakeSession, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub, "raise_errors", False)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    session.upload_model = broken  # type: ignore[method-assign]
    hub.on_train_end(make_trainer(session))
    assert session.alive is False
    assert session.names()[-1] == "close"


# -- usage events --------------------------------------------------------------------------------


def test_train_start_sends_a_train_event(session: FakeSession) -> None:
    hub.on_train_start(make_trainer(session))
    assert session.calls == [("send_event", "train", "detect", "train")]


@pytest.mark.parametrize(
    ("callback", "kind"),
    [(hub.on_val_start, "val"), (hub.on_predict_start, "predict"), (hub.on_export_start, "export")],
)
def test_val_predict_export_send_their_event_through_the_default_session(
    session: FakeSession, callback: Any, kind: str
) -> None:
    hub.set_default_session(session)
    worker = SimpleNamespace(args=SimpleNamespace(task="segment", mode=kind), training=False)
    callback(worker)
    assert session.calls == [("send_event", kind, "segment", kind)]


def test_an_objects_own_session_wins_over_the_default(session: FakeSession) -> None:
    default = FakeSession()
    hub.set_default_session(default)
    predictor = SimpleNamespace(hub_session=session, args=SimpleNamespace(task="detect", mode="predict"))
    hub.on_predict_start(predictor)
    assert session.names() == ["send_event"]
    assert default.calls == []


@pytest.mark.parametrize(
    "validator",
    [
        # the per-epoch validation inside training
        SimpleNamespace(args=SimpleNamespace(task="detect", mode="train"), training=True),
        # final_eval's fresh validator: training is False but the mode stays "train"
        SimpleNamespace(args=SimpleNamespace(task="detect", mode="train"), training=False),
    ],
)
def test_validation_inside_training_sends_no_val_event(session: FakeSession, validator: Any) -> None:
    hub.set_default_session(session)
    hub.on_val_start(validator)
    assert session.calls == []


def test_events_without_any_session_do_nothing() -> None:
    worker = SimpleNamespace(args=SimpleNamespace(task="detect", mode="predict"))
    hub.on_predict_start(worker)
    hub.on_export_start(worker)
    hub.on_val_start(worker)
    assert hub.get_default_session() is None


# -- no session, errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(hub.callbacks))
@pytest.mark.parametrize("has_attribute", [True, False])
def test_every_callback_is_a_no_op_without_a_session(name: str, has_attribute: bool) -> None:
    trainer = make_trainer(None)
    if not has_attribute:
        del trainer.hub_session
    before = dict(vars(trainer))
    hub.callbacks[name](trainer)
    assert vars(trainer) == before


def test_callbacks_dict_maps_each_name_to_the_function_of_that_name() -> None:
    assert set(hub.callbacks) == {
        "on_pretrain_routine_end",
        "on_train_start",
        "on_train_epoch_end",
        "on_fit_epoch_end",
        "on_model_save",
        "on_train_end",
        "on_val_start",
        "on_predict_start",
        "on_export_start",
    }
    for name, func in hub.callbacks.items():
        assert func.__name__ == name
        assert getattr(hub, name) is func


class ExplodingSession(FakeSession):
    def queue_metrics(self, epoch: int, metrics: Any) -> None:
        raise RuntimeError("spool is broken")


def test_an_exception_in_a_session_call_is_swallowed_and_logged_once(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hub, "raise_errors", False)
    monkeypatch.delenv("TRAINHUB_RAISE_CALLBACK_ERRORS", raising=False)
    trainer = make_trainer(ExplodingSession())
    with caplog.at_level(logging.DEBUG, logger="trainhub"):
        for epoch in range(1, 4):
            run_epoch(trainer, epoch)  # must not raise

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "on_fit_epoch_end" in errors[0].getMessage()
    assert errors[0].exc_info is not None and "spool is broken" in str(errors[0].exc_info[1])
    assert sum("failed again" in r.getMessage() for r in caplog.records) == 2


def test_each_callback_name_is_logged_once_on_its_own(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hub, "raise_errors", False)
    monkeypatch.delenv("TRAINHUB_RAISE_CALLBACK_ERRORS", raising=False)
    broken = SimpleNamespace(hub_session=object(), epoch=1)  # a session with none of the API
    with caplog.at_level(logging.ERROR, logger="trainhub"):
        for _ in range(2):
            hub.on_model_save(broken)
            hub.on_train_start(broken)
    assert sorted(r.getMessage().split()[1] for r in caplog.records) == ["on_model_save", "on_train_start"]


def test_the_test_flag_makes_the_guard_re_raise(fake_clock: FakeClock) -> None:
    with pytest.raises(RuntimeError, match="spool is broken"):
        run_epoch(make_trainer(ExplodingSession()), 1)


def test_the_environment_variable_makes_the_guard_re_raise(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub, "raise_errors", None)
    monkeypatch.setenv("TRAINHUB_RAISE_CALLBACK_ERRORS", "1")
    with pytest.raises(RuntimeError, match="spool is broken"):
        run_epoch(make_trainer(ExplodingSession()), 1)


def test_keyboard_interrupt_is_never_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "raise_errors", False)

    class Interrupting(FakeSession):
        def send_event(self, kind: str, task: str | None = None, mode: str | None = None) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        hub.on_train_start(make_trainer(Interrupting()))


def test_importing_the_callbacks_imports_no_framework() -> None:
    code = (
        "import sys, trainhub.callbacks.hub, trainhub.integrations; "
        "print(sorted(m for m in ('ultralytics', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.replace("'", '"')) == []


def test_checkpoint_paths_are_passed_through_unchanged(session: FakeSession, fake_clock: FakeClock) -> None:
    # The session reads (and hashes) the file itself, so the callback must not copy or open it.
    trainer = make_trainer(session, best=Path("relative/best.pt"))
    hub.on_train_end(trainer)
    [upload] = [c for c in session.calls if c[0] == "upload_model"]
    assert upload[2] == Path("relative/best.pt")
