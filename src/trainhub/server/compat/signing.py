"""Signed, expiring URLs for the file traffic of the Ultralytics clients.

The clients fetch weights, resume checkpoints and dataset zips, and PUT Platform checkpoints,
with plain ``requests`` calls that carry **no credentials**, so these URLs must authorise
themselves. Shapes::

    GET <base>/dl/<exp>/<sig>/<sha256>/<ident>/<filename>     a stored blob (content-addressed)
    PUT <base>/up/<exp>/<sig>/<upload id>/<filename>          a staged Platform upload

``exp`` is a Unix time (rounded up to the hour, so one resource keeps one URL for a while) and
``sig`` is HMAC-SHA256 over the method and every other path part, keyed by a 256-bit secret made
on first use and kept in the ``server_secrets`` table (so every worker of one database signs
alike). A GET URL names the blob by its sha256, so it always serves exactly what it was issued
for. ``ident/filename`` keep the shapes the clients rely on: trained weights end in
``<model id>/best.pt``, dataset zips in ``<dataset id>/<zip name>``, and other names are unique
because the clients cache downloads by file name.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time

import sqlalchemy as sa

from trainhub.server.store.dialects import upsert
from trainhub.server.store.engine import Store
from trainhub.server.store.tables import server_secrets, utcnow

__all__ = ["URL_TTL_SECONDS", "UrlSigner", "load_signer"]

#: How long a signed URL stays valid (the clients use them right after reading them).
URL_TTL_SECONDS = 24 * 3600
_SECRET_NAME = "url_signing"
_PART_RE = re.compile(r"^[A-Za-z0-9._-]{1,160}$")


class UrlSigner:
    """Makes and checks signed URL paths (see the module docstring)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sig(self, method: str, exp: int, parts: tuple[str, ...]) -> str:
        message = "\n".join((method, str(exp), *parts)).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:40]

    @staticmethod
    def _expiry(now: float | None = None) -> int:
        now = time.time() if now is None else now
        return int(math.ceil((now + URL_TTL_SECONDS) / 3600.0) * 3600)

    def download_path(self, sha256: str, ident: str, filename: str) -> str:
        """``/dl/...`` path of a blob served as ``ident/filename``."""
        exp = self._expiry()
        return f"/dl/{exp}/{self._sig('GET', exp, (sha256, ident, filename))}/{sha256}/{ident}/{filename}"

    def upload_path(self, upload_id: str, filename: str) -> str:
        """``/up/...`` path that accepts one PUT of a staged upload."""
        exp = self._expiry()
        return f"/up/{exp}/{self._sig('PUT', exp, (upload_id, filename))}/{upload_id}/{filename}"

    def verify(self, method: str, exp: str, sig: str, parts: tuple[str, ...]) -> bool:
        """Whether a signed path is authentic, unexpired and made of safe parts."""
        if not exp.isdigit() or int(exp) < time.time():
            return False
        if not all(_PART_RE.match(p) for p in parts):
            return False
        return hmac.compare_digest(sig, self._sig(method, int(exp), parts))

    @staticmethod
    def safe_part(text: str) -> bool:
        """Whether ``text`` may appear as one part of a signed path."""
        return bool(_PART_RE.match(text))


def load_signer(store: Store) -> UrlSigner:
    """The signer of this hub: its secret is read from the store, created on first use."""
    with store.write() as conn:
        conn.execute(
            upsert(store.dialect, server_secrets)
            .values(name=_SECRET_NAME, value=secrets.token_hex(32), created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        value = conn.execute(
            sa.select(server_secrets.c.value).where(server_secrets.c.name == _SECRET_NAME)
        ).scalar_one()
    return UrlSigner(bytes.fromhex(str(value)))
