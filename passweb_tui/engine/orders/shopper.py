"""The demo shopper: places plausible web orders into the site store now and then, from
the articles and customers the site already has, so the demo has orders to push."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from passweb_tui.codice_fiscale import check_char, problem
from passweb_tui.engine import models
from passweb_tui.engine.orders.api import WebOrders
from passweb_tui.engine.orders.intake import OrderInvalid
from passweb_tui.engine.orders.models import WebCustomer, WebOrder
from passweb_tui.engine.records import plain_money
from passweb_tui.engine.store import Store

log = logging.getLogger(__name__)

FIRST = ("Marco", "Giulia", "Luca", "Sara", "Paolo", "Anna", "Matteo", "Elena", "Davide", "Chiara")
LAST = ("Rossi", "Bianchi", "Ferrari", "Esposito", "Romano", "Colombo", "Ricci", "Greco", "Bruno")
CITIES = (
    ("Milano", "MI", "20121"),
    ("Torino", "TO", "10121"),
    ("Bologna", "BO", "40121"),
    ("Firenze", "FI", "50122"),
    ("Napoli", "NA", "80133"),
    ("Verona", "VR", "37121"),
)
STREETS = ("Via Roma", "Corso Italia", "Via Garibaldi", "Via Mazzini", "Viale Europa")


@dataclass(frozen=True)
class Catalogue:
    """What the shopper can buy and who can buy it."""

    articles: list[tuple[str, Decimal, str]]  # code, price (list 1), VAT code
    customers: list[str]  # ERP customer codes


def load_catalogue(store: Store, *, limit: int = 500) -> Catalogue:
    """Published articles with a list-1 price, and known customers, from the site store."""
    art = models.Article.__table__  # type: ignore[attr-defined]
    price = models.ArticlePrice.__table__  # type: ignore[attr-defined]
    cust = models.Customer.__table__  # type: ignore[attr-defined]
    with store.read() as conn:
        articles = [
            (code, plain_money(Decimal(str(p))), vat or "22")
            for code, p, vat in conn.execute(
                sa.select(art.c.code, price.c.price, art.c.vat)
                .join(price, price.c.article_code == art.c.code)
                .where(art.c.published.is_(True), price.c.price_list == 1, price.c.price > 0)
                .order_by(art.c.code)
                .limit(limit)
            ).all()
        ]
        customers = list(
            conn.execute(sa.select(cust.c.code).order_by(cust.c.code).limit(limit)).scalars()
        )
    return Catalogue(articles, customers)


def _next_id(store: Store, prefix: str) -> int:
    orders = WebOrder.__table__  # type: ignore[attr-defined]
    with store.read() as conn:
        ids = conn.execute(sa.select(orders.c.id).where(orders.c.id.like(f"{prefix}%"))).scalars()
        numbers = [int(i[len(prefix) :]) for i in ids if i[len(prefix) :].isdigit()]
    return max(numbers, default=0) + 1


def tax_code(rng: random.Random, *, typo: bool = False) -> str:
    """A person's tax code of the right shape and check character; with `typo`, the last
    character mistyped, as a shopper may: the site takes it, the ERP refuses it."""
    letters = "ABCDEFGHILMNOPRSTUVZ"
    name = "".join(rng.choice(letters) for _ in range(6))
    born = f"{rng.randint(40, 99):02d}{rng.choice('ABCDEHLMPRST')}{rng.randint(1, 28) + rng.choice((0, 40)):02d}"
    first15 = f"{name}{born}{rng.choice('ABCDEFGHILM')}{rng.randint(1, 999):03d}"
    check = check_char(first15)
    if typo:
        check = rng.choice([c for c in letters if c != check])
    return first15 + check


def plausible_order(
    order_id: str,
    catalogue: Catalogue,
    rng: random.Random,
    now: datetime | None = None,
    *,
    mistakes: float = 0.0,
    newcomer: bool = False,
) -> dict[str, Any]:
    """One order in the import format: 1-4 rows; a new customer one time in four (a
    private one with a tax code, a company with a VAT number); now and then an
    unconfirmed payment (bank transfer not arrived yet). `mistakes`: how often a new
    private customer's tax code has a typo the ERP refuses, for the operator to mend;
    `newcomer`: a new private customer for certain."""
    if not catalogue.articles:
        raise ValueError("the site has no published articles with prices yet: run a sync first")
    picks = rng.sample(catalogue.articles, k=min(len(catalogue.articles), rng.randint(1, 4)))
    rows = []
    for code, price, vat in picks:
        row: dict[str, Any] = {
            "article": code,
            "qty": rng.choice((1, 1, 1, 2, 2, 3, 5, 10)),
            "price": str(price),
            "vat_code": vat,
        }
        if rng.random() < 0.2:
            row["discount"] = rng.choice(("5", "10", "10+5", "15"))
        rows.append(row)
    if catalogue.customers and rng.random() < 0.75 and not newcomer:
        customer: dict[str, Any] = {"code": rng.choice(catalogue.customers)}
    else:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, province, zip_code = rng.choice(CITIES)
        n = rng.randint(1, 9999)
        customer = {
            "name": f"{first} {last}",
            "email": f"{first}.{last}{n}@example.it".lower(),
            "address": f"{rng.choice(STREETS)} {rng.randint(1, 200)}",
            "zip": zip_code,
            "city": city,
            "province": province,
            "country": "IT",
        }
        if rng.random() < 0.4 and not newcomer:
            customer["name"] = f"{last} {rng.choice(('Srl', 'Snc', 'SpA'))}"
            customer["vat_number"] = f"{rng.randint(0, 10**11 - 1):011d}"
        else:
            customer["tax_code"] = tax_code(rng, typo=rng.random() < mistakes)
    when = (now or datetime.now()).replace(microsecond=0)
    return {
        "id": order_id,
        "created": when.isoformat(),
        "payment": "unconfirmed" if rng.random() < 0.1 else "confirmed",
        "customer": customer,
        "currency": "EUR",
        "payment_code": rng.choice(("BB30", "RD", "CC")),
        "rows": rows,
    }


def place_orders(
    store: Store,
    count: int,
    *,
    rng: random.Random | None = None,
    prefix: str = "D",
    mistakes: float = 0.0,
    newcomer: bool = False,
) -> list[str]:
    """Place `count` plausible orders now; returns their ids."""
    rng = rng or random.Random()
    catalogue = load_catalogue(store)
    orders = WebOrders(store)
    placed: list[str] = []
    number = _next_id(store, prefix)
    while len(placed) < count:
        order_id = f"{prefix}{number:06d}"
        number += 1
        try:
            orders.place(
                plausible_order(order_id, catalogue, rng, mistakes=mistakes, newcomer=newcomer)
            )
        except OrderInvalid as exc:
            if "already exists" not in str(exc):
                raise
            continue  # another shopper took this id; take the next one
        placed.append(order_id)
    return placed


class Shopper:
    """Places an order every so often in a background thread until stopped."""

    def __init__(
        self,
        store: Store,
        *,
        every_s: Sequence[float] = (20.0, 90.0),
        seed: int | None = None,
        prefix: str = "D",
        mistakes: float = 0.0,
        checkout: Callable[[list[str]], Any] | None = None,
    ) -> None:
        """`checkout`, given the ids of the orders just placed, sends them to the ERP as
        a site does at checkout (None: they wait for the next sync)."""
        self.store = store
        self.checkout = checkout
        self.mistakes = mistakes
        self.every_s = every_s
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.placed: list[str] = []
        self.showed_mistake = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="demo-shopper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def mistake_waits(self) -> bool:
        """Whether a new web customer the ERP has not taken has a tax code it refuses."""
        cust = WebCustomer.__table__  # type: ignore[attr-defined]
        with self.store.read() as conn:
            codes = conn.execute(
                sa.select(cust.c.tax_code).where(
                    cust.c.erp_code.is_(None), cust.c.tax_code.is_not(None)
                )
            ).scalars()
            return any(problem(code) for code in codes)

    def _loop(self) -> None:
        while not self._stop.wait(self.rng.uniform(*self.every_s)):
            # with mistakes, the first order shows one at once: a new private customer
            # whose tax code the ERP will refuse (unless one placed earlier still waits
            # to be mended: a demo started again and again would pile them up); then
            # mistakes come at their rate
            show = bool(self.mistakes) and not self.placed and not self.mistake_waits()
            self.showed_mistake = self.showed_mistake or show
            try:
                placed = place_orders(
                    self.store,
                    1,
                    rng=self.rng,
                    prefix=self.prefix,
                    mistakes=1.0 if show else self.mistakes,
                    newcomer=show,
                )
                self.placed.extend(placed)
            except ValueError as exc:  # nothing to buy yet: wait for a sync
                log.info("demo shopper waits: %s", exc)
                continue
            except Exception:
                log.warning("demo shopper failed to place an order", exc_info=True)
                continue
            if self.checkout is not None and placed:
                try:
                    self.checkout(placed)
                except Exception as exc:  # the order waits, as on a site, for the next sync
                    log.info("demo checkout did not send %s: %s", ", ".join(placed), exc)
