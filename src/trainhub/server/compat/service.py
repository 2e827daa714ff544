"""Rules of the compatibility layer: both Ultralytics protocols mapped onto trainhub's models.

One model whatever protocol created it: HUB and Platform calls create and update the same rows
(models, metric points, checkpoint slots, heartbeats) through trainhub's own services, so the
native API and the web UI show a HUB or Platform run like any other. What is protocol-specific:

* HUB model documents (``GET /v1/models/{id}``) are built from the model row, its checkpoint
  slots and its dataset: ``status: "trained"`` once the model is done with weights, ``weights``
  then points at best.pt (``.../<model id>/best.pt``); a ``last`` checkpoint on an unfinished
  model gives ``has_last_weights`` + ``resume`` (so the unmodified client resumes);
* the final evaluation that Ultralytics re-emits as epoch ``last + 1`` is stored as the model's
  final metrics, never as an epoch (see :func:`~trainhub.server.compat.convert.is_final_eval`);
* Platform runs get a run number per ``training_started`` (``compat_runs``), and checkpoints go
  through staged uploads: ``models/upload`` stages, the signed PUT fills, ``checkpoint_saved``
  promotes (best.pt -> ``best`` slot, last.pt -> ``last``) and ``training_complete`` makes the
  promoted file the ``final`` checkpoint (the model is then done, or cancelled if a stop was asked).

Tenancy (:mod:`trainhub.server.access`): every function takes the caller's principal. Lists show
only what it sees; a model, project or dataset of another tenant answers 404 like an unknown one
(the HUB routes' ``{model_id}`` is checked by the route dependency, see :mod:`.http`; models
named in a Platform body are checked here); one it sees but may not change answers 403. New
models and projects go through :func:`~trainhub.server.access.writable_project`, new datasets
belong to the caller's user. Signed URLs (weights, resume checkpoints, dataset zips) are only put
in documents the caller may see, and a model's dataset URL only if the caller sees the dataset.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection

from trainhub.protocol import CheckpointKind, ErrorCode, ModelStatus
from trainhub.server import access
from trainhub.server.auth import Principal
from trainhub.server.compat import convert
from trainhub.server.compat import store as cq
from trainhub.server.compat.signing import UrlSigner
from trainhub.server.errors import ApiError
from trainhub.server.objects import BlobInfo
from trainhub.server.schemas import ModelCreateIn
from trainhub.server.services import checkpoints as ckpt_svc
from trainhub.server.services import datasets as ds_svc
from trainhub.server.services import iso
from trainhub.server.services import metrics as metrics_svc
from trainhub.server.services import models as model_svc
from trainhub.server.store import checkpoints as ckq
from trainhub.server.store import datasets as dq
from trainhub.server.store import metrics as mq
from trainhub.server.store import models as q
from trainhub.server.store.engine import Store
from trainhub.server.store.tables import datasets, projects, utcnow

__all__ = [
    "ACTIVE_STATUSES",
    "FINISHED_STATUSES",
    "hub_create_dataset",
    "hub_create_model",
    "hub_create_project",
    "hub_dataset_doc",
    "hub_get_dataset",
    "hub_get_metrics",
    "hub_get_model",
    "hub_get_project",
    "hub_list_datasets",
    "hub_list_models",
    "hub_list_projects",
    "hub_metrics",
    "hub_model_doc",
    "hub_update_model",
    "hub_upload",
    "hub_upload_project_image",
    "model_for_event",
    "platform_checkpoint_saved",
    "platform_complete",
    "platform_epoch_end",
    "platform_files",
    "platform_receive_put",
    "platform_stage_upload",
    "platform_training_started",
    "store_epochs",
]

FINISHED_STATUSES = (ModelStatus.DONE.value, ModelStatus.FAILED.value, ModelStatus.CANCELLED.value)
ACTIVE_STATUSES = (
    ModelStatus.NEW.value,
    ModelStatus.TRAINING.value,
    ModelStatus.STALLED.value,
    ModelStatus.CRASHED.value,
)
#: Most epochs accepted in one metrics request (the HUB client batches; one flush is rarely > 100).
MAX_EPOCHS = 1000
#: Leading bytes of a PyTorch checkpoint: a zip archive (torch >= 1.6) or a legacy pickle.
_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")

#: The "heartbeat interval" liveness assumes for Platform runs (they send one event per epoch).
PLATFORM_IDLE_INTERVAL = 300.0


def _not_found(model_id: str) -> ApiError:
    return ApiError(404, ErrorCode.MODEL_NOT_FOUND, f"no model with id {model_id!r}")


def _require_model(conn: Connection, model_id: str) -> Mapping[str, Any]:
    row = q.get_model(conn, model_id) if model_id else None
    if row is None:
        raise _not_found(model_id)
    return row


def _project_name(principal: Principal, name: str | None) -> str:
    """A project name as :func:`~trainhub.server.access.writable_project` reads it."""
    return principal.default_project if name is None or name == "default" else name


def _check_write(principal: Principal, model: Mapping[str, Any]) -> None:
    """403 unless ``principal`` may write to a (visible) model row of :mod:`.store`."""
    project = {
        "name": model["project"],
        "owner_user_id": model["owner_user_id"],
        "owner_team_id": model["owner_team_id"],
    }
    if not access.can_write(principal, project):
        raise ApiError(403, ErrorCode.FORBIDDEN, f"this key may not write to project {model['project']!r}")


def _planned_epochs(model: Mapping[str, Any]) -> int | None:
    if model["epochs"] is not None:
        return int(model["epochs"])
    value = convert.coerce_literal((model["config"] or {}).get("epochs"))
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# --- metrics ---------------------------------------------------------------------------------


def store_epochs(
    store: Store, model_id: str, epochs: Mapping[int, Mapping[str, float | None]]
) -> Mapping[str, Any]:
    """Upsert per-epoch metrics; the final evaluation goes to ``final_metrics``. Returns the model row.

    Raises:
        ApiError: 404 ``model_not_found``, 413 ``payload_too_large``.
    """
    if len(epochs) > MAX_EPOCHS:
        raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, f"at most {MAX_EPOCHS} epochs per request")
    with store.write() as conn:
        model = _require_model(conn, model_id)
        planned = _planned_epochs(model)
        validated = cq.has_val_points(conn, model_id) or any(
            any(k.startswith("val/") for k in m) for m in epochs.values()
        )
        rows: list[dict[str, Any]] = []
        final: dict[str, float | None] = {}
        for epoch, metrics in sorted(epochs.items()):
            if not metrics:
                continue
            if convert.is_final_eval(epoch, metrics, planned_epochs=planned, validated_before=validated):
                final.update(metrics)
                continue
            rows.extend(
                {"model_id": model_id, "name": n, "step": epoch, "value": v} for n, v in metrics.items()
            )
        mq.upsert_points(conn, store.dialect, rows)
        if final:
            merged = {**(model["final_metrics"] or {}), **final}
            q.update_model(conn, model_id, final_metrics=merged, updated_at=utcnow())
        model_svc.mark_training(conn, model)
        return _require_model(conn, model_id)


def hub_metrics(store: Store, model_id: str, body: Any) -> None:
    """HUB ``POST /v1/models/{id}``: ``{"metrics": {"<epoch>": "<json>"}, "type": "metrics"}``.

    Raises:
        ApiError: 400 ``validation_error`` (wrong shape), 404 ``model_not_found``.
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("metrics"), Mapping):
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, 'expected {"metrics": {"<epoch>": "<json>"}}')
    epochs: dict[int, dict[str, float | None]] = {}
    for key, value in body["metrics"].items():
        text = str(key).strip()
        if not text.isdigit() or len(text) > 9:
            raise ApiError(400, ErrorCode.VALIDATION_ERROR, f"metrics key {key!r} is not an epoch number")
        epochs[int(text)] = convert.metric_dict(value)
    store_epochs(store, model_id, epochs)


