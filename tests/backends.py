"""Storage backends of the test servers: ``sqlite`` (SQLite + files) and ``postgres`` (PostgreSQL + S3).

The hub_server fixtures are parametrized over :func:`selected_backends`, so every server test runs
on both. Each server instance gets its own isolated storage, created here and dropped at teardown:

* ``sqlite``: ``<data_dir>/trainhub.db`` and ``<data_dir>/objects`` (the defaults);
* ``postgres``: a fresh schema ``th_<random>`` in database ``test`` on 127.0.0.1:5432 (the server's
  URL sets ``search_path`` to it) and a fresh bucket ``th-<random>`` on one moto S3 server per
  test session (``moto[server]``, on loopback, in a subprocess).

``TRAINHUB_TEST_BACKENDS=sqlite`` (comma-separated names) limits a local run to the fast backend.
Without PostgreSQL or moto the ``postgres`` tests skip, naming what is missing; in CI (``CI`` set)
they fail instead.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ALL_BACKENDS = ("sqlite", "postgres")
PG_HOST = os.environ.get("TRAINHUB_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TRAINHUB_TEST_PG_PORT", "5432"))
PG_DB = os.environ.get("TRAINHUB_TEST_PG_DB", "test")
PG_USER = os.environ.get("TRAINHUB_TEST_PG_USER", "postgres")
#: moto accepts any credentials; the servers and the tests use these.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def selected_backends() -> list[str]:
    """Backends of this run: ``TRAINHUB_TEST_BACKENDS`` (comma-separated), default all."""
    raw = os.environ.get("TRAINHUB_TEST_BACKENDS", "")
    names = [n.strip() for n in raw.split(",") if n.strip()] or list(ALL_BACKENDS)
    unknown = [n for n in names if n not in ALL_BACKENDS]
    if unknown:
        raise pytest.UsageError(
            f"TRAINHUB_TEST_BACKENDS: unknown {unknown}; known: {', '.join(ALL_BACKENDS)}"
        )
    return names


def unavailable(reason: str) -> None:
    """Skip (locally) or fail (in CI) for a missing service."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the postgres+s3 tests; scripts/test.sh sets them up)")
    pytest.skip(reason)


def pg_url(schema: str | None = None, database: str = PG_DB) -> str:
    """SQLAlchemy URL of the test database (``search_path`` set to ``schema`` if given)."""
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"
    return f"{url}?options=-csearch_path%3D{schema}" if schema else url


def pg_connect() -> Any:
    """An autocommit psycopg connection to the test database."""
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=PG_USER, autocommit=True, connect_timeout=5
    )


class MotoServer:
    """``moto`` S3 in a subprocess on 127.0.0.1 (a free port)."""

    def __init__(self) -> None:
        code = (
            "import sys; from moto.server import ThreadedMotoServer; "
            "s = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False); s.start(); "
            "print(s.get_host_and_port()[1], flush=True); sys.stdin.read()"
        )
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.isdigit():
            self._proc.kill()
            raise RuntimeError("moto server did not start")
        self.url = f"http://127.0.0.1:{line}"

    def client(self) -> Any:
        """A boto3 S3 client on this server."""
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", **_creds())

    def stop(self) -> None:
        """Stop the subprocess (closing its stdin ends it)."""
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def _creds() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
    }


