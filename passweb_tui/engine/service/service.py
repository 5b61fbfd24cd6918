"""The service loop: scheduled syncs claimed per slot, the web-order fast path, ERP
triggers and outcome e-mails, all on one Engine; stop() cancels and waits for runs."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from passweb_tui.engine.erp.errors import refused_credentials
from passweb_tui.engine.facade import Engine, LaunchRefused, RunHandle, SyncError
from passweb_tui.engine.history import prune_history
from passweb_tui.engine.owners import token_label
from passweb_tui.engine.service import policy, slots
from passweb_tui.engine.service.notify import (
    SMTPS_PORT,
    MailNotSent,
    MailSettings,
    Notifier,
    parse_recipients,
)
from passweb_tui.engine.service.quota import QuotaExhausted, QuotaStatus, check_quota, quota_status
from passweb_tui.engine.service.schedule import Schedule, schedule_from_text
from passweb_tui.engine.service.trigger import TriggerRefused, TriggerServer
from passweb_tui.engine.state import get_state, set_state
from passweb_tui.engine.store import StoreError, database_words

if TYPE_CHECKING:
    from passweb_tui.config import Settings
    from passweb_tui.engine.sync import RunResult

log = logging.getLogger("passweb_tui.service")

#: pauses of every automatic login (scheduled runs, triggers, the order path) after the
#: ERP refused the credentials: doubled each time (the ERP locks a user after a few
#: failed logins; a restart tries at once)
REFUSED_PAUSE_S = 60.0
REFUSED_PAUSE_MAX_S = 3600.0
#: pauses of the order path while the ERP cannot be reached: doubled each time
UNREACHABLE_PAUSE_S = 10.0
UNREACHABLE_PAUSE_MAX_S = 300.0
#: how long the order path leaves an order the ERP refused before sending it again,
#: doubled at each refusal (the ERP will likely refuse it until someone changes
#: something); every sync still sends it at once
HELD_ORDER_PAUSE_S = 60.0
HELD_ORDER_PAUSE_MAX_S = 3600.0

Clock = Callable[[], datetime]
PRUNE_EVERY_S = 3600.0
#: results of the runs a service launched that it keeps in memory (the store has them all)
FINISHED_KEPT = 100
#: a loop whose step keeps failing waits longer each time, up to this
LOOP_PAUSE_MAX_S = 30.0
#: the same failure of a loop is said again after this long
LOOP_RETOLD_S = 600.0
MAIL_POLL_S = 2.0
#: an outcome e-mail the mail server did not take is tried again after this pause,
#: doubled each time, until it has failed MAIL_ATTEMPTS times (about 2.5 hours)
MAIL_RETRY_S = 60.0
MAIL_RETRY_MAX_S = 1800.0
MAIL_ATTEMPTS = 10
#: how long a stopping service waits for the mail server, for each e-mail it still tries
MAIL_STOP_TIMEOUT_S = 5.0
#: the outcome of a run that ended longer ago than this is not e-mailed any more
MAIL_MAX_AGE = timedelta(hours=6)
#: the store's record of the ERP's refusal of the credentials: {"until": ISO time in
#: UTC, "pause": seconds}, so that every process on the store pauses its logins, not
#: only the one refused (each of several would otherwise fail in turn, and the ERP
#: locks a user after a few)
LOGIN_PAUSE = "login_refused"
#: runs read at a time when looking for outcomes to e-mail
MAIL_PAGE = 50
#: the claim row of an e-mail the server took
MAIL_SENT = "sent"
#: the claim row that keeps the run after which outcomes are e-mailed
MAIL_FROM = "mail:from"
#: a claim on an e-mail older than this that has not ended is its dead holder's (a
#: send gives up after the mail server's timeout, 30 s, and then gives the claim back)
MAIL_CLAIM_STALE = timedelta(minutes=10)


def _stale(claimed_at: datetime) -> bool:
    if claimed_at.tzinfo is None:  # SQLite gives back naive UTC
        claimed_at = claimed_at.replace(tzinfo=UTC)
    return claimed_at < utc_now() - MAIL_CLAIM_STALE


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ServiceConfig:
    """What `serve` does for one site."""

    site: str = "default"
    schedule: Schedule = field(default_factory=Schedule)
    timezone: tzinfo | None = None  # None: the machine's local time
    horeca: bool = False
    monthly_quota: int = 0
    order_poll_s: float = 2.0
    tick_s: float = 1.0
    push_site_no: int = 1
    trigger: bool = False
    trigger_host: str = "127.0.0.1"
    trigger_port: int = 8765
    trigger_token: str | None = field(default=None, repr=False)
    mail: MailSettings | None = None
    #: days of sync history kept ([store] keep_history_days; 0: all), pruned hourly
    keep_history_days: int = 400

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceConfig:
        schedule = schedule_from_text(
            settings.schedule_every,
            settings.schedule_weekdays,
            settings.schedule_window,
            kind=settings.scheduled_kind,
            horeca=settings.horeca,
        )
        mail = mail_settings(settings)
        return cls(
            site=settings.site,
            schedule=schedule,
            timezone=ZoneInfo(settings.schedule_timezone) if settings.schedule_timezone else None,
            horeca=settings.horeca,
            monthly_quota=settings.monthly_quota,
            order_poll_s=float(settings.order_poll_seconds),
            push_site_no=settings.site_no,
            trigger=settings.trigger_enabled,
            trigger_host=settings.trigger_host,
            trigger_port=settings.trigger_port,
            trigger_token=settings.trigger_token,
            mail=mail,
            keep_history_days=settings.keep_history_days,
        )


def mail_settings(settings: Settings) -> MailSettings | None:
    """The outcome e-mails' settings; None when there is nobody to e-mail."""
    recipients = parse_recipients(settings.notify)
    if not recipients or not settings.smtp_host:
        return None
    return MailSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        recipients=recipients,
        user=settings.smtp_user,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
    )


