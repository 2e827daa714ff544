"""Migration 0008 (users, teams, ownership) on a hub that already has keys, projects and data:
one admin user owns everything, so the keys in use keep working and keep seeing everything."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from trainhub.server.auth import Authenticator
from trainhub.server.backends import open_store
from trainhub.server.services.keys import hash_secret

KEY = "ul_" + "b2" * 20


def test_existing_keys_projects_and_datasets_get_an_admin_owner(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        store.migrate("0007")
        now = datetime.now(UTC).replace(tzinfo=None)
        with store.write() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO api_keys (id, name, key_hash, prefix, is_admin, read_only, created_at) "
                    "VALUES ('k1', 'old', :h, 'ul_b2b2b2', :f, :f, :now)"
                ),
                {"h": hash_secret(KEY), "f": False, "now": now},
            )
            conn.execute(
                sa.text("INSERT INTO projects (name, created_at) VALUES ('legacy', :now)"), {"now": now}
            )
            conn.execute(
                sa.text(
                    "INSERT INTO datasets (id, name, created_at, updated_at) VALUES ('d1', 'coco', :n, :n)"
                ),
                {"n": now},
            )
        assert store.migrate() == "0007"
        with store.read() as conn:
            users = conn.execute(sa.text("SELECT id, name, is_admin FROM users")).all()
            assert [(u.name, bool(u.is_admin)) for u in users] == [("admin", True)]
            admin_id = users[0].id
            assert conn.execute(sa.text("SELECT user_id FROM api_keys")).scalar_one() == admin_id
            assert conn.execute(sa.text("SELECT owner_user_id FROM projects")).scalar_one() == admin_id
            assert conn.execute(sa.text("SELECT owner_user_id FROM datasets")).scalar_one() == admin_id
        principal = Authenticator(store).authenticate_key(KEY)
        assert principal is not None
        assert principal.user_name == "admin" and principal.user_admin and not principal.is_admin
    finally:
        store.close()


def test_a_fresh_database_gets_no_user_until_the_first_start(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        assert store.migrate() is None
        with store.read() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 0
    finally:
        store.close()
