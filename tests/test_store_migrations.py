"""The site store opens on SQLite and PostgreSQL, migrates once, and matches the models."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from passweb_tui.engine import models
from passweb_tui.engine.store import (
    StoreUrlError,
    create_store_engine,
    head_revision,
    migrate,
    open_store,
)

SYNC_TABLES = [
    "articles",
    "article_prices",
    "customers",
    "conditions",
    "categories",
    "price_lists",
    "currencies",
    "payments",
    "lookup_records",
    "erp_fields",
    "sync_runs",
    "sync_rejects",
    "sync_retry_keys",
    "change_log",
    "sync_state",
    "sync_lease",
]


def _table_of(diff: tuple) -> str | None:
    obj = diff[1]
    table = getattr(obj, "table", None)
    if table is not None:
        return table.name
    return getattr(obj, "name", None)


OPEN_AND_REPORT = """
import sys
from passweb_tui.engine.store import create_store_engine, migrate
engine = create_store_engine(sys.argv[1])
print("applied" if migrate(engine) else "current")
"""


def test_fresh_store_gets_every_table_and_the_head_revision(empty_db_url: str) -> None:
    store = open_store(empty_db_url)
    try:
        tables = set(inspect(store.engine).get_table_names())
        assert set(models.metadata.tables) <= tables
        with store.read() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
                head_revision()
            )
    finally:
        store.close()


def test_migrated_schema_matches_the_models(empty_db_url: str) -> None:
    store = open_store(empty_db_url)
    try:
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), models.metadata)
        # type-only differences (DateTime vs SQLModel's UTC DateTime wrapper) are not drift;
        # tables of other store areas (added by later revisions) are checked by their own tests
        ours = set(SYNC_TABLES)
        real = [d for d in diff if not isinstance(d, list) and _table_of(d) in ours]
        assert real == []
    finally:
        store.close()


def test_reopening_a_current_store_applies_nothing_and_is_quick(empty_db_url: str) -> None:
    open_store(empty_db_url).close()
    store = open_store(empty_db_url)
    try:
        started = time.perf_counter()
        assert migrate(store.engine) is False
        assert time.perf_counter() - started < 0.5
    finally:
        store.close()


def test_two_processes_starting_together_migrate_once(empty_db_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_REPORT, empty_db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outcomes.append(out.strip())
    assert sorted(outcomes) == ["applied", "current"]


def test_sqlite_store_uses_wal_and_a_busy_timeout(tmp_path) -> None:
    # (the default store's folder is made for it, as here)
    store = open_store(f"sqlite:///{tmp_path / 'sub' / 'store.db'}", make_folder=True)
    try:
        with store.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        store.close()


def test_a_bad_url_is_a_clear_error() -> None:
    import pytest

    from passweb_tui.engine.store import StoreError

    with pytest.raises(StoreError, match="not a database URL"):
        open_store("no such thing")


def test_the_service_claims_table_comes_from_the_migrations(empty_db_url: str) -> None:
    from passweb_tui.engine.service import slots

    store = open_store(empty_db_url)
    try:
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), slots.claims_t.metadata)
        mine = [
            d for d in diff if not isinstance(d, list) and _table_of(d) == "service_slot_claims"
        ]
        assert mine == []
        assert slots.claim_key(store, "shop", "mail:1", "here")
        assert not slots.claim_key(store, "shop", "mail:1", "elsewhere")
    finally:
        store.close()


def test_a_store_whose_service_made_the_claims_table_migrates(empty_db_url: str) -> None:
    """Before revision w003 the service created its claims table itself."""
    from alembic import command

    from passweb_tui.engine.service import slots
    from passweb_tui.engine.store import _alembic_config, create_store_engine

    engine = create_store_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "w002_web_resources")
        slots.claims_t.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                slots.claims_t.insert().values(
                    site="shop", slot="mail:7", holder="old", claimed_at=datetime.now(UTC)
                )
            )
        assert migrate(engine) is True
        with engine.connect() as conn:
            assert conn.execute(sa.select(slots.claims_t.c.holder)).scalars().all() == ["old"]
    finally:
        engine.dispose()


def test_the_rejects_of_unsent_web_customers_and_orders_move_to_entities_of_their_own(
    empty_db_url: str,
) -> None:
    """Before revision w006 a run's reject of a web customer or order it could not send
    was stored under `customers` or `orders`, told from the ERP's by its reason alone."""
    from alembic import command

    from passweb_tui.engine.store import _alembic_config, create_store_engine

    rejects = sa.table(
        "sync_rejects",
        sa.column("run_id", sa.Integer),
        sa.column("entity", sa.String),
        sa.column("key", sa.String),
        sa.column("reason", sa.Text),
    )
    before = [
        (1, "customers", "7", "not sent: the ERP did not create it: cf errato"),
        (1, "customers", "501.00042", "unknown payment 'ZZ' in cod_pag"),
        (1, "orders", "W1", "not sent: the ERP did not take it: alq_iva 99"),
        (1, "orders", "W2", "its ERP document OC+1+5 could not be read"),
    ]
    engine = create_store_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "w005_order_duplicates")
            conn.execute(
                rejects.insert(),
                [dict(zip(("run_id", "entity", "key", "reason"), r, strict=True)) for r in before],
            )
        assert migrate(engine) is True
        with engine.connect() as conn:
            after = conn.execute(
                sa.select(rejects.c.key, rejects.c.entity).order_by(rejects.c.key)
            ).all()
        assert dict(after) == {
            "7": "web_customers",
            "501.00042": "customers",
            "W1": "web_orders",
            "W2": "orders",
        }
    finally:
        engine.dispose()