def hub_get_metrics(store: Store, model_id: str) -> list[dict[str, Any]]:
    """Every epoch of a model (``GET /v1/models/{id}/metrics``)."""
    return metrics_svc.read_epochs(store, model_id)


# --- HUB model documents -------------------------------------------------------------------------


def hub_model_doc(
    conn: Connection, principal: Principal, model: Mapping[str, Any], signer: UrlSigner, base: str
) -> dict[str, Any]:
    """The HUB model document of a model row the caller sees (see the module docstring).

    ``data`` becomes a signed URL of the hub dataset it names only if ``principal`` sees that
    dataset; else it stays the reference as given (no URL of another tenant's dataset).
    """
    model_id = str(model["id"])
    config: dict[str, Any] = dict(model["config"] or {})
    slots = {r["kind"]: r for r in ckq.list_checkpoints(conn, model_id)}
    best = slots.get(CheckpointKind.FINAL.value) or slots.get(CheckpointKind.BEST.value)
    trained = model["status"] == ModelStatus.DONE.value and best is not None
    last = slots.get(CheckpointKind.LAST.value)
    has_last = last is not None and not trained and signer.safe_part(model_id)

    def url(sha: str, ident: str, filename: str) -> str:
        return base + signer.download_path(sha, ident, filename)

    weights = url(best["sha256"], model_id, "best.pt") if trained and best is not None else None
    resume = None
    if has_last and last is not None:
        resume = url(last["sha256"], model_id, f"{model_id}-last-e{last['epoch']}-{last['sha256'][:8]}.pt")

    data = config.get("data")
    dataset = ds_svc.resolve_in(conn, principal, data)
    if dataset is not None:
        data = url(dataset["sha256"], dataset["id"], _served_zip_name(dataset))
    train_args = convert.hub_train_args(config)
    if data is not None:
        train_args["data"] = data
    planned = _planned_epochs(model)
    if planned is not None:
        train_args.setdefault("epochs", planned)
    arch = config.get("model") or config.get("cfg") or "yolov8n.yaml"
    return {
        "id": model_id,
        "name": model["name"],
        "project": model["project"],
        "meta": {"name": model["name"]},
        "status": "trained" if trained else model["status"],
        "has_last_weights": has_last,
        "has_best_weights": best is not None,
        "is_pretrained": False,
        "is_custom": False,
        "cfg": str(arch),
        "weights": weights,
        "resume": resume,
        "data": data,
        "train_args": train_args,
        "batch_size": train_args.get("batch", -1),
        "epochs": train_args.get("epochs"),
        "imgsz": train_args.get("imgsz", 640),
        "patience": train_args.get("patience", 100),
        "device": str(train_args.get("device", "")),
        "cache": str(train_args.get("cache", "ram")),
        "createdAt": iso(model["created_at"]),
        "updatedAt": iso(model["updated_at"]),
        "url": f"{base}/models/{model_id}",
    }