def cleartext_warning(mail: MailSettings) -> str | None:
    """What to say when the mail password would cross the network unencrypted."""
    if not mail.cleartext_login:
        return None
    return (
        f"the SMTP password for {mail.user} goes to {mail.host}:{mail.port} unencrypted:"
        f" set smtp_starttls = true, or smtp_port = {SMTPS_PORT}"
    )


class Service:
    """Runs one site's automatic work on an open Engine until stop()."""

    def __init__(
        self,
        engine: Engine,
        config: ServiceConfig,
        *,
        clock: Clock = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.monotonic = monotonic  # what the pauses between retries are measured with
        self.holder = slots.holder_name()
        slots.LIVE.add(self.holder)  # until stopped: its claims are a live process's
        self.notifier = Notifier(config.mail, config.site) if config.mail else None
        if config.mail and (warning := cleartext_warning(config.mail)):
            log.warning("%s", warning)
        self.trigger: TriggerServer | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._active: list[RunHandle] = []
        self._watchers: list[threading.Thread] = []
        self._last_slot: datetime | None = None
        self._refused_slot: datetime | None = None
        self._paused_slot: datetime | None = None  # a slot told to wait for a login pause
        self._pruned_at = float("-inf")
        self._prune_failed = False  # the last history prune failed, and was said
        self._history_pruned_at = float("-inf")
        # the ERP refused our credentials on the order path: no login until this moment
        # (the ERP locks a user after a few failed logins), then again with longer pauses
        self._refused_until = float("-inf")
        self._refused_pause = 0.0
        # the ERP could not be reached on the order path: no push until this moment
        self._unreachable_until = float("-inf")
        self._unreachable_pause = 0.0
        # orders the ERP refused, left out of the order path until a moment: id ->
        # (refusals in a row, that moment)
        self._held: dict[str, tuple[int, float]] = {}
        # failures of records already logged, with their reason: logged again only if
        # the reason changes, not at each retry
        self._failures_told: dict[tuple[str, str], str] = {}
        self._settling_told: set[tuple[str, str]] = set()  # records said to be settling
        # outcomes are mailed for runs recorded after the site's service first started,
        # whoever ran them (see _mail_start), and for those still going when it started
        recent = engine.runs(limit=50)
        self._mail_after = self._mail_start(recent[0].run_id or 0 if recent else 0)
        self._mail_running_at_start = {
            r.run_id for r in recent if r.status == "running" and r.run_id is not None
        }
        self._mailed: set[int] = set()  # sent (here or elsewhere), or given up
        # every run up to this one is settled (mailed, given up, or not to mail): the
        # runs listed for mailing go back to it, however many (see _runs_to_mail)
        self._mail_floor = min([self._mail_after, *(i - 1 for i in self._mail_running_at_start)])
        # e-mails not to try (again) before a moment of self.monotonic, and how many times
        # the mail server did not take each
        self._mail_next: dict[int, float] = {}
        self._mail_failures: dict[int, int] = {}
        self._mail_lock = threading.Lock()
        #: results of the last runs this service launched, in the order they ended (a
        #: service runs for months: older ones are in the store)
        self.finished: deque[RunResult] = deque(maxlen=FINISHED_KEPT)
        self.order_pushes = 0

    # --- time ---------------------------------------------------------------------------

    def local_now(self, now: datetime | None = None) -> datetime:
        """The clock as naive wall time in the schedule's time zone."""
        now = now or self.clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        local = now.astimezone(self.config.timezone) if self.config.timezone else now.astimezone()
        return local.replace(tzinfo=None)

    # --- launching ----------------------------------------------------------------------

    def quota(self) -> QuotaStatus:
        return quota_status(
            self.engine.store, self.config.monthly_quota, self.clock(), self.config.timezone
        )

    def launch(self, kind: str, origin: str) -> RunHandle:
        """Start a run subject to policy and quota; PolicyRefused, QuotaExhausted,
        LaunchRefused (lease) or SyncError when it cannot start."""
        policy.check(
            kind, origin, horeca=self.config.horeca, scheduled_kind=self.config.schedule.kind
        )
        if self._stop.is_set():
            raise LaunchRefused("the service is stopping")
        check_quota(
            self.engine.store, self.config.monthly_quota, kind, self.clock(), self.config.timezone
        )
        handle = self.engine.start_run(kind, origin=origin)
        log.info("run %s started: %s launched by %s", handle.run_id, kind.upper(), origin)
        watcher = threading.Thread(
            target=self._watch, args=(handle,), name=f"watch-run-{handle.run_id}", daemon=True
        )
        with self._lock:
            self._active.append(handle)
            self._watchers.append(watcher)
        watcher.start()
        return handle

    def _watch(self, handle: RunHandle) -> None:
        try:
            self._watch_run(handle)
        finally:
            with self._lock:  # a service launches runs for months: none is kept
                self._watchers.remove(threading.current_thread())

    def _watch_run(self, handle: RunHandle) -> None:
        result = handle.wait()
        with self._lock:
            if handle in self._active:
                self._active.remove(handle)
        if result is None:
            log.error("run %s stopped unexpectedly: %s", handle.run_id, handle.error)
            return
        if result.status in ("ok", "ok_with_rejects"):
            self._credentials_work()
        if result.status == "failed" and refused_credentials(result.error):
            self._credentials_refused(f"run {result.run_id}: {result.error}")
        level = logging.INFO if result.status in ("ok", "ok_with_rejects") else logging.WARNING
        log.log(
            level,
            "run %s %s (%s) ended %s%s",
            result.run_id,
            result.kind.upper(),
            result.origin,
            result.status,
            f": {result.error}" if result.error else "",
        )
        with self._lock:
            self.finished.append(result)
        if self.notifier is not None:
            self.mail_outcomes()  # at once, rather than at the next poll

    def trigger_launch(self, kind: str) -> int | None:
        """The trigger endpoint's launch: maps refusals to HTTP statuses."""
        paused = self._login_paused()
        if paused:
            raise TriggerRefused(503, paused)
        try:
            return self.launch(kind, "erp").run_id
        except policy.PolicyRefused as exc:
            raise TriggerRefused(403, f"refused by the launch policy: {exc}") from None
        except QuotaExhausted as exc:
            raise TriggerRefused(403, str(exc)) from None
        except LaunchRefused as exc:
            raise TriggerRefused(409, str(exc)) from None
        except SyncError as exc:
            raise TriggerRefused(400, str(exc)) from None
        except (OperationalError, StoreError) as exc:
            # a store another process keeps locked past the busy timeout, or one that
            # went away: the ERP is told to try again, not handed the SQL of a 500 (a
            # fault of another kind, which a retry would meet again, stays a 500)
            why = database_words(exc) or str(exc).splitlines()[0]
            log.warning("trigger: the site store could not start the run: %s", why)
            raise TriggerRefused(
                503, f"the site store is busy or unavailable, try again shortly: {why}"
            ) from None
        except SQLAlchemyError as exc:  # logged whole; the ERP gets no SQL
            log.exception("trigger: the site store refused the run")
            words = database_words(exc) or exc.__class__.__name__
            raise TriggerRefused(500, f"the site store refused the work: {words}") from None

    @property
    def busy(self) -> bool:
        with self._lock:
            return any(not h.done for h in self._active)

    # --- the schedule -------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> RunHandle | None:
        """One scheduler step: start the due slot's run if this process wins its claim
        (and, once an hour, prune the sync history: with a schedule or without one)."""
        if self._stop.is_set():
            return None
        if self.monotonic() - self._history_pruned_at > PRUNE_EVERY_S:
            self._history_pruned_at = self.monotonic()
            self._prune_history()
        schedule = self.config.schedule
        if not schedule.enabled:
            return None
        local = self.local_now(now)
        slot = schedule.due(local)
        if slot is None or (self._last_slot is not None and slot <= self._last_slot):
            return None
        if self.busy:
            return None  # our own TOTAL/CHANGED still runs: the lease would refuse anyway
        paused = self._login_paused()
        if paused:
            # not claimed: the slot runs once the pause is over, if it is still due
            if self._paused_slot != slot:
                log.info("scheduled %s for %s waits: %s", schedule.kind.upper(), slot, paused)
                self._paused_slot = slot
            return None
        store = self.engine.store
        if not slots.claim(store, self.config.site, slot, self.holder):
            self._last_slot = slot  # another process has it
            return None
        kind = schedule.kind
        try:
            handle = self.launch(kind, "scheduler")
        except LaunchRefused as exc:
            # another TOTAL/CHANGED runs: give the slot back and try again next tick
            slots.release(store, self.config.site, slot, self.holder)
            if self._refused_slot != slot:
                log.info("scheduled %s for %s waits: %s", kind.upper(), slot, exc)
                self._refused_slot = slot
            return None
        except (QuotaExhausted, policy.PolicyRefused, SyncError) as exc:
            slots.record(store, self.config.site, slot, run_id=None, outcome=f"refused: {exc}")
            self._last_slot = slot
            log.warning("scheduled %s for %s not run: %s", kind.upper(), slot, exc)
            return None
        except Exception:
            # a store busy past its timeout, a failing password command...: the slot is
            # given back, so that the next tick (here or in another process) runs it
            slots.release(store, self.config.site, slot, self.holder)
            raise
        self._last_slot = slot
        slots.record(store, self.config.site, slot, run_id=handle.run_id, outcome="started")
        if self.monotonic() - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = self.monotonic()
            slots.prune(store, self.config.site)
        return handle

    def _prune_history(self) -> None:
        """Delete the sync history older than the setting keeps. A failure never stops
        the service: it is said once (again only once it has worked in between), and
        the next hour tries again."""
        try:
            # a stop of the service does not wait for the whole prune: the rest next time
            prune_history(self.engine.store, self.config.keep_history_days, stop=self._stop.is_set)
        except Exception as exc:
            if not self._prune_failed:
                from passweb_tui.engine.sync import failure_text

                log.warning("pruning the sync history failed: %s", failure_text(exc))
                log.debug("pruning the sync history failed", exc_info=True)
            self._prune_failed = True
        else:
            self._prune_failed = False

    # --- outcome e-mails ------------------------------------------------------------------

    def mail_outcomes(self) -> int:
        """E-mail the outcome of every run that ended since the service started: those it
        launched and those of the UI, the command line or another process, including any
        that was going on when it started. A claim row per run makes one process of several
        send it; a send that fails gives the claim back, and the e-mail is tried again
        later, here or by another process."""
        if self.notifier is None:
            return 0
        sent = 0
        store, site = self.engine.store, self.config.site
        with self._mail_lock:
            recent = self._runs_to_mail()
            listed = [r.run_id for r in recent if r.run_id is not None]
            if listed:  # runs older than those listed are never looked at again
                self._mailed = {i for i in self._mailed if i >= min(listed)}
            for result in reversed(recent):
                run_id = result.run_id
                if run_id is None or run_id in self._mailed:
                    continue
                if run_id <= self._mail_after and run_id not in self._mail_running_at_start:
                    continue
                if result.status == "running":
                    continue
                if self.monotonic() < self._mail_next.get(run_id, float("-inf")):
                    continue
                stopping = self._stop.is_set()
                if stopping and run_id in self._mail_failures:
                    continue  # tried already: the next start sends it (a restart loses none)
                if result.finished is not None and result.finished < utc_now() - MAIL_MAX_AGE:
                    if self._mail_failures.get(run_id):
                        log.error(
                            "outcome of run %s not e-mailed: given up, the run ended over %s ago",
                            run_id,
                            MAIL_MAX_AGE,
                        )
                    self._mail_done(run_id)
                    continue
                key = f"mail:{run_id}"
                if not slots.claim_key(store, site, key, self.holder):
                    held = slots.claim_of(store, site, key)
                    if held is not None and held.outcome == MAIL_SENT:
                        self._mail_done(run_id)
                    elif held is not None and (
                        _stale(held.claimed_at) or slots.holder_gone(held.holder)
                    ):
                        # its holder died while sending (a process that is alive gives
                        # the claim back or records the e-mail sent well within this;
                        # one of this machine is seen gone at once): the claim is
                        # freed, and taken at the next look
                        slots.release_key(store, site, key, held.holder)
                        log.warning(
                            "outcome e-mail of run %s: %s claimed it at %s and never"
                            " finished; it is sent from here",
                            run_id,
                            token_label(held.holder),
                            held.claimed_at,
                        )
                    elif held is not None:
                        # another process is sending it; should it fail, it gives the
                        # claim back: look again later
                        self._mail_next[run_id] = self.monotonic() + MAIL_RETRY_S
                    continue
                try:
                    # a stopping service tries each once, briefly: its stop must not wait
                    # on a mail server that does not answer
                    self.notifier.send(result, MAIL_STOP_TIMEOUT_S if stopping else None)
                except MailNotSent as exc:
                    slots.release_key(store, site, key, self.holder)
                    if stopping:
                        self._mail_failures[run_id] = self._mail_failures.get(run_id, 0) + 1
                        log.warning("%s; left for the service's next start", exc)
                    else:
                        self._mail_failed(run_id, str(exc))
                    continue
                self._mail_done(run_id)
                slots.record_key(store, site, key, run_id=run_id, outcome=MAIL_SENT)
                sent += 1
            for run_id in sorted(listed):  # the floor moves up past what is settled
                ours = run_id > self._mail_after or run_id in self._mail_running_at_start
                if ours and run_id not in self._mailed:
                    break
                self._mail_floor = max(self._mail_floor, run_id)
        return sent

    def _runs_to_mail(self) -> list[Any]:
        """The runs whose outcome may still be e-mailed, newest first: a page, and more
        while the oldest listed may still be one (newer than the floor, under which all
        are settled, and ended within MAIL_MAX_AGE): a start after more runs than a page
        ended while no service ran loses none of them."""
        runs: list[Any] = []
        while True:
            page = self.engine.runs(limit=MAIL_PAGE, offset=len(runs))
            runs.extend(page)
            if len(page) < MAIL_PAGE:
                return runs
            oldest = page[-1]
            if (oldest.run_id or 0) <= self._mail_floor:
                return runs
            ended = oldest.finished
            if (
                oldest.status != "running"
                and ended is not None
                and ended < utc_now() - MAIL_MAX_AGE
            ):
                return runs

    def _mail_start(self, newest: int) -> int:
        """The run after which outcomes are e-mailed: where the site's service first
        started mailing (kept in the store, so that a restart loses nothing: an e-mail
        still to be tried again, or the outcome of a run that ended while no service
        ran, within MAIL_MAX_AGE). The first start takes the newest run: the history
        from before the service is not mailed."""
        if self.notifier is None:
            return newest
        store, site = self.engine.store, self.config.site
        try:
            if slots.claim_key(store, site, MAIL_FROM, self.holder):
                slots.record_key(store, site, MAIL_FROM, run_id=newest, outcome="mail from here")
                return newest
            held = slots.claim_of(store, site, MAIL_FROM)
        except Exception as exc:  # the store is away: its loop says so; mail from now
            log.debug("mail start not read: %s", exc)
            return newest
        if held is None or held.run_id is None:
            return newest
        return held.run_id

    def _mail_done(self, run_id: int) -> None:
        self._mailed.add(run_id)
        self._mail_next.pop(run_id, None)
        self._mail_failures.pop(run_id, None)

    def _mail_failed(self, run_id: int, why: str) -> None:
        failures = self._mail_failures.get(run_id, 0) + 1
        if failures >= MAIL_ATTEMPTS:
            self._mail_done(run_id)
            log.error("%s; given up after %d attempts", why, failures)
            return
        pause = min(MAIL_RETRY_MAX_S, MAIL_RETRY_S * 2 ** (failures - 1))
        self._mail_failures[run_id] = failures
        self._mail_next[run_id] = self.monotonic() + pause
        log.warning(
            "%s; trying again in %.0f s (attempt %d of %d)", why, pause, failures, MAIL_ATTEMPTS
        )

    # --- web orders ---------------------------------------------------------------------

    def push_orders(self) -> int:
        """Send web orders waiting on the site now (the checkout path); returns how many
        went. After a failure the path backs off: all of it while the ERP cannot be
        reached or refuses the credentials, an order at a time after the ERP refused it."""
        from passweb_tui.engine.erp.errors import ErpError
        from passweb_tui.engine.orders.api import WebOrders
        from passweb_tui.engine.orders.push import (
            PushAborted,
            failure_note,
            held_note,
            settling_message,
        )

        self._adopt_shared_pause()
        now = self.monotonic()
        if now < self._refused_until or now < self._unreachable_until:
            return 0
        orders = WebOrders(self.engine.store)
        waiting = orders.waiting_ids()
        self._forget_orders_gone(set(waiting))
        due = [oid for oid in waiting if oid not in self._held or self._held[oid][1] <= now]
        if not due:
            return 0
        try:
            # the engine's client: its in-flight limit covers the push and a run together
            result = orders.push(
                self.engine.client(),
                order_ids=due if len(due) < len(waiting) else None,
                **{
                    **self.engine.settings.options.push_settings(),
                    "site_no": self.config.push_site_no,
                },
                cancel=self._stop,
                log_failures=False,  # told below, once each
            )
        except (PushAborted, ErpError) as exc:
            done = getattr(exc, "push_result", None)
            sent = done.orders_sent + done.orders_recovered if done is not None else 0
            if sent:  # what went before the stop
                log.info("web orders pushed before the push stopped: %d sent", sent)
            if isinstance(exc, PushAborted):
                return sent
            self._push_stopped(exc, len(waiting))
            return sent
        self._credentials_work()
        sent = result.orders_sent + result.orders_recovered
        self.order_pushes += 1
        unreachable = set(result.unreachable)
        refused = [(e, i) for e, i, _ in result.errors if (e, i) not in unreachable]
        if unreachable and not (sent or result.customers_sent or refused):
            # nothing got an answer: the ERP is not there, rather than refusing these orders
            why = next(why for e, i, why in result.errors if (e, i) in unreachable)
            self._erp_unreachable(why, len(waiting))
            return 0
        if self._unreachable_pause:
            log.info("the ERP answers again: web orders are sent as they arrive")
            self._unreachable_pause = 0.0
        if sent or result.customers_sent:
            log.info(
                "web orders pushed: %d sent, %d failed, %d customers created",
                sent,
                result.orders_failed,
                result.customers_sent - len(result.matched),
            )
        for _ident, said in result.matched:
            log.info("%s", said)
        new_failures = 0
        customers_refused = {
            ident: failure_note(entity, ident, why)[0]
            for entity, ident, why in result.errors
            if entity == "customer"
        }
        for entity, ident, why in result.errors:
            retry = ""
            if entity == "order" and (entity, ident) not in unreachable:
                retry = f"; {self._hold(ident)}"
            if self._failures_told.get((entity, ident)) == why:
                continue  # said when it first failed so
            self._failures_told[(entity, ident)] = why
            if new_failures < 20:
                holder = None
                if entity == "order":
                    holder = customers_refused.get(result.held.get(ident, ""))
                if holder is not None:  # its customer's refusal is told just before
                    line = held_note([ident], holder)
                else:
                    line = failure_note(entity, ident, why)[1]
                log.warning("%s%s", line, retry)
            new_failures += 1
        if new_failures > 20:
            log.warning(
                "%d more web orders or customers not sent; each one's detail says why",
                new_failures - 20,
            )
        settling = {(entity, ident) for entity, ident, _ in result.settling}
        if settling - self._settling_told:  # once, not at every poll while they wait
            log.warning("%s", settling_message(result.settling))
        self._settling_told = settling
        return sent

    def _push_stopped(self, exc: Exception, waiting: int) -> None:
        """A push the ERP stopped: refused credentials or company pause the order path
        for longer each time (the ERP locks a user after a few failed logins); an ERP
        that cannot be reached, or whose certificate is refused, pauses it like an
        unanswered push."""
        from passweb_tui.engine.erp.errors import AuthError, ContextMissingError

        if isinstance(exc, AuthError | ContextMissingError):
            self._credentials_refused(f"web orders not sent: {exc}")
            return
        self._erp_unreachable(str(exc), waiting)

    def _credentials_refused(self, what: str) -> None:
        """The ERP refused the credentials (to a push or to a run of this service): no
        automatic login at all (schedule, trigger, order path) for a pause, doubled each
        time up to an hour. The ERP locks a user after a few failed logins. The pause is
        kept in the store too, for every process on it (see LOGIN_PAUSE)."""
        self._adopt_shared_pause()  # doubled from another process's, if longer
        with self._lock:
            self._refused_pause = min(
                REFUSED_PAUSE_MAX_S, max(REFUSED_PAUSE_S, self._refused_pause * 2)
            )
            self._refused_until = self.monotonic() + self._refused_pause
            pause = self._refused_pause
        self._share_pause(pause)
        log.error(
            "%s; no new login for %.0f s, by the schedule, the trigger or the order path"
            " (fix the ERP settings; a restart tries at once)",
            what,
            pause,
        )

    def _credentials_work(self) -> None:
        """The ERP took the credentials: no pause, here or in the store."""
        with self._lock:
            was = self._refused_pause
            self._refused_pause = 0.0
        if was:
            self._share_pause(None)

    def _share_pause(self, pause: float | None) -> None:
        """Record the pause of logins in the store (None: take it away)."""
        value = None
        if pause is not None:
            until = self.clock() + timedelta(seconds=pause)
            value = json.dumps({"until": until.isoformat(), "pause": pause})
        try:
            with self.engine.store.write() as conn:
                set_state(conn, LOGIN_PAUSE, value)
        except Exception as exc:  # the store is away: this process's own pause holds
            log.debug("login pause not recorded in the store: %s", exc)

    def _adopt_shared_pause(self) -> None:
        """Take on a pause of logins that another process on the store recorded."""
        try:
            with self.engine.store.read() as conn:
                value = get_state(conn, LOGIN_PAUSE)
            if not value:
                return
            data = json.loads(value)
            left = (datetime.fromisoformat(data["until"]) - self.clock()).total_seconds()
            pause = float(data["pause"])
        except Exception as exc:  # the store away, or a value not of ours: ours holds
            log.debug("login pause not read from the store: %s", exc)
            return
        if left <= 0:
            return
        with self._lock:
            if self.monotonic() + left > self._refused_until:
                self._refused_until = self.monotonic() + min(left, REFUSED_PAUSE_MAX_S)
                self._refused_pause = max(self._refused_pause, min(pause, REFUSED_PAUSE_MAX_S))

    def _login_paused(self) -> str | None:
        """Why no login may be tried now (the ERP refused the credentials), or None."""
        self._adopt_shared_pause()
        left = self._refused_until - self.monotonic()
        if left <= 0:
            return None
        return f"the ERP refused the credentials; no new login for {left:.0f} s"

    def _erp_unreachable(self, why: str, waiting: int) -> None:
        """Pause the order path, longer each time the ERP is still not there; said once."""
        first = not self._unreachable_pause
        self._unreachable_pause = min(
            UNREACHABLE_PAUSE_MAX_S, max(UNREACHABLE_PAUSE_S, self._unreachable_pause * 2)
        )
        self._unreachable_until = self.monotonic() + self._unreachable_pause
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "web orders not sent, the ERP cannot be reached: %s; %d waiting, tried again in"
            " %.0f s, then less and less often (every %.0f s at most), and by every sync",
            why,
            waiting,
            self._unreachable_pause,
            UNREACHABLE_PAUSE_MAX_S,
        )

    def _hold(self, order_id: str) -> str:
        """Leave an order the ERP refused out of the order path for a while, longer at
        each refusal; says until when."""
        refusals = self._held.get(order_id, (0, 0.0))[0] + 1
        pause = min(HELD_ORDER_PAUSE_MAX_S, HELD_ORDER_PAUSE_S * 2 ** (refusals - 1))
        self._held[order_id] = (refusals, self.monotonic() + pause)
        return f"sent again in {pause:.0f} s, or by the next sync"

    def _forget_orders_gone(self, waiting: set[str]) -> None:
        """Orders no longer waiting (sent by a sync, say) are held and told no more."""
        self._held = {oid: h for oid, h in self._held.items() if oid in waiting}
        self._failures_told = {
            k: why for k, why in self._failures_told.items() if k[0] != "order" or k[1] in waiting
        }

    # --- threads ------------------------------------------------------------------------

    def _loop(self, name: str, interval: float, step: Callable[[], object]) -> None:
        """Run `step` every `interval` seconds until stop. A step that fails (a store
        that cannot be reached, say) must not end the service, nor fill the log: the
        failure is one line, said again only when it changes or every LOOP_RETOLD_S,
        and the loop waits longer after each failure in a row (up to LOOP_PAUSE_MAX_S);
        the whole error goes to the debug log."""
        failures = 0
        told: tuple[str, float] | None = None
        while not self._stop.is_set():
            try:
                step()
            except Exception as exc:
                failures += 1
                from passweb_tui.engine.sync import failure_text

                text = failure_text(exc)
                now = self.monotonic()
                if told is None or told[0] != text or now - told[1] >= LOOP_RETOLD_S:
                    log.error(
                        "%s step failed: %s; trying again, less often while it fails", name, text
                    )
                    told = (text, now)
                log.debug("%s step failed", name, exc_info=True)
            else:
                if failures and told is not None:
                    log.info("%s step works again", name)
                failures, told = 0, None
            pause = (
                min(LOOP_PAUSE_MAX_S, interval * 2 ** min(failures, 10)) if failures else interval
            )
            if self._stop.wait(max(interval, pause)):
                return

    def start(self) -> None:
        # a start tries at once (the settings may have been mended for it): the pause
        # another process recorded is taken away; those running keep their own
        self._share_pause(None)
        if self.config.trigger:
            if not self.config.trigger_token:
                raise ValueError(
                    "the trigger endpoint is on but no token is set "
                    "([service] trigger_token or PASSWEB_TUI_TRIGGER_TOKEN)"
                )
            self.trigger = TriggerServer(
                self.config.trigger_host,
                self.config.trigger_port,
                self.config.trigger_token,
                self.trigger_launch,
            )
            self.trigger.start()
            log.info("trigger endpoint listening on %s", self.trigger.url)
        for name, interval, step in (
            ("scheduler", self.config.tick_s, self.tick),
            ("orders", self.config.order_poll_s, self.push_orders),
            ("mail", MAIL_POLL_S, self.mail_outcomes),
        ):
            t = threading.Thread(
                target=self._loop, args=(name, interval, step), name=f"service-{name}", daemon=True
            )
            t.start()
            self._threads.append(t)
        log.info(
            "service for site %s started: %s; %s",
            self.config.site,
            self.config.schedule.describe(),
            self.quota().describe(),
        )

    def stop(self, timeout: float | None = None, reason: str | None = None) -> None:
        """Stop launching, cancel the runs in progress and wait until they are recorded
        (with `reason` as their error, if given)."""
        self._stop.set()
        if self.trigger is not None:
            self.trigger.stop()
        # the runs are cancelled first, so that their ending and the loops' (an order
        # push finishing its request) overlap instead of adding up
        cancelled: set[int] = set()

        def cancel_active() -> list[RunHandle]:
            with self._lock:
                active = list(self._active)
            for handle in active:
                if not handle.done and id(handle) not in cancelled:
                    cancelled.add(id(handle))
                    log.info("cancelling run %s", handle.run_id)
                    handle.cancel(reason)
            return active

        cancel_active()
        for t in self._threads:
            t.join(timeout)
        active = cancel_active()  # and a launch that slipped in before the stop
        with self._lock:
            watchers = list(self._watchers)
        for handle in active:
            handle.wait(timeout)
        for w in watchers:
            w.join(timeout)
        if not any(t.is_alive() for t in [*self._threads, *watchers]):
            slots.LIVE.discard(self.holder)  # nothing of it can still hold a claim

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()
