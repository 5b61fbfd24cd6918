"""The pull side of DOMAIN.md, rule by rule, against the simulator over a real socket,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from passweb_tui.engine.erp.client import MexalClient
from passweb_tui.engine.erp.settings import ErpConfig
from passweb_tui.engine.facade import Engine, EngineSettings, LaunchRefused, ProgressEvent
from passweb_tui.engine.lease import Lease
from passweb_tui.engine.models import metadata
from passweb_tui.engine.records import ENTITIES, SiteRules
from passweb_tui.engine.state import WATERMARK, get_state
from passweb_tui.engine.sync import COUNTERS, STAMP, Scope, SyncOptions

ARTICLES = metadata.tables["articles"]


def erp_config(sim: Any) -> ErpConfig:
    # few, quick retries: a fault injected by a test should end the run promptly
    return ErpConfig(
        sim.url,
        sim.user,
        sim.password,
        azienda=sim.azienda,
        anno=sim.anno,
        max_retries=1,
        backoff_base_s=0.01,
        backoff_max_s=0.02,
    )


def open_engine(db_url: str, sim: Any, **options: Any) -> Engine:
    opts = SyncOptions(page_size=100, **options)
    return Engine.open(EngineSettings(db_url, erp_config(sim), opts))


@pytest.fixture
def engine(db_url: str, sim: Any) -> Iterator[Engine]:
    e = open_engine(db_url, sim)
    yield e
    e.close()


def in_step(engine: Engine) -> dict[str, dict[str, int]]:
    """What a dry-run TOTAL would still change, per entity (empty when in step)."""
    result = engine.run("total", dry_run=True)
    assert result.status in ("ok", "ok_with_rejects"), result.error
    return {
        name: {k: c[k] for k in ("inserted", "updated", "deleted") if c[k]}
        for name, c in result.entities.items()
        if c["inserted"] or c["updated"] or c["deleted"]
    }


def erp_articles_for_site(sim: Any, site_no: int = 1) -> set[str]:
    with MexalClient(erp_config(sim)) as client:
        keys = set()
        for page in client.iter_pages("articoli", fields=["codice", "trasf_sito"]):
            for r in page.records:
                flags = dict((i, v) for i, v in r.get("trasf_sito") or [])
                if flags.get(site_no) == "S":
                    keys.add(r["codice"])
        return keys


def store_articles(engine: Engine) -> set[str]:
    with engine.store.read() as conn:
        return {k for (k,) in conn.execute(select(ARTICLES.c.code))}


def watermark(engine: Engine) -> str | None:
    with engine.store.read() as conn:
        return get_state(conn, WATERMARK)


def test_first_sync_is_total_and_a_changed_after_changes_leaves_the_store_in_step(
    engine: Engine, sim: Any
) -> None:
    first = engine.run("changed")
    assert (first.kind, first.requested_kind, first.status) == ("total", "changed", "ok")
    assert "runs as a TOTAL" in (first.message or "")
    assert store_articles(engine) == erp_articles_for_site(sim)
    assert first.entities["customers"]["inserted"] > 0
    assert first.entities["conditions"]["inserted"] > 0
    assert first.entities["categories"]["inserted"] > 0
    for resource in ("articoli", "clienti", "particolarita"):
        sim.admin("POST", "mutate", json={"resource": resource, "count": 15, "seed": 5})
    second = engine.run("changed")
    assert second.kind == "changed" and second.status == "ok"
    assert second.entities["articles"]["fetched"] < first.entities["articles"]["fetched"]
    assert second.entities["articles"]["updated"] > 0
    assert second.entities["customers"]["updated"] > 0
    assert in_step(engine) == {}


def test_flags_unpublish_and_remove_and_total_removes_what_the_erp_lost(
    engine: Engine, sim: Any
) -> None:
    engine.run("total")
    on_site = sorted(store_articles(engine))
    # an article pre-deleted in the ERP is kept but unpublished
    changed = sim.admin(
        "POST",
        "mutate",
        json={"resource": "articoli", "count": 8, "seed": 11, "fields": ["gest_precanc"]},
    ).json()["changed"]
    # articles whose transfer flag flips
    flipped = sim.admin(
        "POST",
        "mutate",
        json={"resource": "articoli", "count": 8, "seed": 12, "fields": ["trasf_sito"]},
    ).json()["changed"]
    gone = on_site[0] if on_site[0] not in changed + flipped else on_site[1]
    sim.admin("DELETE", f"records/articoli/{gone}")
    result = engine.run("changed")
    assert result.status == "ok"
    expected = erp_articles_for_site(sim)
    # CHANGED applies flag changes but does not notice records gone from the ERP
    assert store_articles(engine) == expected | {gone}
    with engine.store.read() as conn:
        published = dict(conn.execute(select(ARTICLES.c.code, ARTICLES.c.published)).all())
    with MexalClient(erp_config(sim)) as client:
        for key in changed:
            rec = client.get("articoli", key, fields=["codice", "gest_precanc", "trasf_sito"])
            if key in published:
                assert published[key] is (rec["gest_precanc"] != "S"), key
    removals = {
        c.key
        for c in engine.changes(run_id=result.run_id, entity="articles")
        if c.change == "deleted"
    }
    assert removals == (set(on_site) - expected) - {gone}
    total = engine.run("total")
    assert total.entities["articles"]["deleted"] == 1
    assert store_articles(engine) == expected
    assert in_step(engine) == {}


def test_a_run_counts_the_records_it_read_that_are_not_for_the_site(
    engine: Engine, sim: Any
) -> None:
    """Records whose transfer flag is off for the site are read and not kept: the run
    counts them per entity (`off_site`), so that what it read adds up, and keeps the
    `--json` counts to the contract's six."""
    with MexalClient(erp_config(sim)) as client:
        erp_all = {
            r["codice"] for page in client.iter_pages("articoli", fields=["codice"])
            for r in page.records
        }  # fmt: skip
    for_site = erp_articles_for_site(sim)
    assert 0 < len(for_site) < len(erp_all)  # the simulator flags some off the site
    first = engine.run("total")
    assert first.status == "ok"
    arts = first.entities["articles"]
    assert first.off_site["articles"] == len(erp_all - for_site)
    assert arts["fetched"] == arts["inserted"] + first.off_site["articles"]
    assert set(first.to_json()["entities"]["articles"]) == set(COUNTERS)
    (again,) = [r for r in engine.runs() if r.run_id == first.run_id]  # read back
    assert again.off_site == first.off_site and again.entities == first.entities
    # flags that flip: a CHANGED reads those articles again; the ones now off the site
    # are counted so, and those the store had are deleted as well
    flipped = set(
        sim.admin(
            "POST",
            "mutate",
            json={"resource": "articoli", "count": 20, "seed": 21, "fields": ["trasf_sito"]},
        ).json()["changed"]
    )
    now_off = flipped - erp_articles_for_site(sim)
    assert now_off & for_site  # some stored articles went off the site
    second = engine.run("changed")
    assert second.status == "ok"
    assert second.off_site.get("articles", 0) == len(now_off)
    assert second.entities["articles"]["deleted"] == len(now_off & for_site)
    assert not now_off & store_articles(engine)
    # a TOTAL over the filled store passes its unchanged pages without decoding them:
    # their records off the site are counted all the same
    third = engine.run("total")
    assert third.status == "ok"
    assert third.off_site["articles"] == len(erp_all - erp_articles_for_site(sim))
    arts = third.entities["articles"]
    assert arts["fetched"] == arts["unchanged"] + third.off_site["articles"]


def erp_broken_after(
    sim: Any, articles: int
) -> tuple[threading.Event, Callable[[ProgressEvent], None]]:
    """A run's progress listener that makes the ERP fail every request once the run has
    read `articles` articles, and the event it sets then."""
    faulted = threading.Event()

    def on_event(ev: ProgressEvent) -> None:
        if ev.entity == "articles" and ev.done >= articles and not faulted.is_set():
            faulted.set()
            sim.admin("PUT", "faults", json={"status": {"500": 1.0}})

    return faulted, on_event


def _unpublished(engine: Engine) -> set[str]:
    with engine.store.read() as conn:
        return {k for (k,) in conn.execute(select(ARTICLES.c.code).where(~ARTICLES.c.published))}