def _served_zip_name(dataset: Mapping[str, Any]) -> str:
    # The clients cache zips by file name: make it unique per content.
    stem = str(dataset["filename"] or "dataset.zip").removesuffix(".zip")
    return f"{stem}-{str(dataset['sha256'])[:8]}.zip"


def hub_get_model(
    store: Store, principal: Principal, signer: UrlSigner, base: str, model_id: str
) -> dict[str, Any]:
    """``GET /v1/models/{id}``: the model document; ApiError 404 (also for another tenant's)."""
    with store.read() as conn:
        model = cq.get_model(conn, model_id, access.owner_clause(projects, principal))
        if model is None:
            raise _not_found(model_id)
        return hub_model_doc(conn, principal, model, signer, base)


def hub_list_models(
    store: Store, principal: Principal, signer: UrlSigner, base: str, *, limit: int, after_id: str | None
) -> dict[str, Any]:
    """``GET /v1/models?limit=&last_doc_id=``: a page of the models the caller sees, newest
    first, with the cursor of the next."""
    visible = access.owner_clause(projects, principal)
    with store.read() as conn:
        rows = cq.list_models_page(conn, limit=limit + 1, after_id=after_id, visible=visible)
        total = cq.count_models(conn, visible)
        docs = [hub_model_doc(conn, principal, r, signer, base) for r in rows[:limit]]
    more = len(rows) > limit
    return {"results": docs, "total": total, "lastRecordId": docs[-1]["id"] if more and docs else None}


