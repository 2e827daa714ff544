"""``trainhub.pull`` / ``trainhub pull``: download a model's checkpoint from the hub, to resume from it.

The hub's listing (``GET /api/v1/models/{id}/checkpoints``) gives the checkpoint's size and sha256;
the file is streamed from ``GET .../checkpoints/{kind}/download`` into ``<out>/.<name>.part`` while it
is hashed, checked against both, and only then renamed into place, so a half or corrupt download is
never left under the final name. A file already there with the same sha256 is not downloaded again.

A checkpoint that was a directory (the Transformers trainer's ``checkpoint-N``, packed into a marked
zip by :meth:`trainhub.Run.save_checkpoint`) is unpacked into ``<out>/<model_id>-<kind>/`` and that
directory is returned, ready for ``trainer.train(resume_from_checkpoint=...)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

from trainhub.client.errors import ConfigError, HubError, PermanentError, TransientError, UnreachableError
from trainhub.client.payloads import parse_model_url
from trainhub.client.run import DIR_ZIP_COMMENT
from trainhub.client.settings import ClientSettings
from trainhub.client.transport import CHUNK_SIZE, Result, file_sha256
from trainhub.protocol import MODEL_ID_RE, CheckpointKind, checkpoint_path, model_path

__all__ = ["pull"]


def _error(response: Any) -> HubError:
    try:
        body = response.json()
    except ValueError:
        body = None
    exc = Result(response.status_code, body, message=response.text[:500]).exception()
    assert exc is not None  # only called for non-2xx answers
    return exc


def _unpack(archive: Path, target: Path) -> Path:
    """Unpack a checkpoint-directory zip into ``target`` (replaced as a whole); returns ``target``."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(archive) as zf:
        root = tmp.resolve()
        for member in zf.namelist():
            # Never write outside the target, whatever the archive says.
            if not (root / member).resolve().is_relative_to(root):
                raise ConfigError(f"{archive}: unsafe path in checkpoint archive: {member!r}")
        zf.extractall(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def _is_dir_archive(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return zf.comment == DIR_ZIP_COMMENT


def pull(
    model: str,
    kind: str = "last",
    *,
    out: str | os.PathLike[str] | None = None,
    url: str | None = None,
    api_key: str | None = None,
    timeout: float = 60.0,
    http_transport: Any = None,
) -> Path:
    """Download one of a model's checkpoints from the hub and return its local path.

    Args:
        model: the model's id, or its page ``<hub>/models/<id>`` (which also gives the hub URL).
        kind: ``last`` (to resume training), ``best`` or ``final``.
        out: directory to write to (default: the current directory); created if missing.
        url: hub root URL (else the root of a ``model`` URL, else ``TRAINHUB_URL``).
        api_key: API key (else ``TRAINHUB_API_KEY``).
        timeout: connect/read timeout of each request, seconds.
        http_transport: an ``httpx.BaseTransport`` to use instead of the network (tests).

    Returns:
        ``<out>/<model_id>-<kind>.pt``, or the directory ``<out>/<model_id>-<kind>/`` for a checkpoint
        that was a directory.

    Raises:
        ConfigError: an invalid model reference or kind.
        PermanentError: no such model or checkpoint (``checkpoint_not_found``...); ``AuthError`` for a
            missing or wrong key.
        TransientError: the download did not match the hub's size or sha256 (code
            ``checksum_mismatch``), or the hub answered 5xx; ``UnreachableError`` without an answer.
    """
    import httpx

    if "/" in model:
        root, model_id = parse_model_url(model)
        url = url or root
    else:
        model_id = model
    if not MODEL_ID_RE.match(model_id):
        raise ConfigError(f"invalid model id {model_id!r}")
    kinds = [k.value for k in CheckpointKind]
    if kind not in kinds:
        raise ConfigError(f"invalid checkpoint kind {kind!r}: one of {', '.join(kinds)}")
    settings = ClientSettings.from_env(url=url, api_key=api_key)
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    directory = Path(out) if out is not None else Path.cwd()
    directory.mkdir(parents=True, exist_ok=True)
    dest = directory / f"{model_id}-{kind}.pt"
    part = directory / f".{dest.name}.{os.getpid()}.part"

    try:
        with httpx.Client(
            base_url=settings.url, headers=headers, timeout=timeout, transport=http_transport
        ) as client:
            listing = client.get(f"{model_path(model_id)}/checkpoints")
            if listing.status_code != 200:
                raise _error(listing)
            rows = {str(row["kind"]): row for row in listing.json()}
            if kind not in rows:
                have = ", ".join(sorted(rows)) or "none"
                raise PermanentError(
                    404, "checkpoint_not_found", f"model {model_id} has no {kind!r} checkpoint (has: {have})"
                )
            want_sha, want_size = str(rows[kind]["sha256"]), int(rows[kind]["size"])
            if not (dest.is_file() and file_sha256(dest) == (want_sha, want_size)):
                digest, size = hashlib.sha256(), 0
                with client.stream("GET", f"{checkpoint_path(model_id, kind)}/download") as response:
                    if response.status_code != 200:
                        response.read()
                        raise _error(response)
                    with part.open("wb") as fh:
                        for chunk in response.iter_bytes(CHUNK_SIZE):
                            digest.update(chunk)
                            size += len(chunk)
                            fh.write(chunk)
                if (digest.hexdigest(), size) != (want_sha, want_size):
                    raise TransientError(
                        None,
                        "checksum_mismatch",
                        f"downloaded {size} bytes with sha256 {digest.hexdigest()}, the hub lists "
                        f"{want_size} bytes with sha256 {want_sha}",
                    )
                os.replace(part, dest)
    except httpx.HTTPError as exc:
        kind_of = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
        raise UnreachableError(None, kind_of, f"{type(exc).__name__}: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            part.unlink()
    if _is_dir_archive(dest):
        return _unpack(dest, directory / f"{model_id}-{kind}")
    return dest