def test_pre_deleted_articles_are_unpublished_unless_the_setting_says_publish(
    db_url: str, sim: Any
) -> None:
    sim.admin(
        "POST",
        "mutate",
        json={"resource": "articoli", "count": 20, "seed": 3, "fields": ["gest_precanc"]},
    )
    flags = {}
    with MexalClient(erp_config(sim)) as client:
        wanted = ["codice", "trasf_sito", "pubblica", "gest_precanc", "gest_annullato"]
        for page in client.iter_pages("articoli", fields=wanted):
            for r in page.records:
                if dict(r["trasf_sito"]).get(1) == "S":
                    flags[r["codice"]] = r
    pulled_back = {k for k, r in flags.items() if dict(r.get("pubblica") or []).get(1) == "N"}
    predeleted = {
        k for k, r in flags.items() if "S" in (r.get("gest_precanc"), r.get("gest_annullato"))
    }
    assert predeleted - pulled_back
    lenient = open_engine(db_url, sim, rules=SiteRules(publish_predeleted=True))
    try:
        lenient.run("total")
        assert _unpublished(lenient) == pulled_back
    finally:
        lenient.close()
    strict = open_engine(db_url, sim)
    try:
        result = strict.run("total")
        assert _unpublished(strict) == pulled_back | predeleted
        assert result.entities["articles"]["updated"] == len(predeleted - pulled_back)
        # kept in the store, only unpublished
        assert predeleted <= store_articles(strict)
    finally:
        strict.close()


def test_a_partial_that_writes_no_rows_leaves_no_full_pull_waiting(db_url: str, sim: Any) -> None:
    """A PARTIAL that only sends what waits on the site, under other settings, wrote no
    row: the next CHANGED (the settings put back) has nothing to pull in full."""
    from sqlalchemy import text

    strict = open_engine(db_url, sim)
    try:
        strict.run("total")
    finally:
        strict.close()
    lenient = open_engine(db_url, sim, rules=SiteRules(publish_predeleted=True))
    try:
        assert lenient.run("partial").status == "ok"
        with lenient.store.read() as conn:
            query = text("SELECT name FROM sync_state WHERE name LIKE 'refill:%'")
            assert list(conn.execute(query).scalars()) == []
    finally:
        lenient.close()


@pytest.mark.parametrize("interrupted_by", ["failed changed", "partial"])
def test_a_setting_put_back_after_rows_written_under_it_leaves_the_store_in_step(
    db_url: str, sim: Any, interrupted_by: str
) -> None:
    """Rows written under a new setting by a run that did not end well (or by a
    PARTIAL), then the setting put back: the store still recorded the old setting as its
    rows', so the next CHANGED saw nothing to pull in full and left the rows the other
    run wrote (pre-deleted articles published)."""
    sim.admin(
        "POST",
        "mutate",
        json={"resource": "articoli", "count": 40, "seed": 3, "fields": ["gest_precanc"]},
    )
    strict = open_engine(db_url, sim)
    try:
        strict.run("total")
        hidden = _unpublished(strict)
    finally:
        strict.close()
    lenient = open_engine(db_url, sim, rules=SiteRules(publish_predeleted=True))
    try:
        if interrupted_by == "partial":
            done = lenient.run("partial", scope=Scope(entities=("articles",)))
            assert done.status == "ok", done.error
        else:
            faulted, break_erp_mid_articles = erp_broken_after(sim, 200)
            failed = lenient.run("changed", on_event=break_erp_mid_articles)
            sim.admin("DELETE", "faults")
            assert faulted.is_set() and failed.status == "failed", failed
        assert _unpublished(lenient) < hidden  # some written under the new setting
    finally:
        lenient.close()
    strict = open_engine(db_url, sim)
    try:
        again = strict.run("changed")
        assert again.status == "ok", again.error
        assert _unpublished(strict) == hidden
        assert in_step(strict) == {}
        assert strict.run("changed").entities["articles"]["fetched"] < 100  # done with
    finally:
        strict.close()


def test_watermark_is_the_erp_clock_minus_the_overlap_and_the_boundary_is_inclusive(
    engine: Engine, sim: Any
) -> None:
    sim.admin("PUT", "clock", json={"now": "20300115 120000"})
    first = engine.run("total")
    mark = watermark(engine)
    with engine.store.read() as conn:
        from passweb_tui.engine.models import SyncRun

        clock = conn.execute(
            select(SyncRun.__table__.c.erp_clock).where(SyncRun.__table__.c.id == first.run_id)
        ).scalar()
    assert clock.strftime("%Y%m%d") == "20300115"
    assert mark == (clock - timedelta(minutes=65)).strftime(STAMP)
    at = datetime.strptime(mark, STAMP)
    # one article changed a minute before the watermark, one exactly at it
    sim.admin("PUT", "clock", json={"now": (at - timedelta(minutes=1)).strftime(STAMP)})
    before = sim.admin(
        "POST",
        "mutate",
        json={"resource": "articoli", "count": 1, "seed": 21, "fields": ["descrizione"]},
    ).json()["changed"]
    sim.admin("PUT", "clock", json={"now": at.strftime(STAMP)})
    exact = sim.admin(
        "POST",
        "mutate",
        json={"resource": "articoli", "count": 1, "seed": 22, "fields": ["descrizione"]},
    ).json()["changed"]
    assert before != exact
    sim.admin("PUT", "clock", json={"now": (at + timedelta(hours=2)).strftime(STAMP)})
    second = engine.run("changed")
    assert second.entities["articles"]["fetched"] == 1  # the same date, compared by time
    keys = {c.key for c in engine.changes(run_id=second.run_id, entity="articles")}
    assert not keys & set(before)
    new_mark = datetime.strptime(watermark(engine), STAMP)
    assert new_mark >= at + timedelta(hours=2) - timedelta(minutes=65)


def test_an_erp_clock_set_back_past_the_watermark_makes_the_changed_read_all(
    engine: Engine, sim: Any
) -> None:
    """The ERP ran a day ahead for one CHANGED, then its clock was put right: what
    changed since is stamped before the watermark. The next CHANGED sees its clock
    behind the watermark and reads all (before, it found nothing, ended `ok`, and set
    the watermark back: the changes were lost until a TOTAL)."""
    sim.admin("PUT", "clock", json={"now": "20300115 120000"})
    engine.run("total")
    sim.admin("PUT", "clock", json={"now": "20300116 120000"})  # a day ahead
    assert engine.run("changed").status == "ok"
    sim.admin("PUT", "clock", json={"now": "20300115 130000"})  # put right
    changed = sim.admin(
        "POST",
        "mutate",
        json={"resource": "articoli", "count": 2, "seed": 31, "fields": ["descrizione"]},
    ).json()["changed"]
    sim.admin("PUT", "clock", json={"now": "20300115 150000"})  # two hours on
    run = engine.run("changed")
    assert run.status == "ok", run.error
    assert "the ERP's clock (20300115 150000) is behind the last sync's watermark" in (
        run.message or ""
    ), run.message
    keys = {c.key for c in engine.changes(run_id=run.run_id, entity="articles")}
    assert keys == set(changed)
    assert in_step(engine) == {}
    assert watermark(engine) == "20300115 135500"
    # the clock in step again: the next CHANGED searches by date as ever
    sim.admin("PUT", "clock", json={"now": "20300115 160000"})
    after = engine.run("changed")
    assert "behind" not in (after.message or "")
    assert after.entities["articles"]["fetched"] < run.entities["articles"]["fetched"]


def test_a_failed_run_keeps_the_watermark_and_the_next_changed_completes(
    engine: Engine, sim: Any
) -> None:
    engine.run("total")
    mark = watermark(engine)
    sim.admin("POST", "mutate", json={"resource": "articoli", "count": 60, "seed": 8})
    sim.admin("POST", "mutate", json={"resource": "clienti", "count": 10, "seed": 8})
    faulted, break_erp_mid_articles = erp_broken_after(sim, 1)
    # a TOTAL so there are several pages of articles to break between
    failed = engine.run("total", on_event=break_erp_mid_articles)
    assert faulted.is_set(), failed
    assert failed.status == "failed" and failed.error
    assert watermark(engine) == mark
    sim.admin("DELETE", "faults")
    again = engine.run("changed")
    assert again.status == "ok"
    assert in_step(engine) == {}


