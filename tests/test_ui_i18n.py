"""The UI's catalogue: both languages complete, every key the code asks for exists,
the ERP's own words read the same in both, and the language is chosen as documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from passweb_tui import i18n
from passweb_tui.i18n import EN, IT, missing_keys, pick_language, set_language, t

PACKAGE = Path(i18n.__file__).parent
UI_SOURCES = [PACKAGE / "app.py", *sorted((PACKAGE / "screens").glob("*.py"))]
# literal keys passed to t(...) and catalogue keys used as binding descriptions
KEY_CALL = re.compile(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""")
BINDING_DESC = re.compile(
    r"""Binding\(\s*["'][^"']+["'],\s*["'][^"']+["'],\s*["']([a-z_]+\.[a-z_.]+)["']"""
)


@pytest.fixture(autouse=True)
def english_afterwards():
    yield
    set_language("en")


def test_both_languages_have_the_same_keys() -> None:
    assert missing_keys() == {"en": [], "it": []}
    assert len(EN) > 150


def test_every_key_used_by_the_ui_is_in_the_catalogue() -> None:
    used: set[str] = set()
    for source in UI_SOURCES:
        text = source.read_text("utf-8")
        used |= set(KEY_CALL.findall(text)) | set(BINDING_DESC.findall(text))
    assert len(used) > 100, "the scan found too few keys to be trusted"
    # keys ending in "." are prefixes completed at run time (entity., phase., ...)
    missing = sorted(k for k in used if not k.endswith(".") and k not in EN)
    assert missing == []


@pytest.mark.parametrize("word", ["Totale", "Variati", "Parziale"])
def test_domain_words_read_the_same_in_both_languages(word: str) -> None:
    key = {"Totale": "kind.total", "Variati": "kind.changed", "Parziale": "kind.partial"}[word]
    set_language("en")
    english = t(key)
    set_language("it")
    assert english == t(key) == word


def test_listino_reads_the_same() -> None:
    assert EN["entity.price_lists"] == IT["entity.price_lists"] == "listini"
    assert EN["col.listino"] == IT["col.listino"] == "Listino"


def test_italian_is_really_italian() -> None:
    set_language("it")
    assert t("nav.dashboard") == "Cruscotto"
    assert t("sync.ended", kind="Variati", status=t("status.ok"), run=3) == "Variati #3: ok"


def test_language_from_config_then_locale() -> None:
    assert pick_language("it", {"LANG": "en_US.UTF-8"}) == "it"
    assert pick_language(None, {"LANG": "it_IT.UTF-8"}) == "it"
    assert pick_language(None, {"LC_ALL": "en_GB.UTF-8", "LANG": "it_IT.UTF-8"}) == "en"
    assert pick_language(None, {"LANG": "de_DE.UTF-8"}) == "en"
    assert pick_language(None, {}) == "en"
    with pytest.raises(ValueError, match="'fr' is not available; choose one of en, it"):
        pick_language("fr", {})
    # a locale or the language's name does too; a word that merely starts alike does not
    assert [pick_language(v, {}) for v in ("Italiano", "english", "it_IT.UTF-8", "en-GB")] == [
        "it",
        "en",
        "it",
        "en",
    ]
    for wrong in ("enterprise", "itx"):
        with pytest.raises(ValueError, match=f"{wrong!r} is not available"):
            pick_language(wrong, {})


def test_missing_values_fall_back_to_english_and_name_the_key() -> None:
    set_language("it")
    assert t("no.such.key") == "no.such.key"
    assert t("no.such.key", default="x") == "x"
    assert t("setup.err.anno", anno="20x") == "Anno: un anno come 2026, non 20x"


def test_thousands_are_grouped_in_the_language_s_style() -> None:
    from passweb_tui.i18n import language, set_language
    from passweb_tui.screens.base import fmt_int

    before = language()
    try:
        set_language("en")
        assert fmt_int(1234567) == "1,234,567"
        set_language("it")
        assert fmt_int(1234567) == "1.234.567"
    finally:
        set_language(before)


def test_the_engines_fixed_messages_are_shown_in_the_ui_language() -> None:
    from passweb_tui.engine.sync import CANCELLED_BY_OPERATOR
    from passweb_tui.i18n import engine_text

    try:
        set_language("it")
        assert engine_text(CANCELLED_BY_OPERATOR) == "annullata dall'operatore"
        assert engine_text("HTTP 500 from the ERP") == "HTTP 500 from the ERP"  # as it is
        set_language("en")
        assert engine_text(CANCELLED_BY_OPERATOR) == CANCELLED_BY_OPERATOR
    finally:
        set_language("en")


