"""The sync service in-process against the simulator on a real socket: scheduled slots run
once with a controlled clock, the order fast path, the trigger endpoint (auth, policy,
lease, the simulator's /sim/trigger), outcome e-mails to a local SMTP server, the quota."""

from __future__ import annotations

import itertools
import json
import logging
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from conftest import SimProcess, start_sim, wait_for
from test_orders_helpers import erp_config, erp_marker_counts, new_customer, order_line

from passweb_tui.engine.facade import Engine, EngineSettings
from passweb_tui.engine.orders.api import WebOrders
from passweb_tui.engine.service import service as service_module
from passweb_tui.engine.service import slots
from passweb_tui.engine.service.notify import MailSettings
from passweb_tui.engine.service.quota import quota_status
from passweb_tui.engine.service.schedule import schedule_from_text
from passweb_tui.engine.service.service import REFUSED_PAUSE_S, Service, ServiceConfig
from passweb_tui.engine.service.trigger import TriggerRefused
from passweb_tui.engine.sync import SyncOptions

TOKEN = "tok-" + "x" * 28
_order_ids = itertools.count(1)


@pytest.fixture(scope="module")
def small_sim() -> Iterator[SimProcess]:
    """One small simulator for the module; tests push orders with ids of their own."""
    p = start_sim("--articles", "300", "--customers", "60", "--orders", "10", "--seed", "11")
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def no_faults(small_sim: SimProcess) -> Iterator[None]:
    yield
    small_sim.admin("DELETE", "faults")


class Clock:
    """A controllable UTC clock."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


class Ticker:
    """A controllable monotonic clock, for the service's pauses between retries."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def open_engine(db_url: str, sim: SimProcess) -> Engine:
    return Engine.open(
        EngineSettings(db_url, erp_config(sim, max_retries=2), SyncOptions(page_size=200))
    )


def service_config(**over: Any) -> ServiceConfig:
    base = ServiceConfig(
        site="shop",
        schedule=schedule_from_text("15m"),
        timezone=ZoneInfo("UTC"),
        order_poll_s=0.1,
        tick_s=0.1,
        trigger_host="127.0.0.1",
        trigger_port=0,
        trigger_token=TOKEN,
    )
    return replace(base, **over)


def test_each_slot_runs_once_across_two_services(db_url: str, small_sim: SimProcess) -> None:
    first, second = open_engine(db_url, small_sim), open_engine(db_url, small_sim)
    clock = Clock(datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC))  # a Monday
    a = Service(first, service_config(), clock=clock)
    b = Service(second, service_config(), clock=clock)
    try:
        handle = a.tick()
        assert handle is not None
        assert b.tick() is None  # the same slot: claimed by a
        result = handle.wait(120)
        assert result is not None and result.status == "ok", result
        assert (result.origin, result.requested_kind, result.kind) == (
            "scheduler",
            "changed",
            "total",  # the site's first sync
        )
        assert a.tick() is None  # the slot is done; nothing before 10:15
        clock.advance(minutes=15)
        handle = b.tick()
        assert handle is not None and a.tick() is None
        result = handle.wait(120)
        assert result is not None and result.kind == "changed" and result.origin == "scheduler"
        claims = slots.claims(first.store, "shop")
        assert [c.slot for c in claims] == ["2026-11-23T10:00:00", "2026-11-23T10:15:00"]
        runs = {r.run_id: r for r in first.runs()}
        assert [c.run_id for c in claims] == sorted(runs)
        # a clock between slots, or past a slot's time, starts nothing
        clock.advance(minutes=14, seconds=50)  # 10:29:55
        assert a.tick() is None and b.tick() is None
    finally:
        a.stop(60)
        b.stop(60)
        first.close()
        second.close()


def test_a_slot_waits_while_another_sync_holds_the_lease(
    db_url: str, small_sim: SimProcess, no_faults: None
) -> None:
    engine = open_engine(db_url, small_sim)
    clock = Clock(datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC))
    svc = Service(engine, service_config(), clock=clock)
    try:
        engine.run("total")
        small_sim.admin("PUT", "faults", json={"latency_ms": 40})
        manual = engine.start_run("total", origin="site")
        assert svc.tick() is None  # refused by the lease: the slot is given back
        assert slots.claims(engine.store, "shop") == []
        manual.cancel()
        assert manual.wait(60) is not None
        small_sim.admin("DELETE", "faults")
        handle = svc.tick()
        assert handle is not None  # the same slot, still due, now runs
        result = handle.wait(120)
        assert result is not None and result.status == "ok" and result.origin == "scheduler"
        assert [c.run_id for c in slots.claims(engine.store, "shop")] == [result.run_id]
    finally:
        svc.stop(60)
        engine.close()


def test_a_slot_whose_launch_failed_for_a_moment_runs_at_the_next_tick(
    db_url: str, small_sim: SimProcess, no_faults: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    engine = open_engine(db_url, small_sim)
    clock = Clock(datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC))
    svc = Service(engine, service_config(), clock=clock)
    real = engine.start_run
    calls: list[str] = []

    def locked_once(kind: str, **kw: Any) -> Any:
        calls.append(kind)
        if len(calls) == 1:
            raise OperationalError("INSERT INTO sync_runs", {}, Exception("database is locked"))
        return real(kind, **kw)

    monkeypatch.setattr(engine, "start_run", locked_once)
    try:
        with pytest.raises(OperationalError):
            svc.tick()  # the service's loop logs it and ticks again
        assert slots.claims(engine.store, "shop") == []  # the slot was given back
        clock.advance(seconds=1)
        handle = svc.tick()
        assert handle is not None and len(calls) == 2
        result = handle.wait(120)
        assert result is not None and result.status == "ok"
        assert [c.run_id for c in slots.claims(engine.store, "shop")] == [result.run_id]
    finally:
        svc.stop(60)
        engine.close()


def test_quota_counts_total_and_changed_and_refuses_when_used_up(
    db_url: str, small_sim: SimProcess
) -> None:
    engine = open_engine(db_url, small_sim)
    clock = Clock(datetime.now(UTC))
    svc = Service(
        engine, service_config(monthly_quota=2, schedule=schedule_from_text("1m")), clock=clock
    )
    try:
        assert quota_status(engine.store, 2).used == 0
        engine.run("total")
        engine.run("partial")  # PARTIAL does not count
        engine.run("changed", dry_run=True)  # nor does a dry run
        status = svc.quota()
        assert (status.used, status.quota, status.exhausted) == (1, 2, False)
        assert status.describe().startswith("1 / 2 TOTAL/CHANGED syncs used in ")
        handle = svc.tick()
        assert handle is not None and handle.wait(120) is not None
        assert svc.quota().exhausted
        clock.advance(minutes=1)
        assert svc.tick() is None
        refused = slots.claims(engine.store, "shop")[-1]
        assert refused.run_id is None and "monthly sync quota used up: 2 of 2" in (
            refused.outcome or ""
        )
        # next month the count starts again (mid-month: the month is the machine's local
        # one, and 1 January 00:00 UTC is still December west of Greenwich)
        clock.now = datetime(clock.now.year + 1, 1, 15, tzinfo=UTC)
        assert quota_status(engine.store, 2, clock.now).used == 0
    finally:
        svc.stop(60)
        engine.close()