def test_rejected_records_are_reported_and_retried_by_the_next_changed(
    engine: Engine, sim: Any
) -> None:
    # a date after every generated record, so only this test's changes are recent
    sim.admin("PUT", "clock", json={"now": "20300115 120000"})
    engine.run("total")
    bad_record = {
        "codice": "BAD0001",
        "descrizione": "Category the ERP never defined",
        "alq_iva": "22",
        "um_principale": "PZ",
        "cod_grp_merc": "ZZZZ",
        "cat_web": "ZZZZ",
        "trasf_sito": [[1, "S"]],
    }
    bad = sim.admin("POST", "records/articoli", json=bad_record).json()["key"]
    result = engine.run("changed")
    assert result.status == "ok_with_rejects"
    assert result.entities["articles"]["rejected"] == 1
    rejects = engine.run_detail(result.run_id).rejects
    assert [(r.key, "unknown category" in r.reason) for r in rejects] == [(bad, True)]
    # far past the overlap: only the memory of the reject brings it back
    sim.admin("PUT", "clock", json={"now": "20300115 180000"})
    again = engine.run("changed")
    assert again.entities["articles"]["rejected"] == 1
    assert again.entities["articles"]["fetched"] == 1
    # gone from the ERP: a TOTAL forgets it, and a CHANGED no longer asks for it
    from sqlalchemy import text

    def remembered() -> list[str]:
        with engine.store.read() as conn:
            query = text("SELECT key FROM sync_retry_keys WHERE entity = 'articles'")
            return list(conn.execute(query).scalars())

    assert remembered() == [bad]
    sim.admin("DELETE", f"records/articoli/{bad}")
    # asked for by its key and not given: forgotten by the CHANGED itself (it was kept
    # until a TOTAL, asked for by every CHANGED, and kept the run that rejected it)
    forgot = engine.run("changed")
    assert forgot.status == "ok" and forgot.entities["articles"]["fetched"] == 0
    assert remembered() == []
    later = engine.run("changed")
    assert later.status == "ok" and later.entities["articles"]["fetched"] == 0
    # and by a TOTAL, which reads every record
    worse = dict(bad_record, codice="BAD0002")
    second = sim.admin("POST", "records/articoli", json=worse).json()["key"]
    sim.admin("PUT", "clock", json={"now": "20300116 120000"})
    assert engine.run("changed").status == "ok_with_rejects"
    assert remembered() == [second]
    sim.admin("DELETE", f"records/articoli/{second}")
    assert engine.run("total").status == "ok"
    assert remembered() == []


def test_dry_run_reads_and_reports_but_writes_nothing(engine: Engine) -> None:
    result = engine.run("changed", dry_run=True)
    assert result.kind == "total" and result.dry_run and result.status == "ok"
    assert result.entities["articles"]["inserted"] > 0
    assert store_articles(engine) == set()
    assert watermark(engine) is None
    assert engine.fields("articles") == []  # not even the field catalogue
    assert [r.run_id for r in engine.runs()] == [result.run_id]
    assert engine.changes() == []


def test_a_dry_run_keeps_what_the_change_log_would_have_had(engine: Engine, sim: Any) -> None:
    """Its would-be changes are those the same run for real then logs: inserts, field
    updates and (on TOTAL) deletions, and it stores none of them."""
    first = engine.run("total", dry_run=True)
    inserted = {(e, k) for e, k, change, *_ in first.would_change if change == "inserted"}
    assert len(inserted) == min(sum(c["inserted"] for c in first.entities.values()), 1000)
    assert engine.changes() == []
    engine.run("total")
    on_site = sorted(store_articles(engine))
    sim.admin(
        "POST",
        "mutate",
        json={"resource": "articoli", "count": 4, "seed": 21, "fields": ["descrizione"]},
    )
    sim.admin("DELETE", f"records/articoli/{on_site[0]}")
    # records whose flag turns N: removed by the pages, not by the pass's deletions
    for resource in ("articoli", "clienti"):
        sim.admin(
            "POST",
            "mutate",
            json={"resource": resource, "count": 2, "seed": 22, "fields": ["trasf_sito"]},
        )
    dry = engine.run("total", dry_run=True)
    assert dry.status == "ok" and dry.would_change
    real = engine.run("total")
    logged = {
        (c.entity, c.key, c.change, c.field, c.old, c.new)
        for c in engine.changes(run_id=real.run_id)
    }
    assert set(dry.would_change) == logged
    assert len(dry.would_change) == len(logged)  # each once
    assert dry.entities == real.entities
    assert real.entities["articles"]["deleted"] == 3 and real.entities["customers"]["deleted"] == 2
    assert ("articles", on_site[0], "deleted", None, None, None) in logged
    assert any(c[3] == "descrizione" for c in logged)
    assert "would_change" not in dry.to_json()  # the contract's shape is unchanged


def test_a_newly_used_field_is_filled_for_every_record(engine: Engine) -> None:
    engine.run("total")
    count = len(store_articles(engine))
    assert not any(r.used for r in engine.fields("articles") if r.name == "pubblica")
    assert engine.set_used("articles", ["pubblica"], True) == ["pubblica"]
    result = engine.run("changed")
    assert result.kind == "changed"
    assert result.entities["articles"]["updated"] == count
    counts = dict(((e, f), n) for e, f, n in engine.change_counts(run_id=result.run_id))
    assert counts[("articles", "pubblica")] == count
    assert all("pubblica" in a["data"] for a in engine.articles(limit=50))
    # done: the next CHANGED is an ordinary one again
    assert engine.run("changed").entities["articles"]["updated"] == 0


def test_a_field_no_longer_used_is_dropped_without_a_change_per_record(engine: Engine) -> None:
    """Turning a field off is the site's doing, not the ERP's: the next sync drops it from
    every stored record without logging each as cleared, and counts them unchanged."""
    engine.run("total")
    count = len(store_articles(engine))
    assert any(r.used for r in engine.fields("articles") if r.name == "peso")
    assert engine.set_used("articles", ["peso"], False) == ["peso"]
    result = engine.run("changed")
    assert result.status == "ok", result.error
    assert result.entities["articles"]["updated"] == 0
    assert result.entities["articles"]["unchanged"] >= count
    assert engine.changes(run_id=result.run_id) == []
    assert not any("peso" in a["data"] for a in engine.articles(limit=50))
    assert engine.run("changed").entities["articles"]["updated"] == 0


def test_a_field_used_while_a_refill_runs_is_filled_by_the_next_run(engine: Engine) -> None:
    """The run read the used fields before the second field was used: it must leave that
    request for the next run instead of clearing it with its own."""
    engine.run("total")
    count = len(store_articles(engine))
    engine.set_used("articles", ["pubblica"], True)
    used_meanwhile: list[str] = []

    def use_another(ev: ProgressEvent) -> None:
        if ev.entity == "articles" and ev.done > 0 and not used_meanwhile:
            used_meanwhile.extend(engine.set_used("articles", ["gest_precanc"], True))

    first = engine.run("changed", on_event=use_another)
    assert first.status == "ok" and used_meanwhile == ["gest_precanc"]
    assert first.entities["articles"]["updated"] == count  # pubblica, for every record
    second = engine.run("changed")
    assert second.entities["articles"]["updated"] == count  # gest_precanc, for every record
    assert all("gest_precanc" in a["data"] for a in engine.articles(limit=100_000))
    assert engine.run("changed").entities["articles"]["updated"] == 0


def test_total_and_changed_exclude_each_other_and_a_dead_holder_expires(engine: Engine) -> None:
    other = Lease(engine.store, 60)  # as another process would hold it
    other.acquire(run_id=99)
    with pytest.raises(LaunchRefused) as refused:
        engine.run("changed")
    assert "run 99" in str(refused.value) and "since" in str(refused.value)
    assert engine.lease() is not None and engine.lease().run_id == 99
    # a dry run and a partial take no lease
    assert engine.run("total", dry_run=True).status == "ok"
    assert engine.run("partial").status == "ok"
    from sqlalchemy import update

    from passweb_tui.engine.models import SyncLease, SyncRun

    with engine.store.write() as conn:  # the holder died mid-run and its lease ran out
        conn.execute(
            update(SyncLease.__table__).values(expires_at=datetime(2000, 1, 1, tzinfo=UTC))
        )
        dead = conn.execute(
            SyncRun.__table__.insert()
            .values(kind="total", requested_kind="total", origin="site", status="running",
                    started=datetime.now(UTC), counts="{}")
            .returning(SyncRun.__table__.c.id)
        ).scalar_one()  # fmt: skip
    assert engine.run("changed").status == "ok"
    assert engine.lease() is None
    abandoned = engine.run_detail(dead).run
    assert abandoned.status == "failed" and "interrupted" in (abandoned.error or "")


def test_cancelling_stops_cleanly_and_keeps_the_watermark(engine: Engine) -> None:
    holder: list[Any] = []

    def cancel_on_articles(ev: ProgressEvent) -> None:
        if ev.entity == "articles" and ev.done > 0 and holder:
            holder[0].cancel()

    handle = engine.start_run("changed", on_event=cancel_on_articles)
    holder.append(handle)
    result = handle.wait(60)
    assert result is not None and result.status == "cancelled"
    assert watermark(engine) is None
    assert engine.lease() is None
    assert engine.run("changed").status == "ok"


