"""Open-order refresh: re-read the site's orders that are open in the ERP, in batches
(one search by key list per batch), derive their state, and queue each real change as
an order update for review. The ERP wins conflicts; a site edit it overrides is kept."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from passweb_tui.engine.erp.client import Filter, MexalClient
from passweb_tui.engine.orders import states
from passweb_tui.engine.orders.documents import (
    HEADER_FIELDS,
    ORDERS_RESOURCE,
    READ_FIELDS,
    marker,
    normalize,
    split_key,
)
from passweb_tui.engine.orders.models import WebOrder, WebOrderUpdate, utcnow
from passweb_tui.engine.store import Store

log = logging.getLogger(__name__)

orders_t = WebOrder.__table__  # type: ignore[attr-defined]
updates_t = WebOrderUpdate.__table__  # type: ignore[attr-defined]

#: orders re-read per search (the key list of one request)
BATCH_SIZE = 200

#: what a refresh reads of each order
PAGE_COLUMNS = (
    orders_t.c.id,
    orders_t.c.erp_key,
    orders_t.c.state,
    orders_t.c.sent_snapshot,
    orders_t.c.erp_snapshot,
    orders_t.c.refreshed_at,
    orders_t.c.site_edit,
    orders_t.c.erp_duplicates,
    orders_t.c.last_error,
)


class RefreshAborted(Exception):
    """The refresh stopped before its end (cancelled)."""


@dataclass
class RefreshResult:
    read: int = 0
    updated: int = 0
    unchanged: int = 0
    missing: int = 0
    closed: int = 0  # reached a final state, so left the open set
    requests: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # order id, reason


def _adopt_unsent(prev: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """On the first read, header fields the site left empty take the ERP's defaults
    (its own payment terms, say) without that counting as an ERP-side change."""
    header = dict(prev["header"])
    for name in HEADER_FIELDS:
        if header.get(name) in ("", [], None) and name != "doc_collegati":
            header[name] = doc["header"].get(name, header.get(name))
    return {"header": header, "rows": prev["rows"]}


def _fetch(
    client: MexalClient, sigla: str, serie: int, numbers: list[int], result: RefreshResult
) -> dict[str, dict[str, Any]]:
    """The documents of one batch, by key; a key absent from the reply is gone."""
    found: dict[str, dict[str, Any]] = {}
    token: str | None = None
    filters = [
        Filter("sigla", "=", sigla),
        Filter("serie", "=", serie),
        Filter("numero", "=", numbers),
    ]
    while True:
        page = client.search_page(
            ORDERS_RESOURCE, filters, fields=list(READ_FIELDS), max=len(numbers), next_token=token
        )
        result.requests += 1
        for rec in page.records:
            try:
                key = f"{rec['sigla']}+{int(rec['serie'])}+{int(rec['numero'])}"
            except (KeyError, TypeError, ValueError):
                continue
            found[key] = rec
        token = page.next_token
        if not token:
            return found


def fetch_keys(
    client: MexalClient, keys: Sequence[str], result: RefreshResult
) -> dict[str, dict[str, Any]]:
    """The ERP documents of these keys, one search per document type and series."""
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for key in keys:
        sigla, serie, numero = split_key(key)
        groups[(sigla, serie)].append(numero)
    found: dict[str, dict[str, Any]] = {}
    for (sigla, serie), numbers in groups.items():
        found.update(_fetch(client, sigla, serie, sorted(set(numbers)), result))
    return found


def documents_with_marker(client: MexalClient, order_id: str) -> list[str]:
    """Keys of ERP documents whose note carries the order's marker. Every page of the
    search is read: the ERP may cut a page early (even to no records, with a `next`)
    while it scans, and a look-up that stopped there would send the order again. Every
    customer-order document type is searched, not only the configured one: an earlier
    attempt may have gone out before the setting changed."""
    keys = []
    for page in client.iter_pages(
        ORDERS_RESOURCE,
        filters=[Filter("nota", "contiene", marker(order_id))],
        fields=["sigla", "serie", "numero", "nota"],
        page_size=20,
    ):
        for rec in page.records:
            if marker(order_id) in str(rec.get("nota") or ""):
                keys.append(f"{rec['sigla']}+{rec['serie']}+{rec['numero']}")
    return sorted(keys, key=lambda k: split_key(k)[1:])


def _held_by_another(store: Store, erp_key: str, order_id: str) -> bool:
    """Whether another site order is bound to this ERP document (an ERP restored from a
    backup gives its numbers out again): then neither order is moved onto it."""
    with store.read() as conn:
        holder = conn.execute(
            sa.select(orders_t.c.id).where(orders_t.c.erp_key == erp_key, orders_t.c.id != order_id)
        ).first()
    return holder is not None


def refresh_open_orders(
    store: Store,
    client: MexalClient,
    *,
    run_id: int | None = None,
    order_ids: Sequence[str] | None = None,
    batch_size: int = BATCH_SIZE,
    dry_run: bool = False,
    cancel: threading.Event | None = None,
    on_progress: Callable[[int, int, str | None], None] | None = None,
    check: Callable[[], None] | None = None,
) -> RefreshResult:
    """Re-read open orders (or the named orders, whatever their state) from the ERP.

    Each batch is committed on its own; `check` is called between batches and may
    raise to stop (a run's cancellation), leaving the batches done so far stored."""
    result = RefreshResult()
    if order_ids is not None:
        scope = sa.and_(orders_t.c.id.in_(list(order_ids)), orders_t.c.erp_key.is_not(None))
    else:
        scope = sa.and_(orders_t.c.state.in_(states.OPEN), orders_t.c.erp_key.is_not(None))
    with store.read() as conn:
        total = int(
            conn.execute(sa.select(sa.func.count()).select_from(orders_t).where(scope)).scalar_one()
        )
    last_id = ""
    done = 0
    while True:
        if cancel is not None and cancel.is_set():
            raise RefreshAborted("order refresh cancelled")
        if check is not None:
            check()
        with store.read() as conn:
            page = conn.execute(
                sa.select(*PAGE_COLUMNS)
                .where(scope, orders_t.c.id > last_id)
                .order_by(orders_t.c.id)
                .limit(batch_size)
            ).all()
        if not page:
            return result
        last_id = page[-1].id
        _refresh_page(store, client, page, result, run_id=run_id, dry_run=dry_run)
        done += len(page)
        if on_progress is not None:
            on_progress(done, total, None)


def _current_site_edits(
    conn: sa.Connection,
    adopted: list[dict[str, Any]],
    changed: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    """A site edit saved while the ERP was being read is not lost: the writes carry the
    orders' site edits as they are now (read under the write lock), kept on the order,
    or, where the ERP changed the order, moved to the update queued for review."""
    ids = [a["b_id"] for a in adopted] + [params["b_id"] for params, _ in changed]
    if not ids:
        return
    now: dict[str, Any] = dict(
        conn.execute(
            sa.select(orders_t.c.id, orders_t.c.site_edit)
            .where(orders_t.c.id.in_(ids))
            .with_for_update()
        ).all()
    )
    for a in adopted:
        a["b_site_edit"] = now.get(a["b_id"], a["b_site_edit"])
    for params, record in changed:
        edit = now.get(params["b_id"], record["site_edit"] or params["b_site_edit"])
        if record["before"] != record["after"]:  # the ERP changed it: the ERP wins
            record["site_edit"], params["b_site_edit"] = edit, None
        else:
            params["b_site_edit"] = edit


def _refresh_page(
    store: Store,
    client: MexalClient,
    page: Sequence[Any],
    result: RefreshResult,
    *,
    run_id: int | None,
    dry_run: bool,
) -> None:
    # an order the ERP holds twice (or more) is looked up by its marker again: it stays
    # to_check while the ERP has more than one document for it; once one is left, the
    # order follows that one (the operator settled it in the ERP)
    bound = {row.id: (row.erp_key, row.erp_duplicates) for row in page}
    for row in page:
        if row.erp_duplicates:
            keys = documents_with_marker(client, row.id)
            result.requests += 1
            if len(keys) == 1 and not _held_by_another(store, keys[0], row.id):
                bound[row.id] = (keys[0], None)
            elif keys:
                bound[row.id] = (row.erp_key if row.erp_key in keys else keys[0], keys)
    found = fetch_keys(client, [key for key, _ in bound.values()], result)
    # the document an order is bound to is gone: the ERP may hold it under another key
    # (copied there, then the first deleted), found by the order's marker. One document
    # left: the order follows it; more: to_check with their keys, as above; none: lost
    # (to_check, for the operator to send again)
    followed: dict[str, str] = {}
    for row in page:
        key, duplicates = bound[row.id]
        if duplicates or key in found:
            continue
        keys = documents_with_marker(client, row.id)
        result.requests += 1
        keys = [k for k in keys if not _held_by_another(store, k, row.id)]
        if len(keys) == 1:
            bound[row.id] = (keys[0], None)
            followed[row.id] = keys[0]
        elif keys:
            bound[row.id] = (keys[0], keys)
            followed[row.id] = keys[0]
    found.update(fetch_keys(client, list(followed.values()), result))
    now = utcnow()
    changed: list[tuple[dict[str, Any], dict[str, Any]]] = []
    adopted: list[dict[str, Any]] = []
    unchanged_ids: list[str] = []
    for row in page:
        result.read += 1
        key, duplicates = bound[row.id]
        rec = found.get(key)
        doc: dict[str, Any] | None
        if rec is None:
            doc = None
        else:
            try:
                doc = normalize(rec)
            except ValueError as exc:
                # a malformed document: keep what the site knows, say why, try next time
                result.rejected.append((row.id, f"ERP document {row.erp_key}: {exc}"))
                continue
        prev = row.erp_snapshot
        if doc is not None and prev is not None and row.refreshed_at is None:
            prev = _adopt_unsent(prev, doc)
        state = states.derive_state(doc, row.sent_snapshot, marker(row.id))
        if duplicates:
            state = states.TO_CHECK
        if row.state in states.FINAL and state not in states.FINAL:
            # final states are final (DOMAIN.md): an order re-read by name after it was
            # closed keeps its state; what the ERP changed is still queued for review
            state = row.state
        if doc is None:
            result.missing += 1
        binding = {
            "b_erp_key": key,
            "b_duplicates": duplicates,
            # the push's note on the duplicates goes with them
            "b_error": row.last_error if duplicates or not row.erp_duplicates else None,
        }
        same_binding = key == row.erp_key and duplicates == row.erp_duplicates
        if doc == prev and state == row.state and same_binding:
            result.unchanged += 1
            if doc == row.erp_snapshot:
                unchanged_ids.append(row.id)
            else:
                # the first read adopted the ERP's defaults: keep them, queue nothing
                adopted.append(
                    {
                        "b_id": row.id,
                        "b_prev": row.refreshed_at,
                        "b_state": state,
                        "b_erp_snapshot": doc,
                        "b_refreshed_at": now,
                        "b_site_edit": row.site_edit,
                        **binding,
                    }
                )
            continue
        overridden = row.site_edit if doc != prev else None
        changed.append(
            (
                {
                    "b_id": row.id,
                    "b_prev": row.refreshed_at,
                    "b_state": state,
                    "b_erp_snapshot": doc,
                    "b_refreshed_at": now,
                    "b_site_edit": None if overridden is not None else row.site_edit,
                    **binding,
                },
                {
                    "order_id": row.id,
                    "run_id": run_id,
                    "detected_at": now,
                    "state_before": row.state,
                    "state_after": state,
                    "before": prev,
                    "after": doc,
                    "site_edit": overridden,
                    "reviewed": False,
                },
            )
        )
    if dry_run:
        result.updated += len(changed)
        result.closed += sum(1 for c, _ in changed if c["b_state"] in states.FINAL)
        return
    # each write is conditional on the order not having been refreshed since it was read
    # (`refreshed_at` is its version), so two refreshes at once never queue a change twice
    update = (
        sa.update(orders_t)
        .where(
            orders_t.c.id == sa.bindparam("b_id"),
            orders_t.c.refreshed_at.is_not_distinct_from(sa.bindparam("b_prev")),
        )
        .values(
            state=sa.bindparam("b_state"),
            erp_snapshot=sa.bindparam("b_erp_snapshot"),
            refreshed_at=sa.bindparam("b_refreshed_at"),
            site_edit=sa.bindparam("b_site_edit"),
            erp_key=sa.bindparam("b_erp_key"),
            erp_duplicates=sa.bindparam("b_duplicates"),
            last_error=sa.bindparam("b_error"),
        )
    )
    with store.write() as conn:
        _current_site_edits(conn, adopted, changed)
        if adopted:
            conn.execute(update, adopted)
        queued = []
        for params, record in changed:  # real changes are few: one statement each
            if conn.execute(update, params).rowcount == 1:
                queued.append(record)
                result.updated += 1
                result.closed += int(params["b_state"] in states.FINAL)
        if queued:
            conn.execute(sa.insert(updates_t), queued)
        if unchanged_ids:
            conn.execute(
                sa.update(orders_t).where(orders_t.c.id.in_(unchanged_ids)).values(refreshed_at=now)
            )
