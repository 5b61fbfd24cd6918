"""The state of the sync launched from the UI, fed by the engine's worker thread.

The engine calls `SyncMonitor.feed` from its own thread; screens read immutable
snapshots on the UI thread, so no widget is ever touched from the sync's thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from passweb_tui.i18n import engine_notes, group_digits, t

LOG_LINES = 200

#: the steps of a run the log tells the end of, with the records they went through
#: (a pass's deletions belong to its pass; the field catalogue's message says its own)
QUIET_STEPS = frozenset({"starting", "attributes", "done"})


@dataclass(frozen=True)
class LogLine:
    """One line of a run's log: when it happened, what, and how long a step took."""

    at: float  # wall clock (time.time())
    text: str
    seconds: float | None = None


@dataclass(frozen=True)
class EntityProgress:
    entity: str
    done: int
    total: int | None
    rate: float | None
    eta_s: float | None

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)

    @property
    def percent(self) -> str:
        """The percentage as the progress table writes it: rounded down, so that 100
        means done (999 of 1,000 read 100, on a pass that could still stall)."""
        if not self.total:
            return "-"
        whole = min(self.done * 100 // self.total, 100)
        return str(whole if self.done >= self.total else min(whole, 99))


@dataclass(frozen=True)
class SyncSnapshot:
    """What the screens show about one run at one moment."""

    run_id: int | None
    kind: str  # as asked
    ran_kind: str  # as run: a first Variati runs as Totale
    dry_run: bool
    phase: str
    entities: tuple[EntityProgress, ...]
    log: tuple[LogLine, ...]
    running: bool
    status: str | None
    cancelling: bool
    elapsed_s: float
    result: Any = None
    error: str | None = None
    #: when the run was launched (monotonic): tells one launch from the next
    started: float = 0.0

    def one_line(self, app: Any) -> str:
        """The badge text: kind, phase and the current entity's progress, or the outcome."""
        from passweb_tui.screens.base import fmt_int, kind_label

        kind = kind_label(self.ran_kind) + (" " + t("sync.dry") if self.dry_run else "")
        if not self.running:
            return f"{kind}: {t('status.' + (self.status or 'failed'))}"
        parts = [f"⟳ {kind}"]
        cur = self.entities[-1] if self.entities else None
        if cur is None or cur.entity != self.phase:
            parts.append(t("phase." + self.phase, default=self.phase))
        if cur is not None:
            total = f"/{fmt_int(cur.total)}" if cur.total else ""
            parts.append(
                f"{t('entity.' + cur.entity, default=cur.entity)} {fmt_int(cur.done)}{total}"
            )
        if self.cancelling:
            parts.append(t("sync.cancelling"))
        return " · ".join(parts)


@dataclass
class SyncMonitor:
    """Thread-safe record of the progress of the sync launched from this app."""

    kind: str = ""
    ran_kind: str = ""
    dry_run: bool = False
    handle: Any = None
    run_id: int | None = None
    phase: str = "starting"
    entities: dict[str, EntityProgress] = field(default_factory=dict)
    log: deque[LogLine] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    #: the step under way (a phase; a pass's deletions are part of it), since when
    #: (monotonic), and the records each of its entities has gone through
    _step: str | None = None
    _step_since: float = 0.0
    _step_done: dict[str, int] = field(default_factory=dict)
    running: bool = False
    status: str | None = None
    cancelling: bool = False
    result: Any = None
    error: str | None = None
    started: float = 0.0
    ended: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def begin(self, kind: str, dry_run: bool) -> None:
        with self._lock:
            self.kind, self.ran_kind, self.dry_run = kind, kind, dry_run
            self.handle, self.run_id, self.phase = None, None, "starting"
            self.entities = {}
            self.log.clear()
            self._step, self._step_done = None, {}
            self.running, self.status, self.cancelling = True, None, False
            self.result = self.error = None
            self.started, self.ended = time.monotonic(), None

    def attach(self, handle: Any) -> None:
        with self._lock:
            self.handle = handle
            self.run_id = getattr(handle, "run_id", None) or self.run_id

    def feed(self, event: Any) -> None:
        """Take one ProgressEvent; called from the engine's thread."""
        now = time.monotonic()
        with self._lock:
            if event.run_id is not None:
                self.run_id = event.run_id
            if event.kind:
                self.ran_kind = event.kind
            if event.phase:
                self.phase = event.phase
                if event.phase != "deletions" and event.phase != self._step:
                    self._end_step()
                    self._step, self._step_since, self._step_done = event.phase, now, {}
            if event.entity:
                self._step_done[event.entity] = max(
                    event.done, self._step_done.get(event.entity, 0)
                )
                self.entities[event.entity] = EntityProgress(
                    event.entity, event.done, event.total, event.rate, event.eta_s
                )
                # the entity last touched is shown last, so the badge follows the work
                self.entities[event.entity] = self.entities.pop(event.entity)
            if event.message:
                self.log.append(LogLine(time.time(), engine_notes(event.message)))
            if event.finished:
                self.status = event.status

    def _end_step(self) -> None:
        """The log line of the step that just ended (under the lock)."""
        step, self._step = self._step, None
        if step is None or step in QUIET_STEPS:
            return
        records = sum(self._step_done.values())
        text = t(
            "sync.step_done_one" if records == 1 else "sync.step_done",
            step=t("phase." + step, default=step),
            records=group_digits(f"{records:,}"),
        )
        self.log.append(LogLine(time.time(), text, time.monotonic() - self._step_since))

    def finish(self, result: Any = None, error: str | None = None) -> None:
        with self._lock:
            self._end_step()
            self.running = False
            self.result = result
            self.error = error
            if result is not None:
                self.status = getattr(result, "status", None) or self.status
                self.run_id = getattr(result, "run_id", None) or self.run_id
                self.error = self.error or getattr(result, "error", None)
            elif self.status is None:
                self.status = "failed"
            self.ended = time.monotonic()
            began, ended = getattr(result, "started", None), getattr(result, "finished", None)
            if began is not None and ended is not None:
                # the run's own duration, as its record gives it (the runs screen, `runs`)
                self.ended = self.started + max(0.0, (ended - began).total_seconds())
            status = self.status or "failed"
            self.log.append(
                LogLine(
                    time.time(),
                    t("sync.finished", status=t("status." + status, default=status)),
                    self.ended - self.started,
                )
            )

    def refuse(self, reason: str) -> None:
        """The engine would not start the run: keep the reason to show."""
        with self._lock:
            self.running = False
            self.status = "refused"
            self.error = reason
            self.ended = time.monotonic()

    def request_cancel(self, reason: str | None = None) -> bool:
        """Cancel the running sync; `reason` is recorded as its error (by default, that
        the operator cancelled it)."""
        with self._lock:
            if not self.running or self.handle is None:
                return False
            self.cancelling = True
            handle = self.handle
        handle.cancel(reason)
        return True

    def snapshot(self) -> SyncSnapshot | None:
        with self._lock:
            if not self.kind:
                return None
            end = self.ended if self.ended is not None else time.monotonic()
            return SyncSnapshot(
                run_id=self.run_id,
                kind=self.kind,
                ran_kind=self.ran_kind,
                dry_run=self.dry_run,
                phase=self.phase,
                entities=tuple(self.entities.values()),
                log=tuple(self.log),
                running=self.running,
                status=self.status,
                cancelling=self.cancelling,
                elapsed_s=end - self.started,
                result=self.result,
                error=self.error,
                started=self.started,
            )
