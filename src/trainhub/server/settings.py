"""Server settings: one object, overridable by ``TRAINHUB_*`` environment variables.

Every field (env var in brackets):

* ``data_dir`` [``TRAINHUB_DATA_DIR``]: directory of the default database and objects
  (default ``./trainhub-data``).
* ``database_url`` [``TRAINHUB_DATABASE_URL``]: SQLAlchemy URL of the store
  (default ``sqlite:///<data_dir>/trainhub.db``). Known schemes: see
  :data:`trainhub.server.backends.DATABASE_BACKENDS`.
* ``storage_url`` [``TRAINHUB_STORAGE_URL``]: where checkpoint blobs live
  (default ``file://<data_dir>/objects``). Known schemes: see
  :data:`trainhub.server.backends.STORAGE_BACKENDS`.
* ``host`` / ``port`` [``TRAINHUB_HOST`` / ``TRAINHUB_PORT``]: where ``trainhub serve`` listens
  (127.0.0.1:8000; port 0 picks a free port).
* ``public_url`` [``TRAINHUB_PUBLIC_URL``]: URL users reach the hub at, used in model links
  (default: the URL of the request).
* ``max_checkpoint_bytes`` [``TRAINHUB_MAX_CHECKPOINT_BYTES``]: largest checkpoint upload.
* ``admin_key`` [``TRAINHUB_ADMIN_KEY``]: admin key registered on the first start (else one is
  generated and printed once).
* ``log_level`` [``TRAINHUB_LOG_LEVEL``]: uvicorn/server log level (default ``info``).
* ``crash_timeout`` [``TRAINHUB_CRASH_TIMEOUT``]: seconds without a sign of life after which a
  ``training`` model reads as ``crashed`` (default 600; ``stalled`` comes after two heartbeat
  intervals).
* ``rate_limit_rps`` / ``rate_limit_burst`` [``TRAINHUB_RATE_LIMIT_RPS`` /
  ``TRAINHUB_RATE_LIMIT_BURST``]: per-key token bucket of ``/api/v1`` requests, per server worker
  process (defaults 100 requests/s, bursts of 1000; ``rate_limit_rps=0`` turns it off). See
  :mod:`trainhub.server.ratelimit`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trainhub.protocol import MAX_CHECKPOINT_BYTES
from trainhub.server.objects import StorageOptions

__all__ = ["ServerSettings"]

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class ServerSettings(BaseSettings):
    """Settings of the hub server. Unset URLs are derived from ``data_dir``."""

    model_config = SettingsConfigDict(env_prefix="TRAINHUB_", extra="ignore")

    data_dir: Path = Path("./trainhub-data")
    database_url: str = ""
    storage_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = None
    max_checkpoint_bytes: int = Field(default=MAX_CHECKPOINT_BYTES, gt=0)
    admin_key: SecretStr | None = None
    log_level: str = "info"
    workers: int = Field(default=1, ge=1, le=256)
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    redirect_downloads: bool = False
    crash_timeout: float = Field(default=600.0, gt=0)
    rate_limit_rps: float = Field(default=100.0, ge=0)
    rate_limit_burst: int = Field(default=1000, ge=1)

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.lower()
        if level not in _LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(_LOG_LEVELS)}")
        return level

    @field_validator("public_url")
    @classmethod
    def _strip_public_url(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None

    @model_validator(mode="after")
    def _derive_urls(self) -> ServerSettings:
        # Imported here: backends imports the store and objects packages, which never import settings.
        from trainhub.server.backends import check_database_url, check_storage_url

        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'trainhub.db'}"
        if not self.storage_url:
            self.storage_url = f"file://{self.data_dir / 'objects'}"
        check_database_url(self.database_url)
        check_storage_url(self.storage_url)
        return self

    def storage_options(self) -> StorageOptions:
        """The backend options of :attr:`storage_url`."""
        secret = self.s3_secret_access_key
        return StorageOptions(
            s3_endpoint_url=self.s3_endpoint_url or None,
            s3_region=self.s3_region or None,
            s3_access_key_id=self.s3_access_key_id or None,
            s3_secret_access_key=secret.get_secret_value() if secret else None,
        )

    def admin_key_value(self) -> str | None:
        """The plaintext admin key from the environment, if any."""
        return self.admin_key.get_secret_value() if self.admin_key else None