def test_the_toolkit_keys_that_f1_lists_are_named_in_both_languages() -> None:
    """F1 lists the keys of the toolkit's own widgets too (cursor, scrolling, editing):
    each of their descriptions has its words in the catalogue, so that a new one (after
    an upgrade of the toolkit) shows here instead of in English on an Italian screen."""
    from textual.binding import Binding
    from textual.containers import VerticalScroll
    from textual.screen import Screen
    from textual.widgets import (
        Button,
        Checkbox,
        DataTable,
        Input,
        Log,
        RadioButton,
        RadioSet,
        Select,
        SelectionList,
        Tree,
    )

    widgets = [Screen, VerticalScroll, DataTable, Tree, Input, Button, Checkbox]
    widgets += [RadioButton, RadioSet, Select, SelectionList, Log]
    missing = set()
    for widget in widgets:
        for klass in widget.__mro__:
            for binding in klass.__dict__.get("BINDINGS", []):
                if isinstance(binding, tuple):
                    binding = Binding(*binding)
                description = binding.description if isinstance(binding, Binding) else ""
                if description and f"tx.{description.lower()}" not in EN:
                    missing.add((widget.__name__, description))
    assert not missing
    set_language("it")
    assert t("tx.scroll up") == "Scorri su"


def test_order_states_read_in_the_ui_language() -> None:
    """An English screen says what the CLI's codes say; an Italian one uses Passweb's own
    names for the states."""
    from passweb_tui.engine.orders import states
    from passweb_tui.screens.orders import state_label

    for state in states.ALL:
        assert f"orders.state.{state}" in EN
        assert IT[f"orders.state.{state}"] == states.LABELS[state]
    assert state_label(states.PARTIALLY_FULFILLED) == "Partly fulfilled"
    set_language("it")
    assert state_label(states.PARTIALLY_FULFILLED) == "Parzialmente evaso"
    assert state_label(None) == "-"


def test_numbers_read_in_the_ui_language() -> None:
    """Italian writes thousands with a dot and decimals with a comma, in counts, amounts
    and durations alike; English the other way round."""
    from decimal import Decimal

    from passweb_tui.screens.base import fmt_duration, fmt_int, fmt_money

    assert (fmt_int(4636), fmt_money(Decimal("1198.87")), fmt_duration(None, 0.24)) == (
        "4,636", "1,198.87", "0.2s",
    )  # fmt: skip
    set_language("it")
    assert (fmt_int(4636), fmt_money(Decimal("1198.87")), fmt_duration(None, 0.24)) == (
        "4.636", "1.198,87", "0,2s",
    )  # fmt: skip


def test_italian_screens_write_an_erp_value_with_a_fraction_with_a_comma() -> None:
    """The record's field table and an order's rows and updates write the ERP's numbers
    as the rest of the Italian screens do (74,93), and codes and texts as they are."""
    from decimal import Decimal

    from passweb_tui.screens.orders import cell
    from passweb_tui.screens.record import show_value

    set_language("it")
    try:
        assert show_value({"1": 63.14, "2": 12}) == "1: 63,14 · 2: 12"
        assert show_value("ART.001") == "ART.001"
        assert cell(74.93) == "74,93" and cell(Decimal("2.500")) == "2,500"
        assert cell("501.00002") == "501.00002" and cell(3) == "3"
    finally:
        set_language("en")
    assert show_value({"1": 63.14}) == "1: 63.14" and cell(74.93) == "74.93"


def test_a_date_field_is_written_as_the_screens_write_a_day() -> None:
    """A date of the ERP (type D in its catalogue) showed as it comes, 20261201, in the
    record's fields and the change log: it is written as the screens write a day; a
    value that is no day, or of a field of another type, is left as it is."""
    from passweb_tui.screens.changes import change_row
    from passweb_tui.screens.record import show_value

    entry = {"id": 7, "run_id": 3, "entity": "conditions", "key": "501.00001+A+ART1",
             "change": "updated", "field": "dt_fine", "old": "20261130", "new": "20261231"}  # fmt: skip
    kinds = {("conditions", "dt_fine"): "D"}
    set_language("it")
    try:
        assert show_value("20261201", "D") == "01/12/2026"
        assert change_row(entry, kinds)[1][-2:] == ("30/11/2026", "31/12/2026")
    finally:
        set_language("en")
    assert show_value("20261201", "D") == "2026-12-01"
    assert show_value("00000000", "D") == "00000000" and show_value("20261399", "D") == "20261399"
    assert show_value("20261201") == "20261201"  # not a date field
    assert change_row(entry)[1][-2:] == ("20261130", "20261231")


