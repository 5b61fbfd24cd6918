"""Exactly-once push of waiting customers and orders to the ERP.

The protocol, per record (customer or order):
1. Claim it with a conditional UPDATE (compare-and-set on `attempts`, which every
   claim bumps) that also marks it `uncertain` and records a push attempt; commit.
   Only then is a request made, so a crash at any later point leaves a record that
   says "an attempt may have reached the ERP".
2. If the record was already uncertain (an earlier attempt's outcome is unknown),
   look it up in the ERP first (orders by the `$id$` marker in the note, customers
   by VAT number, tax code or e-mail); if found, bind it and send nothing. A customer
   the ERP has already, made there by the office (the same VAT number, else tax code),
   is bound to that ERP customer too, rather than created a second time.
3. Create it; on success bind the ERP key and clear the claim in one commit. A clear
   refusal clears `uncertain`; a lost or unclear answer keeps it, so the next push
   (this one's immediate look-up included) finds the record rather than resending.
A claim held by a live pusher is left alone, so two pushes running at once never
send the same record; a claim whose lease expired is taken over, and since the record
is uncertain, looked up first. A claim whose owner is seen to have died (same host,
process gone) first settles: the ERP may still be working on the request the dead
process had sent (it gives one request up to 5 minutes), and a look-up made before it
commits would find nothing and send the record a second time. The first push to see
the death marks the claim as settling and notes the time; the record is looked up and
sent only once `settle` has passed since then.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from passweb_tui.engine.erp.client import Filter, MexalClient, in_context
from passweb_tui.engine.erp.errors import (
    AuthError,
    ContextMissingError,
    ErpConnectionError,
    ErpError,
    ErpTimeoutError,
)
from passweb_tui.engine.orders import states
from passweb_tui.engine.orders.documents import (
    CUSTOMERS_RESOURCE,
    ORDERS_RESOURCE,
    DocumentSeries,
    build_document,
    normalize,
    split_key,
)
from passweb_tui.engine.orders.intake import ERP_CUSTOMER_FIELDS
from passweb_tui.engine.orders.models import (
    WebCustomer,
    WebOrder,
    WebOrderRow,
    WebPushAttempt,
    utcnow,
)
from passweb_tui.engine.orders.refresh import documents_with_marker
from passweb_tui.engine.owners import LiveHere, incarnation, new_token, token_alive, token_parts
from passweb_tui.engine.store import Store, database_words

log = logging.getLogger(__name__)

orders_t = WebOrder.__table__  # type: ignore[attr-defined]
rows_t = WebOrderRow.__table__  # type: ignore[attr-defined]
cust_t = WebCustomer.__table__  # type: ignore[attr-defined]
attempt_t = WebPushAttempt.__table__  # type: ignore[attr-defined]

#: a claim older than this is taken over even if its owner cannot be proven dead
#: (another host); longer than the ERP's own 5-minute limit on one request
CLAIM_LEASE = timedelta(minutes=15)
#: how long the claim of a pusher seen dead settles before its record is looked up and
#: sent again: longer than the ERP's 5-minute limit on one request, so whatever the dead
#: process had sent is committed (or given up) by the ERP by then
SETTLE = timedelta(minutes=6)
#: a claim is renewed before its record's request once it is this old (seconds)
RENEW_AFTER_S = 60.0
#: the mark of a settling claim: this, then the dead owner's token
SETTLING = "~"
#: how long an order waits for its new customer, created by a concurrent push
CUSTOMER_WAIT_S = 30.0
#: what claim candidates are read at a time
CANDIDATE_PAGE = 200
#: orders claimed (and their outcomes written) per commit
CLAIM_BATCH = 16

# pushers running in this process, by owner token, so a claim left by one that died
# (an exception mid-push) is recognised as dead although the process lives on
_LIVE_OWNERS = LiveHere()


class PushAborted(Exception):
    """The push stopped before its end (cancelled)."""


@dataclass
class PushResult:
    #: customers created, or found in the ERP after an attempt with a lost answer
    customers_sent: int = 0
    customers_failed: int = 0
    #: orders created in the ERP by this push
    orders_sent: int = 0
    orders_failed: int = 0
    #: orders found already in the ERP by their marker (an earlier attempt's lost
    #: answer, recovered): in the ERP now, but not sent by this push
    orders_recovered: int = 0
    #: waiting records left alone because another push holds them
    skipped_busy: int = 0
    #: waiting records whose last request may still be in the ERP's hands (its sender
    #: died, or its answer was lost), as (entity, site id, the moment they may be looked
    #: up and sent again); see SETTLE
    settling: list[tuple[str, str, datetime]] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # entity, id, message
    #: new site customers the ERP had already (same VAT number, else tax code), bound to
    #: that ERP customer instead of created again, as (site id, message); counted as sent
    matched: list[tuple[str, str]] = field(default_factory=list)
    #: those of `errors` that failed because the ERP did not answer (no connection, a
    #: timeout, its link down, too busy), not because it refused them, as (entity, id)
    unreachable: list[tuple[str, str]] = field(default_factory=list)
    #: orders of `errors` held by their new customer, not in the ERP: order id to the
    #: web customer's site id
    held: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.customers_failed + self.orders_failed

    def to_json(self) -> dict[str, Any]:
        return {
            "orders": {
                "sent": self.orders_sent + self.orders_recovered,
                "failed": self.orders_failed,
            },
            "customers": {"sent": self.customers_sent, "failed": self.customers_failed},
        }


#: steps at which a test may inject a crash: after the claim commit (before the
#: request), after the ERP accepted (before the store knows), after the store commit
CRASH_STEPS = ("claimed", "accepted", "recorded")


def owner_alive(owner: str) -> bool | None:
    """Whether the pusher that holds a claim still runs; None when it cannot be told
    (another host or PID namespace, or a settling claim, whose owner is known to be
    dead). See owners.token_alive."""
    return token_alive(owner, _LIVE_OWNERS)


def settling_message(settling: Sequence[tuple[str, str, datetime]]) -> str:
    """One line on the records left to settle by a push (see SETTLE)."""
    until = max(u for _, _, u in settling)
    names = [f"{entity} {ident}" for entity, ident, _ in settling[:5]]
    more = f" and {len(settling) - 5} more" if len(settling) > 5 else ""
    return (
        f"{', '.join(names)}{more} wait until {until:%H:%M:%S} UTC before being sent again:"
        " an earlier attempt's request may still be in the ERP's hands (its sender stopped,"
        " or its answer was lost), and a look-up then finds what it made"
    )


def order_subject(order_id: str) -> str:
    """How an order's push errors start (before ": " and the reason)."""
    return f"order {order_id}"


def customer_subject(name: str | None, site_id: int) -> str:
    """How a new web customer's push errors start (before ": " and the reason)."""
    return f"customer {name!r} (site id {site_id})"


