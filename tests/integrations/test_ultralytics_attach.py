"""attach() / install() of trainhub.integrations.ultralytics, on fake models and trainers.

The real model and trainer are exercised by the heavy tests; here the registration rules and the
session arguments are checked without importing Ultralytics into the test process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from yolo_env import child_env, describe, run_child

import trainhub
from trainhub.callbacks import hub

pytest.importorskip("ultralytics")  # the module refuses to import without it

from trainhub.integrations import ultralytics as integration


class FakeModel:
    """What attach() uses of ultralytics.engine.model.Model."""

    def __init__(self) -> None:
        self.callbacks: defaultdict[str, list[Callable[..., Any]]] = defaultdict(list)

    def add_callback(self, event: str, func: Callable[..., Any]) -> None:
        self.callbacks[event].append(func)


class RecordedSession:
    """Stands in for trainhub.start_session's session; keeps the constructor arguments."""

    instances: list[RecordedSession] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        RecordedSession.instances.append(self)


def ultralytics_hub_callback() -> Callable[[Any], None]:
    """A function that looks like one of ultralytics<=8.4.114's own HUB callbacks."""

    def on_fit_epoch_end(trainer: Any) -> None:
        raise AssertionError("ultralytics' HUB callback must not run")

    on_fit_epoch_end.__module__ = "ultralytics.utils.callbacks.hub"
    return on_fit_epoch_end


def make_trainer(**args: Any) -> SimpleNamespace:
    defaults: dict[str, Any] = {
        "project": None,
        "name": "train3",
        "task": "detect",
        "data": Path("/data/coco8.yaml"),
        "imgsz": 64,
        "classes": (0, 1),
        "lr0": float("inf"),
        "device": object(),
    }
    defaults.update(args)
    return SimpleNamespace(args=SimpleNamespace(**defaults), epochs=3, callbacks=defaultdict(list))


@pytest.fixture(autouse=True)
def _fake_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "raise_errors", True)
    monkeypatch.setattr(trainhub, "start_session", RecordedSession)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    RecordedSession.instances = []


def starter(model: FakeModel) -> Callable[[Any], None]:
    [func] = model.callbacks["on_pretrain_routine_start"]
    return func


def test_attach_registers_a_session_starter_and_every_hub_callback() -> None:
    model = FakeModel()
    integration.attach(model)
    for name, func in hub.callbacks.items():
        assert model.callbacks[name][-1] is func
    assert len(model.callbacks["on_pretrain_routine_start"]) == 1
    assert model.callbacks["on_val_start"] == [integration.drop_ultralytics_hub_callbacks, hub.on_val_start]


def test_a_validation_that_re_added_ultralytics_hub_callbacks_drops_them_again() -> None:
    # ultralytics <= 8.4.114: the final evaluation's validator shares the trainer's callback dict
    # and calls add_integration_callbacks on it just before on_val_start.
    theirs = ultralytics_hub_callback()
    shared: defaultdict[str, list[Callable[..., Any]]] = defaultdict(list)
    shared["on_fit_epoch_end"] = [hub.on_fit_epoch_end, theirs]
    shared["on_val_start"] = [integration.drop_ultralytics_hub_callbacks, hub.on_val_start]
    validator = SimpleNamespace(callbacks=shared, args=SimpleNamespace(task="detect", mode="train"))
    for func in list(shared["on_val_start"]):
        func(validator)
    assert shared["on_fit_epoch_end"] == [hub.on_fit_epoch_end]


def test_attaching_twice_keeps_one_registration() -> None:
    model = FakeModel()
    integration.attach(model, project="a")
    integration.attach(model, project="b")
    assert all(len(funcs) == len(set(funcs)) for funcs in model.callbacks.values())
    assert sum(len(funcs) for funcs in model.callbacks.values()) == len(hub.callbacks) + 2
    trainer = make_trainer()
    starter(model)(trainer)
    assert trainer.hub_session.kwargs["project"] == "b"


def test_attach_keeps_other_callbacks_and_drops_ultralytics_hub_ones() -> None:
    model = FakeModel()

    def users_own(trainer: Any) -> None:
        pass

    model.add_callback("on_fit_epoch_end", users_own)
    model.add_callback("on_fit_epoch_end", ultralytics_hub_callback())
    integration.attach(model)
    assert model.callbacks["on_fit_epoch_end"] == [users_own, hub.on_fit_epoch_end]


def test_attach_rejects_something_that_is_not_a_model() -> None:
    with pytest.raises(TypeError, match="add_callback"):
        integration.attach(object())


def test_session_is_made_from_the_trainer_arguments() -> None:
    model = FakeModel()
    integration.attach(
        model, url="http://hub:8000", api_key="ul_" + "a" * 40, rate_limits={"metrics": 1.0}, spool_dir="/s"
    )
    trainer = make_trainer(project="/home/me/runs/detect")
    starter(model)(trainer)

    [session] = RecordedSession.instances
    assert trainer.hub_session is session
    kwargs = session.kwargs
    config = kwargs.pop("config")
    assert kwargs == {
        "url": "http://hub:8000",
        "api_key": "ul_" + "a" * 40,
        "project": "detect",
        "name": "train3",
        "epochs": 3,
        "task": "detect",
        "rate_limits": {"metrics": 1.0},
        "spool_dir": "/s",
    }
    assert json.loads(json.dumps(config)) == config
    assert config["data"] == "/data/coco8.yaml"
    assert config["classes"] == [0, 1]
    assert config["lr0"] is None  # not finite: JSON has no inf
    assert isinstance(config["device"], str)