def test_prices_a_postgresql_store_rounded_before_w004_are_read_again(
    empty_db_url: str,
) -> None:
    """Before w004 a PostgreSQL store kept prices to four decimals, and nothing read
    them again after: each record's digest is of the ERP's values, which `data` keeps
    exactly, so the site kept 0.0001 for a price of 0.000051 while every sync said it
    was in step. w008 sets them again from `data` (SQLite never rounded them)."""
    from alembic import command

    from passweb_tui.engine.store import _alembic_config, create_store_engine

    now = datetime(2026, 12, 1, tzinfo=UTC)
    articles = models.Article.__table__  # type: ignore[attr-defined]
    prices = models.ArticlePrice.__table__  # type: ignore[attr-defined]
    conditions = models.Condition.__table__  # type: ignore[attr-defined]
    data = '{"descrizione": "x", "prz_listino": {"1": "12.345678", "2": "0.000051", "3": "10"}}'
    engine = create_store_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "w003_service_slot_claims")
            conn.execute(articles.insert(), [
                {"code": "A6", "data": data, "digest": "d", "synced_at": now},
                {"code": "B0", "data": '{"descrizione": "no prices"}', "digest": "d",
                 "synced_at": now},
                # a form PostgreSQL cannot read as a number: left as it is, not a failure
                {"code": "E1", "data": '{"prz_listino": {"1": "1e-20000"}}', "digest": "d",
                 "synced_at": now},
            ])  # fmt: skip
            conn.execute(prices.insert(), [
                {"article_code": "A6", "price_list": 1, "price": Decimal("12.345678")},
                {"article_code": "A6", "price_list": 2, "price": Decimal("0.000051")},
                {"article_code": "A6", "price_list": 3, "price": Decimal("10")},
                {"article_code": "B0", "price_list": 1, "price": Decimal("5.5")},
                {"article_code": "E1", "price_list": 1, "price": Decimal("0")},
            ])  # fmt: skip
            conn.execute(conditions.insert(), [
                {"code": "P1", "price": Decimal("7.1234567"), "data": '{"prezzo": "7.1234567"}',
                 "digest": "d", "synced_at": now},
                {"code": "P2", "price": None, "data": '{"sconto": "10"}', "digest": "d",
                 "synced_at": now},
            ])  # fmt: skip
        assert migrate(engine) is True
        with engine.connect() as conn:
            kept = dict(
                ((code, n), Decimal(p).quantize(Decimal("0.000001")))
                for code, n, p in conn.execute(
                    sa.select(prices.c.article_code, prices.c.price_list, prices.c.price)
                )
            )
            condition = dict(conn.execute(sa.select(conditions.c.code, conditions.c.price)).all())
        assert kept == {
            ("A6", 1): Decimal("12.345678"),
            ("A6", 2): Decimal("0.000051"),
            ("A6", 3): Decimal("10.000000"),
            ("B0", 1): Decimal("5.500000"),  # no prz_listino in its data: left as it is
            ("E1", 1): Decimal("0.000000"),
        }
        assert Decimal(condition["P1"]).quantize(Decimal("0.000001")) == Decimal("7.123457")
        assert condition["P2"] is None
    finally:
        engine.dispose()