def error_reason(error: str, subject: str) -> str:
    """A push error without the subject it starts with (for a view that names the
    order or the customer already); an error that starts otherwise is left whole."""
    prefix = f"{subject}: "
    return error[len(prefix) :] if error.startswith(prefix) else error


#: how the client words a failure for want of an answer (a busy ERP, a timeout, no
#: connection): the ERP refused nothing (see erp.client's errors)
_NO_ANSWER = re.compile(
    r"(?:^|: )(?:ERP is busy|ERP did not answer in time|ERP timed out working on the request"
    r"|the ERP at \S+ did not answer in |cannot reach the ERP at "
    r"|connection to the ERP (?:at \S+ )?was lost|ERP failed to serve the request)"
)


def no_answer(error: str) -> bool:
    """Whether a push error says the ERP did not answer (nothing to mend in the record)
    rather than that it refused the record."""
    return _NO_ANSWER.search(error) is not None


def failure_note(entity: str, ident: str, error: str) -> tuple[str, str]:
    """A record the push could not send, for a run's notes or a log line: its subject
    once, then "not sent: " and the reason, as (subject, the line)."""
    if entity == "customer":
        marker = f"(site id {ident}): "
        head, found, reason = error.partition(marker)
        if found and head.startswith("customer"):
            subject = f"{head}{marker[:-2]}"
            return subject, f"{subject} not sent: {reason}"
        return f"customer {ident}", f"customer {ident} not sent: {error}"
    subject = order_subject(ident) if entity == "order" else f"{entity} {ident}"
    return subject, f"{subject} not sent: {error_reason(error, subject)}"


def failure_notes(result: PushResult) -> list[str]:
    """One line a web customer or order the push could not send, each naming its
    subject once. Orders held by a new customer that this same push could not create
    are told in one line after that customer's, instead of repeating its refusal."""
    customers = {ident: error for entity, ident, error in result.errors if entity == "customer"}
    held: dict[str, list[str]] = {}
    others: list[str] = []
    for entity, ident, error in result.errors:
        cid = result.held.get(ident) if entity == "order" else None
        if cid is not None and cid in customers:
            held.setdefault(cid, []).append(ident)
        elif entity != "customer":
            others.append(failure_note(entity, ident, error)[1])
    lines: list[str] = []
    for cid, error in customers.items():
        subject, line = failure_note("customer", cid, error)
        lines.append(line)
        ids = held.get(cid)
        if ids:
            lines.append(held_note(ids, subject))
    return lines + others


def held_note(order_ids: Sequence[str], customer: str) -> str:
    """The line for orders held by their new customer (`customer`: its subject), which
    was not sent either: its own line says why."""
    more = f" and {len(order_ids) - 10} more" if len(order_ids) > 10 else ""
    return (
        f"order{'s' if len(order_ids) > 1 else ''} {', '.join(order_ids[:10])}{more} not sent:"
        f" held by {customer}, not sent either"
    )


def _whole(value: Any) -> int:
    """A whole number given as an int or as its text; ValueError for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(value)
    return int(value)


def _died_here(owner: str) -> bool:
    """A pusher of this very process that ended without releasing its claims (an error
    mid-push, and its claims could not be marked settling either): its requests were
    synchronous, and one whose outcome it did not learn settles as an outcome of its
    own, so what it still holds was never sent, and need not settle."""
    parts = token_parts(owner)
    if parts is None or parts[1] != os.getpid():
        return False
    born, mine = parts[2], incarnation(os.getpid())
    if born != mine:
        # an earlier process with this id (a container's PID 1), or one from before
        # incarnations were recorded, where this system tells them: it settles
        return False
    return owner_alive(owner) is False


def _claim_free(
    owner: str | None, claimed_at: datetime | None, stale: datetime, settled: datetime
) -> bool:
    """Whether a claim may be taken: none, settled, left by a dead pusher of this process,
    or expired while its owner cannot be seen (another machine). A claim of a pusher
    seen alive is never taken, however old: it may be about to send."""
    if owner is None:
        return True
    if claimed_at is not None and claimed_at.tzinfo is None:
        claimed_at = claimed_at.replace(tzinfo=stale.tzinfo)
    if owner.startswith(SETTLING):
        return claimed_at is not None and claimed_at < settled
    if _died_here(owner):
        return True
    return claimed_at is not None and claimed_at < stale and owner_alive(owner) is None


@dataclass(frozen=True)
class _Candidate:
    id: Any
    attempts: int
    uncertain: bool
    #: the claim as read (a free claim's owner and time), compared again when claiming
    owner: str | None = None
    claimed_at: datetime | None = None


@dataclass
class _Claim:
    site_id: str
    attempt_id: int
    was_uncertain: bool
    #: when it was made (this process's monotonic clock), for _needs_renewal
    made: float = field(default_factory=time.monotonic)


class _CustomerPending(LookupError):
    """The order's new customer is being created by another push; try the order later."""


class _CustomerMissing(LookupError):
    """The order's new customer is not in the ERP: its creation failed."""

    def __init__(self, message: str, customer_id: Any) -> None:
        super().__init__(message)
        self.customer_id = customer_id


@dataclass
class _Outcome:
    """What became of one claimed order, to be written with the others of its batch."""

    claim: _Claim
    outcome: str  # created | found | failed | uncertain | deferred (sent by a later push)
    state: str = states.NEW
    erp_key: str | None = None
    error: str | None = None
    uncertain: bool = False
    snapshot: dict[str, Any] | None = None
    #: every ERP document found with the order's marker, when there is more than one
    duplicates: list[str] | None = None
    #: an ERP refusal that stops the whole push (credentials, company): see _REFUSALS
    stop: ErpError | None = None
    #: failed because the ERP did not answer (see ErpError.retryable), not a refusal
    unreachable: bool = False
    #: its create request went out and its outcome is unknown: the ERP may still be
    #: working on it, so its claim settles (see SETTLE) instead of ending
    settle: bool = False
    #: failed because its new customer is not in the ERP: that customer's site id
    held_by: str | None = None

    @classmethod
    def failure(
        cls,
        claim: _Claim,
        message: str,
        *,
        uncertain: bool,
        cause: ErpError | None = None,
        sent: bool = False,
    ) -> _Outcome:
        return cls(
            claim,
            "uncertain" if uncertain else "failed",
            error=message,
            uncertain=uncertain,
            stop=cause if cause is not None and stops_push(cause) else None,
            unreachable=cause is not None and cause.retryable,
            settle=sent and uncertain and (cause is None or may_still_run(cause)),
        )


#: refusals of the ERP that no other record would escape (rejected credentials, a wrong
#: company or year): the push stops at the first, instead of repeating a failed login
#: once a record (the ERP locks a user after a few) and reporting each record as refused
_REFUSALS = (AuthError, ContextMissingError)


