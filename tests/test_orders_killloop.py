"""A pushing process killed with SIGKILL at random moments, restarted until nothing
waits: every order is in the ERP exactly once (counted by marker through /sim/).

The CI sample runs 3 rounds of 25 orders; the full sweep (20 rounds of 200 orders) is
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
from typing import Any

import pytest
import sqlalchemy as sa
from test_orders_helpers import article_rows, erp_marker_counts, jsonl, new_customer, order_line

from passweb_tui.engine.orders import states
from passweb_tui.engine.orders.api import WebOrders
from passweb_tui.engine.store import open_store

# the child: push everything that waits, then say so; it may be killed at any moment
CHILD = """
import json, sys
from passweb_tui.engine.erp.client import MexalClient
from passweb_tui.engine.erp.settings import ErpConfig
from passweb_tui.engine.orders.push import Pusher
from passweb_tui.engine.store import open_store
db, cfg = sys.argv[1], json.loads(sys.argv[2])
store = open_store(db)
with MexalClient(ErpConfig(**cfg)) as client:
    print("ready", flush=True)
    result = Pusher(store, client).push()
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


def kill_loop(db_url: str, erp: Any, rounds: int, n_orders: int, seed: int) -> None:
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
                child = subprocess.Popen(
                    [sys.executable, "-c", CHILD, db_url, json.dumps(cfg)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=dict(os.environ),
                )
                assert child.stdout is not None
                assert child.stdout.readline().strip() == "ready", (
                    child.stderr.read() if child.stderr else ""
                )
                # most starts die at a random moment of their push; the others may finish
                deadline = rng.uniform(0.0, 0.004 * n_orders) if rng.random() < 0.7 else None
                try:
                    child.wait(timeout=deadline)
                except subprocess.TimeoutExpired:
                    child.send_signal(signal.SIGKILL)
                    kills += 1
                child.wait()
                child.stdout.close()
                if child.stderr is not None:
                    err = child.stderr.read()
                    child.stderr.close()
                    assert child.returncode in (0, -signal.SIGKILL), err
            assert orders.waiting_count() == 0, f"round {r}: still waiting after {starts} starts"
            assert erp_marker_counts(erp, ids) == {i: 1 for i in ids}, f"round {r}"
            assert {o["state"] for o in orders.list(search=f"K{base // 1000}")} <= {states.STORED}
            print(f"round {r}: {starts} starts, {kills} killed")
        # some process died between its claim and its outcome: the case this test is for
        with store.read() as conn:
            cut = conn.execute(
                sa.text("SELECT count(*) FROM web_push_attempt WHERE outcome = 'sending'")
            ).scalar_one()
        assert cut >= 1
    finally:
        store.close()


def test_sigkill_during_push_sample(db_url: str, erp: Any) -> None:
    kill_loop(db_url, erp, rounds=3, n_orders=25, seed=1)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_sigkill_during_push_full_sweep(db_url: str, erp: Any) -> None:
    kill_loop(db_url, erp, rounds=20, n_orders=200, seed=2)