def test_the_head_is_read_without_alembic_and_agrees_with_it(tmp_path, monkeypatch) -> None:
    """A store already current opens without loading Alembic: the head comes from the
    revision files' own lines, which must name the head Alembic finds. A file that does
    not spell them plainly (a merge revision) leaves the answer to Alembic."""
    import shutil

    from passweb_tui.engine import store

    assert store._plain_head() == store.alembic_head()
    url = f"sqlite:///{tmp_path / 's.db'}"
    probe = (
        "import sys; from passweb_tui.engine.store import open_store;"
        f" open_store({url!r}).close(); print('alembic' in sys.modules)"
    )
    first = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert first.stdout.strip() == "True", first.stderr  # the first open migrated
    again = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert again.stdout.strip() == "False", again.stderr

    versions = tmp_path / "migrations" / "versions"
    shutil.copytree(store.MIGRATIONS / "versions", versions)
    monkeypatch.setattr(store, "MIGRATIONS", tmp_path / "migrations")
    assert store._plain_head() == store.alembic_head()
    (versions / "w999_merge.py").write_text(
        'revision = "w999"\ndown_revision = ("a", "b")\n', encoding="utf-8"
    )
    assert store._plain_head() is None


def test_a_postgresql_url_without_its_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An installation without the postgres extra: the URL is refused with what to
    install, not only "No module named psycopg"."""

    class NoPsycopg:
        def find_spec(self, name: str, path: object = None, target: object = None) -> None:
            if name == "psycopg" or name.startswith("psycopg."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    for name in [m for m in sys.modules if m == "psycopg" or m.startswith("psycopg.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [NoPsycopg(), *sys.meta_path])
    with pytest.raises(StoreUrlError) as refused:
        create_store_engine("postgresql+psycopg://shop@127.0.0.1/shop")
    said = str(refused.value)
    assert "No module named 'psycopg'" in said
    assert "pip install 'passweb-tui[postgres]'" in said


def test_sqlite_refusing_a_file_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's "unable to open database file" has several causes; the one at hand is
    named: here a folder this process cannot write in (a read-only mount), where SQLite
    cannot keep the journal it needs even to read a store in WAL mode."""
    from passweb_tui.engine import store as store_module

    db = tmp_path / "store.db"
    db.write_bytes(b"")
    monkeypatch.setattr(store_module.os, "access", lambda p, _mode: Path(p) != tmp_path)
    err = store_module.sqlite_open_error("sqlite:///x", str(db), "unable to open database file")
    assert "cannot be written" in str(err) and str(tmp_path) in str(err)
    assert not isinstance(err, store_module.StoreUrlError)  # a store to mend, not a setting
    monkeypatch.undo()
    err = store_module.sqlite_open_error(
        "sqlite:///x", str(tmp_path), "unable to open database file"
    )
    assert isinstance(err, store_module.StoreUrlError) and "is a folder" in str(err)


def test_an_entitys_newest_changes_are_read_without_sorting_all_of_them(tmp_path: Path) -> None:
    """`changes --entity articles` sorted every article entry of the log to show the
    newest hundred (two seconds and more for a few million entries): the query the
    engine makes is answered from an index, in its order."""
    from passweb_tui.engine.erp.settings import ErpConfig
    from passweb_tui.engine.facade import Engine, EngineSettings

    db = f"sqlite:///{tmp_path / 'store.db'}"
    engine = Engine.open(EngineSettings(db, ErpConfig("http://127.0.0.1:9/webapi", "u", "p")))
    statements: list[tuple[str, object]] = []

    def seen(_conn: object, _cursor: object, statement: str, params: object, *_: object) -> None:
        if "FROM change_log" in statement:
            statements.append((statement, params))

    sa.event.listen(engine.store.engine, "before_cursor_execute", seen)
    try:
        for run_id in (None, 3):
            assert engine.changes(entity="articles", run_id=run_id, limit=101) == []
        sa.event.remove(engine.store.engine, "before_cursor_execute", seen)
        assert len(statements) == 2
        with engine.store.engine.connect() as conn:
            for statement, params in statements:
                plan = " ".join(
                    str(row[-1])
                    for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
                )
                if "run_id" not in statement:
                    assert "ix_change_log_entity_order" in plan, plan
                assert "TEMP B-TREE" not in plan, (statement, plan)
    finally:
        engine.close()