def _flagged(flags: Any, site_no: int) -> bool:
    """Whether a per-site array ([[site, "S" or "N"], ...]) flags the record for this site."""
    return isinstance(flags, list) and any(
        isinstance(p, list) and len(p) == 2 and p[0] == site_no and p[1] == "S" for p in flags
    )


def may_still_run(exc: ErpError) -> bool:
    """Whether a write that failed this way may still be in the ERP's hands: no answer
    came (the connection was lost, or this side stopped waiting), or the ERP said it
    timed out. An answer of any other kind means the ERP is done with the request."""
    return exc.outcome_unknown and isinstance(exc, ErpConnectionError | ErpTimeoutError)


def stops_push(exc: ErpError) -> bool:
    """Whether this failure of one record stops the whole push: a refusal no other record
    would escape, or an ERP that cannot be reached at all (nothing was sent; trying each
    of the other records against it would only fail each, and slowly)."""
    if isinstance(exc, _REFUSALS):
        return True
    return isinstance(exc, ErpConnectionError) and not exc.outcome_unknown


def _ident(value: Any) -> str:
    """An identifier (VAT number, tax code, e-mail) as compared: no spaces, one case."""
    return "".join(str(value or "").split()).upper()


def _name(value: Any) -> tuple[str, ...]:
    """A customer's name as compared: its words in one case, in any order."""
    return tuple(sorted(str(value or "").casefold().split()))


