"""UI benchmark: launch to first dashboard paint, switching screens, key response while a
Totale runs. (The README's screenshots are made by bench/screenshots.py.)

    .venv/bin/python bench/bench_ui.py                                   # 20,000 articles
    .venv/bin/python bench/bench_ui.py --articles 100000 --customers 20000

Targets (issue): first dashboard paint <= 1.5 s, screen switch <= 0.3 s, key response
while a Totale runs <= 0.1 s. The app runs headless at 120x40; the simulator runs in
its own process, the sync in the engine's worker thread.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from textual import events

sys.path.insert(0, str(Path(__file__).parent))
from bench_sync import open_engine, start_sim

SIZE = (120, 40)


def admin(sim: dict[str, Any], method: str, path: str, **kwargs: Any) -> Any:
    root = sim["url"][: -len("/webapi")]
    response = httpx.request(method, f"{root}/sim/{path}", timeout=120, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


async def settle(app: Any, pilot: Any) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()


async def first_paint(engine: Any) -> float:
    """From creating the app to the dashboard showing its runs."""
    from passweb_tui.app import create_app

    started = time.perf_counter()
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=SIZE) as pilot:
        while True:
            await pilot.pause(0.005)
            table = app.screen.query("#dash-runs-table")
            if table and table.first().row_count:
                return time.perf_counter() - started


async def switching(engine: Any) -> dict[str, float]:
    """Each screen's switch time: from the key reaching the app to the new screen's first
    paint (second visit; the first one also builds the screen)."""
    from passweb_tui.app import create_app

    app = create_app(engine, poll_s=0)
    times: dict[str, float] = {}
    names = ["sync", "changes", "categories", "catalogue", "runs", "fields", "dashboard"]
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        for key in "scgarfd":  # first visits mount each screen
            await pilot.press(key)
            await settle(app, pilot)
        for key, name in zip("scgarfd", names, strict=True):
            screen = app._screen_stacks[name][-1]
            painted = asyncio.Event()
            refresh = screen._compositor_refresh

            def first_paint(refresh: Any = refresh, painted: asyncio.Event = painted) -> None:
                refresh()
                painted.set()

            screen._compositor_refresh = first_paint  # type: ignore[method-assign]
            event = events.Key(key, key)
            event.set_sender(app)
            started = time.perf_counter()
            app._driver.send_message(event)  # type: ignore[union-attr]
            await painted.wait()
            times[name] = time.perf_counter() - started
            screen._compositor_refresh = refresh  # type: ignore[method-assign]
            await settle(app, pilot)
    return times


async def keys_during_total(engine: Any) -> dict[str, float]:
    """Key round trips (j in the catalogue) and event-loop lag while a Totale runs."""
    from passweb_tui.app import create_app

    app = create_app(engine, poll_s=1.0)
    result: dict[str, float] = {}
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("a")
        await settle(app, pilot)
        lags: list[float] = []
        stop = asyncio.Event()

        async def watch_loop() -> None:
            while not stop.is_set():
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - before - 0.01)

        watcher = asyncio.create_task(watch_loop())
        app.start_sync("total")
        while app.sync.handle is None and app.sync.running:
            await pilot.pause(0.01)
        # time from a key reaching the app to its action running in the focused table
        table = app.screen.query_one("#catalogue-table")
        moved = asyncio.Event()
        down = table.action_cursor_down

        def cursor_down() -> None:
            moved.set()
            down()

        table.action_cursor_down = cursor_down  # type: ignore[method-assign]
        presses: list[float] = []
        while app.sync.running:
            moved.clear()
            key = events.Key("j", "j")
            key.set_sender(app)
            started = time.perf_counter()
            app._driver.send_message(key)  # type: ignore[union-attr]
            await moved.wait()
            presses.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
        stop.set()
        await watcher
        await app.sync_ended.wait()
        result = {
            "presses": float(len(presses)),
            "p50": statistics.median(presses) if presses else 0.0,
            "p95": sorted(presses)[int(len(presses) * 0.95)] if presses else 0.0,
            "max": max(presses, default=0.0),
            "loop_lag_max": max(lags, default=0.0),
            "total_s": app.sync.snapshot().elapsed_s,  # type: ignore[union-attr]
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=4_000)
    args = parser.parse_args()

    proc, sim = start_sim(args.articles, args.customers)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            engine = open_engine(f"sqlite:///{tmp}/store.db", sim)
            started = time.perf_counter()
            engine.run("total")
            print(
                f"store: Totale of {args.articles:,} articles in {time.perf_counter() - started:.1f} s"
            )
            changed = admin(
                sim, "POST", "mutate", json={"resource": "articoli", "count": 200, "seed": 5}
            )
            engine.run("changed")
            print(f"store: then a Variati after {len(changed['changed'])} ERP changes")

            paint = asyncio.run(first_paint(engine))
            print(f"launch to first dashboard paint: {paint:.3f} s (target <= 1.5)")
            switches = asyncio.run(switching(engine))
            for name, seconds in switches.items():
                print(f"switch to {name:<10}: {seconds:.3f} s")
            print(f"switch, slowest: {max(switches.values()):.3f} s (target <= 0.3)")
            keys = asyncio.run(keys_during_total(engine))
            print(
                f"keys during a Totale ({keys['total_s']:.1f} s, {keys['presses']:.0f} presses): "
                f"p50 {keys['p50']:.3f} s, p95 {keys['p95']:.3f} s, max {keys['max']:.3f} s "
                f"(target <= 0.1); event-loop lag max {keys['loop_lag_max']:.3f} s"
            )
            engine.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
