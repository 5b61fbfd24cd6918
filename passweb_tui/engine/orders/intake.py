"""Intake of web orders: validation of one order (a JSON Lines import line, or an order
placed by the demo shopper) and storing good orders in bulk, one batch per transaction."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from types import SimpleNamespace
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from passweb_tui.codice_fiscale import problem as tax_code_problem
from passweb_tui.engine.orders import states
from passweb_tui.engine.orders.documents import NOTE_LENGTH, marker
from passweb_tui.engine.orders.models import WebCustomer, WebOrder, WebOrderRow, utcnow
from passweb_tui.engine.store import Store

ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}$")
ERP_CUSTOMER_CODE = re.compile(r"^\d{1,4}\.\d{1,6}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DISCOUNT = re.compile(r"^\d{1,3}(\.\d{1,4})?(\+\d{1,3}(\.\d{1,4})?)*$")
CURRENCY = re.compile(r"^[A-Z]{3}$")

ORDER_KEYS = {"id", "created", "payment", "customer", "currency", "payment_code", "note", "rows"}
NEW_CUSTOMER_KEYS = {
    "email",
    "name",
    "vat_number",
    "tax_code",
    "address",
    "zip",
    "city",
    "province",
    "country",
}
ROW_KEYS = {"article", "qty", "price", "discount", "vat_code", "description"}
#: the longest text each field may hold (the store's and the ERP's limits)
LIMITS = {
    "email": 120,
    "name": 120,
    "vat_number": 20,
    "tax_code": 20,
    "address": 120,
    "zip": 10,
    "city": 60,
    "province": 2,
    "country": 2,
    "payment_code": 10,
    "note": 2000,
    "article": 40,
    "description": 240,
}
#: the ERP customer field each new-customer detail goes to (see push.Pusher)
ERP_CUSTOMER_FIELDS = {
    "name": "ragione_sociale",
    "vat_number": "partita_iva",
    "tax_code": "codice_fiscale",
    "address": "indirizzo",
    "zip": "cap",
    "city": "localita",
    "province": "provincia",
    "country": "nazione",
    "email": "email",
}
MAX_ROWS = 500
#: the problems of one order an error names at the most (then "and N more")
MOST_PROBLEMS = 5
BATCH = 500


_T = TypeVar("_T")


class OrderInvalid(ValueError):
    """An order that cannot be stored; the message says which field and why."""


@dataclass
class NewCustomer:
    name: str
    email: str | None
    vat_number: str | None
    tax_code: str | None = None
    address: str | None = None
    zip: str | None = None
    city: str | None = None
    province: str | None = None
    country: str | None = None

    def as_row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in NEW_CUSTOMER_KEYS}


#: a new customer's details in the order their problems are named
_CUSTOMER_FIELDS = tuple(f.name for f in fields(NewCustomer))


@dataclass
class OrderIn:
    """A validated order, ready to store."""

    id: str
    created: datetime
    payment: str
    customer_code: str | None
    new_customer: NewCustomer | None
    currency: str
    payment_code: str | None
    note: str | None
    rows: list[dict[str, Any]]


@dataclass
class Problem:
    line: int
    order_id: str | None
    reason: str

    def __str__(self) -> str:
        who = f" (order {self.order_id})" if self.order_id else ""
        return f"line {self.line}{who}: {self.reason}"


@dataclass
class ImportReport:
    stored: list[str] = field(default_factory=list)
    new_customers: int = 0
    skipped: list[Problem] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.skipped


def _shown(value: Any, limit: int = 40) -> str:
    """A value as an error message quotes it: as it was written in the JSON (numbers are
    read as decimals, which the JSON encoder does not take)."""
    if isinstance(value, Decimal):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text[:limit]


def _text(
    value: Any, where: str, *, required: bool = False, limit: int | None = None
) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise OrderInvalid(f"{where}: required")
        return None
    if not isinstance(value, str):
        raise OrderInvalid(f"{where}: must be text, got {_shown(value)}")
    value = value.strip()
    if where == "note":
        # a note may run over several lines; any other control character (a NUL, a
        # bell) would go into the ERP's note as it is
        if any(ord(ch) < 0x20 and ch not in "\n\r\t" for ch in value):
            raise OrderInvalid(
                f"{where}: contains control characters (line breaks and tabs are allowed)"
            )
    elif any(ord(ch) < 0x20 for ch in value):
        raise OrderInvalid(f"{where}: contains control characters")
    if limit is not None and len(value) > limit:
        raise OrderInvalid(f"{where}: longer than {limit} characters ({len(value)})")
    return value


def _decimal(value: Any, where: str, *, positive: bool) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise OrderInvalid(f"{where}: must be a number, got {_shown(value)}")
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise OrderInvalid(f"{where}: must be a number, got {value!r}") from None
    if not number.is_finite():
        raise OrderInvalid(f"{where}: must be a finite number, got {value!r}")
    if positive and number <= 0:
        raise OrderInvalid(f"{where}: must be greater than 0, got {value}")
    if number < 0:
        raise OrderInvalid(f"{where}: must not be negative, got {value}")
    if number.as_tuple().exponent < -4:  # type: ignore[operator]
        raise OrderInvalid(f"{where}: more than 4 decimals: {value}")
    if abs(number) >= Decimal(10) ** 12:
        raise OrderInvalid(f"{where}: too large: {value}")
    return number


def _unknown(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise OrderInvalid(f"{where}unknown field {extra[0]!r}")


class _Problems:
    """What is wrong with one order, every field checked: `check` runs one check and
    keeps its OrderInvalid, so the operator mends a line once instead of once a field."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, step: Callable[[], _T]) -> _T | None:
        try:
            return step()
        except OrderInvalid as exc:
            self.found.append(str(exc))
            return None

    def raise_any(self) -> None:
        if self.found:
            raise OrderInvalid(_said(self.found))


