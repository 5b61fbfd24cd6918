"""Site order states (CONTRACTS.md codes) and their derivation from the ERP document,
following DOMAIN.md's table: first match wins."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

NEW = "new"
PAYMENT_UNCONFIRMED = "payment_unconfirmed"
STORED = "stored"
MODIFIED = "modified"
PARTIALLY_FULFILLED = "partially_fulfilled"
SUSPENDED = "suspended"
MODIFIED_CANCELLED = "modified_cancelled"
TO_CHECK = "to_check"
FULFILLED = "fulfilled"
DELIVERED = "delivered"
INVOICED = "invoiced"
TRANSFORMED = "transformed"
CANCELLED = "cancelled"

#: waiting on the site, not in the ERP yet
WAITING = (NEW, PAYMENT_UNCONFIRMED)
#: in the ERP and re-read by TOTAL and CHANGED
OPEN = (STORED, MODIFIED, PARTIALLY_FULFILLED, SUSPENDED, MODIFIED_CANCELLED, TO_CHECK)
#: nothing more can happen to them
FINAL = (FULFILLED, DELIVERED, INVOICED, TRANSFORMED, CANCELLED)
ALL = WAITING + OPEN + FINAL

#: linked-document prefixes (sigla) that mean "delivery note" and "invoice"
DELIVERY_NOTE_SIGLE = ("BC",)
INVOICE_SIGLE = ("FT", "FD", "FS")

#: Passweb's names, for screens
LABELS = {
    NEW: "Nuovo",
    PAYMENT_UNCONFIRMED: "Pagamento non confermato",
    STORED: "Memorizzato",
    MODIFIED: "Modificato",
    PARTIALLY_FULFILLED: "Parzialmente evaso",
    SUSPENDED: "Sospeso",
    MODIFIED_CANCELLED: "Modificato-Annullato",
    TO_CHECK: "Da verificare",
    FULFILLED: "Evaso",
    DELIVERED: "Bollato",
    INVOICED: "Fatturato",
    TRANSFORMED: "Trasformato",
    CANCELLED: "Annullato",
}


def _sigla(key: str) -> str:
    return key.split("+", 1)[0].strip().upper()


def _row_done(row: dict[str, Any]) -> bool:
    """A row is done when the ERP says fulfilled (E) or cancelled (N), or all of it shipped."""
    if row["stato_riga"] in ("E", "N"):
        return True
    return Decimal(row["qta_evasa"]) >= Decimal(row["quantita"]) > 0


def derive_state(doc: dict[str, Any] | None, sent: dict[str, Any] | None, marker: str) -> str:
    """The site state of an order in the ERP.

    `doc` and `sent` are normalized documents (see documents.normalize): what the ERP
    has now (None when it no longer has it) and what the site sent. `marker` is the
    `$id$` that must still be in the note; a document without it, or for another
    customer, contradicts the site.
    """
    if doc is None:
        return TO_CHECK
    if marker not in (doc["header"].get("nota") or ""):
        return TO_CHECK
    if sent is not None and sent["header"].get("cod_conto") != doc["header"].get("cod_conto"):
        return TO_CHECK
    rows = doc["rows"]
    links = [_sigla(k) for k in doc["header"].get("doc_collegati") or []]
    all_done = bool(rows) and all(_row_done(r) for r in rows)
    if any(s not in DELIVERY_NOTE_SIGLE + INVOICE_SIGLE for s in links):
        return TRANSFORMED
    if all_done and any(s in INVOICE_SIGLE for s in links):
        return INVOICED
    if all_done and any(s in DELIVERY_NOTE_SIGLE for s in links):
        return DELIVERED
    if rows and all(r["stato_riga"] == "N" for r in rows):
        return CANCELLED
    if all_done:
        return FULFILLED
    if any(r["stato_riga"] == "N" for r in rows):
        return MODIFIED_CANCELLED
    if any(r["stato_riga"] in ("S", "B") for r in rows):
        return SUSPENDED
    if any(Decimal(r["qta_evasa"]) > 0 for r in rows):
        return PARTIALLY_FULFILLED
    if sent is not None and _goods(sent) != _goods(doc):
        return MODIFIED
    return STORED


def _goods(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What the customer ordered: article, quantity, price, discount per row."""
    return sorted(
        (r["codice_articolo"], r["quantita"], r["prezzo"], r["sconto"]) for r in doc["rows"]
    )
