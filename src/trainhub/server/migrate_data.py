"""``trainhub migrate-data``: copy a whole hub to other backends (SQLite + files -> PostgreSQL + S3).

Order (why): both databases are first migrated to head, so one table definition
(:data:`trainhub.server.store.tables.metadata`) reads the source and writes the target. Then the
blobs are copied (streamed, each re-hashed and checked against its name), so that no copied row
ever points at a missing file. Then every row of every table is copied in dependency order in ONE
target transaction: an interrupted run leaves the target database empty and can simply be
re-run (blobs already copied are skipped). Then PostgreSQL's id sequences are moved past the
copied ids, and the row counts of both sides are compared.

The target database must be empty (a fresh ``trainhub db upgrade`` is; a hub that already served
requests is not): merging two hubs is not what this does. The source is only read (besides being
migrated to the current schema). Stop the source hub first, or rows written during the copy may
be missed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from trainhub.server.backends import open_objects, open_store
from trainhub.server.errors import ConfigError
from trainhub.server.objects import ObjectStore, StorageOptions
from trainhub.server.store.engine import Store
from trainhub.server.store.tables import metadata

__all__ = ["MigrationReport", "copy_blobs", "copy_rows", "migrate_data"]

#: Rows per INSERT batch (and per fetch from the source).
BATCH_ROWS = 5000
_ALEMBIC = "alembic_version"


@dataclass
class MigrationReport:
    """What was copied: rows per table, blobs copied / already there, and referenced blobs missing."""

    rows: dict[str, int] = field(default_factory=dict)
    blobs_copied: int = 0
    blobs_present: int = 0
    bytes_copied: int = 0
    missing_blobs: list[str] = field(default_factory=list)


def _check_tables(source: Store) -> None:
    names = set(sa.inspect(source.engine).get_table_names())
    unknown = sorted(names - set(metadata.tables) - {_ALEMBIC})
    if unknown:
        raise ConfigError(f"the source database has tables this trainhub does not know: {', '.join(unknown)}")


def _check_empty(target: Store) -> None:
    with target.read() as conn:
        for table in metadata.sorted_tables:
            if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is not None:
                raise ConfigError(
                    f"the target database is not empty (table {table.name} has rows); "
                    "migrate-data only fills a fresh database (trainhub db upgrade --database-url ...)"
                )


def _referenced_blobs(source: Store) -> set[str]:
    shas: set[str] = set()
    with source.read() as conn:
        for table in metadata.sorted_tables:
            if "sha256" in table.c:
                col = table.c.sha256
                shas.update(r[0] for r in conn.execute(sa.select(col).where(col.is_not(None)).distinct()))
    return shas


def copy_blobs(
    source: ObjectStore, target: ObjectStore, log: Callable[[str], None] = lambda _m: None
) -> MigrationReport:
    """Copy every blob of ``source`` missing in ``target``, streamed and verified.

    Raises:
        ConfigError: a source blob's content does not match its sha256 (nothing is stored for it).
    """
    report = MigrationReport()
    for sha in source.list_blobs():
        if target.exists(sha):
            report.blobs_present += 1
            continue
        upload = target.begin_upload()
        try:
            for chunk in source.iter_blob(sha):
                upload.write(chunk)
            if upload.hexdigest() != sha:
                raise ConfigError(
                    f"source blob {sha} is corrupt (its content hashes to {upload.hexdigest()})"
                )
            info = upload.commit()
        except BaseException:
            upload.abort()
            raise
        report.blobs_copied += 1
        report.bytes_copied += info.size
        if report.blobs_copied % 100 == 0:
            log(f"  {report.blobs_copied} blobs copied ({report.bytes_copied} bytes)")
    return report


def _reset_sequences(conn: sa.Connection) -> None:
    # Rows keep their ids; PostgreSQL's SERIAL sequences must start after the largest one.
    for table in metadata.sorted_tables:
        pk = list(table.primary_key.columns)
        if len(pk) == 1 and isinstance(pk[0].type, sa.Integer) and pk[0].autoincrement in (True, "auto"):
            name, col = table.name, pk[0].name
            conn.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', '{col}'), "
                    f"COALESCE((SELECT MAX({col}) FROM {name}), 1), "
                    f"(SELECT MAX({col}) FROM {name}) IS NOT NULL)"
                )
            )


def copy_rows(source: Store, target: Store, log: Callable[[str], None] = lambda _m: None) -> dict[str, int]:
    """Copy every row of every table (one target transaction); returns rows per table."""
    counts: dict[str, int] = {}
    with source.read() as sconn, target.write() as tconn:
        for table in metadata.sorted_tables:
            n = 0
            query = sa.select(table).order_by(*table.primary_key.columns)
            result = sconn.execution_options(yield_per=BATCH_ROWS).execute(query)
            for batch in result.partitions(BATCH_ROWS):
                tconn.execute(sa.insert(table), [dict(r._mapping) for r in batch])
                n += len(batch)
            counts[table.name] = n
            log(f"  {table.name}: {n} rows")
        if target.dialect == "postgresql":
            _reset_sequences(tconn)
    return counts


def _count_rows(store: Store) -> dict[str, int]:
    with store.read() as conn:
        return {
            t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in metadata.sorted_tables
        }


def migrate_data(
    from_db: str,
    to_db: str,
    *,
    from_storage: str | None = None,
    to_storage: str | None = None,
    storage_options: StorageOptions | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> MigrationReport:
    """Copy a hub's database (and, with both storage URLs, its files) to new backends.

    Args:
        from_db / to_db: database URLs of the source and the (empty) target.
        from_storage / to_storage: storage URLs; both or neither.
        storage_options: S3 endpoint/credentials (used for both storages; a ``file://`` one ignores them).
        log: receives progress lines.

    Returns:
        A :class:`MigrationReport`.

    Raises:
        ConfigError: unknown scheme, unreachable backend, non-empty target, unknown source tables,
            a corrupt source blob, or row counts that differ after the copy.
    """
    if (from_storage is None) != (to_storage is None):
        raise ConfigError("give both --from-storage and --to-storage, or neither")
    if from_db == to_db or (from_storage is not None and from_storage == to_storage):
        raise ConfigError("source and target must differ")
    source, target = open_store(from_db), open_store(to_db)
    try:
        log("migrating both databases to the current schema")
        source.migrate()
        target.migrate()
        _check_tables(source)
        _check_empty(target)
        report = MigrationReport()
        if from_storage is not None and to_storage is not None:
            src_objects = open_objects(from_storage, storage_options)
            dst_objects = open_objects(to_storage, storage_options)
            try:
                log(f"copying files {from_storage} -> {to_storage}")
                report = copy_blobs(src_objects, dst_objects, log)
                report.missing_blobs = sorted(
                    s for s in _referenced_blobs(source) if not dst_objects.exists(s)
                )
            finally:
                src_objects.close()
                dst_objects.close()
        log("copying rows")
        report.rows = copy_rows(source, target, log)
        before, after = _count_rows(source), _count_rows(target)
        if before != after:
            diff = {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}
            raise ConfigError(f"row counts differ after the copy (source, target): {diff}")
        return report
    finally:
        source.close()
        target.close()
