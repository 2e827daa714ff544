"""Datasets: dataset zips uploaded to the hub, so a model can train with no local files.

A dataset is created (``create_dataset``), then its zip is uploaded (``attach_file``: streamed into
a content-addressed blob by :func:`trainhub.server.services.checkpoints.receive_blob`, then checked
to be a zip holding a ``*.yaml``). A model references a dataset by putting the dataset id (or
``trainhub://datasets/<id>``) in its ``data`` train arg; the Ultralytics compatibility layer turns
that into a signed download URL (see :mod:`trainhub.server.compat`).

Datasets belong to a user (or a team), like projects: every function takes the caller's
:class:`~trainhub.server.auth.Principal` and applies :mod:`trainhub.server.access` (a dataset the
caller cannot see answers 404, as if it did not exist; one it may not change, 403). A new dataset
belongs to the caller's user.

Why the zip is checked after the blob commit: the blob store only exposes a file once committed.
A rejected zip leaves an unreferenced blob, like any upload whose row commit fails.
"""

from __future__ import annotations

import re
import secrets
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from trainhub.protocol import API_PREFIX, MAX_NAME_LENGTH, NAME_RE, ErrorCode
from trainhub.server import access
from trainhub.server.auth import Principal
from trainhub.server.errors import ApiError
from trainhub.server.objects import BlobInfo, ObjectStore
from trainhub.server.services import iso
from trainhub.server.store import datasets as q
from trainhub.server.store.engine import Store
from trainhub.server.store.tables import datasets, utcnow

__all__ = [
    "DATASET_REF_PREFIX",
    "attach_file",
    "check_zip",
    "create_dataset",
    "dataset_out",
    "get_dataset",
    "get_row",
    "list_datasets",
    "reference_in",
    "resolve_in",
    "resolve_reference",
    "safe_filename",
]

#: A model's ``data`` may name a hub dataset as ``trainhub://datasets/<id>`` (or the bare id).
DATASET_REF_PREFIX = "trainhub://datasets/"
_ID_RE = re.compile(r"^[0-9a-f]{20}$")
_FILENAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str, default: str = "dataset.zip") -> str:
    """A file name safe in a URL path: basename only, ``[A-Za-z0-9._-]``, ending in ``.zip``."""
    base = _FILENAME_RE.sub("-", Path(name.replace("\\", "/")).name).strip("-.") or default
    base = base[:120]
    return base if base.lower().endswith(".zip") else f"{base}.zip"


def dataset_out(row: Mapping[str, Any]) -> dict[str, Any]:
    """The native API view of a dataset row."""
    return {
        "id": row["id"],
        "name": row["name"],
        "task": row["task"],
        "filename": row["filename"],
        "size": row["size"],
        "sha256": row["sha256"],
        "ready": row["sha256"] is not None,
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "reference": DATASET_REF_PREFIX + row["id"],
        "download_url": f"{API_PREFIX}/datasets/{row['id']}/download" if row["sha256"] else None,
    }


def _require(row: Mapping[str, Any] | None, dataset_id: str) -> Mapping[str, Any]:
    if row is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no dataset with id {dataset_id!r}")
    return row


def create_dataset(store: Store, principal: Principal, name: str, task: str | None = None) -> dict[str, Any]:
    """Create an empty dataset owned by the caller's user (its zip comes with :func:`attach_file`).

    Raises:
        ApiError: 403 ``forbidden`` (a read-only key, or a key limited to projects),
            422 ``validation_error`` for a bad name.
    """
    if principal.read_only or principal.projects is not None:
        raise ApiError(403, ErrorCode.FORBIDDEN, "this key may not create datasets")
    if not NAME_RE.match(name):
        raise ApiError(
            422,
            ErrorCode.VALIDATION_ERROR,
            f"name: must be 1-{MAX_NAME_LENGTH} characters without control characters, '/' or '\\'",
        )
    now = utcnow()
    dataset_id = secrets.token_hex(10)
    row: dict[str, Any] = {
        "id": dataset_id,
        "name": name,
        "task": task,
        "created_at": now,
        "updated_at": now,
        "owner_user_id": principal.user_id,
    }
    with store.write() as conn:
        q.insert_dataset(conn, row)
        saved = q.get_dataset(conn, dataset_id)
    return dataset_out(_require(saved, dataset_id))


def _checked(conn: Connection, principal: Principal, dataset_id: str, *, write: bool) -> Mapping[str, Any]:
    row = _require(q.get_dataset(conn, dataset_id), dataset_id)
    access.check_dataset(principal, row, write=write)
    return row


def get_row(store: Store, principal: Principal, dataset_id: str, *, write: bool = False) -> Mapping[str, Any]:
    """One dataset row the caller sees (and, with ``write``, may change).

    Raises:
        ApiError: 404 ``not_found`` (unknown, or not the caller's), 403 ``forbidden``.
    """
    with store.read() as conn:
        return _checked(conn, principal, dataset_id, write=write)


def get_dataset(store: Store, principal: Principal, dataset_id: str) -> dict[str, Any]:
    """One dataset the caller sees; ApiError 404 ``not_found``."""
    return dataset_out(get_row(store, principal, dataset_id))