class _CancelWhileFetching:
    """A client whose second page of particolarita arrives just as the operator cancels:
    the fetch thread sees the cancel with a page in hand."""

    def __init__(self, real: MexalClient, cancel: threading.Event, applied: threading.Event):
        self.real, self.cancel, self.applied = real, cancel, applied

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def iter_pages(self, resource: str, **kw: Any) -> Iterator[Any]:
        pages = self.real.iter_pages(resource, **kw)
        if resource != "particolarita":
            yield from pages
            return
        yield next(pages)
        assert self.applied.wait(30)  # the first page is written
        second = next(pages)
        self.cancel.set()
        yield second
        yield from pages


def test_a_cancel_during_the_last_pass_is_a_cancelled_run(engine: Engine, sim: Any) -> None:
    """The particolarita are the last pass of a CHANGED: a cancel while one of their pages
    is fetched must not end the pass as if every page had come (and move the watermark)."""
    from passweb_tui.engine.sync import SyncRunner

    assert engine.run("total").status == "ok"
    mark = watermark(engine)
    sim.admin("PUT", "clock", json={"offset_s": 2 * 3600})
    sim.admin("POST", "mutate", json={"resource": "particolarita", "count": 51, "seed": 9})
    sim.admin("PUT", "clock", json={"offset_s": 4 * 3600})
    cancel, applied = threading.Event(), threading.Event()

    def on_event(ev: ProgressEvent) -> None:
        if ev.entity == "conditions" and ev.phase == "conditions" and ev.done > 0:
            applied.set()

    with MexalClient(erp_config(sim)) as real:
        client = _CancelWhileFetching(real, cancel, applied)
        runner = SyncRunner(
            engine.store, client, SyncOptions(page_size=10), on_event=on_event, cancel=cancel
        )
        result = runner.run("changed")
    assert cancel.is_set()
    assert result.status == "cancelled"
    assert watermark(engine) == mark
    assert engine.run("changed").status == "ok"
    assert in_step(engine) == {}


def test_a_run_whose_lease_was_taken_over_does_not_move_the_watermark(
    db_url: str, sim: Any
) -> None:
    """A run that stalled past its lease's expiry, while another took the lease over,
    must not move the watermark at its end, even if its heartbeat never noticed."""
    from sqlalchemy import update

    engine = open_engine(db_url, sim, lease_seconds=600)  # no heartbeat within the run
    try:
        assert engine.run("total").status == "ok"
        mark = watermark(engine)
        lease_t = metadata.tables["sync_lease"]

        def take_over(ev: ProgressEvent) -> None:
            if ev.entity == "conditions" and ev.total is not None and ev.done == ev.total:
                with engine.store.write() as conn:
                    conn.execute(update(lease_t).values(holder="another-host:1:x"))

        result = engine.run("changed", on_event=take_over)
        assert result.status == "failed" and "taken over" in (result.error or "")
        assert watermark(engine) == mark
        assert engine.runs()[0].status == "failed"
    finally:
        engine.close()


def test_scoped_partial_repulls_named_records_without_moving_the_watermark(
    engine: Engine, sim: Any
) -> None:
    from passweb_tui.engine.facade import Scope

    engine.run("total")
    mark = watermark(engine)
    key = sorted(store_articles(engine))[3]
    with MexalClient(erp_config(sim)) as client:
        client_rec = client.get("articoli", key, fields=["codice", "descrizione"])
    assert client_rec is not None
    sim.admin("PUT", "clock", json={"offset_s": 3600})
    changed = sim.admin(
        "POST",
        "mutate",
        json={"resource": "articoli", "count": 30, "seed": 2, "fields": ["descrizione"]},
    ).json()["changed"]
    target = next(k for k in changed if k in store_articles(engine))
    result = engine.run("partial", scope=Scope(("articles",), (target,)))
    assert result.kind == "partial" and result.scope == {
        "entities": ["articles"],
        "codes": [target],
    }
    assert result.entities["articles"]["fetched"] == 1
    assert result.entities["articles"]["updated"] == 1
    assert watermark(engine) == mark
    _ = replace  # keeps the import list honest for future scope variants


def test_scoped_partial_names_codes_the_erp_lacks_and_records_off_the_site(
    engine: Engine, sim: Any
) -> None:
    from passweb_tui.engine.facade import Scope

    engine.run("total")
    known = sorted(store_articles(engine))[0]
    off = sim.admin(
        "POST",
        "records/articoli",
        json={
            "codice": "OFFSITE1",
            "descrizione": "Not for this site",
            "alq_iva": "22",
            "um_principale": "PZ",
            "trasf_sito": [[1, "N"]],
        },
    ).json()["key"]
    mark = watermark(engine)
    result = engine.run("partial", scope=Scope(("articles",), (known, "NOSUCH01", off)))
    # a code typed wrong must not end `ok` as if its record had been pulled
    assert result.status == "ok_with_rejects"
    assert result.entities["articles"]["rejected"] == 1
    rejects = engine.run_detail(result.run_id).rejects  # type: ignore[arg-type]
    assert [(r.key, "not in the ERP" in r.reason) for r in rejects] == [("NOSUCH01", True)]
    assert "not flagged for the site" in (result.message or "") and off in (result.message or "")
    assert off not in store_articles(engine)
    assert watermark(engine) == mark
    # nothing kept for a retry: the next CHANGED has nothing to reject
    assert engine.run("changed").status == "ok"


