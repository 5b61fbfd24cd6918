"""The ERP side of a web order: the `OC` document sent to the ERP and the normalized
view of what the ERP holds, compared field by field on each re-read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from passweb_tui.engine.erp.values import format_date, parse_indexed, to_decimal, to_indexed
from passweb_tui.engine.orders.models import as_utc, decimal_text

ORDERS_RESOURCE = "documenti/ordini-clienti"
CUSTOMERS_RESOURCE = "clienti"

#: the note's room in the ERP (ASSUMED); the marker always fits in it first
NOTE_LENGTH = 240

#: header fields compared on each re-read, and rows' fields
HEADER_FIELDS = ("cod_conto", "data_documento", "id_pagamento", "nota", "doc_collegati")
ROW_FIELDS = (
    "codice_articolo",
    "quantita",
    "prezzo",
    "sconto",
    "cod_iva",
    "qta_evasa",
    "stato_riga",
)
#: what a search for open orders asks for
READ_FIELDS = ("sigla", "serie", "numero", *HEADER_FIELDS, "id_riga", *ROW_FIELDS)


@dataclass(frozen=True)
class DocumentSeries:
    """Where web orders go in the ERP: document type and number series (configurable)."""

    sigla: str = "OC"
    serie: int = 1


def marker(order_id: str) -> str:
    """The idempotency key written into the ERP note: `$W1001$`."""
    return f"${order_id}$"


def note_text(order_id: str, note: str | None) -> str:
    text = marker(order_id)
    if note:
        text = f"{text} {' '.join(note.split())}"
    return text[:NOTE_LENGTH]


def split_key(key: str) -> tuple[str, int, int]:
    """`"OC+1+36"` -> ("OC", 1, 36); ValueError for anything else."""
    parts = key.split("+")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise ValueError(f"not an order document key (SIGLA+SERIE+NUMERO): {key!r}")
    return parts[0], int(parts[1]), int(parts[2])


def local_date(created: datetime, zone: tzinfo | None = None) -> date:
    """The day an order was placed, as the shop and the ERP count days: in the site's
    time zone, else this machine's (orders are stored in UTC, whose day starts an hour
    or two later in Italy)."""
    moment = as_utc(created)
    assert moment is not None
    return moment.astimezone(zone).date()


def build_document(
    *,
    order_id: str,
    created: datetime,
    customer_code: str,
    payment_code: str | None,
    currency_id: int | None,
    note: str | None,
    rows: Sequence[Mapping[str, Any]],
    series: DocumentSeries,
    zone: tzinfo | None = None,
) -> dict[str, Any]:
    """The record POSTed to create the order (numero 0: the ERP assigns the number)."""
    record: dict[str, Any] = {
        "sigla": series.sigla,
        "serie": series.serie,
        "numero": 0,
        "cod_conto": customer_code,
        "data_documento": format_date(local_date(created, zone)),
        "nota": note_text(order_id, note),
    }
    if payment_code:
        record["id_pagamento"] = payment_code
    if currency_id is not None:
        record["id_valuta"] = currency_id
    columns: dict[str, dict[int, Any]] = {
        name: {}
        for name in (
            "id_riga",
            "tp_riga",
            "codice_articolo",
            "quantita",
            "prezzo",
            "sconto",
            "cod_iva",
        )
    }
    for i, row in enumerate(rows, start=1):
        columns["id_riga"][i] = i
        columns["tp_riga"][i] = "R"
        columns["codice_articolo"][i] = row["article"]
        columns["quantita"][i] = _number(row["qty"])
        columns["prezzo"][i] = _number(row["price"])
        columns["sconto"][i] = row.get("discount") or ""
        columns["cod_iva"][i] = row["vat_code"]
    described = {
        i: row["description"][:80] for i, row in enumerate(rows, 1) if row.get("description")
    }
    if described:
        # the rows travel as parallel arrays that the ERP takes only whole (the same row
        # indices as id_riga): a row without a description of its own goes with an empty
        # one, as every row does when none has one
        columns["descr_riga"] = {i: described.get(i, "") for i in columns["id_riga"]}
    for name, values in columns.items():
        record[name] = to_indexed(values)
    return record


def _number(value: Decimal) -> int | float:
    """JSON has no decimals: whole numbers travel as ints, others as their shortest float."""
    if value == value.to_integral_value():
        return int(value)
    return float(decimal_text(value))


def _dec(value: Any, where: str) -> str:
    if value is None or value == "":
        return "0"
    try:
        return decimal_text(to_decimal(value))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def normalize(record: Mapping[str, Any]) -> dict[str, Any]:
    """A document as the site compares it: the fields that matter, in canonical text.

    Raises ValueError naming the field when the ERP sent something malformed.
    """
    header: dict[str, Any] = {}
    for name in HEADER_FIELDS:
        value = record.get(name)
        if name == "doc_collegati":
            if value is None:
                value = []
            if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
                raise ValueError(f"doc_collegati must be a list of keys, got {value!r}")
            header[name] = sorted(value)
        else:
            header[name] = "" if value is None else str(value)
    columns = {
        name: parse_indexed(record.get(name), field=name) for name in ("id_riga", *ROW_FIELDS)
    }
    indexes = sorted(set().union(*(c.keys() for c in columns.values())))
    rows = []
    for i in indexes:
        row_id = columns["id_riga"].get(i, i)
        rows.append(
            {
                "id_riga": int(row_id)
                if isinstance(row_id, int | str) and str(row_id).isdigit()
                else i,
                "codice_articolo": str(columns["codice_articolo"].get(i) or ""),
                "quantita": _dec(columns["quantita"].get(i), f"quantita[{i}]"),
                "prezzo": _dec(columns["prezzo"].get(i), f"prezzo[{i}]"),
                "sconto": str(columns["sconto"].get(i) or ""),
                "cod_iva": str(columns["cod_iva"].get(i) or ""),
                "qta_evasa": _dec(columns["qta_evasa"].get(i), f"qta_evasa[{i}]"),
                "stato_riga": str(columns["stato_riga"].get(i) or "").strip().upper(),
            }
        )
    return {"header": header, "rows": rows}


def key_of(record: Mapping[str, Any]) -> str:
    return f"{record['sigla']}+{record['serie']}+{record['numero']}"
