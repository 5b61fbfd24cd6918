"""The TOTAL/CHANGED lease: one holder at a time, expiring when its holder stops renewing it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from passweb_tui.engine.lease import Lease, LeaseLost, LeaseRefused, read_lease, utcnow
from passweb_tui.engine.models import SyncLease
from passweb_tui.engine.owners import token_label
from passweb_tui.engine.store import open_store

_T = SyncLease.__table__


@pytest.fixture
def store(db_url: str):
    s = open_store(db_url)
    yield s
    s.close()


def _expire_now(store) -> None:
    with store.write() as conn:
        conn.execute(update(_T).values(expires_at=utcnow() - timedelta(seconds=1)))


def test_second_holder_is_refused_with_the_run_and_since(store) -> None:
    first = Lease(store, 60)
    first.acquire()
    first.set_run(41)
    second = Lease(store, 60)
    with pytest.raises(LeaseRefused) as refused:
        second.acquire()
    message = str(refused.value)
    assert "run 41" in message and "since" in message
    assert f"(held by {token_label(first.holder)})" in message
    assert token_label(first.holder) == f"{socket.gethostname()[:32]}, pid {os.getpid()}"
    info = read_lease(store)
    assert info is not None and info.run_id == 41 and info.holder == first.holder
    first.release()
    second.acquire()  # free again once released
    assert read_lease(store).holder == second.holder
    second.release()
    assert read_lease(store) is None


def test_an_expired_lease_is_taken_over_and_the_old_holder_learns_it(store) -> None:
    stale = Lease(store, 60)
    stale.acquire()
    _expire_now(store)  # as if its process had been killed a while ago
    assert read_lease(store) is None
    fresh = Lease(store, 60)
    fresh.acquire()
    with pytest.raises(LeaseLost):
        stale.heartbeat()
    assert stale.lost.is_set()
    stale.release()  # releasing a lease one no longer holds leaves the new holder alone
    assert read_lease(store).holder == fresh.holder
    fresh.release()


def test_heartbeat_pushes_the_expiry_forward(store) -> None:
    lease = Lease(store, 30)
    lease.acquire()
    before = read_lease(store).expires_at
    with store.write() as conn:  # pretend time passed since the last beat
        conn.execute(update(_T).values(expires_at=utcnow() + timedelta(seconds=1)))
    lease.heartbeat()
    after = read_lease(store).expires_at
    assert after > utcnow() + timedelta(seconds=25)
    assert after >= before - timedelta(seconds=1)
    lease.release()


def test_a_screen_gets_the_lease_in_one_short_line() -> None:
    """The dashboard's line: local wall times, the date only when not today's."""
    from datetime import UTC, datetime, timedelta

    from passweb_tui.engine.lease import LeaseInfo

    now = datetime.now(UTC).replace(microsecond=0)
    info = LeaseInfo("vm:13899:f10c1ba8", 12, now, now, now + timedelta(minutes=10))
    local = now.astimezone()
    line = info.brief()
    # the holder as an operator reads it: the machine and the process id
    assert line.startswith(f"run 12 (vm, pid 13899) since {local:%H:%M:%S}, lease until ")
    assert "T" not in line.split("since", 1)[1] and len(line) < 80
    old = LeaseInfo("h", None, now - timedelta(days=3), now, now)
    assert f"since {(now - timedelta(days=3)).astimezone():%Y-%m-%d %H:%M:%S}" in old.brief()


#: another process on this machine: takes the lease (and a run's mark), says its name,
#: and holds them until killed, renewing nothing
HOLDER = """
import sys, time
from passweb_tui.engine.lease import Lease, RunMark
from passweb_tui.engine.store import open_store
store = open_store(sys.argv[1])
lease = Lease(store, 3600)
lease.acquire(run_id=7)
mark = RunMark(store, 3600, 9)
with store.write() as conn:
    mark.insert(conn)
print(lease.holder, flush=True)
time.sleep(600)
"""


def test_a_holder_gone_from_this_machine_frees_the_lease_at_once(db_url: str, store) -> None:
    """A killed run of this machine blocks nobody for the rest of its lease (an hour
    here): its process is seen gone, by its id and start time, and the lease is taken
    over at once; its run's mark no longer reads as a run under way."""
    from passweb_tui.engine.lease import live_marks

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, db_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        name = holder.stdout.readline().strip()
        assert name, "the holder process did not start"
        info = read_lease(store)
        assert info is not None and info.holder == name and info.run_id == 7
        with pytest.raises(LeaseRefused, match=f"held by {token_label(name)}"):
            Lease(store, 60).acquire()  # alive: refused
        with store.read() as conn:
            assert 9 in live_marks(conn)
    finally:
        holder.kill()
        holder.wait(10)
    assert read_lease(store) is None  # no longer held, an hour before it expires
    with store.read() as conn:
        assert 9 not in live_marks(conn)
    taker = Lease(store, 60)
    taker.acquire()
    assert read_lease(store).holder == taker.holder
    taker.release()


def test_a_holder_name_without_a_start_time_waits_for_its_expiry(store) -> None:
    """A name that tells no start time (written by an earlier version, or on a system
    that does not tell it) cannot be told from a later process given the same id: the
    lease waits for its expiry, as before."""
    with store.write() as conn:
        conn.execute(
            update(_T).values(
                holder=f"{socket.gethostname()}:999999:abcdef01",
                run_id=3,
                started_at=utcnow(),
                heartbeat_at=utcnow(),
                expires_at=utcnow() + timedelta(seconds=60),
            )
        )
    assert read_lease(store) is not None
    with pytest.raises(LeaseRefused):
        Lease(store, 60).acquire()
    _expire_now(store)
    taker = Lease(store, 60)
    taker.acquire()
    taker.release()


def test_a_holder_that_has_ended_but_is_not_yet_reaped_is_gone(store) -> None:
    """A killed holder whose parent has not reaped it yet (a zombie) holds nothing: its
    lease is free at once all the same."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("this system shows no process states (no /proc)")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, store.url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip()
        holder.kill()
        # not waited for: the process stays a zombie until it is reaped below
        deadline = time.monotonic() + 10
        while Path(f"/proc/{holder.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert read_lease(store) is None
    finally:
        holder.kill()
        holder.wait(10)
