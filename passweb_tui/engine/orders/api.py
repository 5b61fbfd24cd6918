"""What the UI, the command line and the sync engine use to see and act on web orders:
intake, lists, details, the review queue, and the push and refresh phases of a run."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from passweb_tui.engine.erp.client import MexalClient
from passweb_tui.engine.models import Article, Customer, storable_id
from passweb_tui.engine.orders import states
from passweb_tui.engine.orders.documents import CUSTOMERS_RESOURCE, DocumentSeries, marker
from passweb_tui.engine.orders.intake import (
    ERP_CUSTOMER_CODE,
    ERP_CUSTOMER_FIELDS,
    NEW_CUSTOMER_KEYS,
    ImportReport,
    OrderIn,
    OrderInvalid,
    customer_details,
    import_orders,
    place_order,
    validate,
)
from passweb_tui.engine.orders.models import (
    WebCustomer,
    WebOrder,
    WebOrderRow,
    WebOrderUpdate,
    WebPushAttempt,
    as_utc,
    decimal_text,
    utcnow,
)
from passweb_tui.engine.orders.push import (
    SETTLE,
    SETTLING,
    Pusher,
    PushResult,
    customer_subject,
    error_reason,
    owner_alive,
)
from passweb_tui.engine.orders.refresh import (
    RefreshResult,
    documents_with_marker,
    fetch_keys,
    refresh_open_orders,
)
from passweb_tui.engine.store import Store

orders_t = WebOrder.__table__  # type: ignore[attr-defined]
rows_t = WebOrderRow.__table__  # type: ignore[attr-defined]
cust_t = WebCustomer.__table__  # type: ignore[attr-defined]
#: the ERP's customers and articles as the last sync stored them: the names of an order's
#: existing customer and the descriptions of its articles, where the order has none
erp_cust_t = Customer.__table__.alias("erp_customer")  # type: ignore[attr-defined]
article_t = Article.__table__  # type: ignore[attr-defined]


def _joined() -> Any:
    """Orders with their web customer (a new one) or the stored ERP customer they name."""
    return orders_t.outerjoin(cust_t, cust_t.c.id == orders_t.c.web_customer_id).outerjoin(
        erp_cust_t, erp_cust_t.c.code == orders_t.c.customer_code
    )


def _order_columns() -> list[Any]:
    return [
        orders_t,
        sa.func.coalesce(cust_t.c.name, erp_cust_t.c.name).label("customer_name"),
        cust_t.c.erp_code,
        cust_t.c.last_error.label("customer_error"),
    ]


updates_t = WebOrderUpdate.__table__  # type: ignore[attr-defined]
attempt_t = WebPushAttempt.__table__  # type: ignore[attr-defined]


class OrderNotFound(LookupError):
    """No web order has that id."""


class OrderNotResent(Exception):
    """An order that `resend` leaves as it is; the message says why."""


class OrderNotCancelled(Exception):
    """An order that `cancel` leaves as it is; the message says why."""


class CustomerNotChanged(Exception):
    """A web customer that `mend_customer` or `bind_customer` leaves as it is (in the ERP
    already, being sent, a detail another site customer has); the message says why."""


#: a web customer's details as `show` and the customer commands give them
CUSTOMER_DETAILS = ("id", *ERP_CUSTOMER_FIELDS, "erp_code", "last_error")
#: orders read from the store at a time when they are listed (500: one IN list of ids)
LIST_BATCH = 500


def _forget_customer_errors(conn: sa.Connection, customer_id: Any) -> None:
    """The operator mended or bound a web customer: its waiting orders no longer carry
    the error its refusal gave them (their sending attempts keep it, in the history).
    An order of a customer not yet in the ERP failed for that reason only: it is not
    sent before its customer."""
    conn.execute(
        sa.update(orders_t)
        .where(
            orders_t.c.web_customer_id == customer_id,
            orders_t.c.state.in_(states.WAITING),
            orders_t.c.claim_owner.is_(None),
        )
        .values(last_error=None)
    )


def _customer_detail(conn: sa.Connection, cid: Any) -> dict[str, Any]:
    """A web customer's details, and how it got its ERP code: created by a push, found
    after an attempt with a lost answer, matched (the ERP had it already) or bound by the
    operator."""
    c = conn.execute(sa.select(cust_t).where(cust_t.c.id == cid)).one()
    detail = {k: getattr(c, k) for k in CUSTOMER_DETAILS}
    detail["erp_bound_by"] = (
        conn.execute(
            sa.select(attempt_t.c.outcome)
            .where(
                attempt_t.c.entity == "customer",
                attempt_t.c.site_id == str(c.id),
                attempt_t.c.erp_key == c.erp_code,
            )
            .order_by(attempt_t.c.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if c.erp_code
        else None
    )
    return detail


def _waiting_customer(conn: sa.Connection, order_id: str, *, unsettled: bool = False) -> Any:
    """The web customer of an order, still to be created in the ERP and in no push's
    hands; `unsettled`: also one whose last attempt's outcome is unknown."""
    o = conn.execute(
        sa.select(orders_t.c.web_customer_id, orders_t.c.customer_code).where(
            orders_t.c.id == order_id
        )
    ).first()
    if o is None:
        raise OrderNotFound(f"no web order {order_id!r}")
    if o.web_customer_id is None:
        raise CustomerNotChanged(
            f"order {order_id} is for the ERP customer {o.customer_code}, not for a customer"
            " born on the site: that one is changed in the ERP"
        )
    c = conn.execute(sa.select(cust_t).where(cust_t.c.id == o.web_customer_id)).one()
    name = f"the customer of order {order_id}, {c.name!r} (site id {c.id}),"
    if c.erp_code:
        raise CustomerNotChanged(
            f"{name} is in the ERP already as {c.erp_code}: change it there, and a sync"
            " brings the change to the site"
        )
    if c.claim_owner is not None:
        if c.claim_owner.startswith(SETTLING) or owner_alive(c.claim_owner) is False:
            # its sender died mid-attempt: nobody is sending it, but it may be in the ERP
            when = as_utc(c.claimed_at)
            after = f" after {_iso(when + SETTLE)}" if when is not None else ""
            raise CustomerNotChanged(
                f"{name} was being sent by a process that stopped before its end (at"
                f" {_iso(c.claimed_at)}): whether the ERP created it is unknown. The first"
                f" push{after} looks it up there; change it, or bind it with --erp-code,"
                " once that is settled"
            )
        raise CustomerNotChanged(
            f"{name} is in a push's hands right now (claimed {_iso(c.claimed_at)}):"
            " try again once that push is over"
        )
    if c.uncertain and not unsettled:
        raise CustomerNotChanged(
            f"{name} may be in the ERP already (the answer to its last attempt was lost):"
            " the next push looks it up there first; change it once that is settled, or"
            " bind it to the ERP customer it is with --erp-code"
        )
    return c


