"""The sync screen's log, as the monitor builds it from the engine's progress events:
one line per step with the records it went through and how long it took, the engine's
own messages, and the outcome."""

from __future__ import annotations

from passweb_tui.engine.sync import ProgressEvent
from passweb_tui.i18n import set_language
from passweb_tui.screens.sync_state import SyncMonitor


def event(phase: str, entity: str | None = None, done: int = 0, **kw: object) -> ProgressEvent:
    kw.setdefault("message", None)
    return ProgressEvent(7, "total", phase, entity, done, None, None, None, **kw)  # type: ignore[arg-type]


def texts(monitor: SyncMonitor) -> list[str]:
    snap = monitor.snapshot()
    assert snap is not None
    return [line.text for line in snap.log]


def test_each_step_ends_with_a_line_and_the_run_with_its_outcome() -> None:
    monitor = SyncMonitor()
    monitor.begin("total", dry_run=False)
    monitor.feed(event("attributes", message="reading the ERP's field catalogue"))
    for entity, n in (("categories", 60), ("price_lists", 9)):
        monitor.feed(event("lookups", entity))
        monitor.feed(event("deletions", entity, n))  # a pass's deletions are part of it
    for done in (0, 1000, 2500):
        monitor.feed(event("articles", "articles", done))
    monitor.feed(event("deletions", "articles", 2500))
    assert texts(monitor) == [
        "reading the ERP's field catalogue",
        "lookup tables: 69 records",
    ]
    monitor.feed(event("customers", "customers", 400))
    monitor.feed(event("conditions", "conditions", 1))
    monitor.feed(event("done", finished=True, status="ok_with_rejects", message="2 rejected"))
    monitor.finish()
    snap = monitor.snapshot()
    assert snap is not None
    assert [line.text for line in snap.log] == [
        "reading the ERP's field catalogue",
        "lookup tables: 69 records",
        "articles: 2,500 records",
        "customers: 400 records",
        "particolarita: 1 record",
        "2 rejected",
        "finished: ok with rejects",
    ]
    # steps and the run say how long they took; messages are moments
    assert [line.seconds is not None for line in snap.log] == [
        False,
        True,
        True,
        True,
        True,
        False,
        True,
    ]
    assert snap.log[-1].seconds == snap.elapsed_s
    assert all(a.at <= b.at for a, b in zip(snap.log, snap.log[1:], strict=False))


def test_a_new_run_starts_a_new_log_and_an_interrupted_step_still_ends() -> None:
    monitor = SyncMonitor()
    monitor.begin("total", dry_run=False)
    monitor.feed(event("articles", "articles", 1000))
    monitor.finish(error="the ERP stopped answering")
    assert texts(monitor) == ["articles: 1,000 records", "finished: failed"]
    monitor.begin("changed", dry_run=False)
    assert texts(monitor) == []


def test_the_log_speaks_the_operators_language() -> None:
    set_language("it")
    try:
        monitor = SyncMonitor()
        monitor.begin("total", dry_run=False)
        monitor.feed(event("attributes", message="reading the ERP's field catalogue"))
        # a message of several notes (the engine joins them with "; "), each its own
        monitor.feed(
            event(
                "attributes",
                message="no correctly completed sync yet: this CHANGED runs as a TOTAL; "
                "reading the ERP's field catalogue",
            )
        )
        monitor.feed(event("articles", "articles", 1234))
        monitor.finish()
        assert texts(monitor) == [
            "lettura del catalogo dei campi del gestionale",
            "nessuna sincronizzazione ancora completata: questo Variati si esegue come"
            " Totale; lettura del catalogo dei campi del gestionale",
            "articoli: 1.234 record",
            "fine: fallita",
        ]
    finally:
        set_language("en")


def test_the_launcher_gives_a_finished_run_the_duration_its_record_has() -> None:
    """The launcher's clock starts at the key press and stops when it hears the end; a
    finished run's duration is the one its record gives (as the runs screen shows it)."""
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    monitor = SyncMonitor()
    monitor.begin("total", dry_run=False)
    began = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    run = SimpleNamespace(
        status="ok", run_id=3, error=None, started=began, finished=began + timedelta(seconds=1.8)
    )
    monitor.finish(run)
    snap = monitor.snapshot()
    assert snap is not None
    assert abs(snap.elapsed_s - 1.8) < 1e-9 and snap.log[-1].seconds == snap.elapsed_s


def test_the_summary_names_rejected_records_only_where_it_adds_up() -> None:
    """A run that took every record but could not send a web order ends "ok with
    rejects": its summary said "rejected 0" for the records above the order that failed,
    which reads as a contradiction. The records' rejects are named when there are some,
    or when nothing else was rejected."""
    from dataclasses import replace

    from passweb_tui.screens.sync import SyncScreen
    from passweb_tui.screens.sync_state import SyncSnapshot

    set_language("en")
    counts = {"fetched": 250, "inserted": 0, "updated": 104, "unchanged": 146, "deleted": 0}
    result = {
        "kind": "changed",
        "requested_kind": "changed",
        "entities": {"articles": {**counts, "rejected": 0}},
        "off_site": {},
        "orders": {"sent": 2, "failed": 1},
        "customers": {"failed": 1},
    }
    snap = SyncSnapshot(None, "changed", "changed", False, "done", (), (), False,
                        "ok_with_rejects", False, 1.0, result)  # fmt: skip
    screen = object.__new__(SyncScreen)
    said = str(screen.summary(snap))
    assert "Records read 250: changed 104, unchanged 146\n" in said, said
    assert "Web orders: sent 2, failed 1" in said and "rejected" not in said
    clean = {**result, "orders": {"sent": 2}, "customers": {}}
    said = str(screen.summary(replace(snap, status="ok", result=clean)))
    assert "unchanged 146, rejected 0\n" in said, said
    bad = {**result, "entities": {"articles": {**counts, "rejected": 3}}}
    said = str(screen.summary(replace(snap, result=bad)))
    assert "unchanged 146, rejected 3\n" in said, said


def test_a_slow_rate_is_not_read_as_none() -> None:
    """A web order every few seconds showed "0/s" beside the order it had just sent."""
    from passweb_tui.screens.sync import fmt_rate

    set_language("en")
    assert [fmt_rate(r) for r in (None, 0.4, 3.25, 9.96, 1234.4)] == [
        "-", "0.4/s", "3.2/s", "10/s", "1,234/s"
    ]  # fmt: skip
    set_language("it")
    try:
        assert fmt_rate(0.4) == "0,4/s" and fmt_rate(1234.4) == "1.234/s"
    finally:
        set_language("en")