def test_new_web_orders_go_to_the_erp_within_seconds_without_a_run(
    db_url: str, small_sim: SimProcess
) -> None:
    engine = open_engine(db_url, small_sim)
    svc = Service(engine, service_config(schedule=schedule_from_text("")))
    orders = WebOrders(engine.store)
    ids = [f"SVC{next(_order_ids):04d}{db_url[:4]}" for _ in range(3)]
    try:
        svc.start()
        placed = time.monotonic()
        for oid in ids:
            orders.place(order_line(oid))
        wait_for(
            "the orders to be stored in the ERP",
            lambda: (
                all(o["state"] == "stored" for o in orders.list() if o["id"] in ids)
                and len([o for o in orders.list() if o["id"] in ids]) == 3
            ),
            timeout=30,
        )
        took = time.monotonic() - placed
        assert took < 10, f"orders took {took:.1f}s to reach the ERP"
        assert erp_marker_counts(small_sim, ids) == dict.fromkeys(ids, 1)
        assert engine.runs() == []  # not a PARTIAL: no run recorded, nothing against the quota
        assert svc.quota().used == 0
    finally:
        svc.stop(60)
        engine.close()


def test_rejected_credentials_pause_the_order_path_instead_of_logging_in_again(
    db_url: str, small_sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ERP locks a user after a few failed logins: after a refusal the service tries
    again only after a pause, however often its order loop turns."""
    from passweb_tui.engine.erp.errors import AuthError

    settings = EngineSettings(
        db_url, erp_config(small_sim, password="wrong", max_retries=2), SyncOptions()
    )
    engine = Engine.open(settings)
    svc = Service(engine, service_config(schedule=schedule_from_text("")))
    pushes: list[str] = []
    real_push = WebOrders.push

    def push(self: WebOrders, *args: Any, **kw: Any) -> Any:
        try:
            return real_push(self, *args, **kw)
        except AuthError:
            pushes.append("refused")
            raise

    monkeypatch.setattr(WebOrders, "push", push)
    try:
        WebOrders(engine.store).place(order_line(f"SVC{next(_order_ids):04d}{db_url[:4]}"))
        assert [svc.push_orders() for _ in range(5)] == [0] * 5
        assert pushes == ["refused"]
        assert svc._refused_pause >= REFUSED_PAUSE_S
    finally:
        engine.close()


def test_rejected_credentials_pause_the_schedule_and_the_trigger_too(
    db_url: str, small_sim: SimProcess
) -> None:
    """A scheduled run the ERP refuses the credentials to pauses every automatic login
    of the service: the next scheduled times wait (unclaimed) and the trigger answers
    503, instead of a failed login at every slot that would lock the ERP user."""
    settings = EngineSettings(
        db_url, erp_config(small_sim, password="wrong", max_retries=2), SyncOptions()
    )
    engine = Engine.open(settings)
    clock = Clock(datetime.now(UTC))
    ticks = Ticker()
    svc = Service(
        engine,
        service_config(schedule=schedule_from_text("1m"), trigger=True),
        clock=clock,
        monotonic=ticks,
    )
    try:
        handle = svc.tick()
        assert handle is not None
        result = handle.wait(120)
        assert result is not None and result.status == "failed"
        deadline = time.monotonic() + 10
        while svc._login_paused() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the run's watcher records the refusal
        assert svc._login_paused() is not None
        for _ in range(3):
            clock.advance(minutes=1)
            assert svc.tick() is None
        with pytest.raises(TriggerRefused) as refused:
            svc.trigger_launch("changed")
        assert refused.value.status == 503 and "refused the credentials" in str(refused.value)
        assert [r.run_id for r in engine.runs()] == [result.run_id]  # one login, not four
        ticks.advance(REFUSED_PAUSE_S + 1)
        clock.advance(minutes=1)
        again = svc.tick()  # the pause is over: one more try
        assert again is not None and again.wait(120) is not None
    finally:
        svc.stop(60)
        engine.close()


def test_a_failing_step_is_one_line_in_the_log_not_a_traceback_each_time(
    db_url: str, small_sim: SimProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """A store that cannot be read makes the service's loops fail at every turn: each
    failure is said once, on one line without the statement, and the loop waits longer
    while it goes on."""
    engine = open_engine(db_url, small_sim)
    svc = Service(engine, service_config(schedule=schedule_from_text("")))
    calls: list[float] = []

    def broken() -> None:
        calls.append(time.monotonic())
        raise RuntimeError("could not connect to the store [SQL: SELECT 1]")

    caplog.set_level(logging.DEBUG, logger="passweb_tui.service")
    thread = threading.Thread(target=svc._loop, args=("orders", 0.05, broken), daemon=True)
    try:
        thread.start()
        time.sleep(1.5)
    finally:
        svc._stop.set()
        thread.join(10)
        engine.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is None and "\n" not in errors[0].getMessage()
    assert "orders step failed: RuntimeError: could not connect" in errors[0].getMessage()
    assert len(calls) < 10  # 0.05 s, then twice as long after each failure


def _attempts(orders: WebOrders, ids: list[str]) -> list[int]:
    return [orders.show(oid)["attempts"] for oid in ids]


def _warnings(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.levelno >= logging.WARNING]


def test_an_unreachable_erp_pauses_the_order_path_and_says_so_once(
    db_url: str,
    small_sim: SimProcess,
    no_faults: None,
    package_log: list[logging.LogRecord],
) -> None:
    """With the ERP's link down the order path does not try every waiting order at every
    poll: it pauses, longer each time, says so once, and sends them once it answers."""
    from passweb_tui.engine.service.service import UNREACHABLE_PAUSE_S

    engine = open_engine(db_url, small_sim)
    ticks = Ticker()
    svc = Service(engine, service_config(schedule=schedule_from_text("")), monotonic=ticks)
    orders = WebOrders(engine.store)
    ids = [f"SVC{next(_order_ids):04d}{db_url[:4]}" for _ in range(3)]
    try:
        small_sim.admin("PUT", "faults", json={"status": {"500": 1.0}})
        for oid in ids:
            orders.place(order_line(oid))
        assert [svc.push_orders() for _ in range(5)] == [0] * 5
        assert _attempts(orders, ids) == [1, 1, 1]  # one poll tried them; four waited
        [warning] = _warnings(package_log)
        assert "the ERP cannot be reached" in warning and "3 waiting" in warning
        ticks.advance(UNREACHABLE_PAUSE_S)
        assert svc.push_orders() == 0
        assert _attempts(orders, ids) == [2, 2, 2]
        ticks.advance(UNREACHABLE_PAUSE_S)  # the pause has doubled
        assert svc.push_orders() == 0
        assert _attempts(orders, ids) == [2, 2, 2]
        assert len(_warnings(package_log)) == 1  # still not there: nothing more said
        small_sim.admin("DELETE", "faults")
        ticks.advance(UNREACHABLE_PAUSE_S)
        assert svc.push_orders() == 3
        assert erp_marker_counts(small_sim, ids) == dict.fromkeys(ids, 1)
        assert any("the ERP answers again" in r.getMessage() for r in package_log)
        late = f"SVC{next(_order_ids):04d}{db_url[:4]}"
        orders.place(order_line(late))
        assert svc.push_orders() == 1  # at the next poll again
    finally:
        engine.close()


@pytest.mark.parametrize("retryable", [True, False], ids=["refused", "certificate"])
def test_a_push_stopped_by_an_unreachable_erp_pauses_the_order_path(
    db_url: str,
    small_sim: SimProcess,
    monkeypatch: pytest.MonkeyPatch,
    package_log: list[logging.LogRecord],
    retryable: bool,
) -> None:
    """A push may also stop at the first record the ERP could not be reached for, be
    it a refused connection or a certificate this side does not accept (no retry
    heals that one, and it must not be tried again at every poll either)."""
    from passweb_tui.engine.erp.errors import ErpConnectionError
    from passweb_tui.engine.service.service import UNREACHABLE_PAUSE_S

    engine = open_engine(db_url, small_sim)
    ticks = Ticker()
    svc = Service(engine, service_config(schedule=schedule_from_text("")), monotonic=ticks)
    pushes: list[str] = []

    def push(self: WebOrders, *args: Any, **kw: Any) -> Any:
        pushes.append("unreachable")
        error = ErpConnectionError("ERP connection failed: connection refused")
        error.retryable = retryable
        raise error

    monkeypatch.setattr(WebOrders, "push", push)
    try:
        WebOrders(engine.store).place(order_line(f"SVC{next(_order_ids):04d}{db_url[:4]}"))
        assert [svc.push_orders() for _ in range(5)] == [0] * 5
        assert pushes == ["unreachable"]
        ticks.advance(UNREACHABLE_PAUSE_S)
        assert svc.push_orders() == 0 and len(pushes) == 2
        [warning] = _warnings(package_log)
        assert "the ERP cannot be reached: ERP connection failed" in warning
    finally:
        engine.close()


def test_orders_held_by_a_refused_customer_point_to_its_refusal_in_the_log(
    db_url: str, small_sim: SimProcess, package_log: list[logging.LogRecord]
) -> None:
    """The service's log tells a new customer's refusal once; its orders say they are
    held by it instead of repeating it."""
    engine = open_engine(db_url, small_sim)
    svc = Service(engine, service_config(schedule=schedule_from_text("")), monotonic=Ticker())
    orders = WebOrders(engine.store)
    n = next(_order_ids)
    who = new_customer(n, tax_code="RSSMRA80A01F205A")  # a wrong check character
    ids = [f"SVC{next(_order_ids):04d}{db_url[:4]}" for _ in range(2)]
    try:
        for oid in ids:
            orders.place(order_line(oid, customer=who))
        assert svc.push_orders() == 0
        warnings = _warnings(package_log)
        assert sum("codice_fiscale" in w for w in warnings) == 1, warnings
        refusal = next(w for w in warnings if "codice_fiscale" in w)
        assert refusal.startswith(f"customer 'Cliente Web {n} Srl' (site id ")
        for oid in ids:
            (line,) = [w for w in warnings if oid in w]
            assert line.startswith(f"order {oid} not sent: held by customer 'Cliente Web {n}")
    finally:
        engine.close()


def test_an_order_the_erp_refuses_is_not_posted_at_every_poll(
    db_url: str, small_sim: SimProcess, package_log: list[logging.LogRecord]
) -> None:
    """An order the ERP refuses (an unknown article) is left out of the order path for a
    while, longer at each refusal, and said once; new orders still go at once, and a
    sync still tries it."""
    from passweb_tui.engine.service.service import HELD_ORDER_PAUSE_S

    engine = open_engine(db_url, small_sim)
    ticks = Ticker()
    svc = Service(engine, service_config(schedule=schedule_from_text("")), monotonic=ticks)
    orders = WebOrders(engine.store)
    bad = f"SVC{next(_order_ids):04d}{db_url[:4]}"
    row = {"article": "NOSUCHART", "qty": 1, "price": 1, "vat_code": "22"}
    try:
        orders.place(order_line(bad, rows=[row]))
        assert [svc.push_orders() for _ in range(5)] == [0] * 5
        assert _attempts(orders, [bad]) == [1]
        [warning] = _warnings(package_log)
        assert f"order {bad} not sent" in warning and "NOSUCHART" in warning
        assert warning.count(bad) == 1  # named once, not again before its reason
        assert f"sent again in {HELD_ORDER_PAUSE_S:.0f} s, or by the next sync" in warning
        good = f"SVC{next(_order_ids):04d}{db_url[:4]}"
        orders.place(order_line(good))
        assert svc.push_orders() == 1  # a new order does not wait behind it
        assert orders.show(good)["state"] == "stored"
        run = engine.run("partial")  # a sync tries it whatever the service does
        assert run.orders["failed"] == 1 and _attempts(orders, [bad]) == [2]
        said = len(_warnings(package_log))  # the sync's own report included
        ticks.advance(HELD_ORDER_PAUSE_S)
        assert svc.push_orders() == 0 and _attempts(orders, [bad]) == [3]
        ticks.advance(HELD_ORDER_PAUSE_S)  # the pause has doubled
        assert svc.push_orders() == 0 and _attempts(orders, [bad]) == [3]
        ticks.advance(HELD_ORDER_PAUSE_S)
        assert svc.push_orders() == 0 and _attempts(orders, [bad]) == [4]
        assert len(_warnings(package_log)) == said  # the same refusal, said once
    finally:
        engine.close()


class SmtpSink(socketserver.ThreadingTCPServer):
    """A tiny SMTP server for the tests: accepts every message and keeps it."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.messages: list[tuple[str, list[str], Message]] = []
        self.arrived = threading.Condition()
        self.connections = 0
        self.refuse = 0  # the next connections are turned away ("421 try later")
        self.quit_reply = "221 bye"

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def wait_for(self, n: int, timeout: float = 30) -> list[tuple[str, list[str], Message]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.messages) >= n, timeout), (
                f"{len(self.messages)} of {n} e-mails arrived"
            )
            return list(self.messages)


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: SmtpSink

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        with self.server.arrived:
            self.server.connections += 1
            refused = self.server.refuse > 0
            self.server.refuse -= refused
        if refused:
            self.reply("421 sink busy, try later")
            return
        self.reply("220 sink ESMTP")
        sender, rcpts = "", []
        while line := self.rfile.readline():
            cmd = line.decode().strip()
            verb = cmd[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 sink")
            elif verb == "MAIL":
                sender, rcpts = cmd.split(":", 1)[1].strip(" <>"), []
                self.reply("250 ok")
            elif verb == "RCPT":
                rcpts.append(cmd.split(":", 1)[1].strip(" <>"))
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 go on")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                with self.server.arrived:
                    self.server.messages.append((sender, rcpts, message_from_bytes(data)))
                    self.server.arrived.notify_all()
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply(self.server.quit_reply)
                return
            else:
                self.reply("250 ok")


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    server = SmtpSink()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, content=json.dumps(body), headers=headers or {}, timeout=30)


