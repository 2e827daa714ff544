"""``trainhub datasets push|list``: upload dataset zips to a hub over its native API.

A dataset zip is what Ultralytics HUB used: one ``*.yaml`` (``train:``/``val:``/``names:``, no
``path:`` line) plus the images and labels, ideally under one top-level folder. A model trains
on it when its ``data`` train arg is the dataset's reference ``trainhub://datasets/<id>``.
The zip is streamed from disk (never read whole into memory) with its sha256, which the hub
checks before the dataset becomes visible.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import httpx

from trainhub.protocol import API_PREFIX, HEADER_SHA256

__all__ = ["DatasetError", "list_datasets", "push_dataset"]

_CHUNK = 1024 * 1024


class DatasetError(Exception):
    """A dataset could not be pushed or listed (bad zip, refused by the hub, hub unreachable)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{path}: not a zip file ({exc})") from exc
    if not any(n.lower().endswith((".yaml", ".yml")) for n in names):
        raise DatasetError(f"{path}: the zip holds no *.yaml dataset description")


def _client(url: str, api_key: str | None, timeout: float) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=url.rstrip("/") + API_PREFIX, headers=headers, timeout=timeout)


def _raise_for(response: httpx.Response) -> None:
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise DatasetError(f"the hub answered {response.status_code}: {message}")


def push_dataset(
    path: Path, *, url: str, api_key: str | None, name: str | None = None, timeout: float = 600.0
) -> dict[str, Any]:
    """Create a dataset on the hub and upload ``path`` (a zip) into it; returns the dataset.

    Raises:
        DatasetError: not a dataset zip, the hub refused it, or the hub is unreachable.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    _check_zip(path)
    sha = _sha256(path)
    try:
        with _client(url, api_key, timeout) as client:
            created = client.post("/datasets", json={"name": name or path.stem})
            _raise_for(created)
            dataset_id = created.json()["id"]
            with path.open("rb") as fh:
                response = client.put(
                    f"/datasets/{dataset_id}/file",
                    params={"filename": path.name},
                    content=iter(lambda: fh.read(_CHUNK), b""),
                    headers={
                        "content-length": str(path.stat().st_size),
                        "content-type": "application/zip",
                        HEADER_SHA256: sha,
                    },
                )
            _raise_for(response)
            result: dict[str, Any] = response.json()
            return result
    except httpx.HTTPError as exc:
        raise DatasetError(f"cannot reach the hub at {url}: {exc}") from exc


def list_datasets(*, url: str, api_key: str | None, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every dataset on the hub, newest first.

    Raises:
        DatasetError: the hub refused or is unreachable.
    """
    try:
        with _client(url, api_key, timeout) as client:
            response = client.get("/datasets", params={"limit": 1000})
            _raise_for(response)
            rows: list[dict[str, Any]] = response.json()
            return rows
    except httpx.HTTPError as exc:
        raise DatasetError(f"cannot reach the hub at {url}: {exc}") from exc