def row_total(qty: Decimal, price: Decimal, discount: str | None) -> Decimal:
    """Quantity x price less a discount chain such as "10+5" (each applied in turn)."""
    amount = qty * price
    for part in (discount or "").split("+"):
        if part.strip():
            amount = amount * (Decimal(100) - Decimal(part)) / Decimal(100)
    return amount.quantize(Decimal("0.01"))


def row_order(rid: Any) -> tuple[int, Any]:
    """Document rows by number (2 before 10), anything else after them by its text."""
    if isinstance(rid, int) and not isinstance(rid, bool):
        return (0, rid)
    text = str(rid)
    return (0, int(text)) if text.isdecimal() else (1, text)


@dataclass(frozen=True)
class UpdateChanges:
    """What an ERP-side update changed in an order: header fields, and the fields of
    each row (by row id, in row order); `whole` when the site had no document before,
    `gone` when the ERP no longer has it (the update's `after` is null)."""

    header: list[str]
    rows: list[tuple[Any, list[str]]]
    whole: bool
    gone: bool = False
    #: ids of the rows the ERP added, and of those it removed (among `rows`)
    added: frozenset[Any] = frozenset()
    removed: frozenset[Any] = frozenset()


def update_changes(update: dict[str, Any]) -> UpdateChanges:
    before = update.get("before") or {}
    after = update.get("after") or {}
    bh, ah = before.get("header") or {}, after.get("header") or {}
    header = [name for name in sorted(set(bh) | set(ah)) if bh.get(name) != ah.get(name)]
    brows = {r.get("id_riga"): r for r in before.get("rows") or []}
    arows = {r.get("id_riga"): r for r in after.get("rows") or []}
    rows = []
    for rid in sorted(set(brows) | set(arows), key=row_order):
        b, a = brows.get(rid) or {}, arows.get(rid) or {}
        fields = [n for n in sorted(set(b) | set(a)) if b.get(n) != a.get(n)]
        if fields:
            rows.append((rid, fields))
    if before and not after:
        return UpdateChanges([], [], whole=False, gone=True)
    return UpdateChanges(
        header,
        rows,
        whole=not before and bool(after),
        added=frozenset(arows) - frozenset(brows),
        removed=frozenset(brows) - frozenset(arows),
    )


