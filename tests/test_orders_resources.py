"""Article resources from the simulator: files by content hash, never written twice,
only new or changed ones downloaded, removal of what the ERP no longer has."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_orders_helpers import erp_config

from passweb_tui.engine.erp.client import MexalClient
from passweb_tui.engine.orders.resources import store_file, sync_resources
from passweb_tui.engine.store import open_store
from passweb_tui.engine.sync import SyncOptions, SyncRunner


def test_resources_by_hash_only_new_or_changed_and_removal(sim: Any, tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    folder = tmp_path / "resources"
    try:
        with MexalClient(erp_config(sim)) as client:
            assert SyncRunner(store, client, SyncOptions()).run("total").status == "ok"
            with store.read() as conn:
                codes = list(
                    conn.execute(
                        sa.text("SELECT code FROM articles ORDER BY code LIMIT 40")
                    ).scalars()
                )
            first = sync_resources(store, client, folder, articles=codes)
            assert first.articles == 40 and not first.errors
            assert first.listed > 0 and first.downloaded == first.listed == first.written
            with store.read() as conn:
                rows = conn.execute(sa.text("SELECT * FROM web_resource")).mappings().all()
            assert len(rows) == first.listed
            for r in rows:
                data = (folder / r["path"]).read_bytes()
                assert hashlib.sha256(data).hexdigest() == r["sha256"] and len(data) == r["size"]
                assert r["path"].endswith(".png" if r["tipo"] == "immagine" else ".pdf")

            # nothing changed: nothing is downloaded again
            again = sync_resources(store, client, folder, articles=codes)
            assert (again.downloaded, again.unchanged) == (0, first.listed)

            # a lost file comes back; an attachment whose stamp changed is fetched if it
            # changed after "since", and left alone otherwise
            lost = folder / rows[0]["path"]
            lost.unlink()
            changed_article = rows[-1]["article_code"]
            with store.write() as conn:
                conn.execute(
                    sa.text(
                        "UPDATE web_resource SET dt_mod = '20000101 000000' WHERE article_code = :a"
                    ),
                    {"a": changed_article},
                )
            future = sync_resources(
                store, client, folder, articles=codes, since=datetime(2999, 1, 1)
            )
            assert future.downloaded == 1 and lost.exists()
            past = sync_resources(store, client, folder, articles=codes, since=datetime(2001, 1, 1))
            n_changed = sum(1 for r in rows if r["article_code"] == changed_article)
            assert past.downloaded == n_changed and past.written == 0  # same bytes: no write

            # an article gone from the ERP: its resources and their files go too
            gone = rows[0]["article_code"]
            gone_paths = [r["path"] for r in rows if r["article_code"] == gone]
            sim.admin("DELETE", f"records/articoli/{gone}")
            removed = sync_resources(store, client, folder, articles=codes, remove_missing=True)
            assert removed.removed == len(gone_paths)
            assert not any((folder / p).exists() for p in gone_paths)
            assert sync_resources(store, client, folder, mode="none").articles == 0
    finally:
        store.close()


def test_identical_content_is_written_once(tmp_path: Path) -> None:
    data = b"%PDF-1.4 same sheet for two articles"
    d1, p1, wrote1 = store_file(tmp_path, data)
    d2, p2, wrote2 = store_file(tmp_path, data)
    assert (d1, p1) == (d2, p2) and wrote1 and not wrote2
    assert p1.endswith(".pdf") and len(list(tmp_path.glob("??/*"))) == 1


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="resource mode"):
        sync_resources(None, None, tmp_path, mode="some")  # type: ignore[arg-type]