def _said(found: Sequence[str]) -> str:
    """Problems as one error names them: the first MOST_PROBLEMS, then how many more."""
    shown = found[:MOST_PROBLEMS]
    more = len(found) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more else "")


#: the ERP's lengths an order is checked against, read from the store (see _order_limits
#: and _erp_limits): the order's own details, its new customer's
Limits = tuple[Mapping[str, tuple[str, int]], Mapping[str, tuple[str, int]]]


def validate(obj: Any, limits: Limits | None = None) -> OrderIn:
    """Check one order (a decoded JSON object); OrderInvalid names each problem found
    (the first MOST_PROBLEMS of them), field by field. With the ERP's `limits`, a note,
    article or payment code the ERP could not take is one of them, and so, in an order
    refused anyway, is a new customer's detail the ERP could not take (the store checks
    those when it creates the customer: one already known is not sent again)."""
    if not isinstance(obj, dict):
        raise OrderInvalid("an order must be a JSON object")
    problems = _Problems()
    check = problems.check
    check(lambda: _unknown(obj, ORDER_KEYS, ""))
    order_id = check(lambda: _order_id(obj.get("id")))
    created = check(lambda: _created(obj.get("created")))
    payment = check(lambda: _payment(obj.get("payment")))
    buyer = check(lambda: _customer(obj.get("customer"), problems))
    currency = check(lambda: _currency(obj.get("currency", "EUR")))
    payment_code = check(
        lambda: _text(obj.get("payment_code"), "payment_code", limit=LIMITS["payment_code"])
    )
    note = check(lambda: _note(obj.get("note")))
    rows = check(lambda: _rows(obj.get("rows"), problems))
    if limits is not None:
        order_limits, customer_limits = limits
        given = obj.get("rows")
        raw_rows: list[Any] = given if isinstance(given, list) else []
        articles = [
            (f"rows[{i}].article", raw.get("article"))
            for i, raw in enumerate(raw_rows, start=1)
            if isinstance(raw, dict)
        ]
        note, payment_code = obj.get("note"), obj.get("payment_code")
        too_long = _order_too_long(
            order_id,
            note if isinstance(note, str) else None,
            payment_code if isinstance(payment_code, str) else None,
            [(where, v) for where, v in articles if isinstance(v, str)],
            order_limits,
        )
        problems.found += _not_named(too_long, problems.found)
        if problems.found:
            given = obj.get("customer")
            if buyer is not None and buyer[1] is not None:
                details: Any = buyer[1]
            elif isinstance(given, dict) and "code" not in given:
                details = _raw_details(given)  # a detail of it is wrong: the rest as given
            else:
                details = None
            if details is not None:
                problems.found += _not_named(_too_long(details, customer_limits), problems.found)
    problems.raise_any()
    assert order_id and created and payment and buyer and currency and rows is not None
    customer_code, new_customer = buyer
    return OrderIn(
        id=order_id,
        created=created,
        payment=payment,
        customer_code=customer_code,
        new_customer=new_customer,
        currency=currency,
        payment_code=payment_code,
        note=note,
        rows=rows,
    )