def _matches(search: str) -> sa.ColumnElement[bool]:
    """Orders (see _joined) whose id, customer code or name (a new customer's, or the
    stored ERP customer's), or ERP key holds `search`, in any case."""
    # autoescape: "%" and "_" typed in a search are themselves, not wildcards
    return sa.or_(
        orders_t.c.id.icontains(search, autoescape=True),
        orders_t.c.customer_code.icontains(search, autoescape=True),
        cust_t.c.name.icontains(search, autoescape=True),
        erp_cust_t.c.name.icontains(search, autoescape=True),
        orders_t.c.erp_key.icontains(search, autoescape=True),
    )


def _erp_has(client: MexalClient, erp_key: str) -> bool:
    """Whether the ERP still holds the order document `erp_key` (marker or not)."""
    return erp_key in fetch_keys(client, [erp_key], RefreshResult())


def _iso(value: Any) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value is not None else None


def _operator_decision(
    conn: sa.Connection, order_id: str, outcome: str, erp_key: str | None = None
) -> bool:
    """An operator's decision on an order (`resent`, `paid`), in its history beside its
    sending attempts."""
    now = utcnow()
    conn.execute(
        sa.insert(attempt_t).values(
            entity="order",
            site_id=order_id,
            owner="operator",
            started_at=now,
            finished_at=now,
            outcome=outcome,
            erp_key=erp_key,
        )
    )
    return True


@dataclass(frozen=True)
class OrdersSummary:
    """Web orders by what they wait on (the dashboard's panel, `passweb-tui status`)."""

    waiting: int  # to be sent by the next push
    failed: int  # of those, the ones whose last attempt failed
    open: int
    unreviewed: int  # ERP-side updates not yet acknowledged
    unconfirmed: int = 0  # waiting for their payment to be confirmed: not sent before
    to_check: int = 0  # open, but the ERP lost or contradicts the document: an operator decides
    #: new web customers whose creation in the ERP failed: their orders wait on them
    customers_failed: int = 0