def _reasons_the_engine_gives() -> list[str]:
    """Reject reasons as the engine words them, made by its own checks on bad records."""
    from passweb_tui.engine.records import (
        ENTITIES,
        NUL_TEXT,
        FieldSpec,
        Rejected,
        SiteRules,
        build_row,
    )

    catalogue = {
        "descrizione": FieldSpec("C", 10),
        "peso": FieldSpec("N", 12),
        "data_ins": FieldSpec("D", 8),
        "ora_ins": FieldSpec("T", 6),
        "prz_listino": FieldSpec("N", 16, array_size=10),
    }
    base = {"codice": "A1", "descrizione": "ok", "alq_iva": "22"}
    bad = [
        {"descrizione": 7},
        {"descrizione": "much too long a text"},
        {"peso": "heavy"},
        {"data_ins": "2026-01-01"},
        {"data_ins": "20260231"},
        {"ora_ins": "noon"},
        {"prz_listino": "12"},
        {"prz_listino": [[1, 5], [1, 6]]},
        {"prz_listino": [[1, 8010000000001]]},
        {"prz_listino": [[1, 1234567890.1234567]]},
        {"prz_listino": [[1, -1]], "descrizione": "x\x00y"},
        {"cod_grp_merc": "NOPE"},
    ]
    reasons = []
    for change in bad:
        try:
            build_row(ENTITIES["articles"], {**base, **change}, None, catalogue, SiteRules(),
                      known={"categories": {"C1"}})  # fmt: skip
        except Rejected as exc:
            reasons.append(exc.reason)
    customer = {"codice": "501.1", "ragione_sociale": "X", "cod_pagamento": "Z9"}
    for odd in ({"cod_listino": 2.5}, {"cod_listino": 1}, {"cod_listino": 3}):
        known = {"payments": {"BB"} if odd["cod_listino"] == 1 else {"Z9"}, "price_lists": {"1"}}
        try:
            build_row(ENTITIES["customers"], {**customer, **odd}, None, {}, SiteRules(),
                      known=known)  # fmt: skip
        except Rejected as exc:
            reasons.append(exc.reason)
    for deal in ({"prezzo": -1}, {"dt_inizio": "20260301", "dt_fine": "20260101"}):
        try:
            record = {"codice": "1", "cod_conto": "501.1", "tipo": "A", "cod_articolo": "A1",
                      **deal}  # fmt: skip
            build_row(ENTITIES["conditions"], record, None, {}, SiteRules())
        except Rejected as exc:
            reasons.append(exc.reason)
    assert NUL_TEXT in " ".join(reasons), reasons
    return reasons


def test_a_reject_reason_reads_in_italian_in_the_italian_ui() -> None:
    """The reasons the engine stores in English read in Italian on the screens (the run
    detail, the sync log), part by part; a reason of a form not known here reads as
    written, whole."""
    reasons = _reasons_the_engine_gives()
    assert len(reasons) >= 14, reasons
    set_language("it")
    english = re.compile(r"\b(expected|field|got|is|than|the|store|keeps|unknown|appears)\b")
    for reason in reasons:
        shown = i18n.engine_text(reason)
        assert shown != reason and not english.search(shown), (reason, shown)
    assert i18n.engine_text("field x: something new") == "field x: something new"
    assert i18n.engine_text("not sent: rifiutato dal gestionale") == (
        "non inviato: rifiutato dal gestionale"
    )
    set_language("en")
    assert [i18n.engine_text(r) for r in reasons] == reasons