def _not_named(more: Sequence[str], found: Sequence[str]) -> list[str]:
    """The problems of `more` whose field `found` does not name already (a field said to
    be too long for the intake is not said to be too long for the ERP as well)."""
    named = {problem.split(":", 1)[0] for problem in found}
    return [problem for problem in more if problem.split(":", 1)[0] not in named]


def _raw_details(customer: Mapping[str, Any]) -> SimpleNamespace:
    """A new customer's details as given, spelled as the intake keeps them (trimmed, a
    VAT number and tax code without spaces), texts only: to check the ERP's lengths of
    a customer that has a problem of its own as well."""
    values: dict[str, str | None] = {}
    for detail in ERP_CUSTOMER_FIELDS:
        value = customer.get(detail)
        text = value.strip() if isinstance(value, str) else None
        if text and detail in ("vat_number", "tax_code"):
            text = text.replace(" ", "")
        values[detail] = text
    return SimpleNamespace(**values)


def _order_id(order_id: Any) -> str:
    if not isinstance(order_id, str) or not ORDER_ID.match(order_id):
        raise OrderInvalid(
            f"id: must be 1-40 letters, digits, '_', '.' or '-', got {_shown(order_id, 50)}"
        )
    return order_id


def _created(value: Any) -> datetime:
    created_text = _text(value, "created", required=True)
    assert created_text is not None
    try:
        created = datetime.fromisoformat(created_text)
    except ValueError:
        raise OrderInvalid(
            f"created: not an ISO-8601 date-time (2026-11-27T10:15:00): {created_text!r}"
        ) from None
    try:
        if created.tzinfo is None:
            # the site's clock is the operator's local time
            created = created.astimezone()
        return created.astimezone(UTC)
    except (ValueError, OverflowError):  # a date at the very ends of the calendar
        raise OrderInvalid(f"created: out of range: {created_text!r}") from None


def _payment(payment: Any) -> str:
    if payment not in ("confirmed", "unconfirmed"):
        raise OrderInvalid(f'payment: must be "confirmed" or "unconfirmed", got {_shown(payment)}')
    return str(payment)


def _customer(customer: Any, problems: _Problems) -> tuple[str | None, NewCustomer | None] | None:
    """(an ERP customer's code, None) or (None, a new customer); None when a problem of a
    new customer's details was noted in `problems`."""
    if not isinstance(customer, dict) or not customer:
        raise OrderInvalid("customer: required, an object with code, or a new customer's details")
    if "code" in customer:
        if len(customer) > 1:
            raise OrderInvalid(
                "customer: give either code (an ERP customer) or a new customer's details, not both"
            )
        code = customer["code"]
        if not isinstance(code, str):
            raise OrderInvalid(f'customer.code: must be text, like "501.00042", got {_shown(code)}')
        if not ERP_CUSTOMER_CODE.match(code):
            raise OrderInvalid(
                f"customer.code: not an ERP customer code like 501.00042: {_shown(code)}"
            )
        return code, None
    before = len(problems.found)
    problems.check(lambda: _unknown(customer, NEW_CUSTOMER_KEYS, "customer: "))
    values: dict[str, Any] = {}
    for k in _CUSTOMER_FIELDS:
        try:
            values[k] = _text(customer.get(k), f"customer.{k}", limit=LIMITS[k])
        except OrderInvalid as exc:  # said once: not "required" as well
            problems.found.append(str(exc))
            values[k] = ""
    if values["name"] is None:
        problems.found.append("customer.name: required for a new customer")
    email = values["email"]
    if email is None:
        problems.found.append("customer.email: required for a new customer")
    elif email and not EMAIL.match(email):
        problems.found.append(f"customer.email: not an e-mail address: {email!r}")
    else:
        values["email"] = email.lower()
    if values["vat_number"]:
        values["vat_number"] = values["vat_number"].replace(" ", "").upper()
        if not values["vat_number"].isalnum():
            problems.found.append(
                f"customer.vat_number: letters and digits only: {values['vat_number']!r}"
            )
    if values["tax_code"]:
        values["tax_code"] = values["tax_code"].replace(" ", "").upper()
    if values["country"]:
        values["country"] = values["country"].upper()
    if values["province"]:
        values["province"] = values["province"].upper()
    if len(problems.found) > before:
        return None
    return None, NewCustomer(**values)


