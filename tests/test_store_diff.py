"""Comparing and writing pages, on their own: canonical money, field-by-field changes,
rejects, dry runs and a failure between pages (an in-process ERP stand-in feeds pages)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from passweb_tui.engine.erp.client import FieldInfo, Page
from passweb_tui.engine.erp.errors import LinkDownError
from passweb_tui.engine.facade import Engine, EngineSettings
from passweb_tui.engine.models import SyncRun
from passweb_tui.engine.records import canon
from passweb_tui.engine.state import WATERMARK, get_state
from passweb_tui.engine.store import open_store
from passweb_tui.engine.sync import SyncOptions, SyncRunner

ARTICLE_INFO = [
    FieldInfo("codice", "C", 20, True, 0, ""),
    FieldInfo("descrizione", "C", 80, False, 0, ""),
    FieldInfo("prz_listino", "N", None, False, 9, ""),
    FieldInfo("cod_grp_merc", "C", 10, False, 0, ""),
    FieldInfo("alq_iva", "C", 3, False, 0, ""),
    FieldInfo("trasf_sito", "C", 1, False, 9, ""),
    FieldInfo("gest_precanc", "C", 1, False, 0, ""),
    FieldInfo("gest_annullato", "C", 1, False, 0, ""),
    FieldInfo("dt_mod_sistema", "D", 8, False, 0, ""),
    FieldInfo("ora_mod_sistema", "T", 6, False, 0, ""),
]


class PagesFromMemory:
    """Serves records page by page the way the client does; can fail after some pages."""

    def __init__(self, articles: int = 25) -> None:
        self.clock = datetime(2026, 11, 27, 12, 0, 0)
        self.fail_after_pages: int | None = None
        self.pages_served = 0
        self.data: dict[str, dict[Any, dict[str, Any]]] = {
            "dati-generali/gruppi-merceologici": {
                "G1": {"codice": "G1", "descrizione": "Group", "cod_grp_padre": None, "web": "S"}
            },
            "dati-generali/valute": {
                1: {"codice": 1, "sigla_iso": "EUR", "descrizione": "Euro", "cambio": 1}
            },
            "articoli": {},
        }
        for i in range(articles):
            code = f"A{i:03d}"
            self.data["articoli"][code] = {
                "codice": code,
                "descrizione": f"Article {i}",
                "prz_listino": [[1, Decimal("12.5")], [2, 10]],
                "cod_grp_merc": "G1",
                "alq_iva": "22",
                "trasf_sito": [[1, "S"]],
                "gest_precanc": "N",
                "gest_annullato": "N",
                "dt_mod_sistema": "20261127",
                "ora_mod_sistema": "100000",
            }

    def info(self, resource: str) -> list[FieldInfo]:
        return (
            ARTICLE_INFO if resource == "articoli" else [FieldInfo("codice", "C", 20, True, 0, "")]
        )

    def iter_pages(
        self,
        resource: str,
        *,
        filters=(),
        fields=None,
        page_size=1000,
        key_field="codice",
        decimals=True,
        lazy=False,
    ) -> Iterator[Page]:
        records = sorted(self.data.get(resource, {}).values(), key=lambda r: str(r["codice"]))
        for f in filters:
            if f.condizione == ">=":
                records = [r for r in records if r.get(f.campo, "") >= f.valore]
            elif f.condizione == "=":
                values = f.valore if isinstance(f.valore, list) else [f.valore]
                records = [r for r in records if r.get(f.campo) in values]
        if fields:
            records = [{k: v for k, v in r.items() if k in fields} for r in records]
        for i in range(0, len(records), page_size):
            if self.fail_after_pages is not None and self.pages_served >= self.fail_after_pages:
                raise LinkDownError("5001 - link to the gestionale broken", status=503)
            self.pages_served += 1
            yield Page(copy.deepcopy(records[i : i + page_size]), None, self.clock)

    def touch(self, code: str, **values: Any) -> None:
        self.data["articoli"][code].update(values, dt_mod_sistema="20261128")


@pytest.fixture
def store(db_url: str):
    s = open_store(db_url)
    yield s
    s.close()


def run(store, erp, kind: str = "changed", **kw: Any):
    return SyncRunner(store, erp, SyncOptions(page_size=10)).run(kind, **kw)


def test_money_has_one_spelling_whatever_the_reply_used() -> None:
    assert canon(Decimal("12.50")) == canon(Decimal("12.5")) == "12.5"
    assert canon(Decimal("10.0")) == canon(10) == 10
    assert canon([[1, Decimal("3.10")]]) == {"1": "3.1"}


def test_same_values_in_another_spelling_are_not_a_change(store) -> None:
    erp = PagesFromMemory()
    assert run(store, erp).entities["articles"]["inserted"] == 25
    for rec in erp.data["articoli"].values():
        rec["prz_listino"] = [[1, Decimal("12.50")], [2, Decimal("10.00")]]
    result = run(store, erp, "total")
    assert result.entities["articles"]["unchanged"] == 25
    assert result.entities["articles"]["updated"] == 0


def test_one_entry_per_changed_field_and_one_per_inserted_or_deleted_record(store) -> None:
    erp = PagesFromMemory()
    run(store, erp)
    erp.touch("A001", descrizione="New text", prz_listino=[[1, Decimal("13")], [2, 10]])
    erp.touch("A002", trasf_sito=[[1, "N"]])
    result = run(store, erp)
    assert result.kind == "changed"
    counts = result.entities["articles"]
    assert (counts["updated"], counts["deleted"], counts["unchanged"]) == (1, 1, 0)
    engine = Engine(EngineSettings(str(store.engine.url)), store)
    changes = {
        (c.key, c.change, c.field): (c.old, c.new) for c in engine.changes(run_id=result.run_id)
    }
    assert changes[("A001", "updated", "descrizione")] == ("Article 1", "New text")
    assert ("A001", "updated", "prz_listino") in changes
    assert changes[("A002", "deleted", None)] == (None, None)
    assert len(changes) == 3


def test_a_bad_record_is_rejected_with_its_reason_and_the_rest_goes_in(store) -> None:
    erp = PagesFromMemory()
    erp.data["articoli"]["A003"]["descrizione"] = "x" * 81
    erp.data["articoli"]["A004"]["cod_grp_merc"] = "NOPE"
    erp.data["articoli"]["A005"]["prz_listino"] = "free"
    del erp.data["articoli"]["A006"]["codice"]
    erp.data["articoli"]["A006"]["codice"] = None
    result = run(store, erp)
    assert result.status == "ok_with_rejects"
    assert result.entities["articles"]["rejected"] == 4
    assert result.entities["articles"]["inserted"] == 21
    detail = Engine(EngineSettings(str(store.engine.url)), store).run_detail(result.run_id)
    reasons = {r.key: r.reason for r in detail.rejects}
    assert "descrizione" in reasons["A003"] and "80" in reasons["A003"]
    assert "unknown category" in reasons["A004"]
    assert "prz_listino" in reasons["A005"]
    assert "missing key" in reasons[None]


def test_dry_run_writes_nothing_but_its_run_record(store) -> None:
    erp = PagesFromMemory()
    result = run(store, erp, "total", dry_run=True)
    assert result.dry_run and result.entities["articles"]["inserted"] == 25
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(store_table("articles"))).scalar() == 0
        assert (
            conn.execute(select(func.count()).select_from(store_table("change_log"))).scalar() == 0
        )
        assert get_state(conn, WATERMARK) is None
        assert conn.execute(select(func.count()).select_from(SyncRun.__table__)).scalar() == 1


def test_a_failure_between_pages_keeps_whole_pages_and_the_watermark(store) -> None:
    erp = PagesFromMemory()
    run(store, erp)
    with store.read() as conn:
        mark = get_state(conn, WATERMARK)
    for i in range(25):
        erp.touch(f"A{i:03d}", descrizione=f"Changed {i}")
    erp.pages_served = 0
    erp.fail_after_pages = 3  # two lookup pages, then one page of articles
    failed = run(store, erp)
    assert failed.status == "failed" and "5001" in failed.error
    with store.read() as conn:
        assert get_state(conn, WATERMARK) == mark
        changed = conn.execute(
            select(func.count())
            .select_from(store_table("articles"))
            .where(store_table("articles").c.description.like("Changed%"))
        ).scalar()
    assert changed == 10  # exactly one page of ten, nothing of the next
    erp.fail_after_pages = None
    again = run(store, erp)
    assert again.status == "ok" and again.entities["articles"]["updated"] == 15


def store_table(name: str):
    from passweb_tui.engine.models import metadata

    return metadata.tables[name]


def test_protected_lookup_descriptions_stay_and_count_as_in_step(store) -> None:
    erp = PagesFromMemory()
    options = SyncOptions(page_size=10, update_descriptions={"currencies": False})
    SyncRunner(store, erp, options).run("total")
    erp.data["dati-generali/valute"][1]["descrizione"] = "Euro (renamed in the ERP)"
    erp.data["dati-generali/valute"][1]["cambio"] = Decimal("1.5")
    result = SyncRunner(store, erp, options).run("total")
    assert result.entities["currencies"]["updated"] == 1
    engine = Engine(EngineSettings(str(store.engine.url)), store)
    fields = {c.field for c in engine.changes(run_id=result.run_id, entity="currencies")}
    assert fields == {"cambio"}
    with store.read() as conn:
        row = conn.execute(select(store_table("currencies"))).mappings().one()
    assert row["description"] == "Euro" and row["rate"] == Decimal("1.5")
    again = SyncRunner(store, erp, options).run("total", dry_run=True)
    assert again.entities["currencies"]["updated"] == 0
    # the setting turned back on: the ERP's description comes at the next sync
    allow = SyncOptions(page_size=10)
    back = SyncRunner(store, erp, allow).run("total")
    assert back.entities["currencies"]["updated"] == 1
    fields = {c.field for c in engine.changes(run_id=back.run_id, entity="currencies")}
    assert fields == {"descrizione"}
    with store.read() as conn:
        row = conn.execute(select(store_table("currencies"))).mappings().one()
    assert row["description"] == "Euro (renamed in the ERP)"
    assert (
        SyncRunner(store, erp, allow).run("total", dry_run=True).entities["currencies"]["updated"]
        == 0
    )


def test_change_log_times_read_back_and_old_entries_are_pruned(store) -> None:
    from datetime import UTC, timedelta

    erp = PagesFromMemory(articles=3)
    kept = SyncRunner(store, erp, SyncOptions(page_size=10)).run("total")
    engine = Engine(EngineSettings(str(store.engine.url)), store)
    entries = engine.changes(run_id=kept.run_id)
    assert entries and all(abs(e.at - datetime.now(UTC)) < timedelta(minutes=5) for e in entries)
    erp.touch("A001", descrizione="Another")
    SyncRunner(store, erp, SyncOptions(page_size=10, change_log_days=0)).run("changed")
    assert engine.changes() == []  # everything is older than "0 days ago" by the end
    assert engine.runs()[0].entities["articles"]["updated"] == 1  # the summary stays


def test_digests_read_by_a_pages_key_range_are_those_read_key_by_key(db_url: str) -> None:
    """A full pass reads a page's stored digests by the range of its keys; keys the
    database orders otherwise than the ERP (punctuation, case, under a locale collation)
    are still found, and keys it does not hold are not."""
    from datetime import UTC

    from passweb_tui.engine.records import ENTITIES
    from passweb_tui.engine.sync import _digests, _digests_by_span

    spec = ENTITIES["articles"]
    codes = ["A-1", "A1", "a1", "A 2", "KIT/0001", "KIT0001", "kit.9", "Z", "b", "ÄRT", "0"]
    st = open_store(db_url)
    try:
        with st.write() as conn:
            if conn.dialect.name == "postgresql":
                # a locale collation where the server has one: it orders "b" before
                # "KIT0001" and ignores case first, unlike the ERP's (and Python's) order
                icu = conn.exec_driver_sql(
                    "SELECT collname FROM pg_collation WHERE collname = 'und-x-icu'"
                ).scalar()
                if icu:
                    conn.exec_driver_sql(
                        'ALTER TABLE articles ALTER COLUMN code TYPE VARCHAR(64) COLLATE "und-x-icu"'
                    )
            when = datetime(2026, 11, 27, tzinfo=UTC)
            rows = [
                {"code": c, "published": True, "data": "{}", "digest": f"d{i}", "synced_at": when}
                for i, c in enumerate(codes)
            ]
            conn.execute(spec.table.insert(), rows)
        asked = [
            sorted(codes),
            sorted(codes)[2:7],
            ["A-1", "KIT0001", "b"],
            ["A1", "nope", "Z"],
            ["missing-1", "missing-2"],
            sorted(codes, key=str.lower),
        ]
        with st.read() as conn:
            for keys in asked:
                assert _digests_by_span(conn, spec, keys) == _digests(conn, spec, keys), keys
    finally:
        st.close()


def test_a_dry_run_with_rejects_beside_another_writer(store, monkeypatch) -> None:
    """A dry run takes no lease, so another run may commit while it reads a page: its
    rejects must still be recorded (SQLite refuses a write in a transaction whose
    snapshot another connection has made stale)."""
    from sqlalchemy import text

    from passweb_tui.engine import sync as sync_mod

    erp = PagesFromMemory()
    SyncRunner(store, erp, SyncOptions(page_size=10)).run("total")
    erp.data["articoli"]["A003"]["descrizione"] = "x" * 200  # longer than the site takes
    real = sync_mod._digests

    def digests_then_another_writer(conn, spec, keys):
        found = real(conn, spec, keys)
        if spec.name == "articles":
            with store.write() as other:  # another run commits a page meanwhile
                other.execute(text("UPDATE sync_lease SET run_id = COALESCE(run_id, 0) + 1"))
        return found

    monkeypatch.setattr(sync_mod, "_digests", digests_then_another_writer)
    result = SyncRunner(store, erp, SyncOptions(page_size=10)).run("total", dry_run=True)
    assert result.status == "ok_with_rejects", result.error
    assert result.entities["articles"]["rejected"] == 1


def test_a_database_error_is_recorded_without_its_statement() -> None:
    """A run stopped by the database says what the database said, on one line, not the
    statement and its pages of parameters."""
    import sqlite3

    from sqlalchemy.exc import IntegrityError

    from passweb_tui.engine.sync import failure_text

    orig = sqlite3.IntegrityError("UNIQUE constraint failed: web_order.erp_key")
    exc = IntegrityError("UPDATE web_order SET state=? ...", [("stored", "x" * 5000)], orig)
    assert failure_text(exc) == (
        "database error (IntegrityError): UNIQUE constraint failed: web_order.erp_key"
    )
    assert failure_text(ValueError("two\nlines")) == "ValueError: two lines"
    assert len(failure_text(RuntimeError("y" * 2000))) < 600


def test_a_page_that_fails_while_written_leaves_no_counts(store, monkeypatch) -> None:
    """A page whose transaction fails is rolled back whole: neither its rows nor its
    counts are in the run (the run record once said `deleted 2` of records still there)."""
    from passweb_tui.engine import sync as sync_mod

    erp = PagesFromMemory()
    run(store, erp)
    for i in range(25):
        erp.touch(f"A{i:03d}", descrizione=f"Changed {i}")
    for code in ("A011", "A012"):  # in the second page of articles: deleted by it
        erp.touch(code, trasf_sito=[[1, "N"]])
    real = sync_mod._bulk_insert
    logged: list[str] = []

    def full_disk_on_the_second_page(conn, table, *args, **kwargs):
        if table == "change_log":
            logged.append(table)
            if len(logged) == 2:
                raise OSError("no space left on device")
        return real(conn, table, *args, **kwargs)

    monkeypatch.setattr(sync_mod, "_bulk_insert", full_disk_on_the_second_page)
    failed = run(store, erp)
    assert failed.status == "failed" and "no space left" in failed.error
    first_page = {"fetched": 10, "updated": 10, "inserted": 0, "deleted": 0, "unchanged": 0}
    assert {k: failed.entities["articles"][k] for k in first_page} == first_page
    engine = Engine(EngineSettings(str(store.engine.url)), store)
    (recorded,) = [r for r in engine.runs() if r.run_id == failed.run_id]
    assert recorded.entities == failed.entities
    with store.read() as conn:
        articles = store_table("articles")
        kept = conn.execute(
            select(articles.c.code, articles.c.description).where(
                articles.c.code.in_(["A009", "A011", "A015"])
            )
        ).all()
    assert sorted(kept) == [("A009", "Changed 9"), ("A011", "Article 11"), ("A015", "Article 15")]
    monkeypatch.undo()
    again = run(store, erp)
    assert again.status == "ok"
    assert (again.entities["articles"]["updated"], again.entities["articles"]["deleted"]) == (13, 2)