def _hub_config(payload: Mapping[str, Any]) -> dict[str, Any]:
    raw = payload.get("config")
    raw = raw if isinstance(raw, Mapping) else {}
    names = {"batchSize": "batch", "imageSize": "imgsz"}
    config: dict[str, Any] = {}
    for key, value in raw.items():
        target = names.get(str(key), str(key))
        if target in convert.HUB_TRAIN_ARG_KEYS:
            config[target] = convert.coerce_literal(value)
    if config.get("batch") == -1:
        config.pop("batch")
    if config.get("device") == "":
        config.pop("device")
    dataset = payload.get("dataset")
    if isinstance(dataset, Mapping):
        ref = dataset.get("id") or dataset.get("name")
        if isinstance(ref, str) and ref:
            config["data"] = ref
    lineage = payload.get("lineage")
    if isinstance(lineage, Mapping):
        parent = lineage.get("parent")
        arch = lineage.get("architecture")
        if isinstance(parent, Mapping) and isinstance(parent.get("name"), str):
            config["model"] = parent["name"]
        elif isinstance(arch, Mapping) and isinstance(arch.get("name"), str):
            config["model"] = f"{arch['name']}.yaml"
    return config


def _name_of(payload: Mapping[str, Any], default: str) -> str:
    meta = payload.get("meta")
    name = meta.get("name") if isinstance(meta, Mapping) else payload.get("name")
    if not isinstance(name, str) or not name.strip():
        return default
    return name.strip().replace("/", "-").replace("\\", "-")[:200]


def hub_create_model(store: Store, principal: Principal, payload: Any, base: str) -> str:
    """``POST /v1/models``: create a model from a HUB create payload; returns its id.

    The model goes to the project ``projectId``/``project`` names (by id or name; the caller's
    default project if none), which the caller must be allowed to write to.

    Raises:
        ApiError: 400 ``validation_error`` (not an object), 404 ``not_found`` (a project the
            caller does not see), 403 ``forbidden`` (a project it may not write to).
    """
    if not isinstance(payload, Mapping):
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "expected a JSON object")
    config = _hub_config(payload)
    project: str | None = None
    project_ref = payload.get("projectId") or payload.get("project")
    if isinstance(project_ref, str) and project_ref.strip():
        with store.read() as conn:
            found = cq.get_project(conn, project_ref.strip())
        if found is not None and not access.can_see(principal, found):
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no project {project_ref.strip()!r}")
        project = str(found["name"]) if found is not None else project_ref.strip()[:200].replace("/", "-")
    epochs = config.get("epochs")
    body = ModelCreateIn(
        name=_name_of(payload, "model"),
        project=project,
        config=config,
        epochs=epochs if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 0 else None,
        task=config.get("task") if isinstance(config.get("task"), str) else None,
    )
    model, _ = model_svc.create_model(store, principal, None, body, base)
    with store.write() as conn:
        cq.bump_run(conn, store.dialect, model["id"], "hub", None, utcnow())
    return str(model["id"])


def hub_update_model(store: Store, model_id: str, payload: Any) -> None:
    """``PATCH /v1/models/{id}``: rename (``meta.name``); ApiError 404."""
    if not isinstance(payload, Mapping):
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "expected a JSON object")
    with store.write() as conn:
        model = _require_model(conn, model_id)
        name = _name_of(payload, str(model["name"]))
        q.update_model(conn, model_id, name=name, updated_at=utcnow())


def hub_upload(
    store: Store, model_id: str, fields: Mapping[str, str], filename: str, head: bytes, blob: BlobInfo
) -> dict[str, Any]:
    """HUB checkpoint upload: ``type=epoch`` fills ``last`` (and ``best`` if ``isBest``),
    ``type=final`` fills ``final`` + ``best`` and marks the model done. Idempotent per
    (model, type, epoch): a replay points the same slot at the same blob.

    Raises:
        ApiError: 400 ``validation_error`` (bad fields or not a checkpoint), 404.
    """
    kind_text = fields.get("type", "epoch").strip().lower()
    if kind_text not in ("epoch", "final"):
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "type must be 'epoch' or 'final'")
    epoch_text = fields.get("epoch", "").strip()
    epoch = int(epoch_text) if epoch_text.lstrip("-").isdigit() else None
    if epoch is not None and epoch < 0:
        epoch = None
    if blob.size == 0 or not head.startswith(_CHECKPOINT_MAGIC):
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, f"{filename!r} is not a PyTorch checkpoint")
    if kind_text == "final":
        _, map_value = convert.metric_value(fields.get("map", "0"))
        return ckpt_svc.record_checkpoint(
            store, model_id, CheckpointKind.FINAL, blob, epoch=epoch, is_best=True, map_value=map_value
        )
    is_best = fields.get("isBest", "False").strip().lower() in ("true", "1")
    return ckpt_svc.record_checkpoint(
        store, model_id, CheckpointKind.LAST, blob, epoch=epoch, is_best=is_best, map_value=None
    )