@dataclass
class WebOrders:
    """Web orders in one site store. Short transactions; safe to use from several threads."""

    store: Store

    # --- intake ------------------------------------------------------------------------

    def import_lines(self, lines: Iterable[bytes | str]) -> ImportReport:
        """Store the good orders of a JSON Lines file; bad lines come back in the report."""
        return import_orders(self.store, lines)

    def place(self, order: dict[str, Any] | OrderIn) -> str:
        """Store one order placed on the site (checkout); OrderInvalid says what is wrong."""
        valid = order if isinstance(order, OrderIn) else validate(order)
        place_order(self.store, valid)
        return valid.id

    def confirm_payment(self, order_id: str) -> bool:
        """The payment arrived: the order may now be sent. False if it was not waiting on it."""
        with self.store.write() as conn:
            self._require(conn, order_id)
            return conn.execute(
                sa.update(orders_t)
                .where(orders_t.c.id == order_id, orders_t.c.state == states.PAYMENT_UNCONFIRMED)
                .values(state=states.NEW, payment="confirmed")
            ).rowcount == 1 and _operator_decision(conn, order_id, "paid")

    def edit(self, order_id: str, changes: dict[str, Any]) -> None:
        """Record a site-side edit of an order; if the ERP changes the order meanwhile the
        ERP wins and this edit is kept beside its update for the operator."""
        with self.store.write() as conn:
            self._require(conn, order_id)
            conn.execute(
                sa.update(orders_t)
                .where(orders_t.c.id == order_id)
                .values(site_edit={"at": utcnow().isoformat(), "changes": changes})
            )

    # --- reading -----------------------------------------------------------------------

    @staticmethod
    def _require(conn: sa.Connection, order_id: str) -> None:
        if conn.execute(sa.select(orders_t.c.id).where(orders_t.c.id == order_id)).first() is None:
            raise OrderNotFound(f"no web order {order_id!r}")

    def counts(self) -> dict[str, int]:
        """Orders per state (every state listed, zero included)."""
        with self.store.read() as conn:
            found: dict[str, int] = dict(
                conn.execute(
                    sa.select(orders_t.c.state, sa.func.count()).group_by(orders_t.c.state)
                ).all()
            )
        return {s: int(found.get(s, 0)) for s in states.ALL}

    def list(self, **query: Any) -> list[dict[str, Any]]:
        """Orders newest first, with their customer and total, as plain dicts (the query
        as `iter_list` takes it)."""
        return list(self.iter_list(**query))

    def iter_list(
        self,
        *,
        state: str | Sequence[str] | None = None,
        search: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """Orders newest first, with their customer and total, as plain dicts, read in one
        read transaction a batch at a time: memory stays flat however many orders the
        store holds (years of them, listed whole)."""
        query = sa.select(*_order_columns()).select_from(_joined())
        if state is not None:
            wanted = [state] if isinstance(state, str) else list(state)
            query = query.where(orders_t.c.state.in_(wanted))
        if search:
            query = query.where(_matches(search))
        query = query.order_by(orders_t.c.created.desc(), orders_t.c.id.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self.store.read() as conn:
            result = conn.execution_options(stream_results=True, yield_per=LIST_BATCH).execute(
                query
            )
            for orders in result.partitions():
                ids = [o.id for o in orders]
                totals: dict[str, Decimal] = {}
                lines: dict[str, int] = {}
                for r in conn.execute(
                    sa.select(
                        rows_t.c.order_id, rows_t.c.qty, rows_t.c.price, rows_t.c.discount
                    ).where(rows_t.c.order_id.in_(ids))
                ).all():
                    totals[r.order_id] = totals.get(r.order_id, Decimal(0)) + row_total(
                        r.qty, r.price, r.discount
                    )
                    lines[r.order_id] = lines.get(r.order_id, 0) + 1
                for o in orders:
                    yield self._summary(o, totals.get(o.id, Decimal(0)), lines.get(o.id, 0))

    @staticmethod
    def _summary(o: Any, total: Decimal, lines: int) -> dict[str, Any]:
        return {
            "id": o.id,
            "state": o.state,
            "erp_key": o.erp_key,
            "last_error": o.last_error,
            "created": _iso(o.created),
            "payment": o.payment,
            "customer_code": o.customer_code or o.erp_code,
            "customer_name": o.customer_name,
            "new_customer": o.web_customer_id is not None,
            # why the ERP did not take the order's new customer (what holds the order)
            "customer_error": (
                error_reason(o.customer_error, customer_subject(o.customer_name, o.web_customer_id))
                if o.web_customer_id is not None and o.erp_code is None and o.customer_error
                else None
            ),
            "currency": o.currency,
            "total": decimal_text(total),
            "rows": lines,
            "attempts": o.attempts,
            "sent_at": _iso(o.sent_at),
            "refreshed_at": _iso(o.refreshed_at),
        }

    def show(self, order_id: str) -> dict[str, Any]:
        """One order in full: header, rows, customer, ERP document, attempts and updates."""
        with self.store.read() as conn:
            o = conn.execute(
                sa.select(*_order_columns()).select_from(_joined()).where(orders_t.c.id == order_id)
            ).first()
            if o is None:
                raise OrderNotFound(f"no web order {order_id!r}")
            rows = conn.execute(
                sa.select(rows_t, article_t.c.description.label("article_description"))
                .select_from(rows_t.outerjoin(article_t, article_t.c.code == rows_t.c.article))
                .where(rows_t.c.order_id == order_id)
                .order_by(rows_t.c.line_no)
            ).all()
            customer = None
            if o.web_customer_id is not None:
                customer = _customer_detail(conn, o.web_customer_id)
            attempts = conn.execute(
                sa.select(attempt_t)
                .where(attempt_t.c.entity == "order", attempt_t.c.site_id == order_id)
                .order_by(attempt_t.c.id)
            ).all()
            update_ids = list(
                conn.execute(
                    sa.select(updates_t.c.id)
                    .where(updates_t.c.order_id == order_id)
                    .order_by(updates_t.c.id)
                ).scalars()
            )
        total = sum((row_total(r.qty, r.price, r.discount) for r in rows), Decimal(0))
        detail = self._summary(o, total, len(rows))
        detail.update(
            {
                "note": o.note,
                "payment_code": o.payment_code,
                "customer": customer,
                "lines": [
                    {
                        "line": r.line_no,
                        "article": r.article,
                        "description": r.description,
                        # the stored article's, for a row that came without its own
                        "article_description": r.article_description,
                        "qty": decimal_text(r.qty),
                        "price": decimal_text(r.price),
                        "discount": r.discount,
                        "vat_code": r.vat_code,
                        "total": decimal_text(row_total(r.qty, r.price, r.discount)),
                    }
                    for r in rows
                ],
                "erp_document": o.erp_snapshot,
                "erp_duplicates": o.erp_duplicates,
                "site_edit": o.site_edit,
                "push_attempts": [
                    {
                        "started": _iso(a.started_at),
                        "finished": _iso(a.finished_at),
                        "outcome": a.outcome,
                        "erp_key": a.erp_key,
                        "error": a.error,
                        "by_operator": a.owner == "operator",
                    }
                    for a in attempts
                ],
                "updates": update_ids,
            }
        )
        return detail

    def updates(
        self,
        *,
        unreviewed: bool = False,
        order_id: str | None = None,
        search: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> builtins.list[dict[str, Any]]:
        """ERP-side order updates, newest first; `search` keeps those of the orders that
        `list(search=...)` would find (by id, customer code or name, ERP key)."""
        query = sa.select(updates_t).order_by(updates_t.c.id.desc()).offset(offset)
        if unreviewed:
            query = query.where(updates_t.c.reviewed.is_(False))
        if order_id is not None:
            query = query.where(updates_t.c.order_id == order_id)
        if search:
            matching = sa.select(orders_t.c.id).select_from(_joined()).where(_matches(search))
            query = query.where(updates_t.c.order_id.in_(matching))
        if limit is not None:
            query = query.limit(limit)
        with self.store.read() as conn:
            found = conn.execute(query).all()
        return [
            {
                "update_id": u.id,
                "order_id": u.order_id,
                "reviewed": bool(u.reviewed),
                "detected": _iso(u.detected_at),
                "run_id": u.run_id,
                "state_before": u.state_before,
                "state_after": u.state_after,
                "before": u.before,
                "after": u.after,
                "site_edit": u.site_edit,
                "reviewed_at": _iso(u.reviewed_at),
            }
            for u in found
        ]

    def unreviewed_count(self) -> int:
        with self.store.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(updates_t)
                    .where(updates_t.c.reviewed.is_(False))
                ).scalar_one()
            )

    def ack(self, update_ids: Sequence[int]) -> tuple[builtins.list[int], builtins.list[int]]:
        """Mark updates reviewed; returns (acknowledged now or before, unknown ids)."""
        now, before, unknown = self.acknowledge(update_ids)
        return sorted([*now, *before]), unknown

    def acknowledge(
        self, update_ids: Sequence[int]
    ) -> tuple[builtins.list[int], builtins.list[int], builtins.list[int]]:
        """Mark updates reviewed; returns (acknowledged now, acknowledged before, unknown
        ids)."""
        ids = sorted(set(update_ids))
        possible = [i for i in ids if storable_id(i)]
        with self.store.write() as conn:
            reviewed: dict[int, bool] = {
                row.id: bool(row.reviewed)
                for row in conn.execute(
                    sa.select(updates_t.c.id, updates_t.c.reviewed).where(
                        updates_t.c.id.in_(possible)
                    )
                )
            }
            fresh = [i for i in ids if i in reviewed and not reviewed[i]]
            if fresh:
                conn.execute(
                    sa.update(updates_t)
                    .where(updates_t.c.id.in_(fresh), updates_t.c.reviewed.is_(False))
                    .values(reviewed=True, reviewed_at=utcnow())
                )
        before = [i for i in ids if reviewed.get(i)]
        return fresh, before, [i for i in ids if i not in reviewed]

    def resend(self, client: MexalClient, order_id: str) -> str | None:
        """Put back in the queue a `to_check` order that the ERP holds no document of
        (it lost the one the order was bound to, or the operator deleted it): the next
        push sends it again, after looking it up once more. This is the operator's
        decision DOMAIN.md leaves to them; it is refused while any ERP document carries
        the order's marker, so it can never make a second one. Returns the ERP key the
        order was bound to, if any."""
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(orders_t.c.state, orders_t.c.erp_key).where(orders_t.c.id == order_id)
            ).first()
        if row is None:
            raise OrderNotFound(f"no web order {order_id!r}")
        if row.state != states.TO_CHECK:
            raise OrderNotResent(
                f"order {order_id} is {row.state}, not to_check: only an order whose ERP"
                " document is gone can be sent again"
            )
        keys = documents_with_marker(client, order_id)
        if keys:
            held = f"the ERP holds {', '.join(keys)} with this order's marker {marker(order_id)}"
            advice = (
                ": delete all but one there, and the next refresh follows the one left"
                if len(keys) > 1
                else ": the order is in the ERP; it is not sent again"
            )
            raise OrderNotResent(f"order {order_id}: {held}{advice}")
        if row.erp_key and _erp_has(client, row.erp_key):
            # its document is there, without the marker (someone rewrote its note): a
            # second one would be a second delivery
            raise OrderNotResent(
                f"order {order_id}: its document {row.erp_key} is still in the ERP, without"
                f" the order's marker {marker(order_id)} in its note: put the marker back"
                " there and the next refresh follows it; the order is not sent again"
            )
        with self.store.write() as conn:
            done = conn.execute(
                sa.update(orders_t)
                .where(
                    orders_t.c.id == order_id,
                    orders_t.c.state == states.TO_CHECK,
                    orders_t.c.claim_owner.is_(None),
                )
                .values(
                    state=states.NEW,
                    erp_key=None,
                    erp_duplicates=None,
                    sent_snapshot=None,
                    erp_snapshot=None,
                    refreshed_at=None,
                    last_error=None,
                    # the push looks it up once more before it sends anything
                    uncertain=True,
                )
            ).rowcount
            if done == 1:
                _operator_decision(conn, order_id, "resent", row.erp_key)
        if done != 1:
            raise OrderNotResent(f"order {order_id} changed meanwhile; nothing done")
        return row.erp_key  # type: ignore[no-any-return]

    def cancel(self, client: MexalClient, order_id: str) -> None:
        """Set aside, for good, an order the site will not send: one the ERP refuses for
        what it holds (an article or a currency it does not have), or one a customer
        called off before it went. Only an order that is not in the ERP: waiting to be
        sent (or on its payment), or to_check with its document gone. One a push may have
        sent (its answer lost) is looked up in the ERP first, and refused while any
        document there carries its marker: that one is cancelled in the ERP, and the
        next refresh follows it."""
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(orders_t.c.state, orders_t.c.erp_key, orders_t.c.uncertain).where(
                    orders_t.c.id == order_id
                )
            ).first()
        if row is None:
            raise OrderNotFound(f"no web order {order_id!r}")
        allowed = (*states.WAITING, states.TO_CHECK)
        if row.state not in allowed:
            where = "in the ERP: cancel it there" if row.state in states.OPEN else "final"
            raise OrderNotCancelled(f"order {order_id} is {row.state}, {where}")
        if row.uncertain or row.state == states.TO_CHECK:
            keys = documents_with_marker(client, order_id)
            if row.erp_key and row.erp_key not in keys and _erp_has(client, row.erp_key):
                keys.append(row.erp_key)
            if keys:
                raise OrderNotCancelled(
                    f"order {order_id}: the ERP holds {', '.join(keys)} for it: cancel it"
                    " there, and the next refresh follows it"
                )
        with self.store.write() as conn:
            done = conn.execute(
                sa.update(orders_t)
                .where(
                    orders_t.c.id == order_id,
                    orders_t.c.state.in_(allowed),
                    orders_t.c.claim_owner.is_(None),
                )
                .values(state=states.CANCELLED, uncertain=False, last_error=None)
            ).rowcount
            if done == 1:
                _operator_decision(conn, order_id, "cancelled", row.erp_key)
        if done != 1:
            raise OrderNotCancelled(
                f"order {order_id} is being sent or changed right now; nothing done: try"
                " again once that push is over"
            )

    def mend_customer(self, order_id: str, changes: Mapping[str, str | None]) -> dict[str, Any]:
        """Correct the details of an order's web customer that the ERP has not taken yet
        (it refused them, say a tax code it finds wrong): checked as an import checks
        them; an empty value clears a detail. Its last error is cleared, and the next push
        sends it (and its orders) again. Returns the customer as it is now."""
        unknown = sorted(set(changes) - NEW_CUSTOMER_KEYS)
        if unknown:
            raise OrderInvalid(
                f"customer: no detail named {', '.join(unknown)}; the details are"
                f" {', '.join(sorted(NEW_CUSTOMER_KEYS))}"
            )
        with self.store.write() as conn:
            c = _waiting_customer(conn, order_id)
            merged = {k: getattr(c, k) for k in NEW_CUSTOMER_KEYS} | dict(changes)
            new = customer_details({k: v for k, v in merged.items() if v}, conn).as_row()
            for detail in ("vat_number", "email"):  # what makes two site customers one
                value = new[detail]
                if not value or value == getattr(c, detail):
                    continue
                other = conn.execute(
                    sa.select(cust_t.c.id, cust_t.c.name).where(
                        cust_t.c[detail] == value, cust_t.c.id != c.id
                    )
                ).first()
                if other is not None:
                    raise CustomerNotChanged(
                        f"customer.{detail} {value} is the site customer {other.name!r}'s"
                        f" (site id {other.id}): two site customers cannot share it"
                    )
            done = conn.execute(
                sa.update(cust_t)
                .where(
                    cust_t.c.id == c.id,
                    cust_t.c.erp_code.is_(None),
                    cust_t.c.claim_owner.is_(None),
                    sa.not_(cust_t.c.uncertain),
                    cust_t.c.attempts == c.attempts,
                )
                .values(**new, last_error=None)
            ).rowcount
            if done != 1:
                raise CustomerNotChanged(
                    f"the customer of order {order_id} changed meanwhile; nothing done"
                )
            _forget_customer_errors(conn, c.id)
            return _customer_detail(conn, c.id)

    def erp_customer(self, client: MexalClient, erp_code: str) -> dict[str, Any] | None:
        """The ERP's customer `erp_code` as the operator tells it (name, VAT number, tax
        code, town), read there now; None when the ERP has none. What the UI shows
        before binding a web customer to it."""
        if not ERP_CUSTOMER_CODE.match(erp_code):
            raise OrderInvalid(f"not an ERP customer code like 501.00042: {erp_code!r}")
        fields = ["codice", "ragione_sociale", "partita_iva", "codice_fiscale", "localita"]
        return client.get(CUSTOMERS_RESOURCE, erp_code, fields=fields)

    def bind_customer(self, client: MexalClient, order_id: str, erp_code: str) -> dict[str, Any]:
        """Bind an order's web customer, not yet created in the ERP, to a customer the ERP
        has (the operator knows them to be one): checked in the ERP first, and refused when
        another site customer is bound to that code. Its orders go under that code at the
        next push. Returns the customer as it is now."""
        if not ERP_CUSTOMER_CODE.match(erp_code):
            raise OrderInvalid(f"not an ERP customer code like 501.00042: {erp_code!r}")
        with self.store.read() as conn:
            c = _waiting_customer(conn, order_id, unsettled=True)
        record = client.get(CUSTOMERS_RESOURCE, erp_code, fields=["codice", "ragione_sociale"])
        if record is None:
            raise CustomerNotChanged(f"the ERP has no customer {erp_code}")
        with self.store.write() as conn:
            other = conn.execute(
                sa.select(cust_t.c.id, cust_t.c.name).where(cust_t.c.erp_code == erp_code)
            ).first()
            if other is not None:
                raise CustomerNotChanged(
                    f"the ERP customer {erp_code} is the site customer {other.name!r}'s"
                    f" already (site id {other.id})"
                )
            now = utcnow()
            done = conn.execute(
                sa.update(cust_t)
                .where(
                    cust_t.c.id == c.id,
                    cust_t.c.erp_code.is_(None),
                    cust_t.c.claim_owner.is_(None),
                    cust_t.c.attempts == c.attempts,
                )
                .values(erp_code=erp_code, sent_at=now, last_error=None, uncertain=False)
            ).rowcount
            if done != 1:
                raise CustomerNotChanged(
                    f"the customer of order {order_id} changed meanwhile; nothing done"
                )
            conn.execute(
                sa.insert(attempt_t).values(
                    entity="customer",
                    site_id=str(c.id),
                    owner="operator",
                    started_at=now,
                    finished_at=now,
                    outcome="operator",
                    erp_key=erp_code,
                )
            )
            _forget_customer_errors(conn, c.id)
            return _customer_detail(conn, c.id)

    # --- the phases of a sync run ----------------------------------------------------------

    def summary(self) -> OrdersSummary:
        """A few count statements, whatever the number of orders."""
        counts = self.counts()
        return OrdersSummary(
            waiting=counts[states.NEW],
            failed=self.failed_count(),
            open=sum(counts[s] for s in states.OPEN),
            unreviewed=self.unreviewed_count(),
            unconfirmed=counts[states.PAYMENT_UNCONFIRMED],
            to_check=counts[states.TO_CHECK],
            customers_failed=self.failed_customers_count(),
        )

    def failed_customers_count(self) -> int:
        """New web customers not in the ERP after an attempt that failed (refused, or the
        ERP not reached); a lost answer is not counted: the next push settles it."""
        with self.store.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(cust_t)
                    .where(
                        cust_t.c.erp_code.is_(None),
                        cust_t.c.last_error.is_not(None),
                        sa.not_(cust_t.c.uncertain),
                    )
                ).scalar_one()
            )

    def failed_count(self) -> int:
        """Orders still waiting to be sent after an attempt that failed."""
        with self.store.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(orders_t)
                    .where(orders_t.c.state.in_(states.WAITING), orders_t.c.last_error.is_not(None))
                ).scalar_one()
            )

    def waiting_count(self) -> int:
        """Orders that the next push would send."""
        with self.store.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(orders_t)
                    .where(orders_t.c.state == states.NEW)
                ).scalar_one()
            )

    def waiting_ids(self) -> builtins.list[str]:
        """Ids of the orders that the next push would send, oldest first."""
        with self.store.read() as conn:
            return list(
                conn.execute(
                    sa.select(orders_t.c.id)
                    .where(orders_t.c.state == states.NEW)
                    .order_by(orders_t.c.created, orders_t.c.id)
                ).scalars()
            )

    def push(
        self,
        client: MexalClient,
        *,
        order_ids: Sequence[str] | None = None,
        ledger: str = "501",
        series: DocumentSeries | None = None,
        site_no: int = 1,
        settle: timedelta = SETTLE,
        cancel: threading.Event | None = None,
        on_progress: Callable[[int, int, str | None], None] | None = None,
        log_failures: bool = True,
        match_existing: bool = True,
        zone: str = "",
    ) -> PushResult:
        """Send waiting customers and orders to the ERP, exactly once each. `settle`: how
        long the records of a pusher that died wait before they are sent again;
        `log_failures` False: the caller tells of the records that failed, not the push;
        `match_existing` False: a new customer is created in the ERP even when the ERP has
        one with its VAT number or tax code already. `zone`: the site's time zone, where the
        day of an order (its document's date) is counted; empty for this machine's."""
        pusher = Pusher(
            self.store,
            client,
            ledger=ledger,
            series=series,
            site_no=site_no,
            settle=settle,
            log_failures=log_failures,
            match_existing=match_existing,
            zone=zone,
        )
        return pusher.push(order_ids=order_ids, cancel=cancel, on_progress=on_progress)

    def refresh(
        self,
        client: MexalClient,
        *,
        run_id: int | None = None,
        order_ids: Sequence[str] | None = None,
        dry_run: bool = False,
        cancel: threading.Event | None = None,
        on_progress: Callable[[int, int, str | None], None] | None = None,
    ) -> RefreshResult:
        """Re-read open orders (or the named ones) and queue what the ERP changed."""
        return refresh_open_orders(
            self.store,
            client,
            run_id=run_id,
            order_ids=order_ids,
            dry_run=dry_run,
            cancel=cancel,
            on_progress=on_progress,
        )