def test_what_a_run_says_of_itself_reads_in_italian() -> None:
    """The notes of a run, as the sync words them, part by part in the run's detail."""
    set_language("it")
    said = {
        "no correctly completed sync yet: this CHANGED runs as a TOTAL":
            "nessuna sincronizzazione ancora completata: questo Variati si esegue come Totale",
        "orders waiting for their payment to be confirmed, not sent: W1, W2":
            "ordini in attesa della conferma del pagamento, non inviati: W1, W2",
        "2 open order(s) not updated: their ERP document could not be read (see the run's"
        " rejects)": "ordini aperti non aggiornati: 2; il loro documento nel gestionale non si"
        " è potuto leggere (vedi gli scarti dell'esecuzione)",
        "order W7 not sent: prezzo: -1 is negative": "ordine W7 non inviato: prezzo: -1 è"
        " negativo",
        "customer 3 not sent: the ERP did not create it: cf errato": "cliente 3 non inviato:"
        " il gestionale non l'ha creato: cf errato",
        "2 web orders waiting, not sent: a partial sync of whole entities only re-reads; a"
        " partial sync with no entity, or naming the orders, sends them": "ordini web in"
        " attesa, non inviati: 2; un Parziale di entità intere rilegge soltanto; un Parziale"
        " senza entità, o che nomina gli ordini, li invia",
        "articles not flagged for the site in the ERP, left as stored (a partial sync removes"
        " nothing): A1, A2": "articoli: non segnati per il sito nel gestionale, lasciati come"
        " in archivio (un Parziale non toglie nulla): A1, A2",
        "customer 'Rossi' (site id 4) is the ERP's customer 501.00042 already (same VAT number"
        " 01234567890): bound to it, not created again": "cliente 'Rossi' (id sul sito 4): è"
        " già il cliente 501.00042 del gestionale (stessa partita IVA 01234567890): collegato"
        " a quello, non creato di nuovo",
    }  # fmt: skip
    for english, italian in said.items():
        assert i18n.engine_text(english) == italian


def test_the_reasons_for_dead_links_read_in_italian() -> None:
    """The rejects a run makes of stored records linked to a category, payment, price
    list or currency the ERP no longer has: in Italian, the code and field kept."""
    set_language("it")
    said = {
        "category 'G025' (cat_web) is no longer among the site's categories; the article"
        " keeps the link until the ERP changes it": "la categoria 'G025' (cat_web) non è più"
        " tra le categorie del sito; l'articolo mantiene il collegamento finché il gestionale"
        " non lo cambia",
        "payment 'ZZ9' (cod_pagamento) is no longer among the ERP's; the customer keeps the"
        " link until the ERP changes it": "il pagamento 'ZZ9' (cod_pagamento) non è più tra"
        " quelli del gestionale; il cliente mantiene il collegamento finché il gestionale non"
        " lo cambia",
        "currency '7' (valuta) is no longer among the ERP's; the customer keeps the link"
        " until the ERP changes it": "la valuta '7' (valuta) non è più tra quelle del"
        " gestionale; il cliente mantiene il collegamento finché il gestionale non lo cambia",
    }
    for english, italian in said.items():
        assert i18n.engine_text(english) == italian


def test_a_push_error_reads_in_italian_with_the_erps_own_words_kept() -> None:
    """An order's or a new customer's push error, as the push words it (its subject
    first), reads in Italian; the ERP's own words after it are kept as written."""
    from passweb_tui.engine.orders.push import customer_subject, order_subject

    set_language("it")
    order = f"{order_subject('W1')}: the ERP did not take it: alq_iva 99 non esiste"
    assert i18n.engine_text(order) == (
        "ordine W1: il gestionale non l'ha accettato: alq_iva 99 non esiste"
    )
    customer = f"{customer_subject('Rossi Srl', 5)}: the ERP did not create it: cf errato"
    assert i18n.engine_text(customer) == (
        "cliente 'Rossi Srl' (id sul sito 5): il gestionale non l'ha creato: cf errato"
    )
    lost = (
        f"{customer_subject('Rossi Srl', 5)}: the ERP may have created it, its answer was"
        " lost: connection to the ERP was lost: reset; whether the change was applied is"
        " unknown; it is looked up there before it is sent again"
    )
    assert i18n.engine_text(lost) == (
        "cliente 'Rossi Srl' (id sul sito 5): il gestionale potrebbe averlo creato, la sua"
        " risposta è andata persa: la connessione al gestionale si è interrotta: reset; non"
        " si sa se la modifica sia stata applicata; viene cercato lì prima di inviarlo di"
        " nuovo"
    )