# --- HUB datasets and projects -------------------------------------------------------------------


def hub_dataset_doc(row: Mapping[str, Any], signer: UrlSigner, base: str) -> dict[str, Any]:
    """The HUB dataset document: ``url`` is a signed ``.../<dataset id>/<zip name>`` link (build
    it only for a caller who sees the dataset)."""
    url = None
    if row["sha256"]:
        url = base + signer.download_path(str(row["sha256"]), str(row["id"]), _served_zip_name(row))
    return {
        "id": row["id"],
        "name": row["name"],
        "meta": {"name": row["name"]},
        "task": row["task"],
        "status": "ready" if row["sha256"] else "new",
        "filename": row["filename"],
        "bytes": row["size"],
        "url": url,
        "createdAt": iso(row["created_at"]),
    }


def hub_get_dataset(
    store: Store, principal: Principal, signer: UrlSigner, base: str, dataset_id: str
) -> dict[str, Any]:
    """``GET /v1/datasets/{id}``; ApiError 404 (also for another tenant's)."""
    return hub_dataset_doc(ds_svc.get_row(store, principal, dataset_id), signer, base)


def hub_create_dataset(store: Store, principal: Principal, payload: Any) -> str:
    """``POST /v1/datasets``: create an empty dataset of the caller's user; returns its id."""
    if not isinstance(payload, Mapping):
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "expected a JSON object")
    task = payload.get("task")
    created = ds_svc.create_dataset(
        store, principal, _name_of(payload, "dataset"), task if isinstance(task, str) else None
    )
    return str(created["id"])


def hub_list_datasets(
    store: Store, principal: Principal, signer: UrlSigner, base: str, *, limit: int, after_id: str | None
) -> dict[str, Any]:
    """``GET /v1/datasets``: a page of the datasets the caller sees, newest first, with the
    cursor of the next."""
    visible = access.owner_clause(datasets, principal)
    with store.read() as conn:
        rows = dq.list_datasets(conn, limit=limit + 1, after_id=after_id, visible=visible)
        total = dq.count_datasets(conn, visible)
    docs = [hub_dataset_doc(r, signer, base) for r in rows[:limit]]
    more = len(rows) > limit
    return {"results": docs, "total": total, "lastRecordId": docs[-1]["id"] if more and docs else None}


def _project_doc(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "meta": {"name": row["name"]},
        "modelCount": int(row["model_count"]),
        "createdAt": iso(row["created_at"]),
    }


def _visible_project(store: Store, principal: Principal, ident: str) -> Mapping[str, Any]:
    with store.read() as conn:
        row = cq.get_project(conn, ident)
    if row is None or not access.can_see(principal, row):
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no project {ident!r}")
    return row


def hub_get_project(store: Store, principal: Principal, ident: str) -> dict[str, Any]:
    """``GET /v1/projects/{id}`` (id or name); ApiError 404 (also for another tenant's)."""
    return _project_doc(_visible_project(store, principal, ident))


def hub_upload_project_image(store: Store, principal: Principal, ident: str) -> None:
    """Check ``POST /v1/projects/{id}/upload``: ApiError 404 (not seen), 403 (not writable)."""
    row = _visible_project(store, principal, ident)
    if not access.can_write(principal, row):
        raise ApiError(403, ErrorCode.FORBIDDEN, f"this key may not write to project {row['name']!r}")


def hub_create_project(store: Store, principal: Principal, payload: Any) -> str:
    """``POST /v1/projects``: create a project of the caller's user (idempotent by name);
    returns its id. ApiError 403 when the name is another tenant's project."""
    if not isinstance(payload, Mapping):
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "expected a JSON object")
    name = _name_of(payload, "")
    if not name:
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "a project needs meta.name")
    with store.write() as conn:
        return str(access.writable_project(conn, store.dialect, principal, name))


