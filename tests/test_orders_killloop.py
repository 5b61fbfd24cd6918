"""A pushing process killed with SIGKILL at random moments, restarted until nothing
waits: every order is in the ERP exactly once (counted by marker through /sim/).

The CI sample runs 2 rounds of 15 orders; the full sweep (20 rounds of 200 orders) is
marked slow: `.venv/bin/pytest -m slow tests/test_orders_killloop.py`.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_orders_helpers import article_rows, erp_marker_counts, jsonl, new_customer, order_line

from passweb_tui.engine.orders import states
from passweb_tui.engine.orders.api import WebOrders
from passweb_tui.engine.orders.push import CRASH_STEPS
from passweb_tui.engine.store import open_store

# the child: push everything that waits, then say so. It may be killed at any moment;
# told to, it stops at the n-th time it reaches a step of the push, says "holding" and
# waits there to be killed (between its claim and its request, after the ERP accepted
# but before the store knows, after the store commit).
CHILD = """
import json, sys
from passweb_tui.engine.erp.client import MexalClient
from passweb_tui.engine.erp.settings import ErpConfig
from passweb_tui.engine.orders.push import Pusher
from passweb_tui.engine.store import open_store
from datetime import timedelta
db, cfg, hold = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
seen = 0
def crash(step, site_id):
    global seen
    if hold and step == hold["step"]:
        seen += 1
        if seen == hold["nth"]:
            print("holding", step, site_id, flush=True)
            sys.stdin.read()
store = open_store(db)
with MexalClient(ErpConfig(**cfg)) as client:
    print("ready", flush=True)
    # a killed pusher's claims settle for a second only (the real default is minutes):
    # the simulator is done with what it was sent well before that
    result = Pusher(store, client, crash=crash, settle=timedelta(seconds=1)).push()
print("done", result.orders_sent, result.orders_failed, flush=True)
"""


# order ids of each test's own, as the module's tests share one simulator
_bases = itertools.count(1)


@pytest.fixture(scope="module")
def erp() -> Iterator[Any]:
    from conftest import start_sim

    p = start_sim("--articles", "100", "--customers", "60", "--orders", "5", "--seed", "13")
    try:
        yield p
    finally:
        p.stop()


def kill_loop(db_url: str, erp: Any, tmp: Path, rounds: int, n_orders: int, seed: int) -> None:
    rng = random.Random(seed)
    cfg = {
        "base_url": erp.url,
        "user": erp.user,
        "password": erp.password,
        "azienda": erp.azienda,
        "anno": erp.anno,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
    }
    store = open_store(db_url)
    orders = WebOrders(store)
    try:
        for r in range(rounds):
            base = next(_bases) * 1000
            lines = [
                order_line(
                    f"K{base + i}",
                    customer=new_customer(base + i) if i % 10 == 0 else {"code": "501.00003"},
                    rows=article_rows(1 + i % 2, first=1 + i % 90),
                )
                for i in range(n_orders)
            ]
            assert orders.import_lines(jsonl(*lines).splitlines()).complete
            ids = [f"K{base + i}" for i in range(n_orders)]
            kills = starts = 0
            while orders.waiting_count() and starts < 60:
                starts += 1
                # how this start ends: held at a step and killed there, killed at a
                # random moment, or left to finish
                # (each round's first start dies at one of the push's steps, for sure)
                how = rng.choices(
                    ["claimed", "accepted", "recorded", "timer", "finish"],
                    [2, 2, 1, 0, 0] if starts == 1 else [2, 2, 1, 3, 2],
                )[0]
                hold = None
                if how in CRASH_STEPS:
                    hold = {"step": how, "nth": rng.randint(1, max(1, orders.waiting_count()))}
                errors = tmp / f"child-{r}-{starts}.err"
                child = subprocess.Popen(
                    [sys.executable, "-c", CHILD, db_url, json.dumps(cfg), json.dumps(hold)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=errors.open("w"),
                    text=True,
                    env=dict(os.environ),
                )
                assert child.stdout is not None
                line = child.stdout.readline().strip()
                assert line == "ready", errors.read_text()
                if hold is not None:
                    line = child.stdout.readline().strip()
                    if line.startswith("holding"):
                        child.send_signal(signal.SIGKILL)
                        kills += 1
                elif how == "timer":
                    try:
                        child.wait(timeout=rng.uniform(0.0, 0.01 * n_orders))
                    except subprocess.TimeoutExpired:
                        child.send_signal(signal.SIGKILL)
                        kills += 1
                child.wait()
                child.stdout.close()
                if child.stdin is not None:
                    child.stdin.close()
                assert child.returncode in (0, -signal.SIGKILL), errors.read_text()
            assert orders.waiting_count() == 0, f"round {r}: still waiting after {starts} starts"
            assert erp_marker_counts(erp, ids) == {i: 1 for i in ids}, f"round {r}"
            by_id = {o["id"]: o["state"] for o in orders.list()}
            assert {by_id[i] for i in ids} == {states.STORED}
            print(f"round {r}: {starts} starts, {kills} killed")
            assert kills >= 1
        # some process died between its claim and its outcome: the case this test is for
        with store.read() as conn:
            cut = conn.execute(
                sa.text("SELECT count(*) FROM web_push_attempt WHERE outcome = 'sending'")
            ).scalar_one()
        assert cut >= 1
    finally:
        store.close()


def test_sigkill_during_push_sample(db_url: str, erp: Any, tmp_path: Path) -> None:
    kill_loop(db_url, erp, tmp_path, rounds=2, n_orders=15, seed=1)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_sigkill_during_push_full_sweep(db_url: str, erp: Any, tmp_path: Path) -> None:
    kill_loop(db_url, erp, tmp_path, rounds=20, n_orders=200, seed=2)