class Pusher:
    """Pushes what waits on the site: new customers first, then confirmed orders."""

    def __init__(
        self,
        store: Store,
        client: MexalClient,
        *,
        ledger: str = "501",
        series: DocumentSeries | None = None,
        site_no: int = 1,
        crash: Callable[[str, str], None] | None = None,
        lease: timedelta = CLAIM_LEASE,
        settle: timedelta = SETTLE,
        workers: int | None = None,
        log_failures: bool = True,
        match_existing: bool = True,
        zone: str = "",
    ) -> None:
        self.store = store
        # the day of an order, its document's date, is counted in the site's zone
        self.zone = ZoneInfo(zone) if zone else None
        self.client = client
        self.ledger = ledger
        self.series = series or DocumentSeries()
        self.site_no = site_no
        self.crash = crash
        # False: a record that failed is logged at DEBUG only, its caller telling of it
        self.failure_level = logging.WARNING if log_failures else logging.DEBUG
        self.lease = lease
        self.settle = settle
        # a new site customer the ERP already has (by VAT number, else tax code) is bound
        # to that customer instead of created again (see existing_customer)
        self.match_existing = match_existing
        # a claim younger than this is surely still ours (no other push may take the
        # claim of a live pusher before its lease expires): no renewal, no write
        self.renew_after_s = min(RENEW_AFTER_S, lease.total_seconds() / 3)
        self.owner = new_token()
        # as many records at once as the client puts requests on the wire
        self.workers = workers or client.config.max_in_flight
        self._currencies: dict[str, int] | None = None
        self._bad_currencies: dict[str, str] = {}
        self._lock = threading.Lock()
        self._sources: dict[str, tuple[Any, list[Any], Any]] = {}
        # the push's cancel, also looked at between the orders of a claimed batch
        self._cancel: threading.Event | None = None

    # --- the whole push ---------------------------------------------------------------

    def push(
        self,
        *,
        order_ids: Sequence[str] | None = None,
        cancel: threading.Event | None = None,
        on_progress: Callable[[int, int, str | None], None] | None = None,
        check: Callable[[], None] | None = None,
    ) -> PushResult:
        """Push waiting customers, then waiting orders (all, or just `order_ids`).

        Between records it stops with PushAborted when `cancel` is set, and calls
        `check`, which may raise to stop the push (a run's own cancellation)."""
        result = PushResult()
        _LIVE_OWNERS.add(self.owner)
        self._cancel = cancel
        try:
            total = self.count_waiting(order_ids)
            failed_customers: dict[int, str] = {}
            customers = self._candidates(cust_t, self._customer_scope(order_ids), result)
            self._parallel(
                customers,
                lambda cand: self._push_customer(cand, result, failed_customers),
                cancel,
                check,
            )
            orders = self._candidates(orders_t, self._order_scope(order_ids), result)
            done = 0
            for start in range(0, len(orders), CANDIDATE_PAGE):
                chunk = orders[start : start + CANDIDATE_PAGE]
                self._sources = self._load_sources([c.id for c in chunk])
                batches = [chunk[i : i + CLAIM_BATCH] for i in range(0, len(chunk), CLAIM_BATCH)]

                def push_batch(batch: list[_Candidate]) -> None:
                    self._push_orders(batch, result)

                def progress(n: int, base: int = done) -> None:
                    if on_progress is not None:
                        on_progress(min(base + n * CLAIM_BATCH, total), total, None)

                self._parallel(batches, push_batch, cancel, check, progress=progress)
                done += len(chunk)
            self._sources = {}
            return result
        except Exception as exc:
            # what was done before the stop still counts: the caller reads it from here
            exc.push_result = result  # type: ignore[attr-defined]
            self._settle_leftovers()
            raise
        finally:
            _LIVE_OWNERS.discard(self.owner)

    def _parallel(
        self,
        ids: list[Any],
        work: Callable[[Any], None],
        cancel: threading.Event | None,
        check: Callable[[], None] | None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Run `work` on each id with `self.workers` threads (the ERP takes a few requests
        at once, and each record's claim makes sharing them safe). The first exception
        stops every worker before its next record and is raised here."""
        feed = iter(ids)
        lock = threading.Lock()
        failures: list[BaseException] = []
        done = 0

        def worker() -> None:
            nonlocal done
            while True:
                with lock:
                    if failures:
                        return
                    item = next(feed, None)
                if item is None:
                    return
                try:
                    self._check(cancel, check)
                    work(item)
                except BaseException as exc:  # handed to the calling thread below
                    with lock:
                        failures.append(exc)
                    return
                with lock:
                    done += 1
                    count = done
                if progress is not None:
                    progress(count)

        n = max(1, min(self.workers, len(ids)))
        if n == 1:
            worker()
        else:
            threads = [
                threading.Thread(target=in_context(worker), name=f"push-{i}", daemon=True)
                for i in range(n)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if failures:
            raise failures[0]

    @staticmethod
    def _check(cancel: threading.Event | None, check: Callable[[], None] | None) -> None:
        if cancel is not None and cancel.is_set():
            raise PushAborted("push cancelled")
        if check is not None:
            check()

    def count_waiting(self, order_ids: Sequence[str] | None = None) -> int:
        with self.store.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(orders_t)
                    .where(self._order_scope(order_ids))
                ).scalar_one()
            )

    def _order_scope(self, order_ids: Sequence[str] | None) -> sa.ColumnElement[bool]:
        cond = orders_t.c.state == states.NEW
        if order_ids is not None:
            cond = sa.and_(cond, orders_t.c.id.in_(list(order_ids)))
        return cond

    def _customer_scope(self, order_ids: Sequence[str] | None) -> sa.ColumnElement[bool]:
        # customers of orders that wait to be sent; a customer whose only order has an
        # unconfirmed payment is not created in the ERP yet
        waiting = sa.select(orders_t.c.web_customer_id).where(self._order_scope(order_ids))
        return sa.and_(cust_t.c.erp_code.is_(None), cust_t.c.id.in_(waiting))

    def _candidates(
        self, table: sa.Table, scope: sa.ColumnElement[bool], result: PushResult
    ) -> list[_Candidate]:
        """Records in scope whose claim is free (see _claim_free), with the version
        (`attempts`) their claim is compared against. Claims of pushers seen dead for
        the first time start settling here; the records still settling are noted in
        `result`."""
        now = utcnow()
        stale, settled = now - self.lease, now - self.settle
        with self.store.read() as conn:
            owners = list(
                conn.execute(
                    sa.select(table.c.claim_owner)
                    .where(scope, table.c.claim_owner.is_not(None))
                    .distinct()
                ).scalars()
            )
        live = [o for o in owners if not o.startswith(SETTLING)]
        died = [o for o in live if owner_alive(o) is False and not _died_here(o)]
        if died:
            with self.store.write() as conn:
                for owner in died:  # one UPDATE per dead process: a rare event
                    conn.execute(
                        sa.update(table)
                        .where(table.c.claim_owner == owner)
                        .values(claim_owner=(SETTLING + owner)[:80], claimed_at=now)
                    )
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(
                    table.c.id,
                    table.c.attempts,
                    table.c.uncertain,
                    table.c.claim_owner,
                    table.c.claimed_at,
                )
                .where(scope)
                .order_by(table.c.created if table is orders_t else table.c.id, table.c.id)
            ).all()
        free = []
        entity = "order" if table is orders_t else "customer"
        for r in rows:
            if _claim_free(r.claim_owner, r.claimed_at, stale, settled):
                free.append(
                    _Candidate(r.id, r.attempts, bool(r.uncertain), r.claim_owner, r.claimed_at)
                )
            elif r.claim_owner.startswith(SETTLING):
                since = r.claimed_at
                # naive from SQLite (UTC), or in the session's zone from PostgreSQL
                since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
                with self._lock:
                    result.settling.append((entity, str(r.id), since + self.settle))
        return free

    # --- claims -------------------------------------------------------------------------

    def _claim(
        self, table: sa.Table, entity: str, cand: _Candidate, extra: sa.ColumnElement[bool]
    ) -> _Claim | None:
        """Compare-and-set claim plus the attempt record, committed before any request.

        Every claim bumps `attempts`, so the UPDATE matches only if nobody claimed the
        record since it was found free; otherwise the record is someone else's now."""
        now = utcnow()
        with self.store.write() as conn:
            # free still? `attempts` tells a claim made since the candidates were read,
            # not a claim renewed since (its owner about to send): look again, under the
            # write lock (SQLite) or the row's lock (PostgreSQL)
            held = sa.select(table.c.claim_owner, table.c.claimed_at).where(table.c.id == cand.id)
            if conn.dialect.name == "postgresql":
                held = held.with_for_update()
            row = conn.execute(held).first()
            if row is None or not _claim_free(
                row.claim_owner, row.claimed_at, now - self.lease, now - self.settle
            ):
                return None
            updated = conn.execute(
                sa.update(table)
                .where(
                    table.c.id == cand.id,
                    table.c.attempts == cand.attempts,
                    # and the claim is the one read: an owner that renewed it since (about
                    # to send) keeps it, however old it looked when read
                    table.c.claim_owner.is_not_distinct_from(cand.owner),
                    table.c.claimed_at.is_not_distinct_from(cand.claimed_at),
                    extra,
                )
                .values(
                    claim_owner=self.owner,
                    claimed_at=now,
                    attempts=cand.attempts + 1,
                    uncertain=True,
                )
            ).rowcount
            if updated != 1:
                return None
            attempt_id = conn.execute(
                sa.insert(attempt_t)
                .values(
                    entity=entity,
                    site_id=str(cand.id),
                    owner=self.owner,
                    started_at=now,
                    outcome="sending",
                )
                .returning(attempt_t.c.id)
            ).scalar_one()
        return _Claim(str(cand.id), attempt_id, cand.uncertain)

    def _release(
        self,
        conn: sa.Connection,
        table: sa.Table,
        site_id: Any,
        claim: _Claim,
        *,
        outcome: str,
        uncertain: bool,
        error: str | None,
        erp_key: str | None = None,
        values: dict[str, Any] | None = None,
        settle: bool = False,
    ) -> bool:
        """End a claim: write its outcome on the record and its attempt, in `conn`'s
        transaction; whether the record was still ours. With `settle` (a request went out
        and its outcome is unknown) the claim is not freed but settles (see SETTLE).
        """
        now = utcnow()
        changed = conn.execute(
            sa.update(table)
            .where(table.c.id == site_id, table.c.claim_owner == self.owner)
            .values(
                claim_owner=(SETTLING + self.owner)[:80] if settle else None,
                claimed_at=now if settle else None,
                uncertain=uncertain,
                last_error=error,
                **(values or {}),
            )
        ).rowcount
        conn.execute(
            sa.update(attempt_t)
            .where(attempt_t.c.id == claim.attempt_id)
            .values(finished_at=now, outcome=outcome, error=error, erp_key=erp_key)
        )
        return changed == 1

    def _settle_leftovers(self) -> None:
        """A push stopped by an error of its own: the claims it still holds (a record
        whose request may have gone out) settle, so that neither this process, where it
        lives on, nor another one sends them before the ERP is done with them. Best
        effort: the error that stopped the push may be the store's."""
        try:
            now = utcnow()
            with self.store.write() as conn:
                for table in (cust_t, orders_t):
                    conn.execute(
                        sa.update(table)
                        .where(table.c.claim_owner == self.owner)
                        .values(claim_owner=(SETTLING + self.owner)[:80], claimed_at=now)
                    )
        except Exception as exc:
            # one line where warnings are shown (the error that stopped the push says the
            # rest); the log file keeps the traceback
            log.warning(
                "the claims of a stopped push could not be marked settling: %s",
                database_words(exc) or " ".join(f"{exc.__class__.__name__}: {exc}".split()),
            )
            log.debug("marking the claims settling failed", exc_info=True)

    def _needs_renewal(self, claim: _Claim) -> bool:
        """Whether a claim is old enough that it may have been taken meanwhile (a batch
        sent to a slow ERP): only then is it renewed and checked, a write each."""
        return time.monotonic() - claim.made >= self.renew_after_s

    def _renew(self, table: sa.Table, site_id: Any) -> bool:
        """Right before a record's create request: whether its claim is still ours, its
        lease counted again from now. A batch sent one by one to a slow ERP may outlive
        the lease; a pusher elsewhere may then have taken the record over (and looked it
        up, and sent it), and this one must not send it too."""
        with self.store.write() as conn:
            renewed = conn.execute(
                sa.update(table)
                .where(table.c.id == site_id, table.c.claim_owner == self.owner)
                .values(claimed_at=utcnow())
            ).rowcount
        return renewed == 1

    def _crash(self, step: str, site_id: str) -> None:
        if self.crash is not None:
            self.crash(step, site_id)

    # --- customers ------------------------------------------------------------------

    def _customer_lookup(self, row: Any) -> str | None:
        """The ERP customer an earlier attempt may have created for this site customer
        (its outcome unknown): searched by the site customer's VAT number, else its tax
        code, else its e-mail (only the first of these it has), and taken only when it
        agrees on every one of the three the site customer has, bears its name (the same
        words, in any case and order: "ROSSI MARIO" for "Mario Rossi", as the ERP's
        staff may have retyped it) and no other site customer is bound to it. Another
        company sharing an e-mail or a tax code is never taken, nor a customer the ERP
        had before sharing the e-mail of one who gave only that."""
        known = [
            ("partita_iva", row.vat_number),
            ("codice_fiscale", row.tax_code),
            ("email", row.email),
        ]
        given = [(campo, value) for campo, value in known if _ident(value)]
        if not given:
            return None
        campo, value = given[0]
        sent = {c: _ident(v) for c, v in given}
        name = _name(row.name)
        codes = sorted(
            str(r["codice"])
            for page in self.client.iter_pages(  # every page: see find_order
                CUSTOMERS_RESOURCE,
                filters=[Filter(campo, "=", value, case_insensitive=campo == "email")],
                fields=["codice", "ragione_sociale", *(c for c, _ in known)],
                page_size=10,
            )
            for r in page.records
            if r.get("codice")
            and _name(r.get("ragione_sociale")) == name
            and all(_ident(r.get(c)) == v for c, v in sent.items())
        )
        free = self._unbound(codes, row.id)
        return free[0] if free else None

    def _existing_customer(self, row: Any) -> tuple[str, str] | None:
        """The ERP customer a new site customer already is, as (code, what matched): one
        with the same VAT number or, for a site customer without one, the same tax code,
        that no other site customer is bound to; of several, one flagged for this site
        first, then the lowest code. An e-mail alone never matches (a family or an office
        shares one), and a VAT number given on the site is never matched by tax code."""
        if _ident(row.vat_number):
            campo, value, what = "partita_iva", row.vat_number, "VAT number"
        elif _ident(row.tax_code):
            campo, value, what = "codice_fiscale", row.tax_code, "tax code"
        else:
            return None
        wanted = _ident(value)
        found = {
            str(r["codice"]): _flagged(r.get("trasf_sito"), self.site_no)
            for page in self.client.iter_pages(  # every page: see find_order
                CUSTOMERS_RESOURCE,
                filters=[Filter(campo, "=", value)],
                fields=["codice", campo, "trasf_sito"],
                page_size=10,
            )
            for r in page.records
            if r.get("codice") and _ident(r.get(campo)) == wanted
        }
        free = self._unbound(list(found), row.id)
        if not free:
            return None
        code = min(free, key=lambda c: (not found[c], c))
        return code, f"same {what} {value}"

    def _unbound(self, codes: list[str], cid: Any) -> list[str]:
        """Those of these ERP codes that no site customer but `cid` is bound to."""
        if not codes:
            return []
        with self.store.read() as conn:
            bound = set(
                conn.execute(
                    sa.select(cust_t.c.erp_code).where(
                        cust_t.c.erp_code.in_(codes), cust_t.c.id != cid
                    )
                ).scalars()
            )
        return [c for c in codes if c not in bound]

    def _customer_record(self, row: Any) -> dict[str, Any]:
        # nothing is cut to fit: a value the ERP cannot take is refused with its reason
        # and the customer waits for the operator, rather than going in altered
        record: dict[str, Any] = {
            "codice": f"{self.ledger}.AUTO",
            "ragione_sociale": row.name,
            "trasf_sito": [[self.site_no, "S"]],
        }
        for src, dst in ERP_CUSTOMER_FIELDS.items():
            if src == "name":
                continue
            value = getattr(row, src)
            if value:
                record[dst] = value
        return record

    def _push_customer(self, cand: _Candidate, result: PushResult, failed: dict[int, str]) -> None:
        cid = cand.id
        extra = cust_t.c.erp_code.is_(None)
        claim = self._claim(cust_t, "customer", cand, extra)
        if claim is None:
            with self._lock:
                result.skipped_busy += 1
            return
        with self.store.read() as conn:
            row = conn.execute(sa.select(cust_t).where(cust_t.c.id == cid)).one()
        self._crash("claimed", claim.site_id)
        name = customer_subject(row.name, cid)
        if claim.was_uncertain:
            try:
                code = self._customer_lookup(row)
            except ErpError as exc:
                self._fail_customer(
                    cid,
                    claim,
                    f"{name}: looking it up in the ERP failed: {exc}",
                    uncertain=True,
                    result=result,
                    failed=failed,
                    unreachable=exc.retryable,
                )
                if stops_push(exc):
                    raise
                return
            if code is not None:
                self._bind_customer(cid, claim, code, "found", result, failed)
                return
        if self.match_existing:
            try:
                existing = self._existing_customer(row)
            except ErpError as exc:
                self._fail_customer(
                    cid,
                    claim,
                    f"{name}: looking for it among the ERP's customers failed: {exc}",
                    uncertain=claim.was_uncertain,
                    result=result,
                    failed=failed,
                    unreachable=exc.retryable,
                )
                if stops_push(exc):
                    raise
                return
            if existing is not None:
                code, why = existing
                if self._bind_customer(cid, claim, code, "matched", result, failed):
                    with self._lock:
                        result.matched.append(
                            (
                                str(cid),
                                f"{name} is the ERP's customer {code} already ({why}):"
                                " bound to it, not created again",
                            )
                        )
                return
        if self._needs_renewal(claim) and not self._renew(cust_t, cid):
            with self.store.write() as conn:  # the attempt ends; the record is another's
                self._release(
                    conn, cust_t, cid, claim, outcome="deferred", uncertain=True, error=None
                )
            with self._lock:
                result.skipped_busy += 1
            return
        try:
            code = self.client.create(CUSTOMERS_RESOURCE, self._customer_record(row))
        except ErpError as exc:
            message = customer_error(name, self.ledger, exc)
            if exc.outcome_unknown:
                try:
                    code = self._customer_lookup(row)
                except ErpError:
                    code = None
                if code is not None:
                    self._bind_customer(cid, claim, code, "found", result, failed)
                    return
            self._fail_customer(
                cid,
                claim,
                message,
                uncertain=exc.outcome_unknown,
                result=result,
                failed=failed,
                unreachable=exc.retryable,
                sent=True,
                cause=exc,
            )
            if stops_push(exc):
                raise
            return
        except Exception as exc:  # an unexpected failure after the request: outcome unknown
            self._fail_customer(
                cid,
                claim,
                f"{name}: {exc.__class__.__name__}: {exc}",
                uncertain=True,
                result=result,
                failed=failed,
                sent=True,
            )
            return
        self._crash("accepted", claim.site_id)
        self._bind_customer(cid, claim, code, "created", result, failed)
        self._crash("recorded", claim.site_id)

    def _bind_customer(
        self,
        cid: int,
        claim: _Claim,
        code: str,
        outcome: str,
        result: PushResult,
        failed: dict[int, str],
    ) -> bool:
        """Bind the site customer to the ERP's `code`; whether this push did (not when
        another site customer holds the code, or the claim was taken over meanwhile)."""
        try:
            with self.store.write() as conn:
                ours = self._release(
                    conn,
                    cust_t,
                    cid,
                    claim,
                    outcome=outcome,
                    uncertain=False,
                    error=None,
                    erp_key=code,
                    values={"erp_code": code, "sent_at": utcnow()},
                )
        except sa.exc.IntegrityError:
            # another site customer holds this ERP code (bound meanwhile): this one waits
            # for the operator, with its orders, instead of stopping every push
            with self.store.read() as conn:
                holder = conn.execute(
                    sa.select(cust_t.c.id).where(cust_t.c.erp_code == code)
                ).scalar_one_or_none()
            self._fail_customer(
                cid,
                claim,
                f"customer (site id {cid}): the ERP customer {code} is already the site"
                f" customer {holder}; the two need an operator to tell them apart or merge them",
                uncertain=False,
                result=result,
                failed=failed,
            )
            return False
        with self._lock:
            if ours:
                result.customers_sent += 1
            else:  # taken over meanwhile: the push that holds it now records it
                result.skipped_busy += 1
        return bool(ours)

    def _fail_customer(
        self,
        cid: int,
        claim: _Claim,
        message: str,
        *,
        uncertain: bool,
        result: PushResult,
        failed: dict[int, str],
        unreachable: bool = False,
        sent: bool = False,
        cause: ErpError | None = None,
    ) -> None:
        with self.store.write() as conn:
            ours = self._release(
                conn,
                cust_t,
                cid,
                claim,
                outcome="uncertain" if uncertain else "failed",
                uncertain=uncertain,
                error=message,
                settle=sent and uncertain and (cause is None or may_still_run(cause)),
            )
        with self._lock:
            if not ours:  # taken over meanwhile: the push that holds it now tells of it
                result.skipped_busy += 1
                return
            failed[cid] = message
            result.customers_failed += 1
            result.errors.append(("customer", str(cid), message))
            if unreachable:
                result.unreachable.append(("customer", str(cid)))
        log.log(self.failure_level, "%s", message)

    # --- orders -----------------------------------------------------------------------

    def find_order(self, order_id: str) -> list[str]:
        """Keys of ERP documents whose note carries the order's marker (see
        refresh.documents_with_marker)."""
        return documents_with_marker(self.client, order_id)

    def _currency_id(self, iso: str) -> int | None:
        with self._lock:
            return self._currency_locked(iso)

    def _currency_locked(self, iso: str) -> int | None:
        if self._currencies is None:
            found: dict[str, int] = {}
            bad: dict[str, str] = {}
            for page in self.client.iter_pages(
                "dati-generali/valute", fields=["codice", "sigla_iso"]
            ):
                for rec in page.records:
                    code, sigla = rec.get("codice"), rec.get("sigla_iso")
                    if not sigla or code is None:
                        continue
                    try:
                        found[str(sigla).upper()] = _whole(code)
                    except ValueError:
                        # one malformed currency fails only the orders in that currency
                        bad[str(sigla).upper()] = (
                            f"the ERP's currency record for {sigla} (dati-generali/valute)"
                            f" has codice {code!r}, not a whole number"
                        )
            self._currencies, self._bad_currencies = found, bad
        if iso in self._bad_currencies:
            raise LookupError(self._bad_currencies[iso])
        if iso not in self._currencies:
            raise LookupError(f"currency {iso} is not among the ERP's currencies")
        return self._currencies[iso]

    def _push_orders(self, cands: list[_Candidate], result: PushResult) -> None:
        """Claim a few orders in one commit, send them one by one, record their outcomes
        in one commit. A binding written later than its request is safe: until then the
        order is uncertain, and an uncertain order is looked up before anything is sent."""
        claims = self._claim_orders(cands)
        if len(claims) < len(cands):
            with self._lock:
                result.skipped_busy += len(cands) - len(claims)
        outcomes: list[_Outcome] = []
        stop: ErpError | PushAborted | None = None
        try:
            for i, claim in enumerate(claims):
                if i and self._cancel is not None and self._cancel.is_set():
                    # cancelled: the rest of the batch is freed untried, at once
                    stop = PushAborted("push cancelled")
                    outcomes.extend(
                        _Outcome(c, "deferred", uncertain=c.was_uncertain) for c in claims[i:]
                    )
                    break
                outcome = self._send_order(claim)
                outcomes.append(outcome)
                if outcome.stop is not None:
                    # the rest of the batch waits, untried (an uncertain one stays so)
                    stop = outcome.stop
                    outcomes.extend(
                        _Outcome(c, "deferred", uncertain=c.was_uncertain) for c in claims[i + 1 :]
                    )
                    break
        except Exception:
            # a failure of our own (not the ERP's): keep what is known, then stop. The
            # orders after the one that failed were never sent: free again at once; that
            # one's claim is left to settle (see _settle_leftovers)
            later = claims[len(outcomes) + 1 :]
            outcomes.extend(_Outcome(c, "deferred", uncertain=c.was_uncertain) for c in later)
            self._finish_orders(outcomes, result)
            raise
        self._finish_orders(outcomes, result)
        if stop is not None:
            raise stop

    def _claim_orders(self, cands: list[_Candidate]) -> list[_Claim]:
        """Claim those of `cands` that are still free, in one transaction committed before
        any request. SQLite: BEGIN IMMEDIATE holds the write lock for the read and the
        update; PostgreSQL: the rows are locked (others skip them) until the commit."""
        if not cands:
            return []
        stale = utcnow() - self.lease
        now = utcnow()
        ids = [c.id for c in cands]
        with self.store.write() as conn:
            query = sa.select(
                orders_t.c.id,
                orders_t.c.uncertain,
                orders_t.c.claim_owner,
                orders_t.c.claimed_at,
            ).where(orders_t.c.id.in_(ids), orders_t.c.state == states.NEW)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            settled = now - self.settle
            free = [
                row
                for row in conn.execute(query).all()
                if _claim_free(row.claim_owner, row.claimed_at, stale, settled)
            ]
            if not free:
                return []
            conn.execute(
                sa.update(orders_t)
                .where(orders_t.c.id.in_([r.id for r in free]))
                .values(
                    claim_owner=self.owner,
                    claimed_at=now,
                    attempts=orders_t.c.attempts + 1,
                    uncertain=True,
                )
            )
            attempt_ids = (
                conn.execute(
                    sa.insert(attempt_t).returning(attempt_t.c.id, sort_by_parameter_order=True),
                    [
                        {
                            "entity": "order",
                            "site_id": r.id,
                            "owner": self.owner,
                            "started_at": now,
                            "outcome": "sending",
                        }
                        for r in free
                    ],
                )
                .scalars()
                .all()
            )
        order = {c.id: i for i, c in enumerate(cands)}
        claims = [
            _Claim(r.id, aid, bool(r.uncertain)) for r, aid in zip(free, attempt_ids, strict=True)
        ]
        return sorted(claims, key=lambda c: order[c.site_id])

    def _send_order(self, claim: _Claim) -> _Outcome:
        """Look up (if uncertain) and send one claimed order; writes nothing to the store."""
        oid = claim.site_id
        self._crash("claimed", oid)
        name = order_subject(oid)
        if claim.was_uncertain:
            try:
                keys = self.find_order(oid)
            except ErpError as exc:
                return _Outcome.failure(
                    claim,
                    f"{name}: an earlier attempt's outcome is unknown and looking it up in "
                    f"the ERP failed: {exc}",
                    uncertain=True,
                    cause=exc,
                )
            if keys:
                return self._bound(claim, keys, "found", self._try_document(oid))
        try:
            record = self._document(oid)
        except _CustomerPending as exc:
            log.info("%s waits: %s", name, exc)
            return _Outcome(claim, "deferred")
        except (LookupError, ErpError) as exc:
            # nothing was sent: whatever was uncertain before was just cleared by the look-up
            cause = exc if isinstance(exc, ErpError) else None
            failed = _Outcome.failure(claim, f"{name}: {exc}", uncertain=False, cause=cause)
            if isinstance(exc, _CustomerMissing):
                failed.held_by = str(exc.customer_id)
            return failed
        if self._needs_renewal(claim) and not self._renew(orders_t, oid):
            return _Outcome(claim, "deferred", uncertain=claim.was_uncertain)  # not ours now
        try:
            key = self.client.create(ORDERS_RESOURCE, record)
        except ErpError as exc:
            message = f"{name}: the ERP did not take it: {exc}"
            if exc.outcome_unknown:
                try:
                    keys = self.find_order(oid)
                except ErpError:
                    keys = []
                if keys:
                    return self._bound(claim, keys, "found", record)
            return _Outcome.failure(
                claim, message, uncertain=exc.outcome_unknown, cause=exc, sent=True
            )
        except Exception as exc:  # an unexpected failure after the request: outcome unknown
            return _Outcome.failure(
                claim, f"{name}: {exc.__class__.__name__}: {exc}", uncertain=True, sent=True
            )
        self._crash("accepted", oid)
        return self._bound(claim, [key], "created", record)

    def _bound(
        self, claim: _Claim, keys: list[str], outcome: str, sent: dict[str, Any] | None
    ) -> _Outcome:
        key = keys[0]
        note = None
        if len(keys) > 1:
            # should never happen; keep the first and say so, for the operator to settle
            note = f"the ERP holds {len(keys)} documents for this order: {', '.join(keys)}"
            log.error("order %s: %s", claim.site_id, note)
        snapshot = None
        if sent is not None:
            sigla, serie, numero = split_key(key)
            snapshot = normalize({**sent, "sigla": sigla, "serie": serie, "numero": numero})
        return _Outcome(
            claim,
            outcome,
            state=states.TO_CHECK if note else states.STORED,
            erp_key=key,
            error=note,
            snapshot=snapshot,
            duplicates=list(keys) if note else None,
        )

    def _finish_orders(self, outcomes: list[_Outcome], result: PushResult) -> None:
        """Write the outcomes of a batch (orders and their attempts) in one commit. An
        ERP key another site order already holds (an ERP restored from a backup gives
        its numbers out again) is no database error: that order is written on its own,
        to be checked by the operator."""
        if not outcomes:
            return
        try:
            self._write_outcomes(outcomes, result)
        except sa.exc.IntegrityError:
            if len(outcomes) > 1:
                for o in outcomes:
                    self._finish_orders([o], result)
                return
            (o,) = outcomes
            if o.erp_key is None:
                raise
            with self.store.read() as conn:
                holder = conn.execute(
                    sa.select(orders_t.c.id).where(orders_t.c.erp_key == o.erp_key)
                ).scalar_one_or_none()
            if holder is None:
                raise
            o.error = (
                f"order {o.claim.site_id}: the ERP made it document {o.erp_key}, which the site"
                f" order {holder} holds too (an ERP restored from a backup gives its numbers"
                " out again): an operator decides which is which; not sent again"
            )
            o.state, o.erp_key, o.outcome, o.snapshot = states.TO_CHECK, None, "failed", None
            o.duplicates = None
            o.unreachable = o.settle = False
            self._write_outcomes(outcomes, result)

    def _write_outcomes(self, outcomes: list[_Outcome], result: PushResult) -> None:
        now = utcnow()
        orders = [
            {
                "b_id": o.claim.site_id,
                "b_owner": self.owner,
                # a request whose outcome is unknown may still be in the ERP's hands: its
                # claim settles before anyone looks the order up (see SETTLE)
                "b_new_owner": (SETTLING + self.owner)[:80] if o.settle else None,
                "b_claimed_at": now if o.settle else None,
                "b_state": o.state,
                "b_erp_key": o.erp_key,
                "b_duplicates": o.duplicates,
                "b_uncertain": o.uncertain,
                "b_error": o.error,
                "b_sent_at": now if o.erp_key else None,
                "b_snapshot": o.snapshot,
            }
            for o in outcomes
        ]
        attempts = [
            {
                "b_aid": o.claim.attempt_id,
                "b_finished": now,
                "b_outcome": o.outcome,
                "b_error": o.error,
                "b_erp_key": o.erp_key,
            }
            for o in outcomes
        ]
        with self.store.write() as conn:
            # only while the claim is still ours: a claim taken over meanwhile belongs to
            # a push that looks the order up before sending it (and counts it then). The
            # rows stay locked until the commit (PostgreSQL; SQLite's write transaction
            # holds the whole store), so no takeover slips in between this read and the
            # update below, which would have the order counted by both pushes
            ours = set(
                conn.execute(
                    sa.select(orders_t.c.id)
                    .where(
                        orders_t.c.id.in_([o.claim.site_id for o in outcomes]),
                        orders_t.c.claim_owner == self.owner,
                    )
                    .with_for_update()
                ).scalars()
            )
            conn.execute(
                sa.update(orders_t)
                .where(
                    orders_t.c.id == sa.bindparam("b_id"),
                    orders_t.c.claim_owner == sa.bindparam("b_owner"),
                )
                .values(
                    claim_owner=sa.bindparam("b_new_owner"),
                    claimed_at=sa.bindparam("b_claimed_at"),
                    state=sa.bindparam("b_state"),
                    erp_key=sa.bindparam("b_erp_key"),
                    erp_duplicates=sa.bindparam("b_duplicates"),
                    uncertain=sa.bindparam("b_uncertain"),
                    last_error=sa.bindparam("b_error"),
                    sent_at=sa.func.coalesce(sa.bindparam("b_sent_at"), orders_t.c.sent_at),
                    sent_snapshot=sa.bindparam("b_snapshot"),
                    erp_snapshot=sa.bindparam("b_snapshot"),
                ),
                orders,
            )
            conn.execute(
                sa.update(attempt_t)
                .where(attempt_t.c.id == sa.bindparam("b_aid"))
                .values(
                    finished_at=sa.bindparam("b_finished"),
                    outcome=sa.bindparam("b_outcome"),
                    error=sa.bindparam("b_error"),
                    erp_key=sa.bindparam("b_erp_key"),
                ),
                attempts,
            )
        with self._lock:
            for o in outcomes:
                if o.claim.site_id not in ours:
                    log.info(
                        "order %s: taken over by another push, which records it", o.claim.site_id
                    )
                    result.skipped_busy += 1
                elif o.outcome == "created":
                    result.orders_sent += 1
                elif o.outcome == "found":
                    result.orders_recovered += 1
                elif o.outcome == "deferred":
                    result.skipped_busy += 1
                else:
                    result.orders_failed += 1
                    result.errors.append(("order", o.claim.site_id, o.error or ""))
                    if o.held_by is not None:
                        result.held[o.claim.site_id] = o.held_by
                    if o.unreachable:
                        result.unreachable.append(("order", o.claim.site_id))
        for o in outcomes:
            if o.outcome in ("failed", "uncertain"):
                log.log(self.failure_level, "%s", o.error)
            elif o.outcome == "created":
                self._crash("recorded", o.claim.site_id)

    def _wait_for_customer(self, customer_id: Any) -> tuple[str | None, str | None]:
        """The customer's ERP code and last error; while another push holds its claim,
        wait for it a bounded time (its creation is one ERP request)."""
        deadline = time.monotonic() + CUSTOMER_WAIT_S
        while True:
            with self.store.read() as conn:
                code, error, owner = conn.execute(
                    sa.select(cust_t.c.erp_code, cust_t.c.last_error, cust_t.c.claim_owner).where(
                        cust_t.c.id == customer_id
                    )
                ).one()
            if code is not None or owner is None or owner == self.owner:
                return code, error
            if owner.startswith(SETTLING):  # not before the settling ends: not now
                return None, None
            if time.monotonic() >= deadline:
                return None, None
            time.sleep(0.1)

    def _try_document(self, oid: str) -> dict[str, Any] | None:
        try:
            return self._document(oid)
        except (LookupError, ErpError):
            return None

    def _load_sources(self, ids: Sequence[str]) -> dict[str, tuple[Any, list[Any], Any]]:
        """Orders, their rows and their customers' ERP codes, for many orders in 3 queries."""
        if not ids:
            return {}
        with self.store.read() as conn:
            orders = conn.execute(
                sa.select(
                    orders_t,
                    cust_t.c.erp_code.label("cust_code"),
                    cust_t.c.last_error.label("cust_error"),
                    cust_t.c.name.label("cust_name"),
                )
                .select_from(orders_t.outerjoin(cust_t, cust_t.c.id == orders_t.c.web_customer_id))
                .where(orders_t.c.id.in_(list(ids)))
            ).all()
            rows: dict[str, list[Any]] = {}
            for r in (
                conn.execute(
                    sa.select(rows_t)
                    .where(rows_t.c.order_id.in_(list(ids)))
                    .order_by(rows_t.c.order_id, rows_t.c.line_no)
                )
                .mappings()
                .all()
            ):
                rows.setdefault(r["order_id"], []).append(r)
        return {o.id: (o, rows.get(o.id, []), None) for o in orders}

    def _document(self, oid: str) -> dict[str, Any]:
        source = self._sources.get(oid)
        if source is None:
            source = self._load_sources([oid])[oid]
        order, rows, _ = source
        code = order.customer_code
        if code is None and order.web_customer_id is not None:
            code = order.cust_code
            if code is None:
                # the customer may have been created since the orders were loaded, or be
                # in the hands of a concurrent push: give that push a moment to finish
                code, error = self._wait_for_customer(order.web_customer_id)
                if code is None and error is None:
                    # another push is creating the customer right now: not a failure
                    raise _CustomerPending(f"its customer {order.cust_name!r} is being created")
                if code is None:
                    why = f": {error}" if error else ""
                    raise _CustomerMissing(
                        f"its customer {order.cust_name!r} is not in the ERP yet{why}",
                        order.web_customer_id,
                    )
        currency = self._currency_id(order.currency) if order.currency != "EUR" else None
        return build_document(
            order_id=oid,
            created=order.created,
            customer_code=code,
            payment_code=order.payment_code,
            currency_id=currency,
            note=order.note,
            rows=rows,
            series=self.series,
            zone=self.zone,
        )


#: words with which an ERP says that a ledger has no free account code left (ASSUMED:
#: nothing public shows Mexal's exact text): a word for the codes and one for their
#: running out, in a message that names no field ("[Campo 'codice_fiscale': valore
#: troppo lungo (18 caratteri, massimo 16)]" is a refused detail, not a full ledger)
NO_CODE_WORDS = ("codic", "conto", "conti", "code")
NO_CODE_LEFT = ("esaurit", "disponibil", "liber", "left", "exhausted")


def customer_error(name: str, ledger: str, exc: ErpError) -> str:
    """The message for a customer the ERP did not create; "no code left" said plainly."""
    detail = (exc.detail or "").lower()
    if (
        exc.code == 6001
        and "campo" not in detail
        and any(w in detail for w in NO_CODE_WORDS)
        and any(w in detail for w in NO_CODE_LEFT)
    ):
        return (
            f"{name}: no customer code left under ledger {ledger} in the ERP "
            f"({exc.detail}); free some codes or configure another ledger"
        )
    if exc.outcome_unknown:
        # the request went and its answer was lost: it may well be there
        return (
            f"{name}: the ERP may have created it, its answer was lost: {exc}; it is looked"
            " up there before it is sent again"
        )
    return f"{name}: the ERP did not create it: {exc}"
