"""The orders phases of a sync run, as the sync engine calls them: the push (first phase
of TOTAL and CHANGED, the whole of an unscoped PARTIAL), the open-order refresh (after
the pulls of TOTAL and CHANGED), and a PARTIAL scoped to named orders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from passweb_tui.engine.erp.client import MexalClient
from passweb_tui.engine.erp.errors import ErpError
from passweb_tui.engine.orders import states
from passweb_tui.engine.orders.documents import DocumentSeries
from passweb_tui.engine.orders.models import WebCustomer, WebOrder
from passweb_tui.engine.orders.push import Pusher
from passweb_tui.engine.orders.refresh import refresh_open_orders
from passweb_tui.engine.store import Store

orders_t = WebOrder.__table__  # type: ignore[attr-defined]
cust_t = WebCustomer.__table__  # type: ignore[attr-defined]

#: emit(phase, entity, done, total, message): the run's progress events
Emit = Callable[[str, str | None, int, int | None, str | None], None]


@dataclass(frozen=True)
class PushSettings:
    """Where pushed records go in the ERP."""

    ledger: str = "501"  # customers are created as "<ledger>.AUTO"
    series: DocumentSeries = field(default_factory=DocumentSeries)
    site_no: int = 1


@dataclass
class PhaseReport:
    """What an orders phase did, in the terms of a run's result."""

    orders_sent: int = 0
    orders_failed: int = 0
    orders_updated: int = 0
    customers_sent: int = 0
    customers_failed: int = 0
    messages: list[str] = field(default_factory=list)
    #: (entity, key, reason): records the run should list as rejected
    rejects: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def incomplete(self) -> bool:
        """Something failed to go (exit status 4 for the command)."""
        return bool(self.orders_failed or self.customers_failed or self.rejects)

    def merge_into(self, orders: dict[str, int], customers: dict[str, int]) -> None:
        """Add these counts to a RunResult's `orders` and `customers` dicts."""
        orders["sent"] = orders.get("sent", 0) + self.orders_sent
        orders["failed"] = orders.get("failed", 0) + self.orders_failed
        orders["updated"] = orders.get("updated", 0) + self.orders_updated
        customers["sent"] = customers.get("sent", 0) + self.customers_sent
        customers["failed"] = customers.get("failed", 0) + self.customers_failed

    def to_json(self) -> dict[str, Any]:
        return {
            "orders": {
                "sent": self.orders_sent,
                "failed": self.orders_failed,
                "updated": self.orders_updated,
            },
            "customers": {"sent": self.customers_sent, "failed": self.customers_failed},
        }


def waiting(store: Store, order_ids: Sequence[str] | None = None) -> tuple[int, int]:
    """(orders, new customers) that a push would send now."""
    cond = orders_t.c.state == states.NEW
    if order_ids is not None:
        cond = sa.and_(cond, orders_t.c.id.in_(list(order_ids)))
    with store.read() as conn:
        n_orders = conn.execute(
            sa.select(sa.func.count()).select_from(orders_t).where(cond)
        ).scalar_one()
        n_customers = conn.execute(
            sa.select(sa.func.count())
            .select_from(cust_t)
            .where(
                cust_t.c.erp_code.is_(None),
                cust_t.c.id.in_(sa.select(orders_t.c.web_customer_id).where(cond)),
            )
        ).scalar_one()
    return int(n_orders), int(n_customers)