def customer_details(values: Mapping[str, Any], conn: sa.Connection | None = None) -> NewCustomer:
    """A site customer's details checked as an import checks a new customer's (and, given
    the store, against the ERP's lengths); OrderInvalid names every problem found."""
    problems = _Problems()
    parsed = problems.check(lambda: _customer(dict(values), problems))
    problems.raise_any()
    if parsed is None or parsed[1] is None:  # a code: not a new customer's details
        raise OrderInvalid("customer: a new customer's details are needed, not an ERP code")
    customer = parsed[1]
    found = _too_long(customer, _erp_limits(conn)) if conn is not None else []
    # a correction is checked as the ERP checks an Italian customer's tax code (its shape
    # and check character), so that a wrong one costs no push; an import is not, so that
    # the shop's order is kept and mended later
    if customer.tax_code and (customer.country or "IT") == "IT":
        wrong = tax_code_problem(customer.tax_code)
        if wrong and not any(f.startswith("customer.tax_code:") for f in found):
            found.append(f"customer.tax_code: {wrong}")
    if found:
        raise OrderInvalid(_said(found))
    return customer


def _currency(currency: Any) -> str:
    if not isinstance(currency, str) or not CURRENCY.match(currency):
        raise OrderInvalid(f"currency: an ISO code like EUR, got {_shown(currency, 20)}")
    return currency


def _note(value: Any) -> str | None:
    note = _text(value, "note", limit=LIMITS["note"])
    if note is not None and "$" in note:
        # `$...$` in the ERP note is the order's idempotency marker; keep it unambiguous
        raise OrderInvalid("note: must not contain '$'")
    return note


def _rows(raw_rows: Any, problems: _Problems) -> list[dict[str, Any]] | None:
    """The order's rows; None when a problem of a row was noted in `problems`."""
    if not isinstance(raw_rows, list) or not raw_rows:
        raise OrderInvalid("rows: required, a non-empty list")
    if len(raw_rows) > MAX_ROWS:
        raise OrderInvalid(f"rows: more than {MAX_ROWS} rows ({len(raw_rows)})")
    before = len(problems.found)
    rows = []
    for i, raw in enumerate(raw_rows, start=1):
        where = f"rows[{i}]"
        if not isinstance(raw, dict):
            problems.found.append(f"{where}: must be an object")
            continue
        rows.append(_row(i, raw, where, problems.check))
    return rows if len(problems.found) == before else None


def _row(
    line_no: int, raw: Mapping[str, Any], where: str, check: Callable[[Callable[[], Any]], Any]
) -> dict[str, Any]:
    check(lambda: _unknown(raw, ROW_KEYS, f"{where}: "))
    return {
        "line_no": line_no,
        "article": check(
            lambda: _text(raw.get("article"), f"{where}.article", required=True, limit=40)
        ),
        "qty": check(lambda: _amount(raw, "qty", where, positive=True)),
        "price": check(lambda: _amount(raw, "price", where, positive=False)),
        "discount": check(lambda: _discount(raw, where)),
        "vat_code": check(lambda: _vat(raw, where)),
        "description": check(
            lambda: _text(raw.get("description"), f"{where}.description", limit=240)
        ),
    }


def _amount(raw: Mapping[str, Any], name: str, where: str, *, positive: bool) -> Decimal:
    if name not in raw:
        raise OrderInvalid(f"{where}.{name}: required")
    return _decimal(raw[name], f"{where}.{name}", positive=positive)


