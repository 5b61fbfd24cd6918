"""Pilot tests of one record in full (enter in the catalogue): an article's used fields,
prices per list and category; a customer's price list and payment; a record the store
no longer holds; its history and a Parziale of it alone from there."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from textual.widgets import Static
from ui_screen import on_screen, screen_lines, workers_done

from passweb_tui.app import create_app
from passweb_tui.engine.facade import Engine
from passweb_tui.i18n import set_language
from passweb_tui.screens.base import fmt_money
from passweb_tui.screens.catalogue import CatalogueScreen
from passweb_tui.screens.changes import RecordHistoryScreen
from passweb_tui.screens.fit_table import FitTable
from passweb_tui.screens.record import RecordScreen, show_value

pytestmark = pytest.mark.anyio
pytest_plugins = ["ui_fixtures"]


async def settle(app: Any, pilot: Any) -> None:
    await workers_done(app)
    await pilot.pause()
    await workers_done(app)
    await pilot.pause()


def rows(app: Any, selector: str) -> dict[str, list[str]]:
    table = app.screen.query_one(selector, FitTable)
    return {
        str(table.coordinate_to_cell_key((i, 0)).row_key.value): [
            str(c) for c in table.get_row_at(i)
        ]
        for i in range(table.row_count)
    }


def summary(app: Any) -> str:
    return str(app.screen.query_one("#record-summary", Static).render())


def test_amounts_show_two_decimals_or_the_erps_own() -> None:
    assert fmt_money("87.3") == "87.30" and fmt_money("5") == "5.00"
    assert fmt_money("0.1234") == "0.1234" and fmt_money("1E+2") == "100.00"
    assert fmt_money("n/a") == "n/a" and fmt_money(Decimal("171.610000")) == "171.61"


def test_values_read_as_an_operator_reads_them() -> None:
    assert show_value([[1, "12.5"], [2, "11"]]) == "1: 12.5 · 2: 11"
    assert show_value(["a", "b"]) == "a, b"
    assert show_value(None) == "-" and show_value("") == "-"
    assert show_value(0) == "0" and show_value("S") == "S"
    # in Italian a per-list price reads with a comma, as the price table writes it; a
    # code that only looks like a number stays as the ERP wrote it
    set_language("it")
    try:
        assert show_value({"1": "116.95", "2": "11", "3": "S"}) == "1: 116,95 · 2: 11 · 3: S"
        assert show_value("501.00042") == "501.00042"
    finally:
        set_language("en")


async def test_an_article_opens_in_full_from_the_catalogue(synced: Engine) -> None:
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("a")
        await settle(app, pilot)
        assert isinstance(app.screen, CatalogueScreen)
        await pilot.press("j", "j", "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RecordScreen) and app.screen.entity == "articles"
        code = app.screen.code
        article = next(a for a in synced.articles(search=code) if a["code"] == code)
        category = next(c for c in synced.categories() if c.code == article["category"])
        text = summary(app)
        assert f"Description: {article['description']}" in text
        assert f"Category: {category.code} {category.description}" in text
        assert "On the site: yes" in text
        assert "changed by run #1" in text  # inserted by the first Totale

        fields = rows(app, "#record-fields")
        assert sorted(fields) == sorted(article["data"])  # the used fields, as stored
        described = {f.name: f.description for f in synced.fields("articles")}
        for name, (shown_name, value, description) in fields.items():
            # at 120 columns only the longest values (the price pairs) are shortened
            assert shown_name == name
            whole = show_value(article["data"][name])
            assert value == whole or (value.endswith("…") and whole.startswith(value[:-1]))
            assert description == (described.get(name) or "")
        prices = rows(app, "#record-prices")
        assert {k: v[1] for k, v in prices.items()} == {
            str(k): fmt_money(v) for k, v in article["prices"].items()
        }
        assert all(v[2] for v in prices.values())  # each list with its description

        await pilot.press("h")  # its history, and back
        await settle(app, pilot)
        assert isinstance(app.screen, RecordHistoryScreen) and app.screen.key == code
        assert on_screen(app, f"History of {code} (articles)"), screen_lines(app)
        await pilot.press("escape")
        assert isinstance(app.screen, RecordScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, CatalogueScreen)


async def test_a_customer_shows_its_price_list_and_payment(synced: Engine) -> None:
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("a", "t")
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RecordScreen) and app.screen.entity == "customers"
        detail = synced.record("customers", app.screen.code)
        assert detail is not None
        text = summary(app)
        assert f"Name: {detail.columns['name']}" in text
        if detail.columns["price_list"] is not None:
            assert f"Price list: {detail.columns['price_list']}" in text
        if detail.names.get("payment"):
            assert f"Payment: {detail.columns['payment']} {detail.names['payment']}" in text
        assert "password" not in text.lower() and "login" not in text.lower()
        assert not app.screen.query("#record-prices")  # prices are an article's
        assert sorted(rows(app, "#record-fields")) == sorted(detail.data)


async def test_a_record_gone_from_the_store_says_so(synced: Engine) -> None:
    from passweb_tui.engine.models import Article

    code = synced.articles(limit=1)[0]["code"]
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        table = Article.__table__  # type: ignore[attr-defined]
        with synced.store.write() as conn:  # as a TOTAL deletes it, after the list was read
            conn.execute(sa.delete(table).where(table.c.code == code))
        app.push_screen(RecordScreen("articles", code))
        await settle(app, pilot)
        assert "does not hold this record" in summary(app)
        assert rows(app, "#record-fields") == {} and rows(app, "#record-prices") == {}
    assert synced.record("articles", code) is None
    with pytest.raises(ValueError, match="articles or customers"):
        synced.record("orders", code)


async def test_p_on_a_record_syncs_it_alone(synced: Engine, erp_sim: Any) -> None:
    code = synced.articles(limit=1)[0]["code"]
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.push_screen(RecordScreen("articles", code))
        await settle(app, pilot)
        await pilot.press("p")
        await asyncio.wait_for(app.sync_ended.wait(), 60)
        await settle(app, pilot)
        run = synced.runs(limit=1)[0]
        assert run.kind == "partial" and run.status == "ok"
        assert run.scope == {"entities": ["articles"], "codes": [code]}
        assert run.entities["articles"]["fetched"] == 1
        assert isinstance(app.screen, RecordScreen)  # it stays, read again


@pytest.mark.parametrize("language", ["en", "it"], indirect=True)
async def test_a_record_fits_80_columns(synced: Engine, language: str) -> None:
    code = synced.articles(limit=1)[0]["code"]
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.push_screen(RecordScreen("articles", code))
        await settle(app, pilot)
        detail = synced.record("articles", code)
        assert detail is not None
        lines = screen_lines(app)
        # every price, whole: numbers are never cut
        for _, _, price in detail.prices:
            assert on_screen(app, fmt_money(price)), lines
        # the field names, whole, for the fields the table has room for
        fields = app.screen.query_one("#record-fields", FitTable)
        assert fields.row_count == len(detail.data)
        first = sorted(detail.data)[0]
        assert on_screen(app, first), lines


async def test_particolarita_of_a_customer_and_on_an_article(synced: Engine) -> None:
    """A customer shows its own particolarita; an article says which customers have one
    on it, by its code or by its category."""
    from passweb_tui.engine.models import Condition

    table = Condition.__table__  # type: ignore[attr-defined]
    with synced.store.read() as conn:
        stored = [dict(r._mapping) for r in conn.execute(sa.select(table))]
    customers = {c["code"] for c in synced.customers(limit=100_000)}
    mine = [c for c in stored if c["customer"] in customers]
    assert mine, "the demo data should give site customers particolarita"
    customer = mine[0]["customer"]
    own = [c for c in stored if c["customer"] == customer]
    detail = synced.record("customers", customer)
    assert detail is not None and len(detail.conditions) == len(own)

    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.push_screen(RecordScreen("customers", customer))
        await settle(app, pilot)
        shown = list(rows(app, "#record-conditions").values())
        assert len(shown) == len(own)
        expected = sorted(
            [
                c["article"] or f"group {c['article_group']}",
                fmt_money(c["price"]) if c["price"] is not None else "-",
                c["discount"] or "-",
            ]
            for c in own
        )
        assert sorted(shown) == expected
        assert on_screen(app, f"Particolarita: {len(own)}")

        articles = {a["code"] for a in synced.articles(limit=100_000)}
        code = next(c["article"] for c in stored if c["article"] in articles)
        article = synced.record("articles", code)
        assert article is not None
        category = article.columns["category"]
        who = sorted(
            {
                c["customer"]
                for c in stored
                if c["article"] == code or (category and c["article_group"] == category)
            }
        )
        assert sorted({c["customer"] for c in article.conditions}) == who
        app.push_screen(RecordScreen("articles", code))
        await settle(app, pilot)
        text = summary(app)
        if len(who) == 1:
            assert f"Particolarita: customer {who[0]}" in text
        else:
            assert f"Particolarita: {len(who)} customers ({', '.join(who[:3])}" in text


def test_every_summary_label_is_in_both_languages() -> None:
    from passweb_tui.i18n import EN, IT
    from passweb_tui.screens.record import SUMMARY

    for entity, lines in SUMMARY.items():
        wanted = {f"record.heading.{entity}"} | {f"record.col.{n}" for line in lines for n in line}
        assert wanted <= set(EN) and wanted <= set(IT), wanted - (set(EN) & set(IT))


async def compare(app: Any, pilot: Any) -> None:
    app.sync_ended.clear()
    await pilot.press("d")
    await asyncio.wait_for(app.sync_ended.wait(), 60)
    await settle(app, pilot)


async def test_d_compares_a_record_with_the_erp_and_writes_nothing(
    own_engine: Engine, sim: Any
) -> None:
    engine = own_engine
    assert engine.run("total").status == "ok"
    stored = {a["code"] for a in engine.articles(limit=100_000)}
    changed = sim.admin(
        "POST",
        "mutate",
        json={"resource": "articoli", "count": 8, "seed": 5, "fields": ["descrizione"]},
    ).json()["changed"]
    code = next(c for c in changed if c in stored)
    before = engine.record("articles", code)
    assert before is not None
    runs = len(engine.runs(limit=100))

    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.push_screen(RecordScreen("articles", code))
        await settle(app, pilot)
        await compare(app, pilot)
        assert "ERP now differs in 1 field: descrizione (p brings it)" in summary(app)
        fields = rows(app, "#record-fields")
        erp_now = fields["descrizione"][2]
        assert erp_now not in ("=", before.data["descrizione"])
        assert all(cells[2] == "=" for name, cells in fields.items() if name != "descrizione")
        # a dry run, in the history like any other; the store is as it was
        last = engine.runs(limit=1)[0]
        assert len(engine.runs(limit=100)) == runs + 1
        assert (last.kind, last.dry_run, last.status) == ("partial", True, "ok")
        assert last.scope == {"entities": ["articles"], "codes": [code]}
        assert engine.record("articles", code) == before

        app.sync_ended.clear()
        await pilot.press("p")  # the real Parziale brings what the comparison showed
        await asyncio.wait_for(app.sync_ended.wait(), 60)
        await settle(app, pilot)
        after = engine.record("articles", code)
        assert after is not None and after.data["descrizione"] == erp_now
        assert "differs" not in summary(app) and "ERP now" not in summary(app)
        await compare(app, pilot)
        assert "ERP now: as stored." in summary(app)
        assert "erp" not in {
            c.key for c in app.screen.query_one("#record-fields", FitTable).all_columns
        }

        # a code the ERP has, not for this site; a code the ERP does not have
        off_site = next(f"ART{i:07d}" for i in range(1, 501) if f"ART{i:07d}" not in stored)
        app.push_screen(RecordScreen("articles", off_site))
        await settle(app, pilot)
        assert "does not hold this record" in summary(app)
        await compare(app, pilot)
        assert "ERP: not flagged for this site" in summary(app)
        app.push_screen(RecordScreen("articles", "NOPE0001"))
        await settle(app, pilot)
        await compare(app, pilot)
        assert "ERP: the record would be refused: not in the ERP" in summary(app)


async def test_unpublished_articles_are_counted_and_marked(synced: Engine) -> None:
    """Articles kept in the store but not on the site (pre-deleted or cancelled in the
    ERP) are counted on the dashboard and marked in the catalogue."""
    board = synced.dashboard()
    unpublished = board.articles - board.published_articles
    assert unpublished > 0, "the demo data should have pre-deleted or cancelled articles"
    off = [a for a in synced.articles(limit=100_000) if not a["published"]]
    assert len(off) == unpublished
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        store = str(app.screen.query_one("#dash-store", Static).render())
        assert f"articles {board.articles:,} ({unpublished:,} unpublished)" in store
        await pilot.press("a")
        await settle(app, pilot)
        await pilot.press("slash", *off[0]["code"])  # (enter would open its record)
        await settle(app, pilot)
        shown = rows(app, "#catalogue-table")
        assert shown[off[0]["code"]][2].startswith("(not published) ")
        on = next(a for a in synced.articles(limit=200) if a["published"])
        await pilot.press("slash", "ctrl+u", *on["code"])
        await settle(app, pilot)
        assert not rows(app, "#catalogue-table")[on["code"]][2].startswith("(not published)")


POISON = "Trapano \x1b]2;PWNED\x07 \x1b[2J\x1b[5mX"


async def test_a_value_with_terminal_escapes_is_shown_not_obeyed(
    synced: Engine, erp_sim: Any
) -> None:
    """An ERP description holding escape sequences (set the window title, clear the
    screen): the record screen shows them as control pictures, and nothing of them
    reaches the terminal as a command."""
    from passweb_tui.engine.facade import Scope

    code = "ZZESC1"
    erp_sim.admin(
        "POST",
        "records/articoli",
        json={
            "codice": code,
            "descrizione": POISON,
            "alq_iva": "22",
            "um_principale": "PZ",
            "trasf_sito": [[1, "S"]],
        },
    )
    try:
        assert synced.run("partial", scope=Scope(("articles",), (code,))).status == "ok"
        app = create_app(synced, poll_s=0)
        async with app.run_test(size=(120, 40)) as pilot:
            app.push_screen(RecordScreen("articles", code))
            await settle(app, pilot)
            lines = screen_lines(app)
            assert not any("\x1b" in line or "\x07" in line for line in lines)
            assert on_screen(app, "Trapano ␛]2;PWNED ␛[2J␛[5mX"), lines
    finally:
        erp_sim.admin("DELETE", f"records/articoli/{code}")