def hub_list_projects(
    store: Store, principal: Principal, *, limit: int, after_id: str | None
) -> dict[str, Any]:
    """``GET /v1/projects``: a page of the projects the caller sees by id, with the cursor of the next."""
    visible = access.owner_clause(projects, principal)
    with store.read() as conn:
        rows, total = cq.list_projects_page(conn, limit=limit + 1, after_id=after_id, visible=visible)
    docs = [_project_doc(r) for r in rows[:limit]]
    more = len(rows) > limit
    return {"results": docs, "total": total, "lastRecordId": docs[-1]["id"] if more and docs else None}


# --- Platform --------------------------------------------------------------------------------


def model_for_event(store: Store, principal: Principal, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The model a Platform event is about: ``modelId``, else the newest ``project`` + ``name``;
    the caller must be allowed to write to it (events and uploads change the model).

    Raises:
        ApiError: 404 ``model_not_found`` (also for another tenant's), 403 ``forbidden``.
    """
    model_id = body.get("modelId")
    visible = access.owner_clause(projects, principal)
    row: Mapping[str, Any] | None = None
    with store.read() as conn:
        if isinstance(model_id, str) and model_id:
            row = cq.get_model(conn, model_id, visible)
        else:
            project = body.get("project")
            if isinstance(project, str) and project:
                _, proj = convert.split_platform_project(project)
                name = body.get("name") if isinstance(body.get("name"), str) else "train"
                row = cq.find_model_by_name(
                    conn, _project_name(principal, proj), str(name or "train"), visible=visible
                )
    if row is None:
        raise _not_found(str(model_id or ""))
    _check_write(principal, row)
    return row


def _started_reply(model: Mapping[str, Any], run_id: int, base: str) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "received": True,
        "event": "training_started",
        "mode": "remote",
        "modelId": model["id"],
        "runId": run_id,
        "modelSlug": model["name"],
        "modelUrl": f"{base}/models/{model['id']}",
    }
    if model["stop_requested"]:
        reply["cancelled"] = True
    return reply


def platform_training_started(
    store: Store, principal: Principal, body: Mapping[str, Any], base: str
) -> dict[str, Any]:
    """``training_started``: continue the model named by ``modelId`` (a resume), else take the
    ``new`` model of ``project`` + ``name`` (made in trainhub ahead of the run), else create one.
    The caller must be allowed to write to the model or project (404 for another tenant's model,
    403 for a project it may not write to).

    A resume of a finished or stopped model answers 404 / ``cancelled`` so that the client
    registers a fresh run (what it does on those replies), never reopening the finished one.
    """
    data = body.get("data") if isinstance(body.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    raw_args = data.get("trainArgs") if isinstance(data.get("trainArgs"), Mapping) else {}
    assert isinstance(raw_args, Mapping)
    config = {str(k): convert.coerce_literal(v) for k, v in raw_args.items()}
    epochs_raw = convert.coerce_literal(data.get("epochs", config.get("epochs")))
    epochs = (
        epochs_raw
        if isinstance(epochs_raw, int) and not isinstance(epochs_raw, bool) and epochs_raw >= 0
        else None
    )
    project_raw = body.get("project") if isinstance(body.get("project"), str) else ""
    owner, project = convert.split_platform_project(str(project_raw or "default"))
    name_raw = body.get("name")
    name = convert.slugify(name_raw) if isinstance(name_raw, str) and name_raw else "train"
    name = name or "train"
    model_id = body.get("modelId")
    now = utcnow()
    if isinstance(model_id, str) and model_id:
        access.check_model(store, principal, model_id, write=True)
    with store.write() as conn:
        if isinstance(model_id, str) and model_id:
            model = _require_model(conn, model_id)
            if model["stop_requested"] or model["status"] in FINISHED_STATUSES:
                if model["status"] in FINISHED_STATUSES and not model["stop_requested"]:
                    raise _not_found(model_id)
                run = cq.get_run(conn, model_id)
                return _started_reply(model, int(run["run_count"]) if run else 0, base)
        else:
            # Checks (or creates) the project first: never a model in another tenant's project.
            project_id = access.writable_project(conn, store.dialect, principal, project)
            project = _project_name(principal, project)
            found = cq.find_model_by_name(conn, project, name, statuses=(ModelStatus.NEW.value,))
            if found is None:
                created = ModelCreateIn(
                    name=name,
                    project=project,
                    config=config,
                    epochs=epochs,
                    task=str(config["task"]) if isinstance(config.get("task"), str) else None,
                )
                new_id = secrets.token_hex(10)
                q.insert_model(
                    conn,
                    store.dialect,
                    {
                        "id": new_id,
                        "name": created.name,
                        "project_id": project_id,
                        "status": ModelStatus.NEW.value,
                        "config": created.config,
                        "epochs": created.epochs,
                        "task": created.task,
                        "created_at": now,
                        "updated_at": now,
                        "stop_requested": False,
                    },
                )
                found = _require_model(conn, new_id)
            model = found
            if model["stop_requested"]:
                return _started_reply(model, 0, base)
        if model["epochs"] is None and epochs is not None:
            q.update_model(conn, model["id"], epochs=epochs)
        if not model["config"]:
            q.update_model(conn, model["id"], config=config)
        run_id = cq.bump_run(conn, store.dialect, model["id"], "platform", owner, now)
        # The Platform client sends no heartbeats, only an event per epoch: allow long epochs
        # before liveness calls the run stalled.
        model_svc.mark_training(conn, model, interval=PLATFORM_IDLE_INTERVAL)
        return _started_reply(_require_model(conn, model["id"]), run_id, base)


def platform_epoch_end(store: Store, principal: Principal, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """``epoch_end``: one epoch's metrics (plus ``modelInfo`` at epoch 0); returns the model row."""
    model = model_for_event(store, principal, body)
    data = body.get("data") if isinstance(body.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    epoch = data.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "data.epoch must be a non-negative integer")
    metrics = convert.metric_dict(data.get("metrics"))
    info = data.get("modelInfo")
    if isinstance(info, Mapping):
        names = {
            "parameters": "model/parameters",
            "gflops": "model/GFLOPs",
            "speedMs": "model/speed_PyTorch(ms)",
        }
        for key, target in names.items():
            keep, value = convert.metric_value(info.get(key))
            if keep and key in info:
                metrics[target] = value
    return store_epochs(store, str(model["id"]), {epoch: metrics})


def platform_stage_upload(
    store: Store, principal: Principal, signer: UrlSigner, base: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """``POST /api/webhooks/models/upload``: stage an upload and return its signed PUT URL (only
    for a model the caller may write to)."""
    model = model_for_event(store, principal, body)
    filename = body.get("filename")
    if not isinstance(filename, str) or not signer.safe_part(filename) or not filename.endswith(".pt"):
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "filename must be a plain *.pt file name")
    run_id = body.get("runId") if isinstance(body.get("runId"), int) else None
    upload_id = secrets.token_hex(12)
    with store.write() as conn:
        cq.insert_upload(
            conn,
            {
                "id": upload_id,
                "model_id": model["id"],
                "run_id": run_id,
                "filename": filename,
                "created_at": utcnow(),
            },
        )
    path = f"{model['id']}/run{run_id or 0}/{upload_id}/{filename}"
    return {
        "uploadUrl": base + signer.upload_path(upload_id, filename),
        "gcsPath": f"trainhub://{path}",
        "uploadPath": path,
        "modelId": model["id"],
    }


def platform_receive_put(store: Store, upload_id: str, filename: str, blob: BlobInfo) -> None:
    """The signed PUT of a staged upload arrived (verified); remember its blob (replays replace)."""
    with store.write() as conn:
        row = cq.get_upload(conn, upload_id)
        if row is None or row["filename"] != filename:
            raise ApiError(404, ErrorCode.NOT_FOUND, "no such staged upload")
        cq.update_upload(conn, upload_id, size=blob.size, sha256=blob.sha256, completed_at=utcnow())


def _upload_from_path(conn: Connection, data: Mapping[str, Any], model_id: str) -> Mapping[str, Any] | None:
    for key in ("uploadPath", "modelPath"):
        value = data.get(key)
        if not isinstance(value, str):
            continue
        parts = value.removeprefix("trainhub://").split("/")
        if len(parts) == 4 and parts[0] == model_id:
            row = cq.get_upload(conn, parts[2])
            if row is not None and row["model_id"] == model_id and row["sha256"]:
                return row
    return None


def platform_checkpoint_saved(
    store: Store, principal: Principal, body: Mapping[str, Any]
) -> Mapping[str, Any]:
    """``checkpoint_saved``: promote the staged upload (best.pt -> ``best``, else ``last``)."""
    model = model_for_event(store, principal, body)
    data = body.get("data") if isinstance(body.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    with store.read() as conn:
        upload = _upload_from_path(conn, data, str(model["id"]))
    if upload is None:
        raise ApiError(404, ErrorCode.CHECKPOINT_NOT_FOUND, "no completed upload at that uploadPath")
    blob = BlobInfo(str(upload["sha256"]), int(upload["size"]), created=False)
    is_best = upload["filename"] == "best.pt"
    kind = CheckpointKind.BEST if is_best else CheckpointKind.LAST
    if model["status"] not in FINISHED_STATUSES:
        ckpt_svc.record_checkpoint(
            store, str(model["id"]), kind, blob, epoch=None, is_best=is_best, map_value=None
        )
    with store.write() as conn:
        cq.update_upload(conn, str(upload["id"]), promoted_at=utcnow())
        return _require_model(conn, str(model["id"]))


def platform_complete(store: Store, principal: Principal, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """``training_complete``: final metrics, the final checkpoint, and the end status
    (``cancelled`` when a stop was asked, else ``done``)."""
    model = model_for_event(store, principal, body)
    model_id = str(model["id"])
    data = body.get("data") if isinstance(body.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    results = data.get("results") if isinstance(data.get("results"), Mapping) else {}
    assert isinstance(results, Mapping)
    final = convert.metric_dict(results.get("metrics"))
    with store.read() as conn:
        upload = _upload_from_path(conn, {"modelPath": results.get("modelPath")}, model_id)
    if upload is not None:
        blob = BlobInfo(str(upload["sha256"]), int(upload["size"]), created=False)
        map_value = final.get("metrics/mAP50-95(B)")
        ckpt_svc.record_checkpoint(
            store, model_id, CheckpointKind.FINAL, blob, epoch=None, is_best=True, map_value=map_value
        )
    with store.write() as conn:
        current = _require_model(conn, model_id)
        status = ModelStatus.CANCELLED.value if current["stop_requested"] else ModelStatus.DONE.value
        merged = {**(current["final_metrics"] or {}), **final}
        q.update_model(conn, model_id, status=status, final_metrics=merged, updated_at=utcnow())
        return _require_model(conn, model_id)


def platform_files(
    store: Store, principal: Principal, signer: UrlSigner, base: str, owner: str, project: str, name: str
) -> list[dict[str, Any]]:
    """``GET /api/models/{owner}/{project}/{model}/files``: the trained weights first.

    The model is found by project and name (newest first; the owner is not part of trainhub's
    naming: project names are unique on the hub), or by its id in place of the name; only among
    the models the caller sees (404 otherwise).
    """
    visible = access.owner_clause(projects, principal)
    with store.read() as conn:
        model = cq.get_model(conn, name, visible) or cq.find_model_by_name(
            conn, _project_name(principal, project), name, visible=visible
        )
        if model is None:
            raise _not_found(name)
        slots = {r["kind"]: r for r in ckq.list_checkpoints(conn, str(model["id"]))}
    files = []
    for kind in (CheckpointKind.FINAL.value, CheckpointKind.BEST.value, CheckpointKind.LAST.value):
        row = slots.get(kind)
        if row is None or (kind == CheckpointKind.BEST.value and CheckpointKind.FINAL.value in slots):
            continue
        label = "best" if kind != CheckpointKind.LAST.value else "last"
        filename = f"{model['id']}-{label}-{str(row['sha256'])[:8]}.pt"
        files.append(
            {
                "name": f"{label}.pt",
                "size": int(row["size"]),
                "downloadUrl": base + signer.download_path(str(row["sha256"]), str(model["id"]), filename),
            }
        )
    return files