def _discount(raw: Mapping[str, Any], where: str) -> str | None:
    discount = raw.get("discount")
    if isinstance(discount, int | float | Decimal) and not isinstance(discount, bool):
        discount = str(discount)
    discount = _text(discount, f"{where}.discount", limit=20)
    if discount is not None and not DISCOUNT.match(discount):
        raise OrderInvalid(
            f'{where}.discount: a percentage or a chain like "10+5", got {discount!r}'
        )
    if discount is not None and any(Decimal(part) > 100 for part in discount.split("+")):
        # past 100% a row would cost the customer less than nothing
        raise OrderInvalid(f"{where}.discount: each percentage at most 100, got {discount!r}")
    return discount


def _vat(raw: Mapping[str, Any], where: str) -> str | None:
    vat = raw.get("vat_code")
    if isinstance(vat, int) and not isinstance(vat, bool):
        vat = str(vat)
    return _text(vat, f"{where}.vat_code", required=True, limit=4)


def parse_line(text: str, limits: Limits | None = None) -> OrderIn:
    """One JSON Lines line -> a validated order. Numbers are read as exact decimals."""
    try:
        obj = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise OrderInvalid(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise OrderInvalid(
            "not an order: arrays or objects nested deeper than can be read"
        ) from None
    return validate(obj, limits)


def read_lines(
    lines: Iterable[bytes | str], limits: Limits | None = None
) -> Iterator[tuple[int, OrderIn | Problem]]:
    """Number and validate lines (against the ERP's `limits` too, when given); blank
    lines are skipped, bad ones become Problems."""
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, Problem(number, None, f"not UTF-8 text (byte {exc.start + 1})")
                continue
        else:
            text = raw
        text = text.strip().lstrip("\ufeff")
        if not text:
            continue
        try:
            yield number, parse_line(text, limits)
        except OrderInvalid as exc:
            order_id = None
            try:
                maybe = json.loads(text)
                if isinstance(maybe, dict) and isinstance(maybe.get("id"), str):
                    order_id = maybe["id"][:40]
            except (ValueError, RecursionError):
                pass
            yield number, Problem(number, order_id, str(exc))


def _batches(
    items: Iterable[tuple[int, OrderIn | Problem]], size: int
) -> Iterator[list[tuple[int, OrderIn | Problem]]]:
    batch: list[tuple[int, OrderIn | Problem]] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_orders(store: Store, lines: Iterable[bytes | str]) -> ImportReport:
    """Validate and store orders; each batch is one transaction of a few bulk statements."""
    report = ImportReport()
    with store.engine.connect() as conn:
        # the ERP's lengths from the store's field catalogue: every problem of a line is
        # said at once, those of the ERP's lengths with the others
        limits = (_order_limits(conn), _erp_limits(conn))
    for batch in _batches(read_lines(lines, limits), BATCH):
        good: list[tuple[int, OrderIn]] = []
        for number, item in batch:
            if isinstance(item, Problem):
                report.skipped.append(item)
            else:
                good.append((number, item))
        if good:
            try:
                store_orders(store, good, report)
            except IntegrityError:
                # another intake stored some of these ids meanwhile: one by one, so the
                # others still go in and the clash is reported on its own line
                for one in good:
                    try:
                        store_orders(store, [one], report)
                    except IntegrityError:
                        report.skipped.append(
                            Problem(one[0], one[1].id, f"order {one[1].id} already exists")
                        )
    report.skipped.sort(key=lambda p: p.line)
    return report


def place_order(store: Store, order: OrderIn) -> None:
    """Store one order (the checkout path); OrderInvalid if its id is already known."""
    report = ImportReport()
    try:
        store_orders(store, [(1, order)], report)
    except IntegrityError:
        raise OrderInvalid(f"order {order.id} already exists") from None
    if report.skipped:
        raise OrderInvalid(report.skipped[0].reason)


def _erp_limits(conn: sa.Connection) -> dict[str, tuple[str, int]]:
    """The ERP's length of each new-customer detail, from its field catalogue of customers
    in the store (read by the attribute update): detail -> (ERP field, length). Empty
    before the first sync; the intake's own limits hold then."""
    from passweb_tui.engine.fields import load_catalogue

    _, specs = load_catalogue(conn, "customers")
    out = {}
    for detail, name in ERP_CUSTOMER_FIELDS.items():
        spec = specs.get(name)
        if spec is not None and spec.length and spec.length < LIMITS[detail]:
            out[detail] = (name, spec.length)
    return out


def _order_limits(conn: sa.Connection) -> dict[str, tuple[str, int]]:
    """The ERP's length of an order's article codes and of its payment code, from the
    field catalogue in the store (the articles' code, the customers' payment code):
    detail -> (ERP field, length). Empty before the first sync."""
    from passweb_tui.engine.fields import load_catalogue

    out = {}
    for detail, entity, name, shown in (
        ("article", "articles", "codice", "articoli.codice"),
        ("payment_code", "customers", "cod_pagamento", "clienti.cod_pagamento"),
    ):
        spec = load_catalogue(conn, entity)[1].get(name)
        if spec is not None and spec.length and spec.length < LIMITS[detail]:
            out[detail] = (shown, spec.length)
    return out


def _order_too_long(
    order_id: str | None,
    note: str | None,
    payment_code: str | None,
    articles: Sequence[tuple[str, str | None]],
    limits: Mapping[str, tuple[str, int]],
) -> list[str]:
    """Why the ERP could not take an order's note, payment code or article codes (each
    article as (where, code)): such an order would be refused at every push (or its note
    cut), so the site hears it now, every one of them at once."""
    found = []
    if note and order_id:
        # the note goes into the ERP document's note after the order's marker: cut there,
        # its end (a gate code, a delivery time) would be lost without a word
        room = NOTE_LENGTH - len(marker(order_id)) - 1
        said = " ".join(note.split())
        if len(said) > room:
            found.append(
                f"note: at most {room} characters for this order (the ERP's document note"
                f" holds {NOTE_LENGTH}, the order's marker {marker(order_id)} first), got"
                f" {len(said)}"
            )
    for where, value in [("payment_code", payment_code), *articles]:
        limit = limits.get(where.rsplit(".", 1)[-1])
        if limit is not None and value and len(value) > limit[1]:
            name, length = limit
            found.append(
                f"{where}: at most {length} characters (the ERP's {name}), got {len(value)}"
            )
    return found


def _too_long_order(order: OrderIn, limits: Mapping[str, tuple[str, int]]) -> list[str]:
    articles = [(f"rows[{r['line_no']}].article", r["article"]) for r in order.rows]
    return _order_too_long(order.id, order.note, order.payment_code, articles, limits)


def _too_long(customer: Any, limits: Mapping[str, tuple[str, int]]) -> list[str]:
    """Each detail of a new customer (a NewCustomer, or _raw_details) the ERP could not
    take."""
    return [
        f"customer.{detail}: at most {length} characters (the ERP's {name}), got {len(value)}"
        for detail, (name, length) in limits.items()
        if (value := getattr(customer, detail)) and len(value) > length
    ]


#: the PostgreSQL advisory lock one intake holds for its transaction (any fixed number
#: every process agrees on)
_PG_INTAKE_LOCK = zlib.crc32(b"passweb-tui order intake")


def store_orders(store: Store, good: list[tuple[int, OrderIn]], report: ImportReport) -> None:
    """One transaction: refuse known ids, match or create customers, insert orders and rows."""
    orders_t = WebOrder.__table__  # type: ignore[attr-defined]
    rows_t = WebOrderRow.__table__  # type: ignore[attr-defined]
    cust_t = WebCustomer.__table__  # type: ignore[attr-defined]
    stored: list[str] = []
    skipped: list[Problem] = []
    created_customers = 0
    with store.write() as conn:
        if conn.dialect.name == "postgresql":
            # one intake at a time, as SQLite's write lock makes it: two imports that
            # both find no customer with a VAT number would both create one
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_INTAKE_LOCK})
        ids = [o.id for _, o in good]
        known = set(conn.execute(sa.select(orders_t.c.id).where(orders_t.c.id.in_(ids))).scalars())
        news = [o.new_customer for _, o in good if o.new_customer is not None]
        vats = {c.vat_number for c in news if c.vat_number}
        emails = {c.email for c in news if c.email}
        by_vat: dict[str, tuple[int, str | None]] = {}
        by_email: dict[str, tuple[int, str | None]] = {}
        if news:
            found = conn.execute(
                sa.select(cust_t.c.id, cust_t.c.vat_number, cust_t.c.email).where(
                    sa.or_(cust_t.c.vat_number.in_(vats), cust_t.c.email.in_(emails))
                )
            ).all()
            for cid, vat, email in found:
                if vat:
                    by_vat[vat] = (cid, vat)
                if email:
                    by_email.setdefault(email, (cid, vat))
        order_values: list[dict[str, Any]] = []
        row_values: list[dict[str, Any]] = []
        now = utcnow()
        limits = _erp_limits(conn) if news else {}
        order_limits = _order_limits(conn) if good else {}
        for number, order in good:
            if order.id in known:
                skipped.append(Problem(number, order.id, f"order {order.id} already exists"))
                continue
            too_long = _too_long_order(order, order_limits)
            if too_long:
                skipped.append(Problem(number, order.id, _said(too_long)))
                continue
            customer_id = None
            if order.new_customer is not None:
                c = order.new_customer
                match = by_vat.get(c.vat_number) if c.vat_number else None
                if match is None and c.email in by_email:
                    match = by_email[c.email or ""]
                    if c.vat_number and match[1] and match[1] != c.vat_number:
                        skipped.append(
                            Problem(
                                number,
                                order.id,
                                f"customer.email {c.email} belongs to the customer with VAT "
                                f"number {match[1]}, not {c.vat_number}",
                            )
                        )
                        continue
                    if c.vat_number and not match[1]:
                        # the customer known by this e-mail gives its VAT number now: it
                        # is kept, so that a later order with this VAT number and another
                        # e-mail is this customer's too (unless a push of the customer is
                        # under way, whose look-up must find what it sent). A number the
                        # ERP could not take is refused as for a new customer.
                        vat_limit = {k: v for k, v in limits.items() if k == "vat_number"}
                        too_long = _too_long(c, vat_limit)
                        if too_long:
                            skipped.append(Problem(number, order.id, _said(too_long)))
                            continue
                        kept = conn.execute(
                            sa.update(cust_t)
                            .where(
                                cust_t.c.id == match[0],
                                cust_t.c.vat_number.is_(None),
                                cust_t.c.claim_owner.is_(None),
                                sa.not_(cust_t.c.uncertain),
                            )
                            .values(vat_number=c.vat_number)
                        ).rowcount
                        if kept == 1:
                            match = (match[0], c.vat_number)
                            by_vat[c.vat_number] = match
                            by_email[c.email or ""] = match
                if match is None:
                    too_long = _too_long(c, limits)
                    if too_long:
                        # the ERP would refuse the customer, and its orders would wait for
                        # good: the site hears it now, while the shopper can correct it
                        skipped.append(Problem(number, order.id, _said(too_long)))
                        continue
                    cid = conn.execute(
                        sa.insert(cust_t)
                        .values(**c.as_row(), created_at=now, uncertain=False, attempts=0)
                        .returning(cust_t.c.id)
                    ).scalar_one()
                    created_customers += 1
                    match = (cid, c.vat_number)
                    if c.vat_number:
                        by_vat[c.vat_number] = match
                    if c.email:
                        by_email.setdefault(c.email, match)
                customer_id = match[0]
            known.add(order.id)
            order_values.append(
                {
                    "id": order.id,
                    "created": order.created,
                    "payment": order.payment,
                    "customer_code": order.customer_code,
                    "web_customer_id": customer_id,
                    "currency": order.currency,
                    "payment_code": order.payment_code,
                    "note": order.note,
                    "state": states.NEW
                    if order.payment == "confirmed"
                    else states.PAYMENT_UNCONFIRMED,
                    "uncertain": False,
                    "attempts": 0,
                    "imported_at": now,
                }
            )
            row_values.extend({"order_id": order.id, **row} for row in order.rows)
            stored.append(order.id)
        if order_values:
            conn.execute(sa.insert(orders_t), order_values)
            conn.execute(sa.insert(rows_t), row_values)
    # only now that the transaction committed does the report say so
    report.stored.extend(stored)
    report.skipped.extend(skipped)
    report.new_customers += created_customers