def test_explicit_project_and_name_win_over_the_trainer_arguments() -> None:
    model = FakeModel()
    integration.attach(model, project="itest", name="first-run")
    trainer = make_trainer(project="runs/detect")
    starter(model)(trainer)
    assert (trainer.hub_session.kwargs["project"], trainer.hub_session.kwargs["name"]) == (
        "itest",
        "first-run",
    )


def test_without_any_project_the_session_default_applies() -> None:
    model = FakeModel()
    integration.attach(model)
    trainer = make_trainer(project=None)
    starter(model)(trainer)
    assert trainer.hub_session.kwargs["project"] is None


def test_no_session_on_a_ddp_worker_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    model = FakeModel()
    integration.attach(model)
    trainer = make_trainer()
    starter(model)(trainer)
    assert not hasattr(trainer, "hub_session")
    assert RecordedSession.instances == []


def test_rank_zero_of_ddp_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    model = FakeModel()
    integration.attach(model)
    trainer = make_trainer()
    starter(model)(trainer)
    assert len(RecordedSession.instances) == 1


def test_starter_removes_ultralytics_hub_callbacks_from_the_trainer_without_mutating_lists() -> None:
    model = FakeModel()
    integration.attach(model)
    trainer = make_trainer()
    theirs = ultralytics_hub_callback()
    running = [starter(model), theirs]  # the list run_callbacks is iterating right now
    trainer.callbacks["on_pretrain_routine_start"] = running
    trainer.callbacks["on_fit_epoch_end"] = [hub.on_fit_epoch_end, theirs]

    starter(model)(trainer)

    assert trainer.callbacks["on_fit_epoch_end"] == [hub.on_fit_epoch_end]
    assert trainer.callbacks["on_pretrain_routine_start"] == [running[0]]
    assert running == [running[0], theirs]  # replaced, not edited in place


def test_an_existing_trainhub_session_is_kept() -> None:
    model = FakeModel()
    integration.attach(model)
    trainer = make_trainer()
    trainer.hub_session = existing = trainhub.NullSession()
    starter(model)(trainer)
    assert trainer.hub_session is existing
    assert RecordedSession.instances == []


def test_a_foreign_session_is_replaced() -> None:
    model = FakeModel()
    integration.attach(model)
    trainer = make_trainer()
    trainer.hub_session = object()  # e.g. ultralytics' own HUBTrainingSession
    starter(model)(trainer)
    assert isinstance(trainer.hub_session, RecordedSession)


def test_disabled_mode_gives_a_null_session_that_every_callback_accepts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.undo()  # the real start_session this time
    monkeypatch.setattr(hub, "raise_errors", True)
    monkeypatch.setenv("TRAINHUB_MODE", "disabled")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    model = FakeModel()
    integration.attach(model)
    trainer = make_trainer()
    starter(model)(trainer)
    assert isinstance(trainer.hub_session, trainhub.NullSession)

    trainer.epoch, trainer.tloss, trainer.metrics, trainer.lr = 1, None, {"metrics/mAP50-95(B)": 0.5}, {}
    trainer.label_loss_items = lambda loss, prefix="train": {}
    trainer.last = trainer.best = tmp_path / "best.pt"
    trainer.best_fitness = trainer.fitness = 0.5
    for name in ("on_pretrain_routine_end", "on_train_start", "on_train_epoch_end", "on_fit_epoch_end"):
        model.callbacks[name][0](trainer)
    model.callbacks["on_model_save"][0](trainer)
    model.callbacks["on_train_end"][0](trainer)
    assert "View model" not in capsys.readouterr().out


def test_a_failing_session_constructor_does_not_stop_training(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "raise_errors", False)

    def broken(**kwargs: Any) -> None:
        raise ValueError("bad url")

    monkeypatch.setattr(trainhub, "start_session", broken)
    model = FakeModel()
    integration.attach(model)
    trainer = make_trainer()
    starter(model)(trainer)  # logged, not raised
    assert getattr(trainer, "hub_session", None) is None


def test_import_without_ultralytics_names_the_extra_to_install() -> None:
    code = (
        "import sys; sys.modules['ultralytics'] = None\n"
        "try:\n    import trainhub.integrations.ultralytics\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'trainhub[ultralytics]'" in out


INSTALL_CHILD = """
import json
from ultralytics import YOLO
from trainhub.integrations.ultralytics import install, uninstall

def names(model):
    return sorted(e for e, funcs in model.callbacks.items()
                  if any(f.__module__.startswith(("trainhub.", "__main__")) for f in funcs))

before = names(YOLO("yolov8n.yaml"))
install(project="p")
install(project="p")  # idempotent
model = YOLO("yolov8n.yaml")
installed = names(model)
counts = {e: len(funcs) for e, funcs in model.callbacks.items()}
uninstall()
after = names(YOLO("yolov8n.yaml"))
print("TRAINHUB_TEST_RESULT " + json.dumps(
    {"before": before, "installed": installed, "after": after, "counts": counts}))
"""


def test_install_adds_the_callbacks_to_every_new_model_and_uninstall_removes_them(tmp_path: Path) -> None:
    run = run_child(tmp_path, INSTALL_CHILD, [], child_env(tmp_path), timeout=120)
    assert run.returncode == 0, describe(run)
    assert run.result["before"] == []
    assert run.result["installed"] == sorted([*hub.callbacks, "on_pretrain_routine_start"])
    # one default no-op + ours, once, even after two install() calls
    assert run.result["counts"]["on_fit_epoch_end"] == 2
    assert run.result["after"] == []