def test_the_rarer_push_errors_read_in_italian() -> None:
    """The push's other errors of an order or a new customer, in the words push.py gives
    them (the ones the operator must act on), read in Italian."""
    from passweb_tui.engine.orders.push import customer_subject, order_subject

    set_language("it")
    english = re.compile(r"\b(its|customer|ERP|the|is|an|operator|order|currency|left)\b")
    said = [
        f"{order_subject('W1')}: its customer 'Rossi' is being created",
        f"{order_subject('W1')}: its customer 'Rossi' is not in the ERP yet",
        f"{customer_subject('Rossi', 3)}: no customer code left under ledger 501 in the ERP"
        " (codici esauriti); free some codes or configure another ledger",
        "customer (site id 4): the ERP customer 501.00003 is already the site customer 7;"
        " the two need an operator to tell them apart or merge them",
        f"{order_subject('W1')}: an earlier attempt's outcome is unknown and looking it up in"
        " the ERP failed: connection to the ERP was lost: reset",
        "the ERP holds 2 documents for this order: OC+1+3, OC+1+4",
        f"{order_subject('W2')}: the ERP made it document OC+1+9, which the site order W1"
        " holds too (an ERP restored from a backup gives its numbers out again): an operator"
        " decides which is which; not sent again",
        f"{order_subject('W3')}: currency USD is not among the ERP's currencies",
    ]
    for english_text in said:
        shown = i18n.engine_text(english_text)
        assert not english.search(shown), (english_text, shown)


def _failures_in_italian(errors: list[Exception], english_words: str) -> list[str]:
    """How the Italian UI shows these client errors as a failed run stores them: each
    checked for none of the English words and without its error class's name."""
    from passweb_tui.engine.sync import failure_text

    set_language("it")
    english = re.compile(rf"\b({english_words})\b")
    shown = []
    for error in errors:
        stored = failure_text(error)
        said = i18n.engine_text(stored)
        assert not english.search(said) and error.__class__.__name__ not in said, (stored, said)
        shown.append(said)
    return shown


def test_the_erps_failures_read_in_italian_with_its_own_detail_kept() -> None:
    """The errors the client makes of the ERP's replies, as a failed run stores them
    (the error's name first), read in Italian without that name; the ERP's own detail
    after them is kept as it wrote it."""
    import httpx

    from passweb_tui.engine.erp.client import MexalClient
    from passweb_tui.engine.erp.settings import ErpConfig

    def reply(status: int, detail: str | None = None) -> httpx.Response:
        body = {"error": {"response-detail": detail}} if detail else None
        return httpx.Response(status, json=body) if body else httpx.Response(status)

    client = MexalClient(ErpConfig("http://127.0.0.1:9/webapi", "u", "p", azienda="DEM"))
    try:
        made = [
            client._error(reply(401), "GET", "/x", False, False),
            client._error(reply(404, "articolo inesistente"), "GET", "/x", False, False),
            client._error(reply(503), "GET", "/x", False, False),
            client._error(reply(500, "errore interno"), "POST", "/x", False, True),
            client._error(reply(422, "dato non valido"), "POST", "/x", False, True),
        ]
    finally:
        client.close()
    shown = _failures_in_italian(made, r"ERP|rejected|refused|failed|busy|such|request")
    assert shown[1] == (
        "il gestionale non ha questo record o risorsa (HTTP 404): articolo inesistente (GET /x)"
    )
    assert shown[3].endswith(": errore interno (POST /x)"), shown[3]


def test_a_busy_erp_and_its_retries_read_in_italian() -> None:
    """A request tried again (the sync's log line), and an ERP that stayed busy past the
    retries (what the client adds after the ERP's own detail), read in Italian."""
    import httpx

    from passweb_tui.engine.erp.client import MexalClient
    from passweb_tui.engine.erp.errors import ErpTimeoutError, PoolExhaustedError
    from passweb_tui.engine.erp.settings import ErpConfig
    from passweb_tui.engine.sync import failure_text, retry_message

    now = [1000.0]
    config = ErpConfig("http://127.0.0.1:9/webapi", "u", "p", azienda="DEM", max_unavailable_s=10)
    client = MexalClient(config, clock=lambda: now[0])
    try:
        reply = httpx.Response(
            503, json={"error": {"response-detail": "3002 - troppe richieste"}},
            headers={"Retry-After": "2"},
        )  # fmt: skip
        busy = client._error(reply, "GET", "/x", False, False)
        assert isinstance(busy, PoolExhaustedError)
        client._check_unavailable(busy, 1.0, 1, 5)  # the first busy answer: retried
        now[0] += 6
        client._check_unavailable(busy, 1.0, 2, 5)  # busy for 6 s: retried
        now[0] += 5  # busy for 11 s: past max_unavailable_s
        with pytest.raises(PoolExhaustedError):
            client._check_unavailable(busy, 1.0, 3, 5)
    finally:
        client.close()
    stored = failure_text(busy)
    assert "stayed unavailable" in stored and "retries stop" in stored, stored
    set_language("it")
    shown = i18n.engine_text(stored)
    english = re.compile(r"\b(ERP|busy|stayed|unavailable|asking|retry|retries|after|answers)\b")
    assert not english.search(shown) and "3002 - troppe richieste" in shown, (stored, shown)
    lines = [
        retry_message(busy, 1, 5, 1.0),
        retry_message(ErpTimeoutError("x"), 2, 5, 3.9),
        retry_message(ValueError("x"), 3, 5, 7.25),
    ]
    said = [i18n.engine_text(line) for line in lines]
    assert said[0] == "il gestionale è occupato: nuovo tentativo tra 1,0 s (1 di 5)", said
    assert not any(english.search(s) or "trying" in s for s in said), said