class _Services:
    """PostgreSQL + moto, checked/started once per session, on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checked = False
        self._error: str | None = None
        self.moto: MotoServer | None = None

    def require(self) -> MotoServer:
        with self._lock:
            if not self._checked:
                self._checked = True
                self._error = self._start()
        if self._error:
            unavailable(self._error)
        assert self.moto is not None
        return self.moto

    def _start(self) -> str | None:
        try:
            import boto3  # noqa: F401
            import psycopg  # noqa: F401
        except ImportError as exc:
            return f"postgres+s3 backend: {exc.name} is not installed (pip install -e '.[dev]')"
        try:
            with pg_connect() as conn:
                conn.execute("SELECT 1")
        except Exception as exc:
            return f"postgres+s3 backend: PostgreSQL not reachable at {PG_HOST}:{PG_PORT}/{PG_DB}: {exc}"
        try:
            self.moto = MotoServer()
        except Exception as exc:
            return f"postgres+s3 backend: cannot start moto's S3 server: {exc}"
        return None

    def stop(self) -> None:
        if self.moto is not None:
            self.moto.stop()


SERVICES = _Services()


@dataclass
class Instance:
    """The isolated storage of one hub (kept across restarts of that hub)."""

    backend: str
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    schema: str | None = None
    bucket: str | None = None
    moto: MotoServer | None = None

    @property
    def database_url(self) -> str:
        """The server's database URL."""
        return self.env.get("TRAINHUB_DATABASE_URL", f"sqlite:///{self.data_dir / 'trainhub.db'}")

    @property
    def storage_url(self) -> str:
        """The server's storage URL."""
        return self.env.get("TRAINHUB_STORAGE_URL", f"file://{self.data_dir / 'objects'}")

    def blobs(self) -> list[str]:
        """Stored blob names (sha256), sorted."""
        if self.bucket is None:
            root = self.data_dir / "objects" / "blobs"
            return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []
        assert self.moto is not None
        pages = (
            self.moto.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix="hub/blobs/")
        )
        return sorted(o["Key"].rsplit("/", 1)[-1] for p in pages for o in p.get("Contents", []))

    def temp_objects(self) -> list[str]:
        """Uploads in progress or left over (temp files; S3 tmp keys and open multipart uploads)."""
        if self.bucket is None:
            roots = [self.data_dir / "objects" / "tmp", self.data_dir / "objects" / "multipart"]
            return sorted(f"{r.name}/{p.name}" for r in roots if r.exists() for p in r.iterdir())
        assert self.moto is not None
        s3 = self.moto.client()
        keys = [
            o["Key"] for o in s3.list_objects_v2(Bucket=self.bucket, Prefix="hub/tmp/").get("Contents", [])
        ]
        keys += [u["Key"] for u in s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])]
        return sorted(keys)

    def database_text(self) -> str:
        """Everything stored in the database, as text (to check what is never stored)."""
        if self.schema is None:
            return (self.data_dir / "trainhub.db").read_bytes().decode("latin-1")
        out: list[str] = []
        with pg_connect() as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (self.schema,)
            ).fetchall()
            for (name,) in tables:
                out += [repr(r) for r in conn.execute(f'SELECT * FROM "{self.schema}"."{name}"').fetchall()]
        return "\n".join(out)

    def drop(self) -> None:
        """Delete the schema and the bucket (the data dir is pytest's tmp)."""
        if self.schema is not None:
            with pg_connect() as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        if self.bucket is not None and self.moto is not None:
            s3 = self.moto.client()
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                for obj in page.get("Contents", []):
                    s3.delete_object(Bucket=self.bucket, Key=obj["Key"])
            for up in s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []):
                s3.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
            s3.delete_bucket(Bucket=self.bucket)


def new_instance(backend: str, data_dir: Path) -> Instance:
    """Create the isolated storage of a new hub on ``backend``."""
    if backend == "sqlite":
        return Instance(backend, data_dir)
    moto = SERVICES.require()
    suffix = secrets.token_hex(6)
    schema, bucket = f"th_{suffix}", f"th-{suffix}"
    with pg_connect() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    moto.client().create_bucket(Bucket=bucket)
    env = {
        "TRAINHUB_DATABASE_URL": pg_url(schema),
        "TRAINHUB_STORAGE_URL": f"s3://{bucket}/hub",
        "AWS_ENDPOINT_URL": moto.url,
        **S3_ENV,
    }
    return Instance(backend, data_dir, env, schema, bucket, moto)