def test_a_total_over_an_unchanged_store_decodes_no_page(
    engine: Engine, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full pass reads each page's records as text first: pages whose records all keep
    their digests are done without decoding; a page with a change is decoded and
    applied as usual."""
    from passweb_tui.engine.erp.client import LazyPage

    first = engine.run("total")
    assert first.status == "ok"
    decoded: list[int] = []
    real = LazyPage.records

    def counting(self: LazyPage) -> Any:
        if self._page is None:
            decoded.append(1)
        return real.fget(self)  # type: ignore[attr-defined]

    monkeypatch.setattr(LazyPage, "records", property(counting))
    again = engine.run("total")
    assert again.status == "ok"
    assert decoded == []
    for name in ("articles", "customers", "conditions"):
        c, was = again.entities[name], first.entities[name]
        # what was stored is unchanged; records off the site are read and left out again
        assert c["fetched"] == was["fetched"] > 0, name
        assert c["unchanged"] == was["inserted"] > 0, name
        assert not (c["inserted"] or c["updated"] or c["deleted"] or c["rejected"]), name
    # one article changed in the ERP: only its page (of 100) is decoded, and it is updated
    sim.admin("POST", "mutate", json={"resource": "articoli", "count": 1, "seed": 11})
    third = engine.run("total")
    assert third.status == "ok"
    assert len(decoded) == 1
    assert third.entities["articles"]["updated"] == 1
    assert in_step(engine) == {}


def test_rows_built_by_the_worker_process_are_the_rows_built_here(
    db_url: str, sim: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """A first TOTAL with its rows built in the worker process stores exactly what one
    built in-process stores: rows, prices, change log and counts."""
    from sqlalchemy import create_engine

    from passweb_tui.engine import builder as builder_mod

    used: list[int] = []
    real_init, real_submit = builder_mod.RowBuilder.__init__, builder_mod.RowBuilder.submit

    def init_and_wait(self: Any) -> None:
        real_init(self)
        assert self.wait_ready(60), "the worker process did not start"

    def counting_submit(self: Any, *job: Any) -> Any:
        future = real_submit(self, *job)
        used.append(future is not None)
        return future

    monkeypatch.setattr(builder_mod.RowBuilder, "__init__", init_and_wait)
    monkeypatch.setattr(builder_mod.RowBuilder, "submit", counting_submit)
    here_url = f"sqlite:///{tmp_path / 'here.db'}"
    stores = {}
    for name, url, after in (("worker", db_url, 0), ("here", here_url, None)):
        engine = open_engine(url, sim, worker_after_records=after)
        try:
            result = engine.run("total")
            assert result.status == "ok", result.error
        finally:
            engine.close()
        stores[name] = (url, result.entities)
    assert used and all(used), "the worker built no page"
    assert stores["worker"][1] == stores["here"][1]

    def same_on_both(value: Any) -> str:
        # the worker's store may be PostgreSQL, the other is SQLite: booleans and
        # decimals are spelled alike before comparing
        if isinstance(value, bool) or (value in (0, 1) and not isinstance(value, str)):
            return str(bool(value))
        if isinstance(value, int | float | Decimal):
            return format(Decimal(str(value)).normalize(), "f")
        return str(value)

    def contents(url: str) -> dict[str, list[Any]]:
        eng = create_engine(url)
        out = {}
        with eng.connect() as conn:
            for table, cols in (
                ("articles", "code, description, category, vat, unit, published, data, digest"),
                ("article_prices", "article_code, price_list, price"),
                ("customers", "code, name, vat_number, email, price_list, data, digest"),
                ("conditions", "code, data, digest"),
                ("change_log", "entity, key, change, field, old, new"),
            ):
                rows = conn.exec_driver_sql(f"SELECT {cols} FROM {table}").all()
                out[table] = sorted(tuple(same_on_both(v) for v in r) for r in rows)
        eng.dispose()
        return out

    worker, here = contents(stores["worker"][0]), contents(stores["here"][0])
    for table in here:
        assert worker[table] == here[table], table
    assert len(here["articles"]) > 400


@pytest.mark.parametrize("failure", ["cannot build", "worker dies"])
def test_pages_the_worker_cannot_build_are_built_here(
    db_url: str, sim: Any, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """A page the worker gives up on, or a worker that dies, costs only speed: those
    pages are built in-process and the run ends as it would have."""
    import os

    from passweb_tui.engine import builder as builder_mod

    real_init = builder_mod.RowBuilder.__init__

    def init_and_wait(self: Any) -> None:
        real_init(self)
        assert self.wait_ready(60), "the worker process did not start"

    def failing_submit(self: Any, *job: Any) -> Any:
        if not self.ready or self._pool is None:
            return None
        try:
            if failure == "cannot build":  # a reply it cannot decode: it answers None
                return self._pool.submit(builder_mod.build_page, job[0], b"{", *job[2:])
            return self._pool.submit(os._exit, 3)
        except Exception:
            self._failed = True
            return None

    monkeypatch.setattr(builder_mod.RowBuilder, "__init__", init_and_wait)
    monkeypatch.setattr(builder_mod.RowBuilder, "submit", failing_submit)
    engine = open_engine(db_url, sim, worker_after_records=0)
    try:
        result = engine.run("total")
        assert result.status == "ok", result.error
        assert result.entities["articles"]["inserted"] > 400
        assert in_step(engine) == {}
    finally:
        engine.close()


def test_the_worker_prints_nothing_on_the_terminal_it_inherits() -> None:
    """The row builder's worker may run under the TUI: whatever it would write on its
    stderr (here, straight to file descriptor 2) must not reach the terminal."""
    program = (
        "import os, sys\n"
        "from passweb_tui.engine.builder import RowBuilder\n"
        "b = RowBuilder()\n"
        "assert b.wait_ready(60), 'no worker'\n"
        "assert b._pool.submit(os.write, 2, b'from-the-worker\\n').result(60) > 0\n"
        "b.close()\n"
        "sys.stderr.write('from-the-sync\\n')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "from-the-sync" in done.stderr  # the sync's own stderr is untouched
    assert "from-the-worker" not in done.stderr


def test_a_closed_row_builder_is_fully_stopped() -> None:
    """Once closed, the worker pool's manager thread has ended and closed its wake-up
    pipe, even while the worker was busy: at exit, Python 3.11's hook for process pools
    would otherwise write to a pipe that thread may be closing at that moment ("Bad
    file descriptor" printed after `sync | head`)."""
    import time

    from passweb_tui.engine.builder import RowBuilder

    b = RowBuilder()
    assert b.wait_ready(60), "no worker"
    pool = b._pool
    assert pool is not None
    busy = pool.submit(time.sleep, 0.3)
    manager = pool._executor_manager_thread  # type: ignore[attr-defined]
    wakeup = pool._executor_manager_thread_wakeup  # type: ignore[attr-defined]
    assert manager is not None and manager.is_alive()
    b.close()
    assert busy.done()
    assert not manager.is_alive() and wakeup._closed


def test_a_page_believed_new_whose_records_were_stored_meanwhile_is_upserted(
    engine: Engine, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page none of whose records is stored is written without conflict handling
    (on PostgreSQL, copied straight in). A PARTIAL, which takes no lease, may store one
    of them between the look-up and the write: the page then goes the upsert way and
    the run ends in step. The race is made certain here: the look-up finds nothing."""
    from hard_support import store_vs_erp

    from passweb_tui.engine import sync as sync_mod

    assert engine.run("total").status == "ok"
    sim.admin("POST", "mutate", json={"resource": "articoli", "count": 40, "seed": 9})
    monkeypatch.setattr(sync_mod, "_digests", lambda conn, spec, keys: {})
    result = engine.run("changed")
    assert result.status == "ok", result.error
    assert result.entities["articles"]["inserted"] > 0  # what the look-up believed
    monkeypatch.undo()
    assert in_step(engine) == {}
    assert store_vs_erp(engine, sim) == []  # price rows included


def test_a_partial_never_removes_and_on_a_horeca_site_only_a_total_does(
    db_url: str, sim: Any
) -> None:
    """DOMAIN.md: deletions (a record gone from the ERP or no longer flagged for the
    site) are never made by a PARTIAL, and on a Ho.Re.Ca. site only by a TOTAL."""
    from passweb_tui.engine.facade import Scope

    engine = open_engine(db_url, sim, horeca=True)
    try:
        engine.run("total")
        before = store_articles(engine)
        sim.admin(
            "POST",
            "mutate",
            json={"resource": "articoli", "count": 12, "seed": 12, "fields": ["trasf_sito"]},
        )
        on_site = erp_articles_for_site(sim)
        off = before - on_site
        assert off, "the mutation should take some stored articles off the site"
        one = sorted(off)[0]
        for scope in (Scope(("articles",), (one,)), Scope(("articles",))):
            partial = engine.run("partial", scope=scope)
            assert partial.entities["articles"]["deleted"] == 0 and one in store_articles(engine)
        changed = engine.run("changed")
        assert changed.status == "ok" and changed.entities["articles"]["deleted"] == 0
        assert store_articles(engine) == before | on_site  # new ones in, none out
        total = engine.run("total")
        assert total.entities["articles"]["deleted"] == len(off)
        assert store_articles(engine) == on_site
    finally:
        engine.close()
    # elsewhere a CHANGED removes them (flag changes only), a PARTIAL still does not
    sim.admin(
        "POST",
        "mutate",
        json={"resource": "articoli", "count": 12, "seed": 13, "fields": ["trasf_sito"]},
    )
    engine = open_engine(db_url, sim)
    try:
        off = store_articles(engine) - erp_articles_for_site(sim)
        assert off
        partial = engine.run("partial", scope=Scope(("articles",)))
        assert partial.entities["articles"]["deleted"] == 0
        changed = engine.run("changed")
        assert changed.entities["articles"]["deleted"] == len(off)
    finally:
        engine.close()


def _codes(engine: Engine, table: str) -> set[str]:
    with engine.store.read() as conn:
        return {str(c) for c in conn.execute(select(metadata.tables[table].c.code)).scalars()}


def _categories_of(engine: Engine) -> dict[str, str | None]:
    with engine.store.read() as conn:
        return dict(conn.execute(select(ARTICLES.c.code, ARTICLES.c.category)).all())


def test_changed_site_settings_are_applied_by_the_next_changed_and_logged(
    db_url: str, sim: Any
) -> None:
    """Switching the category mode or the publishing of pre-deleted articles changes
    rows the ERP did not touch: the next CHANGED pulls the articles in full, logs each
    new category link, and leaves the store in step."""
    primary = open_engine(db_url, sim)
    try:
        primary.run("total")
        before = _categories_of(primary)
    finally:
        primary.close()
    rules = SiteRules(category_mode="secondaria", publish_predeleted=True)
    secondary = open_engine(db_url, sim, rules=rules)
    try:
        result = secondary.run("changed")
        assert result.status in ("ok", "ok_with_rejects"), result.error
        assert "articles pulled in full" in (result.message or "")
        after = _categories_of(secondary)
        moved = {k for k in after if after[k] != before.get(k)}
        assert moved, "the demo data links articles to other web categories"
        logged = {
            c.key
            for c in secondary.changes(run_id=result.run_id, entity="articles")
            if c.field == "category"
        }
        assert logged == moved
        assert in_step(secondary) == {}
        again = secondary.run("changed")  # the settings are now the store's: no refill
        assert "pulled in full" not in (again.message or "")
        assert again.entities["articles"]["fetched"] < len(after)
    finally:
        secondary.close()


def test_articles_linked_to_a_category_the_erp_deleted_are_reported(
    engine: Engine, sim: Any
) -> None:
    engine.run("total")
    linked = _categories_of(engine)
    gone = sorted({c for c in linked.values() if c})[0]
    sim.admin("DELETE", f"records/gruppi-merceologici/{gone}")
    orphans = {k for k, c in linked.items() if c == gone}
    for kind in ("changed", "total"):
        result = engine.run(kind)
        assert result.status == "ok_with_rejects", (kind, result.error)
        assert result.entities["articles"]["rejected"] == len(orphans)
        detail = engine.run_detail(result.run_id)
        reasons = {r.key: r.reason for r in detail.rejects if r.entity == "articles"}
        assert set(reasons) == orphans
        assert all(f"category '{gone}'" in why for why in reasons.values())


def _payments_of(engine: Engine) -> dict[str, str]:
    """The stored customers' usual payments, by customer (those that name one)."""
    customers = metadata.tables["customers"]
    with engine.store.read() as conn:
        return {
            code: payment
            for code, payment in conn.execute(select(customers.c.code, customers.c.payment))
            if payment not in (None, "", "0")
        }


def test_a_dry_run_finds_the_links_the_real_run_finds_dead(engine: Engine, sim: Any) -> None:
    """The ERP deletes a category and a payment the store's records link to: a dry
    CHANGED reports the rejects the real CHANGED then makes (the lookup records it
    would delete are left out of the links it checks), and writes nothing."""
    engine.run("total")
    linked = _categories_of(engine)
    gone = sorted({c for c in linked.values() if c})[0]
    payments = _payments_of(engine)
    dead_payment = sorted(set(payments.values()))[0]
    sim.admin("DELETE", f"records/gruppi-merceologici/{gone}")
    sim.admin("DELETE", f"records/pagamenti/{dead_payment}")
    dry = engine.run("changed", dry_run=True)
    real = engine.run("changed")
    assert real.status == "ok_with_rejects", real.error
    assert dry.status == real.status
    for entity in ("articles", "customers", "categories", "payments"):
        assert dry.entities[entity] == real.entities[entity], entity
    assert real.entities["articles"]["rejected"] == sum(c == gone for c in linked.values())
    assert real.entities["customers"]["rejected"] == sum(
        p == dead_payment for p in payments.values()
    )
    assert real.entities["categories"]["deleted"] == 1
    assert real.entities["payments"]["deleted"] == 1


@pytest.mark.parametrize("how", ["gone", "flag off"])
def test_a_dry_total_does_not_reject_the_dead_links_of_records_it_would_remove(
    engine: Engine, sim: Any, how: str
) -> None:
    """A customer and an article whose payment and category the ERP deleted are
    themselves deleted in the ERP (or taken off the site by their flag): the real TOTAL
    removes them, so it does not reject their dead links; the dry TOTAL predicted one
    reject too many for each (it left the records it would remove among those it
    checked)."""
    engine.run("total")
    linked = _categories_of(engine)
    category = sorted({c for c in linked.values() if c})[0]
    article = sorted(k for k, c in linked.items() if c == category)[0]
    payments = _payments_of(engine)
    payment = sorted(set(payments.values()))[0]
    customer = sorted(k for k, p in payments.items() if p == payment)[0]
    if how == "gone":
        sim.admin("DELETE", f"records/articoli/{article}")
        sim.admin("DELETE", f"records/clienti/{customer}")
    else:
        with MexalClient(erp_config(sim)) as client:
            client.update("articoli", article, {"trasf_sito": [[1, "N"]]})
            client.update("clienti", customer, {"trasf_sito": [[1, "N"]]})
    sim.admin("DELETE", f"records/gruppi-merceologici/{category}")
    sim.admin("DELETE", f"records/pagamenti/{payment}")
    dry = engine.run("total", dry_run=True)
    real = engine.run("total")
    assert real.status == "ok_with_rejects", real.error
    for entity in ("articles", "customers"):
        assert dry.entities[entity] == real.entities[entity], entity
    assert real.entities["customers"]["rejected"] == sum(
        p == payment for k, p in payments.items() if k != customer
    )
    dry_rejects = {(r.entity, r.key) for r in engine.run_detail(dry.run_id).rejects}
    real_rejects = {(r.entity, r.key) for r in engine.run_detail(real.run_id).rejects}
    assert dry_rejects == real_rejects
    assert ("customers", customer) not in real_rejects
    assert ("articles", article) not in real_rejects


def test_on_a_horeca_site_a_changed_keeps_the_lookup_records_the_erp_deleted(
    db_url: str, sim: Any
) -> None:
    """DOMAIN.md: on a Ho.Re.Ca. site only a TOTAL deletes, lookup records included; so
    the links to them stay good until it does."""
    engine = open_engine(db_url, sim, horeca=True)
    try:
        engine.run("total")
        sim.admin("DELETE", "records/valute/4")
        with engine.store.read() as conn:
            category = max(conn.execute(select(metadata.tables["categories"].c.code)).scalars())
        sim.admin("DELETE", f"records/gruppi-merceologici/{category}")
        changed = engine.run("changed")
        assert changed.status == "ok", changed.error
        assert changed.entities["currencies"]["deleted"] == 0
        assert changed.entities["categories"]["deleted"] == 0
        assert _codes(engine, "currencies") >= {"4"}
        assert category in _codes(engine, "categories")
        total = engine.run("total")
        assert total.entities["currencies"]["deleted"] == 1
        assert total.entities["categories"]["deleted"] == 1
        assert "4" not in _codes(engine, "currencies")
        assert category not in _codes(engine, "categories")
    finally:
        engine.close()


def test_prices_keep_six_decimals_exactly(engine: Engine, sim: Any) -> None:
    """The ERP may quote a unit price to more than four places: the site's price table
    keeps it as quoted (it rounded to four), and a TOTAL after it finds nothing to do."""
    engine.run("total")
    sim.admin(
        "POST",
        "records/articoli",
        json={
            "codice": "PREC0001",
            "descrizione": "Price to six places",
            "alq_iva": "22",
            "um_principale": "PZ",
            "trasf_sito": [[1, "S"]],
            "prz_listino": [[1, 0.123456], [2, 1234567.891234], [3, 12.5]],
        },
    )
    assert engine.run("changed").status == "ok"
    (article,) = [a for a in engine.articles(search="PREC0001")]
    assert article["prices"] == {1: "0.123456", 2: "1234567.891234", 3: "12.5"}
    with engine.store.read() as conn:
        stored = conn.execute(
            select(metadata.tables["article_prices"].c.price).where(
                metadata.tables["article_prices"].c.article_code == "PREC0001"
            )
        ).scalars()
        assert sorted(stored) == [Decimal("0.123456"), Decimal("12.5"), Decimal("1234567.891234")]
    assert in_step(engine) == {}


def _article(code: str, **values: Any) -> dict[str, Any]:
    return {
        "codice": code,
        "descrizione": f"Article {code}",
        "alq_iva": "22",
        "um_principale": "PZ",
        "trasf_sito": [[1, "S"]],
        "prz_listino": [[1, 10.5]],
        **values,
    }


def test_values_the_store_cannot_keep_are_rejects_on_every_store(engine: Engine, sim: Any) -> None:
    """A price beyond what the price columns keep (a barcode pasted into it: the ERP's
    field takes 16 digits, the store less than 10^12) or a text holding a NUL character
    (PostgreSQL keeps none) rejects its record with the reason, on SQLite as on
    PostgreSQL; the run goes on to the other records and entities, and the next CHANGED
    stores the record once the ERP's value is fixed."""
    sim.admin("PUT", "clock", json={"now": "20300115 120000"})
    huge = sim.admin(
        "POST", "records/articoli", json=_article("HUGE0001", prz_listino=[[1, 8010000000001]])
    ).json()["key"]
    nul = sim.admin(
        "POST", "records/articoli", json=_article("NUL00001", descrizione="nul\u0000byte")
    ).json()["key"]
    customer = sorted(erp_customers(sim))[0]
    deal = sim.admin(
        "POST",
        "records/particolarita",
        json={"cod_conto": customer, "tipo": "A", "cod_articolo": huge, "prezzo": 2500000000000},
    ).json()["key"]
    first = engine.run("total")
    assert first.status == "ok_with_rejects", first.error
    reasons = reject_reasons(engine, first.run_id)
    assert reasons == {
        ("articles", huge): "prz_listino: price list 1: 8010000000001 is beyond what the store"
        " keeps (less than 10^12)",
        ("articles", nul): "field descrizione: text with a NUL character (0x00), which the"
        " store cannot keep",
        ("conditions", deal): "prezzo: 2500000000000 is beyond what the store keeps (less than"
        " 10^12)",
    }
    assert store_articles(engine) == erp_articles_for_site(sim) - {huge, nul}
    assert first.entities["customers"]["inserted"] > 0
    assert first.entities["conditions"]["inserted"] > 0
    assert first.entities["conditions"]["rejected"] == 1
    assert watermark(engine) is not None
    with MexalClient(erp_config(sim)) as client:
        client.update("articoli", huge, {"prz_listino": [[1, 80.1]]})
        client.update("articoli", nul, {"descrizione": "nul byte"})
        client.update("particolarita", deal, {"prezzo": 25.5})
    # far past the overlap: only the memory of the rejects brings them back
    sim.admin("PUT", "clock", json={"now": "20300116 120000"})
    again = engine.run("changed")
    assert again.status == "ok", (again.error, engine.run_detail(again.run_id).rejects)
    assert store_articles(engine) == erp_articles_for_site(sim)
    (stored,) = engine.articles(search=huge)
    assert stored["prices"] == {1: "80.1"}
    (stored,) = engine.articles(search=nul)
    assert stored["description"] == "nul byte"
    with engine.store.read() as conn:
        conditions = metadata.tables["conditions"]
        price = conn.execute(
            select(conditions.c.price).where(conditions.c.code == deal)
        ).scalar_one()
    assert price == Decimal("25.5")
    assert in_step(engine) == {}


def test_prices_read_back_as_the_erp_wrote_them_on_every_store(engine: Engine, sim: Any) -> None:
    """Money is exact: a large price with cents (a float's error shows at the sixth
    place once a number is near 10^12) reads back from the store as the ERP wrote it, on
    SQLite as on PostgreSQL; a price with more significant digits than a store keeps
    exactly (15: SQLite's floats) rejects its record, on both alike, naming the value."""
    large = post(sim, "articoli", _article("BIG00001", prz_listino=[[1, 999999999999.99],
                                                                    [2, 4503599627.37]]))  # fmt: skip
    long = post(sim, "articoli", _article("LONG0001", prz_listino=[[1, 1234567890.1234567]]))
    customer = sorted(erp_customers(sim))[0]
    deal = post(sim, "particolarita",
                {"cod_conto": customer, "tipo": "A", "cod_articolo": large,
                 "prezzo": 99999999999.97})  # fmt: skip
    run = engine.run("total")
    assert run.status == "ok_with_rejects", run.error
    assert reject_reasons(engine, run.run_id) == {
        ("articles", long): "prz_listino: price list 1: 1234567890.1234567 has more significant"
        " digits than the store keeps exactly (15)",
    }
    detail = engine.record("articles", large)
    assert detail is not None
    assert [(n, p) for n, _, p in detail.prices] == [(1, "999999999999.99"), (2, "4503599627.37")]
    with engine.store.read() as conn:
        conditions = metadata.tables["conditions"]
        price = conn.execute(
            select(conditions.c.price).where(conditions.c.code == deal)
        ).scalar_one()
    assert price == Decimal("99999999999.97")
    assert in_step(engine) == {}


def test_an_array_naming_an_index_twice_is_a_reject(engine: Engine, sim: Any) -> None:
    """[[index, value]] arrays are a map: a price list or site flag the ERP sends twice
    (two prices for list 1, "publish" and "do not publish" for site 1) leaves no value to
    believe, so the record is a reject naming the field and the index, wherever in a page
    it comes; the page's other records are stored as usual."""
    prices = post(sim, "articoli", _article("TWICE001", prz_listino=[[1, 5], [1, 6]]))
    flags = post(sim, "articoli", _article("TWICE002", trasf_sito=[[1, "N"], [1, "S"]]))
    run = engine.run("total")
    assert run.status == "ok_with_rejects", run.error
    assert reject_reasons(engine, run.run_id) == {
        ("articles", prices): "field prz_listino: index 1 appears twice, in [[1, 5], [1, 6]]",
        ("articles", flags): "field trasf_sito: index 1 appears twice, in [[1, 'N'], [1, 'S']]",
    }
    assert store_articles(engine) == erp_articles_for_site(sim) - {prices, flags}
    assert run.entities["articles"]["rejected"] == 2


def test_customers_and_conditions_whose_values_make_no_sense_are_rejects(
    engine: Engine, sim: Any
) -> None:
    """Well-typed values that cannot be right are rejected with the field and the value,
    as an article with an unknown category is: a customer's price list that is no price
    list number (1.5, -1; 0 is the ERP's "none"), a day that is not in the calendar, a condition with a negative
    price or one that ends before it begins. The run stores the rest."""
    customer = sorted(erp_customers(sim))[0]

    on_site = {"trasf_sito": [[1, "S"]]}
    half = post(sim, "clienti", {"codice": "501.99001", "ragione_sociale": "Listino a metà",
                            "cod_listino": 1.5, **on_site})  # fmt: skip
    below = post(sim, "clienti", {"codice": "501.99002", "ragione_sociale": "Listino negativo",
                             "cod_listino": -1, **on_site})  # fmt: skip
    none = post(sim, "clienti", {"codice": "501.99004", "ragione_sociale": "Nessun listino",
                            "cod_listino": 0, **on_site})  # fmt: skip
    fine = post(sim, "clienti", {"codice": "501.99003", "ragione_sociale": "Listino giusto",
                            "cod_listino": 2, **on_site})  # fmt: skip
    cheap = post(sim, "particolarita", {"cod_conto": customer, "tipo": "A",
                                   "cod_articolo": "ART0000001", "prezzo": -5})  # fmt: skip
    backwards = post(sim, "particolarita", {"cod_conto": customer, "tipo": "A",
                                       "cod_articolo": "ART0000002", "prezzo": 5,
                                       "dt_inizio": "20260101", "dt_fine": "20250101"})  # fmt: skip
    month13 = post(sim, "particolarita", {"cod_conto": customer, "tipo": "A",
                                     "cod_articolo": "ART0000003", "prezzo": 5,
                                     "dt_inizio": "20261340"})  # fmt: skip
    run = engine.run("total")
    assert run.status == "ok_with_rejects", run.error
    reasons = reject_reasons(engine, run.run_id)
    assert reasons == {
        ("customers", half): "cod_listino: 1.5 is not a price list number (a whole number, 0"
        " for none)",
        ("customers", below): "cod_listino: -1 is not a price list number (a whole number, 0"
        " for none)",
        ("conditions", cheap): "prezzo: -5 is negative",
        ("conditions", backwards): "dt_fine 20250101 is before dt_inizio 20260101: the"
        " condition would never apply",
        ("conditions", month13): "field dt_inizio: '20261340' is not a date of the calendar"
        " (AAAAMMGG)",
    }
    assert engine.record("customers", fine) is not None
    assert engine.record("customers", none) is not None  # 0: the ERP's "none given"
    assert run.entities["customers"]["rejected"] == 2
    assert run.entities["conditions"]["rejected"] == 3
    assert run.entities["conditions"]["inserted"] > 0


def test_customers_naming_a_payment_price_list_or_currency_the_erp_lacks_are_rejects(
    engine: Engine, sim: Any
) -> None:
    """A customer whose usual payment, price list or currency is no record of the ERP's
    lookup tables is rejected, naming the field and the code, as an article with an
    unknown category is; 0 and empty are "none given". Once the ERP has the payment, the
    next CHANGED stores the customer it rejected."""

    on_site = {"trasf_sito": [[1, "S"]], "cod_pagamento": "RD", "cod_listino": 1, "valuta": 1}
    payment = post(sim, "clienti", {**on_site, "codice": "501.99011", "ragione_sociale": "Pag",
                               "cod_pagamento": "ZZ9"})  # fmt: skip
    price_list = post(sim, "clienti", {**on_site, "codice": "501.99012", "ragione_sociale": "Lst",
                                  "cod_listino": 42})  # fmt: skip
    currency = post(sim, "clienti", {**on_site, "codice": "501.99013", "ragione_sociale": "Val",
                                "valuta": 9})  # fmt: skip
    none = post(sim, "clienti", {**on_site, "codice": "501.99014", "ragione_sociale": "Nulla",
                            "cod_pagamento": "", "cod_listino": 0, "valuta": 0})  # fmt: skip
    run = engine.run("total")
    assert run.status == "ok_with_rejects", run.error
    assert reject_reasons(engine, run.run_id) == {
        ("customers", payment): "unknown payment 'ZZ9' in cod_pagamento",
        ("customers", price_list): "unknown price list '42' in cod_listino",
        ("customers", currency): "unknown currency '9' in valuta",
    }
    assert engine.record("customers", none) is not None
    assert engine.record("customers", payment) is None
    post(sim, "pagamenti", {"codice": "ZZ9", "descrizione": "Nuovo pagamento", "tipo": "BB"})
    run = engine.run("changed")
    assert engine.record("customers", payment) is not None
    assert {r.key for r in engine.run_detail(run.run_id).rejects} == {price_list, currency}

    # the ERP deletes a payment stored customers name: each is a reject of the next runs
    # (kept as it is) until the ERP changes it, as an article with a dead category is
    sim.admin("DELETE", "records/pagamenti/ZZ9")
    run = engine.run("changed")
    reasons = reject_reasons(engine, run.run_id)
    assert reasons["customers", payment] == (
        "payment 'ZZ9' (cod_pagamento) is no longer among the ERP's; the customer keeps"
        " the link until the ERP changes it"
    )
    assert engine.record("customers", payment) is not None
    assert run.entities["customers"]["rejected"] == len(reasons) == 3
    # a record this run read (unchanged otherwise) is counted once, as rejected: a run
    # that reads every record, or one that reads the customer again, adds up
    with MexalClient(erp_config(sim)) as client:
        client.update("clienti", payment, {"ragione_sociale": "Pag"})  # the same name
    for kind in ("changed", "total"):
        run = engine.run(kind)  # type: ignore[arg-type]
        # (read as it changed, it is checked as it is read; read as it was, by its link)
        assert "'ZZ9'" in reject_reasons(engine, run.run_id)["customers", payment]
        c = run.entities["customers"]
        assert c["rejected"] == 3 and c["fetched"] >= 3, (kind, c)
        assert c["fetched"] == (
            c["inserted"] + c["updated"] + c["unchanged"] + c["rejected"]
            + run.off_site.get("customers", 0)
        ), (kind, c, run.off_site)  # fmt: skip

    # so with a currency, read from the customer's stored data
    post(sim, "valute", {"codice": 7, "descrizione": "Corona", "sigla_iso": "SEK"})
    kept = post(sim, "clienti", {**on_site, "codice": "501.99015", "ragione_sociale": "Cor",
                            "valuta": 7})  # fmt: skip
    engine.run("changed")
    assert engine.record("customers", kept) is not None
    sim.admin("DELETE", "records/valute/7")
    run = engine.run("changed")
    assert reject_reasons(engine, run.run_id)["customers", kept] == (
        "currency '7' (valuta) is no longer among the ERP's; the customer keeps the link"
        " until the ERP changes it"
    )
    assert engine.record("customers", kept) is not None


def post(sim: Any, resource: str, record: dict[str, Any]) -> str:
    """Add a record to the simulated ERP; its key."""
    return str(sim.admin("POST", f"records/{resource}", json=record).json()["key"])


def reject_reasons(engine: Engine, run_id: int | None) -> dict[tuple[str, str | None], str]:
    """The run's rejects: (entity, key) -> reason."""
    return {(r.entity, r.key): r.reason for r in engine.run_detail(run_id or 0).rejects}


def erp_customers(sim: Any) -> set[str]:
    with MexalClient(erp_config(sim)) as client:
        return {
            r["codice"]
            for page in client.iter_pages("clienti", fields=["codice"])
            for r in page.records
        }


def test_a_partial_naming_a_code_with_a_nul_is_refused() -> None:
    """No record the store keeps has such a code, and the store could not keep it even as
    a reject: the request is refused before anything runs."""
    from passweb_tui.engine.sync import Scope, SyncError, validate_scope

    with pytest.raises(SyncError, match="NUL"):
        validate_scope("partial", Scope(entities=("articles",), codes=("A\x00B",)))


def test_a_changed_writes_only_the_price_rows_that_changed(engine: Engine, sim: Any) -> None:
    """Most updates of an article leave its price lists alone (a description, stock):
    its price rows are then left as they are, not deleted and written again. Where some
    lists changed, only their rows are written: a new price updated, a new list added,
    a list gone deleted, the others untouched."""
    from hard_support import store_vs_erp
    from sqlalchemy import text

    same = sim.admin(
        "POST", "records/articoli", json=_article("SAMEP001", prz_listino=[[1, 10.5], [2, 9.9]])
    ).json()["key"]
    moved = sim.admin(
        "POST", "records/articoli", json=_article("MOVEP001", prz_listino=[[1, 20], [2, 18]])
    ).json()["key"]
    partly = sim.admin(
        "POST",
        "records/articoli",
        json=_article("PARTP001", prz_listino=[[1, 5], [2, 6], [4, 7]]),
    ).json()["key"]
    assert engine.run("total").status == "ok"
    # a row's identity in the table: unchanged only if the row was never rewritten
    ident = "rowid" if engine.store.is_sqlite else "xmin::text || ctid::text"

    def price_rows(code: str) -> dict[int, tuple[str, str]]:
        with engine.store.read() as conn:
            rows = conn.execute(
                text(
                    f"SELECT price_list, price, {ident} FROM article_prices"
                    " WHERE article_code = :code"
                ),
                {"code": code},
            ).all()
        return {int(n): (str(Decimal(str(p)).normalize()), str(i)) for n, p, i in rows}

    before_same, before_partly = price_rows(same), price_rows(partly)
    assert set(price_rows(moved)) == {1, 2}
    assert {n: p for n, (p, _) in before_same.items()} == {1: "10.5", 2: "9.9"}
    with MexalClient(erp_config(sim)) as client:
        client.update("articoli", same, {"descrizione": "A new description"})
        client.update("articoli", moved, {"prz_listino": [[1, 21]]})
        client.update("articoli", partly, {"prz_listino": [[1, 5], [2, 6.5], [3, 8]]})
    changed = engine.run("changed")
    assert changed.status == "ok", changed.error
    assert changed.entities["articles"]["updated"] == 3
    assert price_rows(same) == before_same  # the same rows, untouched
    assert {n: p for n, (p, _) in price_rows(moved).items()} == {1: "21"}
    after_partly = price_rows(partly)
    assert {n: p for n, (p, _) in after_partly.items()} == {1: "5", 2: "6.5", 3: "8"}
    assert after_partly[1] == before_partly[1]  # list 1 as it was: the same row
    (stored,) = engine.articles(search=same)
    assert stored["description"] == "A new description"
    assert store_vs_erp(engine, sim) == []


def test_a_records_conditions_come_in_one_order_on_every_database(engine: Engine) -> None:
    """A customer's particolarita: its article conditions, then its group ones, on
    SQLite as on PostgreSQL (which sort NULL differently)."""
    assert engine.run("total").status == "ok"
    c = ENTITIES["conditions"].table
    with engine.store.read() as conn:
        both = conn.execute(
            select(c.c.customer)
            .group_by(c.c.customer)
            .having(func.count(c.c.article) > 0, func.count(c.c.article_group) > 0)
            .limit(1)
        ).scalar_one()
    shown = engine.record("customers", both)
    assert shown is not None
    kinds = [row["article"] is None for row in shown.conditions]
    assert kinds == sorted(kinds) and kinds[0] is False and kinds[-1] is True, shown.conditions


def test_the_counts_a_run_records_as_it_goes_add_up(engine: Engine, sim: Any) -> None:
    """What a run killed at any moment is recorded with: each page's records read are
    written with what was done of them, in the same transaction, so the counts in the
    store add up at every page (before, `fetched` came a page behind)."""
    from passweb_tui.engine.sync import OFF_SITE, SyncRunner

    runs = metadata.tables["sync_runs"]
    seen: list[dict[str, dict[str, int]]] = []

    def on_event(ev: ProgressEvent) -> None:
        if ev.entity in ("articles", "customers") and ev.done and ev.run_id:
            with engine.store.read() as conn:
                text = conn.execute(select(runs.c.counts).where(runs.c.id == ev.run_id)).scalar()
            if text:
                seen.append(json.loads(text))

    for kind in ("total", "changed"):
        if kind == "changed":
            sim.admin("POST", "mutate", json={"resource": "articoli", "count": 120, "seed": 4})
        with MexalClient(erp_config(sim)) as client:
            runner = SyncRunner(engine.store, client, SyncOptions(page_size=50), on_event=on_event)
            assert runner.run(kind).status == "ok"
    assert len(seen) > 10
    for counts in seen:
        for entity in ("articles", "customers"):
            c = counts.get(entity)
            if not c:
                continue
            done = (
                c["inserted"] + c["updated"] + c["unchanged"] + c["rejected"] + c.get(OFF_SITE, 0)
            )
            assert c["fetched"] == done, (entity, c)


@pytest.mark.parametrize(
    ("first", "then"), [("primaria", "secondaria"), ("secondaria", "primaria")]
)
def test_a_dry_run_after_a_category_mode_switch_predicts_the_real_run(
    db_url: str, sim: Any, first: str, then: str
) -> None:
    """Switching the category mode rewrites every article's link: a dry CHANGED reports
    what the real CHANGED then does (counts and status), with no rejects for the links
    the real run rewrites or the categories it adds."""
    before = open_engine(db_url, sim, rules=SiteRules(category_mode=first))
    try:
        assert before.run("total").status == "ok"
    finally:
        before.close()
    engine = open_engine(db_url, sim, rules=SiteRules(category_mode=then))
    try:
        dry = engine.run("changed", dry_run=True)
        real = engine.run("changed")
        assert dry.status == real.status, (dry.status, real.status, dry.error)
        for entity in ("articles", "customers", "categories"):
            assert dry.entities[entity] == real.entities[entity], entity
    finally:
        engine.close()