def test_a_malformed_reply_of_the_erp_reads_in_italian() -> None:
    """The client's errors for replies it cannot use (not JSON, not the shape of a list,
    a create without its Location), as a failed run stores them, read in Italian; the
    parser's own words and the reply's start stay as they were."""
    import httpx

    from passweb_tui.engine.erp.client import MexalClient
    from passweb_tui.engine.erp.errors import ErpError
    from passweb_tui.engine.erp.settings import ErpConfig

    replies = {
        "/webapi/risorse/articoli": httpx.Response(200, content=b'{"dati":[{"codice":"A'),
        "/webapi/risorse/clienti": httpx.Response(200, json={"dati": {"codice": "C1"}}),
        "/webapi/risorse/valute": httpx.Response(200, json=[1, 2]),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201)  # created, but no Location to find it by
        return replies[request.url.path]

    config = ErpConfig("http://erp.test/webapi", "u", "p", azienda="DEM", max_retries=0)
    client = MexalClient(config, transport=httpx.MockTransport(answer))
    made: list[ErpError] = []
    try:
        for resource in ("articoli", "clienti", "valute"):
            with pytest.raises(ErpError) as caught:
                list(client.iter_pages(resource))
            made.append(caught.value)
        with pytest.raises(ErpError) as caught:
            client.create("clienti", {"ragione_sociale": "Rossi"})
        made.append(caught.value)
    finally:
        client.close()
    shown = _failures_in_italian(
        made,
        r"ERP|sent|reply|valid|starts|list|where|answered|whether|Unterminated|string|line"
        r"|column|char",
    )
    assert '{"dati":[{"codice":"A' in shown[0]
    assert "(testo non chiuso che comincia a: riga 1 colonna 20 (carattere 19))" in shown[0]


@pytest.mark.parametrize(
    ("body", "content_type", "said"),
    [
        (b"", None, "atteso un valore: riga 1 colonna 1 (carattere 0)"),
        (b"<html>", None, "atteso un valore: riga 1 colonna 1 (carattere 0)"),
        (b'{"dati":[]}x', None, "dati in più dopo il documento: riga 1 colonna 12"),
        (b'{"dati" []}', None, "atteso il separatore ':': riga 1 colonna 9"),
        (b'{"dati":[NaN]}', None, "numero non finito NaN nel JSON"),
        (b'{"dati":["\xff"]}', None, "il codec 'utf-8' non sa leggere i byte 0xff in posizione 10"),
        (b"{}", "application/json; charset=x-nope", "codifica sconosciuta 'x-nope'"),
        (b"{}\x81", "application/json; charset=cp1252", "la risposta non è cp1252 valido come"),
    ],
)
def test_the_json_parsers_own_words_read_in_italian(
    body: bytes, content_type: str | None, said: str
) -> None:
    """What Python's JSON parser (or the charset) says of a reply it cannot read is part
    of the error a failed run stores: in the Italian UI it reads in Italian too."""
    import httpx

    from passweb_tui.engine.erp.client import MexalClient
    from passweb_tui.engine.erp.errors import ErpError
    from passweb_tui.engine.erp.settings import ErpConfig

    headers = {"Content-Type": content_type} if content_type else {}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers=headers)

    config = ErpConfig("http://erp.test/webapi", "u", "p", azienda="DEM", max_retries=0)
    client = MexalClient(config, transport=httpx.MockTransport(answer))
    try:
        with pytest.raises(ErpError) as caught:
            list(client.iter_pages("articoli"))
    finally:
        client.close()
    (shown,) = _failures_in_italian(
        [caught.value],
        r"Expecting|Extra|data|delimiter|line|column|char|number|decode|position|maps"
        r"|reply|declares|unknown|charset",
    )
    assert said in shown, shown