def push_phase(
    store: Store,
    client: MexalClient,
    *,
    order_ids: Sequence[str] | None = None,
    dry_run: bool = False,
    settings: PushSettings | None = None,
    check: Callable[[], None] | None = None,
    emit: Emit | None = None,
) -> PhaseReport:
    """Send what waits (all, or the named orders), exactly once. A dry run sends nothing
    and says what would go. ERP failures are per record: the record stays waiting with its
    error and the run goes on; only `check` (cancellation) or the store failing raises."""
    settings = settings or PushSettings()
    report = PhaseReport()
    n_orders, n_customers = waiting(store, order_ids)
    if dry_run:
        if n_orders or n_customers:
            report.messages.append(
                f"dry run: {n_orders} orders and {n_customers} new customers would be sent"
            )
        return report
    if not n_orders:
        return report
    if emit is not None:
        emit("push", "orders", 0, n_orders, f"sending {n_orders} web orders")

    def progress(done: int, total: int, message: str | None) -> None:
        if emit is not None:
            emit("push", "orders", done, total, message)

    pusher = Pusher(
        store,
        client,
        ledger=settings.ledger,
        series=settings.series,
        site_no=settings.site_no,
    )
    result = pusher.push(order_ids=order_ids, on_progress=progress, check=check)
    report.orders_sent = result.orders_sent + result.orders_recovered
    report.orders_failed = result.orders_failed
    report.customers_sent = result.customers_sent
    report.customers_failed = result.customers_failed
    for entity, key, message in result.errors:
        report.rejects.append(("orders" if entity == "order" else "customers", key, message))
    if result.orders_recovered:
        report.messages.append(
            f"{result.orders_recovered} orders were found already in the ERP (an earlier "
            "attempt's answer was lost) and were not sent again"
        )
    if result.skipped_busy:
        report.messages.append(
            f"{result.skipped_busy} waiting records are being sent by another sync right now"
        )
    return report


def refresh_phase(
    store: Store,
    client: MexalClient,
    *,
    run_id: int | None = None,
    order_ids: Sequence[str] | None = None,
    dry_run: bool = False,
    check: Callable[[], None] | None = None,
    emit: Emit | None = None,
) -> PhaseReport:
    """Re-read open orders; ERP errors propagate (the run fails, batches done stay done)."""
    report = PhaseReport()

    def progress(done: int, total: int, message: str | None) -> None:
        if emit is not None:
            emit("orders", "orders", done, total, message)

    result = refresh_open_orders(
        store,
        client,
        run_id=run_id,
        order_ids=order_ids,
        dry_run=dry_run,
        on_progress=progress,
        check=check,
    )
    report.orders_updated = result.updated
    for order_id, reason in result.rejected:
        report.rejects.append(("orders", order_id, reason))
    if result.missing:
        report.messages.append(
            f"{result.missing} web orders are no longer in the ERP: marked to_check for review"
        )
    return report


def partial_orders_phase(
    store: Store,
    client: MexalClient,
    codes: Sequence[str],
    *,
    run_id: int | None = None,
    dry_run: bool = False,
    settings: PushSettings | None = None,
    check: Callable[[], None] | None = None,
    emit: Emit | None = None,
) -> PhaseReport:
    """`sync partial --entity orders --code W1001 ...`: push the named orders that wait,
    re-read the named orders the ERP has; an unknown id is a reject."""
    with store.read() as conn:
        known: dict[str, str] = dict(
            conn.execute(
                sa.select(orders_t.c.id, orders_t.c.state).where(orders_t.c.id.in_(list(codes)))
            ).all()
        )
    report = PhaseReport()
    for code in codes:
        if code not in known:
            report.rejects.append(("orders", code, f"no web order {code!r} on the site"))
        elif known[code] == states.PAYMENT_UNCONFIRMED:
            report.messages.append(f"order {code}: payment not confirmed, so it is not sent")
    pushed = push_phase(
        store,
        client,
        order_ids=list(known),
        dry_run=dry_run,
        settings=settings,
        check=check,
        emit=emit,
    )
    try:
        refreshed = refresh_phase(
            store,
            client,
            run_id=run_id,
            order_ids=list(known),
            dry_run=dry_run,
            check=check,
            emit=emit,
        )
    except ErpError as exc:
        refreshed = PhaseReport(
            rejects=[("orders", c, f"re-reading it failed: {exc}") for c in known]
        )
    for part in (pushed, refreshed):
        report.orders_sent += part.orders_sent
        report.orders_failed += part.orders_failed
        report.orders_updated += part.orders_updated
        report.customers_sent += part.customers_sent
        report.customers_failed += part.customers_failed
        report.messages.extend(part.messages)
        report.rejects.extend(part.rejects)
    return report