def test_trigger_endpoint_auth_policy_lease_and_email(
    db_url: str, small_sim: SimProcess, smtp: SmtpSink, no_faults: None
) -> None:
    engine = open_engine(db_url, small_sim)
    mail = MailSettings("127.0.0.1", smtp.port, "sync@shop.it", ["ops@shop.it", "boss@shop.it"])
    svc = Service(engine, service_config(schedule=schedule_from_text(""), trigger=True, mail=mail))
    try:
        svc.start()
        assert svc.trigger is not None
        url = svc.trigger.url
        assert url.startswith("http://127.0.0.1:")
        # authentication
        assert post(url, {"kind": "total"}).status_code == 401
        assert post(url, {"kind": "total", "token": TOKEN[:-1] + "y"}).status_code == 401
        bad = post(url, {"kind": "total"}, {"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and "token" in bad.json()["error"]
        # both ways given and one wrong: refused, whichever is the wrong one
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert post(url, {"kind": "total", "token": "nope"}, bearer).status_code == 401
        assert post(url, {"kind": "total", "token": 5}, bearer).status_code == 401
        assert (
            post(url, {"kind": "total", "token": TOKEN}, {"Authorization": "Bearer nope"})
        ).status_code == 401
        # requests that make no sense
        assert post(url, {"kind": "partial", "token": TOKEN}).status_code == 400
        assert post(url, ["total"], bearer).status_code == 400
        # the token before what the body asks: without it, nothing is said of the body
        unsigned = post(url, ["total"])
        assert unsigned.status_code == 401 and "no JSON object" in unsigned.json()["error"]
        assert httpx.post(url + "x", json={}, timeout=5).status_code == 404
        assert httpx.get(url, timeout=5).status_code == 405
        for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "PROPFIND"):
            other = httpx.request(method, url, timeout=5)
            assert other.status_code == 405 and other.headers["Allow"] == "POST", method
            assert method == "HEAD" or other.json()["error"] == "use POST /trigger"
        assert httpx.put(url + "x", timeout=5).status_code == 404
        assert engine.runs() == []  # nothing launched so far
        # a good launch, then one while it runs
        small_sim.admin("PUT", "faults", json={"latency_ms": 100})
        ok = post(url, {"kind": "total"}, {"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 202, ok.text
        run_id = ok.json()["run_id"]
        busy = post(url, {"kind": "changed", "token": TOKEN})
        assert busy.status_code == 409 and "another TOTAL/CHANGED" in busy.json()["error"]
        small_sim.admin("DELETE", "faults")
        sender, rcpts, msg = smtp.wait_for(1, timeout=120)[0]
        assert sender == "sync@shop.it" and rcpts == ["ops@shop.it", "boss@shop.it"]
        assert (
            f"run {run_id} TOTAL: ok" in msg["Subject"] and "[passweb-tui shop]" in msg["Subject"]
        )
        body = msg.get_payload(decode=True).decode()
        run = engine.run_detail(run_id).run
        assert run.origin == "erp" and run.status == "ok"
        art = run.entities["articles"]
        assert art["inserted"] > 0 and "Launched by: erp" in body
        assert f"articles: {art['fetched']} {art['inserted']} 0 0 0 0" in body
    finally:
        svc.stop(60)
        engine.close()


def test_a_trigger_on_a_store_locked_past_its_busy_timeout_answers_503(
    tmp_path: Path, small_sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding the SQLite store's write lock past the busy timeout: the
    trigger answered 500 with SQLAlchemy's text (the SQL, a link) as the error. It says
    the store is busy now, with a status the ERP can retry on; once free, it launches."""
    import sqlite3

    from passweb_tui.engine import store as store_module

    monkeypatch.setattr(store_module, "SQLITE_BUSY_TIMEOUT_MS", 300)
    db = tmp_path / "locked.db"
    engine = open_engine(f"sqlite:///{db}", small_sim)
    svc = Service(engine, service_config(schedule=schedule_from_text(""), trigger=True))
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        svc.start()
        assert svc.trigger is not None
        blocker.execute("BEGIN IMMEDIATE")
        refused = post(svc.trigger.url, {"kind": "changed", "token": TOKEN})
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error == (
            "the site store is busy or unavailable, try again shortly: database is locked"
        ), error
        blocker.execute("ROLLBACK")
        launched = post(svc.trigger.url, {"kind": "changed", "token": TOKEN})
        assert launched.status_code == 202, launched.text
    finally:
        blocker.close()
        svc.stop(60)
        engine.close()


def test_horeca_and_quota_refusals_are_403(db_url: str, small_sim: SimProcess) -> None:
    engine = open_engine(db_url, small_sim)
    svc = Service(
        engine, service_config(schedule=schedule_from_text(""), trigger=True, horeca=True)
    )
    try:
        svc.start()
        assert svc.trigger is not None
        refused = post(svc.trigger.url, {"kind": "changed", "token": TOKEN})
        assert refused.status_code == 403
        assert "only the site back end" in refused.json()["error"]
    finally:
        svc.stop(60)
    svc = Service(
        engine, service_config(schedule=schedule_from_text(""), trigger=True, monthly_quota=1)
    )
    try:
        engine.run("total")
        svc.start()
        assert svc.trigger is not None
        refused = post(svc.trigger.url, {"kind": "changed", "token": TOKEN})
        assert refused.status_code == 403 and "quota used up" in refused.json()["error"]
        assert len(engine.runs()) == 1
    finally:
        svc.stop(60)
        engine.close()


def test_the_simulator_plays_the_erp_sync_button(db_url: str, small_sim: SimProcess) -> None:
    """POST /sim/trigger on the simulator calls the service's endpoint, as Mexal would."""
    engine = open_engine(db_url, small_sim)
    svc = Service(engine, service_config(schedule=schedule_from_text(""), trigger=True))
    try:
        svc.start()
        assert svc.trigger is not None
        answer = small_sim.admin(
            "POST", "trigger", json={"url": svc.trigger.url, "token": TOKEN, "kind": "changed"}
        ).json()
        assert answer["status"] == 202, answer
        run_id = answer["body"]["run_id"]
        denied = small_sim.admin(
            "POST", "trigger", json={"url": svc.trigger.url, "token": "wrong", "kind": "total"}
        ).json()
        assert denied["status"] == 401
        wait_for("the run to end", lambda: svc.finished, timeout=120)
        run = engine.run_detail(run_id).run
        assert run.origin == "erp" and run.status == "ok" and run.requested_kind == "changed"
    finally:
        svc.stop(60)
        engine.close()


def test_the_repeated_autumn_hour_runs_its_slots_once(db_url: str, small_sim: SimProcess) -> None:
    """Europe/Rome goes from 03:00 CEST back to 02:00 CET on 2026-10-25: the wall-clock
    slots of the repeated hour are the same slots, claimed once."""
    engine = open_engine(db_url, small_sim)
    clock = Clock(datetime(2026, 10, 25, 0, 30, 5, tzinfo=UTC))  # 02:30:05 CEST
    svc = Service(
        engine,
        service_config(schedule=schedule_from_text("30m"), timezone=ZoneInfo("Europe/Rome")),
        clock=clock,
    )
    try:
        assert svc.local_now() == datetime(2026, 10, 25, 2, 30, 5)
        handle = svc.tick()
        assert handle is not None and handle.wait(120) is not None
        clock.advance(hours=1)  # 02:30:05 CET, the same wall time again
        assert svc.local_now() == datetime(2026, 10, 25, 2, 30, 5)
        fresh = Service(engine, svc.config, clock=clock)  # as another process would see it
        assert fresh.tick() is None
        clock.advance(minutes=30)  # 03:00:05 CET: a new slot
        handle = fresh.tick()
        assert handle is not None and handle.wait(120) is not None
        assert [c.slot for c in slots.claims(engine.store, "shop")] == [
            "2026-10-25T02:30:00",
            "2026-10-25T03:00:00",
        ]
        fresh.stop(60)
    finally:
        svc.stop(60)
        engine.close()


def test_serve_refuses_bad_settings_in_one_line(
    small_sim: SimProcess,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from passweb_tui.cli import main

    monkeypatch.setenv("PASSWEB_TUI_ERP_PASSWORD", small_sim.password)
    flags = ["--db", f"sqlite:///{tmp_path / 's.db'}", "--erp-url", small_sim.url]
    flags += ["--erp-user", small_sim.user, "--azienda", small_sim.azienda]
    assert main([*flags, "serve", "--trigger"]) == 2
    err = capsys.readouterr().err
    assert "the trigger endpoint needs a token" in err and "Traceback" not in err
    cfg = tmp_path / "c.toml"
    cfg.write_text('[service]\nwindow = "8-20"\n', encoding="utf-8")
    monkeypatch.setenv("PASSWEB_TUI_CONFIG", str(cfg))
    assert main([*flags, "serve"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "[service] window: start time must be HH:MM" in err[-1]
    # someone to e-mail but no mail server: said, instead of never e-mailing anyone
    cfg.write_text('[service]\nnotify = "ops@example.it"\n', encoding="utf-8")
    assert main([*flags, "serve"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[service] notify: outcome e-mails need a mail server" in err[0]


def test_every_run_outcome_is_mailed_once_whoever_launched_it(
    db_url: str, small_sim: SimProcess, smtp: SmtpSink, no_faults: None
) -> None:
    one, two = open_engine(db_url, small_sim), open_engine(db_url, small_sim)
    mail = MailSettings("127.0.0.1", smtp.port, "sync@shop.it", ["ops@shop.it"])
    config = service_config(schedule=schedule_from_text(""), mail=mail)
    a, b = Service(one, config), Service(two, config)  # two processes sharing a store
    try:
        ok = one.run("total")  # launched from the site back end, not by a service
        assert (a.mail_outcomes(), b.mail_outcomes()) == (1, 0)
        small_sim.admin("PUT", "faults", json={"status": {"500": 1.0}})
        failed = two.run("changed")
        assert failed.status == "failed"
        assert (b.mail_outcomes(), a.mail_outcomes()) == (1, 0)
        assert (a.mail_outcomes(), b.mail_outcomes()) == (0, 0)  # nothing twice
        messages = smtp.wait_for(2)
        assert len(messages) == 2
        subjects = [m["Subject"] for _, _, m in messages]
        assert subjects == [
            f"[passweb-tui shop] run {ok.run_id} TOTAL: ok",
            f"[passweb-tui shop] run {failed.run_id} CHANGED: failed",
        ]
        body = messages[1][2].get_payload(decode=True).decode()
        assert "Launched by: site" in body and f"Error: {failed.error}" in body
    finally:
        a.stop(60)
        b.stop(60)
        one.close()
        two.close()


def listen(name: str) -> Iterator[list[logging.LogRecord]]:
    """The records logged on `name` (the package logger may not propagate: the CLI sets
    it up), for as long as the generator is not closed."""
    records: list[logging.LogRecord] = []
    listener = logging.Handler()
    listener.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    logger.addHandler(listener)
    try:
        yield records
    finally:
        logger.removeHandler(listener)
        logger.setLevel(level)


@pytest.fixture
def service_log() -> Iterator[list[logging.LogRecord]]:
    yield from listen("passweb_tui.service")


@pytest.fixture
def package_log() -> Iterator[list[logging.LogRecord]]:
    yield from listen("passweb_tui")


def test_a_run_going_on_when_the_service_starts_is_mailed_when_it_ends(
    db_url: str, small_sim: SimProcess, smtp: SmtpSink, no_faults: None
) -> None:
    engine = open_engine(db_url, small_sim)
    mail = MailSettings("127.0.0.1", smtp.port, "sync@shop.it", ["ops@shop.it"])
    try:
        before = engine.run("partial")  # ended before: not this service's to mail
        small_sim.admin("PUT", "faults", json={"latency_ms": 300})
        handle = engine.start_run("total")  # launched from the UI, say, before `serve`
        assert engine.runs(limit=1)[0].status == "running"
        svc = Service(engine, service_config(schedule=schedule_from_text(""), mail=mail))
        assert svc.mail_outcomes() == 0  # not before it ends
        small_sim.admin("DELETE", "faults")
        going = handle.wait(120)
        assert going is not None and going.run_id != before.run_id
        assert svc.mail_outcomes() == 1
        [(_, _, msg)] = smtp.wait_for(1)
        assert msg["Subject"] == f"[passweb-tui shop] run {going.run_id} TOTAL: {going.status}"
        assert svc.mail_outcomes() == 0
    finally:
        engine.close()


def test_an_unreachable_mail_server_is_logged_not_fatal(
    db_url: str, small_sim: SimProcess, service_log: list[logging.LogRecord]
) -> None:
    engine = open_engine(db_url, small_sim)
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as closed:
        port = closed.server_address[1]  # a port that nothing listens on once closed
    mail = MailSettings("127.0.0.1", int(port), "sync@shop.it", ["ops@shop.it"], timeout_s=5)
    svc = Service(engine, service_config(schedule=schedule_from_text(""), mail=mail))
    try:
        engine.run("partial")
        assert svc.mail_outcomes() == 0
        assert any("could not e-mail the outcome of run" in r.getMessage() for r in service_log)
    finally:
        svc.stop(60)
        engine.close()


def test_a_stopping_service_does_not_wait_on_a_mail_server_that_does_not_answer(
    db_url: str,
    small_sim: SimProcess,
    service_log: list[logging.LogRecord],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A mail server that takes the connection and never answers: once the service is
    stopping, each outcome still to send is tried once, briefly, then left for the next
    start (a restart loses none), instead of holding the stop for the full timeouts and
    scheduling new tries."""
    import socket

    from passweb_tui.engine.service import service as service_mod

    monkeypatch.setattr(service_mod, "MAIL_STOP_TIMEOUT_S", 1.0)
    engine = open_engine(db_url, small_sim)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    mail = MailSettings("127.0.0.1", silent.getsockname()[1], "sync@shop.it", ["ops@shop.it"])
    svc = Service(engine, service_config(schedule=schedule_from_text(""), mail=mail))
    try:
        for _ in range(3):
            engine.run("partial")
        svc.stop(60)
        began = time.monotonic()
        assert svc.mail_outcomes() == 0
        took = time.monotonic() - began
        assert took < 10, took  # three tries of 1 s, not three of 30 s
        said = [r.getMessage() for r in service_log]
        assert sum("left for the service's next start" in m for m in said) == 3, said
        assert not any("trying again in" in m for m in said), said
        began = time.monotonic()
        assert svc.mail_outcomes() == 0 and time.monotonic() - began < 1  # tried once only
    finally:
        silent.close()
        engine.close()


def test_a_dry_runs_outcome_e_mail_says_it_was_a_dry_run() -> None:
    from datetime import UTC, datetime

    from passweb_tui.engine.service.notify import format_message
    from passweb_tui.engine.sync import RunResult

    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    dry = RunResult(21, "changed", "changed", "site", None, "ok", True, now, now)
    msg = format_message(dry, site="shop", sender="a@shop.it", recipients=["b@shop.it"])
    assert msg["Subject"] == "[passweb-tui shop] run 21 CHANGED DRY RUN: ok"
    assert "Kind: CHANGED DRY RUN" in msg.get_content()


#: a process that says its holder name (and, given more to do, keeps it alive)
TOKEN = "from passweb_tui.engine import owners; print(owners.new_token(), flush=True)"


def test_no_outcome_e_mail_is_lost_to_a_restart_or_to_a_dead_sender(
    db_url: str, small_sim: SimProcess, smtp: SmtpSink, service_log: list[logging.LogRecord]
) -> None:
    """A restarted service sends what its predecessor had still to try again, and the
    outcome of a run that ended while no service ran; a claim whose sender died while
    sending is taken over once it is clearly stale. What was sent is not sent again."""
    from datetime import timedelta

    from passweb_tui.engine.service.service import MAIL_CLAIM_STALE, MAIL_RETRY_S

    engine = open_engine(db_url, small_sim)
    mail = MailSettings("127.0.0.1", smtp.port, "sync@shop.it", ["ops@shop.it"])
    config = service_config(schedule=schedule_from_text(""), mail=mail)
    before = engine.run("partial")  # history from before the service: never mailed
    first = Service(engine, config)
    try:
        smtp.refuse = 1
        turned_away = engine.run("partial")
        assert first.mail_outcomes() == 0  # to be tried again in a minute ...
        sent = engine.run("partial")
        assert first.mail_outcomes() == 1
    finally:
        first.stop(10)  # ... but the service is restarted first
    while_down = engine.run("partial")
    # a sender that died while sending: its claim stays, with no outcome
    dead = engine.run("partial")
    assert slots.claim_key(engine.store, "shop", f"mail:{dead.run_id}", "gone-host:4242")
    ticks = Ticker()
    second = Service(engine, config, monotonic=ticks)
    try:
        assert second.mail_outcomes() == 2  # the one turned away, and the one while down
        with engine.store.write() as conn:
            conn.execute(
                slots.claims_t.update()
                .where(slots.claims_t.c.slot == f"mail:{dead.run_id}")
                .values(claimed_at=datetime.now(UTC) - MAIL_CLAIM_STALE - timedelta(minutes=1))
            )
        ticks.advance(MAIL_RETRY_S)  # the next look at a claim another process holds
        assert second.mail_outcomes() == 0  # the stale claim is freed ...
        assert second.mail_outcomes() == 1  # ... and the e-mail sent
        assert any("gone-host:4242 claimed it" in r.getMessage() for r in service_log)
        # a sender of this machine that died while sending: seen gone at once, by its
        # process id and start time, its claim freed however young
        gone = subprocess.run(
            [sys.executable, "-c", TOKEN],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        died = engine.run("partial")
        assert slots.claim_key(engine.store, "shop", f"mail:{died.run_id}", gone)
        assert second.mail_outcomes() == 0  # freed at the first look ...
        assert second.mail_outcomes() == 1  # ... and sent
        # while the young claim of one that runs is left to it
        sender = subprocess.Popen(
            [sys.executable, "-c", f"{TOKEN}; import time; time.sleep(60)"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert sender.stdout is not None
            busy = engine.run("partial")
            holder = sender.stdout.readline().strip()
            assert slots.claim_key(engine.store, "shop", f"mail:{busy.run_id}", holder)
            ticks.advance(MAIL_RETRY_S)
            assert second.mail_outcomes() == 0
            assert slots.claim_of(engine.store, "shop", f"mail:{busy.run_id}").holder == holder
        finally:
            sender.kill()
            sender.wait(10)
        subjects = sorted(m["Subject"] for _, _, m in smtp.wait_for(5))
        assert subjects == sorted(
            f"[passweb-tui shop] run {r.run_id} PARTIAL: ok"
            for r in (turned_away, sent, while_down, dead, died)
        )
        assert before.run_id is not None
    finally:
        second.stop(10)
        engine.close()


def test_an_outcome_e_mail_the_server_turned_away_is_sent_later_once(
    db_url: str, small_sim: SimProcess, smtp: SmtpSink, service_log: list[logging.LogRecord]
) -> None:
    """The mail server is down for a moment: the outcome arrives once it is back, sent by
    whichever process tries first, and never twice; each failure is one log line."""
    from passweb_tui.engine.service.service import MAIL_RETRY_S

    one, two = open_engine(db_url, small_sim), open_engine(db_url, small_sim)
    mail = MailSettings("127.0.0.1", smtp.port, "sync@shop.it", ["ops@shop.it"])
    config = service_config(schedule=schedule_from_text(""), mail=mail)
    ticks = Ticker()
    # two processes sharing a store
    a, b = Service(one, config, monotonic=ticks), Service(two, config, monotonic=ticks)
    try:
        smtp.refuse = 1
        first = one.run("partial")
        assert a.mail_outcomes() == 0
        assert a.mail_outcomes() == 0 and smtp.connections == 1  # not at once: it waits
        # the claim was given back: another process may send it
        assert b.mail_outcomes() == 1
        failures = [r for r in service_log if "could not e-mail" in r.getMessage()]
        assert len(failures) == 1 and failures[0].levelno == logging.WARNING
        assert f"run {first.run_id}" in failures[0].getMessage()
        assert f"trying again in {MAIL_RETRY_S:.0f} s" in failures[0].getMessage()
        ticks.advance(MAIL_RETRY_S)
        assert (a.mail_outcomes(), b.mail_outcomes()) == (0, 0)
        # the process whose send failed tries again after its pause, which doubles
        smtp.refuse = 2
        second = two.run("partial")
        assert b.mail_outcomes() == 0
        ticks.advance(MAIL_RETRY_S)
        assert b.mail_outcomes() == 0
        assert f"trying again in {2 * MAIL_RETRY_S:.0f} s" in service_log[-1].getMessage()
        ticks.advance(MAIL_RETRY_S)
        assert b.mail_outcomes() == 0 and smtp.connections == 4
        ticks.advance(MAIL_RETRY_S)
        assert (b.mail_outcomes(), a.mail_outcomes()) == (1, 0)
        ticks.advance(4 * MAIL_RETRY_S)
        assert (a.mail_outcomes(), b.mail_outcomes()) == (0, 0)
        subjects = [m["Subject"] for _, _, m in smtp.wait_for(2)]
        assert subjects == [
            f"[passweb-tui shop] run {first.run_id} PARTIAL: ok",
            f"[passweb-tui shop] run {second.run_id} PARTIAL: ok",
        ]
        assert smtp.connections == 5
        assert len([r for r in service_log if "could not e-mail" in r.getMessage()]) == 3
    finally:
        a.stop(60)
        b.stop(60)
        one.close()
        two.close()


def test_an_e_mail_the_server_took_is_not_sent_again_whatever_it_says_at_quit(
    db_url: str, small_sim: SimProcess, smtp: SmtpSink
) -> None:
    from passweb_tui.engine.service.service import MAIL_RETRY_MAX_S

    engine = open_engine(db_url, small_sim)
    mail = MailSettings("127.0.0.1", smtp.port, "sync@shop.it", ["ops@shop.it"])
    ticks = Ticker()
    svc = Service(
        engine, service_config(schedule=schedule_from_text(""), mail=mail), monotonic=ticks
    )
    try:
        smtp.quit_reply = "554 closing oddly"
        engine.run("partial")
        assert svc.mail_outcomes() == 1
        ticks.advance(MAIL_RETRY_MAX_S)
        assert svc.mail_outcomes() == 0
        assert len(smtp.messages) == 1 and smtp.connections == 1
    finally:
        svc.stop(60)
        engine.close()


def test_an_outcome_e_mail_is_given_up_after_its_attempts(
    db_url: str, small_sim: SimProcess, smtp: SmtpSink, service_log: list[logging.LogRecord]
) -> None:
    from passweb_tui.engine.service.service import MAIL_ATTEMPTS, MAIL_RETRY_MAX_S

    engine = open_engine(db_url, small_sim)
    mail = MailSettings("127.0.0.1", smtp.port, "sync@shop.it", ["ops@shop.it"])
    ticks = Ticker()
    svc = Service(
        engine, service_config(schedule=schedule_from_text(""), mail=mail), monotonic=ticks
    )
    try:
        smtp.refuse = 1000
        run = engine.run("partial")
        for _ in range(MAIL_ATTEMPTS + 3):
            assert svc.mail_outcomes() == 0
            ticks.advance(MAIL_RETRY_MAX_S)
        assert smtp.connections == MAIL_ATTEMPTS
        last = service_log[-1]
        assert last.levelno == logging.ERROR and f"run {run.run_id}" in last.getMessage()
        assert f"given up after {MAIL_ATTEMPTS} attempts" in last.getMessage()
    finally:
        svc.stop(60)
        engine.close()


def test_token_comparison_and_the_loopback_default() -> None:
    from passweb_tui.engine.service.trigger import TriggerServer, token_matches

    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN + "x", TOKEN)
    assert not token_matches("", TOKEN) and not token_matches(None, TOKEN)
    server = TriggerServer("127.0.0.1", 0, TOKEN, lambda kind: 1)
    try:
        assert server.loopback
    finally:
        server.httpd.server_close()
    with pytest.raises(ValueError, match="needs a token"):
        TriggerServer("127.0.0.1", 0, "", lambda kind: 1)


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"[" * 3000, {"Authorization": "Bearer secret"}, 400),  # nested past any reason
        (b'{"kind": "total", "token": "\\ud800"}', {}, 401),  # a lone surrogate
        (b"\xff\xfe", {"Authorization": "Bearer secret"}, 400),  # not UTF-8
        (b"\xff\xfe", {}, 401),  # no token to read: refused before the body is judged
        (b"[" * 3000, {"Authorization": "Bearer nope"}, 401),
        (b"not json", {"Content-Length": "8"}, 401),
    ],
    ids=["deep", "surrogate", "not-utf8", "not-utf8-no-token", "deep-wrong-token", "not-json"],
)
def test_odd_trigger_bodies_get_an_answer(
    body: bytes, headers: dict[str, str], status: int
) -> None:
    import http.client

    from passweb_tui.engine.service.trigger import TriggerServer

    launched: list[str] = []
    server = TriggerServer("127.0.0.1", 0, "secret", lambda kind: launched.append(kind) or 1)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.httpd.server_address[1], timeout=5)
        conn.request("POST", "/trigger", body=body, headers={**headers})
        assert conn.getresponse().status == status
        assert launched == []
    finally:
        server.stop()


def test_the_trigger_listens_on_ipv6_when_told_to() -> None:
    """trigger_host = "::1" listens on the IPv6 loopback; a host that does not resolve
    is an OSError that names it (serve turns it into a configuration error)."""
    import http.client
    import socket

    from passweb_tui.engine.service.trigger import TriggerServer

    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    launched: list[str] = []
    server = TriggerServer("::1", 0, "secret", lambda kind: launched.append(kind) or 1)
    server.start()
    try:
        assert server.loopback and server.url.startswith("http://[::1]:")
        conn = http.client.HTTPConnection("::1", server.httpd.server_address[1], timeout=5)
        conn.request("POST", "/trigger", body=b'{"kind": "changed", "token": "secret"}')
        assert conn.getresponse().status == 202
        assert launched == ["changed"]
    finally:
        server.stop()
    with pytest.raises(OSError, match="no such address"):
        TriggerServer("no-such-host.invalid", 0, "secret", lambda kind: 1)


def test_the_quota_month_is_the_sites_not_utcs() -> None:
    """A run at 00:30 on the 1st, Italian time, is already the new month's there, though
    still the old one's in UTC: with the service's time zone the quota counts it so."""
    from zoneinfo import ZoneInfo

    from passweb_tui.engine.service.quota import month_bounds

    rome = ZoneInfo("Europe/Rome")
    just_after_midnight = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # 00:30 on 1 Dec there
    start, end, label = month_bounds(just_after_midnight, rome)
    assert label == "2026-12"
    assert start == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert end == datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    # summer time: March's end is an hour earlier in UTC than its start's offset says
    start, end, label = month_bounds(datetime(2026, 3, 15, tzinfo=UTC), rome)
    assert (start, end, label) == (
        datetime(2026, 2, 28, 23, 0, tzinfo=UTC),
        datetime(2026, 3, 31, 22, 0, tzinfo=UTC),
        "2026-03",
    )
    assert month_bounds(just_after_midnight, UTC)[2] == "2026-11"


def test_a_flood_of_bad_tokens_is_logged_once_a_minute_per_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Refused tokens: the first from a client is logged, the next ones within a minute
    only counted (with their request lines), and said in the next line after it; a
    good request is still logged. A flood cannot rotate the useful lines out of the log."""
    from passweb_tui.engine.service.trigger import TriggerServer

    now = [1000.0]
    server = TriggerServer("127.0.0.1", 0, "secret", lambda kind: 1)
    server.refusals.clock = lambda: now[0]
    server.start()
    url = server.url
    caplog.set_level(logging.INFO, logger="passweb_tui.service.trigger")
    try:
        for _ in range(50):
            assert post(url, {"kind": "total", "token": "guess"}).status_code == 401
        said = [r.getMessage() for r in caplog.records]
        assert said.count("trigger from 127.0.0.1 refused: bad or missing token") == 1
        assert len(said) == 2, said  # that line and its request's; 49 counted, not said
        caplog.clear()
        now[0] += 61
        assert post(url, {"kind": "total", "token": "guess"}).status_code == 401
        assert post(url, {"kind": "total", "token": "secret"}).status_code == 202
        said = [r.getMessage() for r in caplog.records]
        assert said[0] == (
            "trigger from 127.0.0.1 refused: bad or missing token"
            " (and 49 more time(s) since the last line)"
        )
        assert len(said) == 3 and '"POST /trigger HTTP/1.1" 202' in said[2], said
    finally:
        server.stop()


def test_a_service_keeps_nothing_per_run_it_launched(
    db_url: str, small_sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service launches runs for months: the threads that watched them and all but its
    last results are let go, so its memory does not grow with every run."""
    kept = 3
    monkeypatch.setattr(service_module, "FINISHED_KEPT", kept)
    engine = open_engine(db_url, small_sim)
    svc = Service(engine, service_config(schedule=schedule_from_text("")))
    try:
        engine.run("total")
        runs = kept + 4
        for _ in range(runs):
            svc.launch("changed", "scheduler").wait(60)
        wait_for("the watchers to end", lambda: not svc._watchers, timeout=60)
        assert len(svc.finished) == kept
        assert svc.finished[-1].run_id == engine.runs(limit=1)[0].run_id
        assert len(engine.runs(limit=runs + 10)) == runs + 1  # the store keeps every run
    finally:
        svc.stop(60)
        engine.close()


def test_a_trigger_on_a_postgresql_store_locked_past_its_lock_timeout_answers_503(
    db_url: str, small_sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session holding the lease table's lock (a transaction left open in psql, a
    process stopped in the middle of a write): PostgreSQL had no lock timeout, so the
    trigger's request waited for as long as the lock was held. It gives up as SQLite's
    busy timeout does, and launches once the lock is gone."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite's busy timeout is the test above")
    from sqlalchemy import create_engine, text

    from passweb_tui.engine import store as store_module

    monkeypatch.setattr(store_module, "PG_LOCK_TIMEOUT_MS", 300)
    engine = open_engine(db_url, small_sim)
    svc = Service(engine, service_config(schedule=schedule_from_text(""), trigger=True))
    outside = create_engine(db_url)
    blocker = outside.connect()
    try:
        svc.start()
        assert svc.trigger is not None
        blocker.begin()
        blocker.execute(text("LOCK TABLE sync_lease IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        refused = post(svc.trigger.url, {"kind": "changed", "token": TOKEN})
        assert time.monotonic() - started < 20
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == (
            "the site store is busy or unavailable, try again shortly:"
            " canceling statement due to lock timeout"
        )
        blocker.rollback()
        launched = post(svc.trigger.url, {"kind": "changed", "token": TOKEN})
        assert launched.status_code == 202, launched.text
    finally:
        blocker.close()
        outside.dispose()
        svc.stop(60)
        engine.close()


def test_a_lock_timeout_the_database_sets_is_kept(db_url: str) -> None:
    """The store's own lock timeout is a default: one the URL sets (or the database, or
    its role) is left as it is."""
    if not db_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL setting")
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from passweb_tui.engine.store import PG_LOCK_TIMEOUT_MS, open_store

    store = open_store(db_url)
    try:
        with store.read() as conn:
            shown = conn.execute(text("SHOW lock_timeout")).scalar_one()
        assert shown == f"{PG_LOCK_TIMEOUT_MS // 1000}s", shown
    finally:
        store.close()
    for setting, shown in (("7s", "7s"), ("0", "0")):  # 0: no timeout, asked for
        own = make_url(db_url).update_query_dict({"options": f"-c lock_timeout={setting}"})
        store = open_store(own.render_as_string(hide_password=False))
        try:
            with store.read() as conn:
                assert conn.execute(text("SHOW lock_timeout")).scalar_one() == shown
        finally:
            store.close()


def test_a_runs_end_waits_for_a_lock_past_the_lock_timeout(
    db_url: str, small_sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session holding the store's state rows as a run ends: the run's end was given
    up at the lock timeout, leaving the run `running`, then read as interrupted. The
    end of a run waits (5 minutes at least) and is recorded."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite's busy timeout is a setting of its own")
    from sqlalchemy import create_engine, text

    from passweb_tui.engine import store as store_module

    engine = open_engine(db_url, small_sim)
    try:
        assert engine.run("total").status == "ok"
    finally:
        engine.close()
    monkeypatch.setattr(store_module, "PG_LOCK_TIMEOUT_MS", 200)
    engine = open_engine(db_url, small_sim)
    outside = create_engine(db_url)
    blocker = outside.connect()
    try:
        blocker.begin()
        blocker.execute(text("SELECT * FROM sync_state FOR UPDATE"))
        timer = threading.Timer(3.0, blocker.rollback)
        timer.start()
        result = engine.run("changed")
        timer.join()
        assert result.status == "ok", result.error
        assert engine.run_result(result.run_id).status == "ok"
    finally:
        blocker.close()
        outside.dispose()
        engine.close()


def test_more_runs_than_a_page_ended_while_no_service_ran_are_all_mailed(
    db_url: str, small_sim: SimProcess, smtp: SmtpSink
) -> None:
    """55 runs ended while no service ran: the next start mailed the newest 50 only (the
    runs it read), and the 5 before them were never sent."""
    from sqlalchemy import insert, select

    from passweb_tui.engine.facade import _RUNS

    engine = open_engine(db_url, small_sim)
    mail = MailSettings("127.0.0.1", smtp.port, "sync@shop.it", ["ops@shop.it"])
    config = service_config(schedule=schedule_from_text(""), mail=mail)
    first = Service(engine, config)  # where the site's service first starts mailing
    first.stop(10)
    try:
        model = engine.run("partial")
        columns = [c for c in _RUNS.c if c.name != "id"]
        with engine.store.write() as conn:  # 54 more like it: 55 while no service ran
            for _ in range(54):
                conn.execute(
                    insert(_RUNS).from_select(
                        columns, select(*columns).where(_RUNS.c.id == model.run_id)
                    )
                )
        ids = [r.run_id for r in engine.runs(limit=100)]
        assert len(ids) == 55
        second = Service(engine, config)
        try:
            assert second.mail_outcomes() == 55
            assert second.mail_outcomes() == 0  # each once
        finally:
            second.stop(10)
        subjects = {m["Subject"] for _, _, m in smtp.wait_for(55)}
        assert subjects == {f"[passweb-tui shop] run {i} PARTIAL: ok" for i in ids}
    finally:
        engine.close()


def test_every_service_on_the_store_pauses_its_logins_when_one_is_refused(
    db_url: str, small_sim: SimProcess
) -> None:
    """Three `serve` on one store, the ERP's password changed: each paused its own logins
    only, so the next scheduled time went to another not yet paused, which failed too:
    one refused login a slot, and the ERP locked the user. The pause is the store's."""
    settings = EngineSettings(
        db_url, erp_config(small_sim, password="wrong", max_retries=2), SyncOptions()
    )
    engines = [Engine.open(settings) for _ in range(2)]
    clock = Clock(datetime.now(UTC))
    services = [
        Service(e, service_config(schedule=schedule_from_text("1m"), trigger=True), clock=clock)
        for e in engines
    ]
    first, second = services
    try:
        handle = first.tick()
        assert handle is not None
        result = handle.wait(120)
        assert result is not None and result.status == "failed", handle.error
        deadline = time.monotonic() + 10
        while first._login_paused() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the run's watcher records the refusal
        assert first._login_paused() is not None
        # the other process, never refused itself, waits as well (once the refused one
        # has written its pause, a moment after taking it on)
        while second._login_paused() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        said = second._login_paused()
        assert said is not None and "refused the credentials" in said, said
        clock.advance(minutes=1)
        assert second.tick() is None
        with pytest.raises(TriggerRefused) as refused:
            second.trigger_launch("changed")
        assert refused.value.status == 503
        assert [r.run_id for r in engines[0].runs()] == [result.run_id]  # one login
        # a service that starts tries at once (its settings may have been mended)
        third = Service(engines[1], service_config(schedule=schedule_from_text("")), clock=clock)
        third.start()
        try:
            assert third._login_paused() is None
        finally:
            third.stop(30)
    finally:
        for svc in services:
            svc.stop(30)
        for e in engines:
            e.close()