def list_datasets(
    store: Store, principal: Principal, *, limit: int = 100, after_id: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The datasets the caller sees, newest first (cursor ``after_id``), and their count."""
    visible = access.owner_clause(datasets, principal)
    with store.read() as conn:
        rows = q.list_datasets(conn, limit=limit, after_id=after_id, visible=visible)
        total = q.count_datasets(conn, visible)
    return [dataset_out(r) for r in rows], total


#: Most entries in a dataset zip.
MAX_ZIP_ENTRIES = 2_000_000
#: Largest ratio of unpacked to packed size of a dataset zip (image datasets barely compress;
#: a zip bomb compresses 1000:1 and more). Zips under :data:`_SMALL_ZIP` unpacked are exempt.
MAX_ZIP_RATIO = 100
_SMALL_ZIP = 16 * 1024 * 1024


def _unsafe_member(name: str) -> bool:
    """Whether extracting ``name`` could write outside the target directory (zip slip)."""
    parts = name.replace("\\", "/").split("/")
    return (
        name.startswith(("/", "\\"))
        or (len(name) > 1 and name[1] == ":")  # C:\... (a drive on Windows)
        or any(p == ".." for p in parts)
        or "\x00" in name
    )


def check_zip(path: Path) -> None:
    """A dataset zip must be a readable zip holding at least one ``*.yaml``, and safe to unpack.

    Safe: no member escapes the target directory (absolute names, drive letters or ``..``
    components: "zip slip"), at most :data:`MAX_ZIP_ENTRIES` members, and the declared unpacked
    size at most :data:`MAX_ZIP_RATIO` times the file's size (a zip bomb). The zip is only read
    (never unpacked) on the server; the checks protect the clients that unpack it.

    Raises:
        ApiError: 422 ``validation_error`` otherwise.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ApiError(422, ErrorCode.VALIDATION_ERROR, f"not a zip file: {exc}") from exc
    if len(infos) > MAX_ZIP_ENTRIES:
        raise ApiError(422, ErrorCode.VALIDATION_ERROR, f"the zip holds more than {MAX_ZIP_ENTRIES} entries")
    bad = next((i.filename for i in infos if _unsafe_member(i.filename)), None)
    if bad is not None:
        raise ApiError(
            422, ErrorCode.VALIDATION_ERROR, f"the zip holds an entry outside its folder: {bad[:100]!r}"
        )
    unpacked = sum(i.file_size for i in infos)
    if unpacked > _SMALL_ZIP and unpacked > MAX_ZIP_RATIO * max(path.stat().st_size, 1):
        raise ApiError(
            422,
            ErrorCode.VALIDATION_ERROR,
            f"the zip unpacks to {unpacked} bytes, over {MAX_ZIP_RATIO} times its size (a zip bomb?)",
        )
    names = [i.filename for i in infos]
    if not any(n.lower().endswith((".yaml", ".yml")) and not n.startswith("__MACOSX") for n in names):
        raise ApiError(422, ErrorCode.VALIDATION_ERROR, "the zip holds no *.yaml dataset description")


def attach_file(
    store: Store,
    principal: Principal,
    objects: ObjectStore,
    dataset_id: str,
    blob: BlobInfo,
    filename: str,
) -> dict[str, Any]:
    """Point a dataset the caller may change at an uploaded zip blob (after checking it);
    returns the dataset.

    Raises:
        ApiError: 404 ``not_found``, 403 ``forbidden``, 422 ``validation_error`` (not a dataset zip).
    """
    try:
        with objects.local_copy(blob.sha256) as path:
            check_zip(path)
    except FileNotFoundError as exc:
        raise ApiError(404, ErrorCode.NOT_FOUND, "the uploaded file is missing on the server") from exc
    with store.write() as conn:
        _checked(conn, principal, dataset_id, write=True)
        q.update_dataset(
            conn,
            dataset_id,
            filename=safe_filename(filename),
            size=blob.size,
            sha256=blob.sha256,
            updated_at=utcnow(),
        )
        saved = q.get_dataset(conn, dataset_id)
    return dataset_out(_require(saved, dataset_id))


def reference_in(data: object) -> str | None:
    """The dataset id a model's ``data`` train arg names (``trainhub://datasets/<id>`` or the bare
    id), else None."""
    if not isinstance(data, str):
        return None
    ident = data[len(DATASET_REF_PREFIX) :] if data.startswith(DATASET_REF_PREFIX) else data
    return ident if _ID_RE.match(ident) else None


def resolve_in(conn: Connection, principal: Principal, data: object) -> Mapping[str, Any] | None:
    """:func:`resolve_reference` on an open connection."""
    ident = reference_in(data)
    if ident is None:
        return None
    row = q.get_dataset(conn, ident)
    if row is None or not row["sha256"] or not access.can_see(principal, row):
        return None
    return row


def resolve_reference(store: Store, principal: Principal, data: object) -> Mapping[str, Any] | None:
    """The dataset row a model's ``data`` train arg names, if it names a ready hub dataset that
    the caller sees (a dataset of another tenant resolves to None: its URL is never handed out)."""
    if reference_in(data) is None:
        return None
    with store.read() as conn:
        return resolve_in(conn, principal, data)