def test_a_database_error_that_stopped_a_run_reads_in_italian(tmp_path: Path) -> None:
    """A run stopped by its database stores the database's words, after "database
    error" and the error's kind (see sync.failure_text); the Italian UI reads SQLite's
    commonest in Italian, and any other as the database said it."""
    import sqlite3

    import sqlalchemy as sa

    from passweb_tui.engine.sync import failure_text

    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = sa.create_engine(url, connect_args={"timeout": 0.05})
    caught: list[BaseException] = []
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (k TEXT PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO t VALUES ('a')"))
        for statement in ("INSERT INTO t VALUES ('a')", "SELECT * FROM nowhere"):
            with pytest.raises(sa.exc.DBAPIError) as error, engine.begin() as conn:
                conn.execute(sa.text(statement))
            caught.append(error.value)
        holder = sqlite3.connect(tmp_path / "x.db")
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(sa.exc.DBAPIError) as error, engine.begin() as conn:
                conn.execute(sa.text("INSERT INTO t VALUES ('b')"))
            caught.append(error.value)
        finally:
            holder.close()
    finally:
        engine.dispose()
    stored = [failure_text(e) for e in caught]
    assert stored == [
        "database error (IntegrityError): UNIQUE constraint failed: t.k",
        "database error (OperationalError): no such table: nowhere",
        "database error (OperationalError): database is locked",
    ]
    set_language("it")
    shown = [i18n.engine_text(s) for s in stored]
    assert shown == [
        "errore del database (IntegrityError): vincolo di unicità violato: t.k",
        "errore del database (OperationalError): tabella inesistente: nowhere",
        "errore del database (OperationalError): database bloccato da un altro processo che"
        " lo scrive",
    ]
    # a message of the database's that is not in the table is shown as it came
    assert i18n.engine_text("database error (DataError): value too long") == (
        "errore del database (DataError): value too long"
    )


def test_records_left_to_settle_read_in_italian_with_their_list() -> None:
    """The push's note on records it waits for before sending them again, as it words it
    (push.settling_message), reads in Italian, its list of records included."""
    from datetime import UTC, datetime

    from passweb_tui.engine.orders.push import settling_message

    at = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
    waiting = [("order", f"W{i}", at) for i in range(7)] + [("customer", "3", at)]
    set_language("it")
    shown = i18n.engine_text(settling_message(waiting))
    english = re.compile(r"\b(order|customer|and|more|wait|until|before|sent|the|ERP)\b")
    assert not english.search(shown), shown
    assert shown.startswith("ordine W0, ordine W1, ordine W2, ordine W3, ordine W4 e altri 3:")


def test_a_refused_launch_and_a_missing_record_read_in_italian() -> None:
    """What the UI says when a launch is refused (the lease's holder, as the lease
    describes it; the monthly quota) and a Parziale's code the ERP lacks, in Italian."""
    from datetime import UTC, datetime

    from passweb_tui.engine.lease import LeaseInfo

    at = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    info = LeaseInfo("shop:4242", 15, at, at, at)
    set_language("it")
    for english in (
        f"another TOTAL/CHANGED sync is running: {info.brief()}",
        f"another TOTAL/CHANGED sync is running: {info.describe()}",
        "monthly sync quota used up: 30 of 30 TOTAL/CHANGED syncs in 2026-12",
        "not in the ERP: no articoli record has codice 'XYZ'",
    ):
        said = i18n.engine_text(english)
        assert said != english
        assert not re.search(r"\b(another|sync|running|since|lease|until|used|not|ERP)\b", said)
    assert i18n.engine_text(info.brief()).startswith("esecuzione 15 (")


def test_a_runs_notes_read_in_italian_each_whole_even_where_a_note_holds_a_semicolon() -> None:
    """A run's notes are joined with "; ", and a busy ERP's error inside a note has one
    of its own: each note still reads in Italian as a whole."""
    busy = (
        "customer 'X' (site id 1) not sent: the ERP failed: ERP is busy: too many requests"
        " in flight (HTTP 503): massimo raggiunto per l'utente; the ERP stayed unavailable"
        " for 1 min 6 s, asking to retry in 1 s (POST /webapi/risorse/clienti)"
    )
    held = "order W1 not sent: held by customer 'X' (site id 1), not sent either"
    set_language("it")
    said = i18n.engine_notes(f"{busy}; {held}")
    assert said == (
        "cliente 'X' (id sul sito 1) non inviato: errore del gestionale: il gestionale è"
        " occupato: troppe richieste in corso (HTTP 503): massimo raggiunto per l'utente; il"
        " gestionale è rimasto non disponibile per 1 min 6 s, chiedendo di riprovare tra 1 s"
        " (POST /webapi/risorse/clienti); ordine W1 non inviato: fermo per il cliente 'X'"
        " (id sul sito 1), non inviato neanch'esso"
    )
    set_language("en")
    assert i18n.engine_notes(f"{busy}; {held}") == f"{busy}; {held}"


def test_amounts_and_erp_document_fields_read_in_the_languages_style() -> None:
    """Money groups its thousands as counts do; an ERP document's numbers and date, as
    the review of its update shows them, in the UI's style too."""
    from passweb_tui.screens.base import fmt_money
    from passweb_tui.screens.orders import doc_cell

    assert (fmt_money("1374.32"), fmt_money("-1234567.5"), fmt_money("0.1234")) == (
        "1,374.32",
        "-1,234,567.50",
        "0.1234",
    )
    assert doc_cell("prezzo", "166.16") == "166.16"
    set_language("it")
    assert (fmt_money("1374.32"), fmt_money("87.3")) == ("1.374,32", "87,30")
    assert [doc_cell(n, v) for n, v in (("prezzo", "1166.16"), ("quantita", "2.5"))] == [
        "1.166,16",
        "2,5",
    ]
    assert doc_cell("data_documento", "20261207") == "07/12/2026"
    # a code is no number, whatever it looks like
    assert doc_cell("codice_articolo", "12.50") == "12.50"
    assert doc_cell("cod_conto", "501.00001") == "501.00001"


def test_numbers_dates_and_counts_of_one_in_italian() -> None:
    """In Italian a point separates thousands: a weight of "6.003" read as six thousand,
    a quantity of "1.5" as fifteen hundred. Numbers with a fraction of a numeric field
    (the ERP's catalogue says which) take a comma; a code that looks like a number does
    not. Days read 27/11/2026; a count of one takes the singular."""
    from passweb_tui.i18n import date_text
    from passweb_tui.screens.changes import change_note, change_row

    numeric = {("articles", "peso"): "N", ("articles", "prz_listino"): "N"}
    weight = {"entity": "articles", "key": "A1", "change": "updated", "field": "peso",
              "old": "6.003", "new": "6.67", "run_id": 3, "id": 9}  # fmt: skip
    prices = {**weight, "field": "prz_listino", "old": '{"1": "229.83", "2": "10"}',
              "new": '{"1": "288.51", "2": "10"}'}  # fmt: skip
    code = {**weight, "entity": "customers", "field": "cod_conto", "old": "501.00042",
            "new": "501.00043"}  # fmt: skip
    set_language("it")
    try:
        assert change_row(weight, numeric)[1][-2:] == ("6,003", "6,67")
        assert str(change_note(weight, numeric)).endswith("peso: 6,003 → 6,67")
        assert change_row(prices, numeric)[1][-2:] == ("1: 229,83", "1: 288,51")
        assert change_row(code, numeric)[1][-2:] == ("501.00042", "501.00043")
        assert date_text(2026, 11, 27) == "27/11/2026"
        assert t("orders.failing", count="1") == "1 non inviato per errore"
        assert t("orders.failing", count="2") == "2 non inviati per errore"
        assert t("record.erp_differs", count=1, fields="peso", partial="p") == (
            "Il gestionale ora differisce in 1 campo: peso (p lo porta)."
        )
        assert t("record.erp_differs", count=3, fields="a, b, c", partial="p").startswith(
            "Il gestionale ora differisce in 3 campi:"
        )
    finally:
        set_language("en")
    assert change_row(weight, numeric)[1][-2:] == ("6.003", "6.67")
    assert date_text(2026, 11, 27) == "2026-11-27"
    assert t("orders.ack_all_question", count=1) == "Acknowledge the update shown?"


def test_keys_are_named_in_italian_in_italian_hints() -> None:
    """ "⏎ apre, space segna": the space bar is named in the hint's language."""
    from passweb_tui.app import create_app

    set_language("it")
    try:
        app = create_app(None)
        assert app.key_label("catalogue.mark") == "spazio"
        assert "spazio" in t("catalogue.status", first=1, last=2, marked=0, open="⏎",
                             mark=app.key_label("catalogue.mark"), partial="p")  # fmt: skip
    finally:
        set_language("en")
    assert create_app(None).key_label("catalogue.mark") == "space"
