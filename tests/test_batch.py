"""A page at a time (engine/batch.py) decides exactly what record by record
(engine/records.py) decides: same rows, same rejects with the same reasons; and the
fast JSON decoding loses no digit of any number."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from passweb_tui.engine import batch
from passweb_tui.engine.batch import build_rows, nul_free, scan_page
from passweb_tui.engine.builder import build_page
from passweb_tui.engine.erp.client import _short_numbers, decode_json
from passweb_tui.engine.records import (
    ENTITIES,
    FieldSpec,
    Rejected,
    SiteRules,
    build_row,
    digest_salt,
    quick,
)

ARTICLES = ENTITIES["articles"]
CATALOGUE = {
    "codice": FieldSpec("C", 20),
    "descrizione": FieldSpec("C", 12),
    "prz_listino": FieldSpec("N", None, 4),
    "cod_grp_merc": FieldSpec("C", 10),
    "alq_iva": FieldSpec("C", 3),
    "peso": FieldSpec("N", None),
    "trasf_sito": FieldSpec("C", 1, 2),
    "pubblica": FieldSpec("C", 1, 2),
    "gest_precanc": FieldSpec("C", 1),
    "gest_annullato": FieldSpec("C", 1),
    "dt_mod_sistema": FieldSpec("D", 8),
    "ora_mod_sistema": FieldSpec("T", 6),
}
USED = ("alq_iva", "cod_grp_merc", "descrizione", "peso", "prz_listino")
KNOWN = {"categories": {"G1", "G2"}}
RULES = SiteRules()

# each field: mostly good values, sometimes one of the ways an ERP record goes wrong
_text = st.text(alphabet="abcXYZ èò-", max_size=14)
_price = st.one_of(
    st.floats(min_value=0, max_value=10_000, allow_nan=False).map(lambda f: round(f, 3)),
    st.integers(0, 10_000),
)
_pairs = st.lists(st.tuples(st.integers(1, 4), _price).map(list), max_size=4)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "descrizione": st.one_of(
        _text, st.none(), st.integers(0, 9), st.just("nul\x00byte"), st.just("lit\\u0000")
    ),
    "prz_listino": st.one_of(
        _pairs,
        st.none(),
        st.just([]),
        st.just([[1, "x"]]),
        st.just([["1", 2.5]]),
        st.just(3),
        # beyond what the price table keeps, and near it
        st.just([[1, 8010000000001]]),
        st.just([[2, -(10**12)]]),
        st.just([[1, 999999999999.9999]]),
        st.just([[1, "1e13"]]),
        st.just([[2**31, 5]]),
    ),
    "cod_grp_merc": st.sampled_from(["G1", "G2", "G1", "G2", "G9", "", None]),
    "alq_iva": st.sampled_from(["22", "10", "4", "2222", None]),
    "peso": st.one_of(_price, st.none(), st.just("heavy"), st.just(True)),
    "trasf_sito": st.sampled_from([[[1, "S"], [2, "N"]], [[1, "N"]], [], None, [[1, "SS"]]]),
    "pubblica": st.sampled_from([[[1, "S"]], [[1, "N"]], None]),
    "gest_precanc": st.sampled_from(["N", "S", "N", "NN"]),
    "gest_annullato": st.sampled_from(["N", "N", "S"]),
    "dt_mod_sistema": st.sampled_from(["20261127", "20261128", "", "2026-11-27", None]),
    "ora_mod_sistema": st.sampled_from(["101500", "", "1015", None]),
}


@st.composite
def pages(draw: st.DrawFn, clean: bool) -> list[dict[str, Any]]:
    """A page of article records; `clean` pages take only the first (good) choices."""
    n = draw(st.integers(2, 12))
    out = []
    for i in range(n):
        record: dict[str, Any] = {"codice": f"A{i:03d}"}
        for name, values in FIELDS.items():
            if clean:
                record[name] = _clean(name, i)
            else:
                record[name] = draw(values)
        out.append(record)
    if not clean and draw(st.booleans()):
        victim = out[draw(st.integers(0, n - 1))]
        choice = draw(st.sampled_from(["drop-key", "int-key", "long-key", "nul-key", "drop-field"]))
        if choice == "drop-key":
            del victim["codice"]
        elif choice == "int-key":
            victim["codice"] = 7
        elif choice == "long-key":
            victim["codice"] = "K" * 30
        elif choice == "nul-key":
            victim["codice"] = "K\x00"
        else:
            del victim["peso"]
    return out


def _clean(name: str, i: int) -> Any:
    return {
        "descrizione": f"Art {i}",
        "prz_listino": [[1, 10.5 + i], [2, 9.99], [3, 12]],
        "cod_grp_merc": "G1",
        "alq_iva": "22",
        "peso": 0.25 * i,
        "trasf_sito": [[1, "S"], [2, "N"]],
        "pubblica": [[1, "S"]],
        "gest_precanc": "N",
        "gest_annullato": "N",
        "dt_mod_sistema": "20261127",
        "ora_mod_sistema": "101500",
    }[name]


def one_by_one(records: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    salt = digest_salt(ARTICLES, RULES, USED)
    rows, rejects = [], []
    for r in records:
        try:
            q = quick(ARTICLES, r, salt, RULES)
            rows.append(build_row(ARTICLES, r, USED, CATALOGUE, RULES, KNOWN, q.digest))
        except Rejected as exc:
            rejects.append((exc.key, exc.reason))
    return rows, rejects


def page_at_once(records: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    salt = digest_salt(ARTICLES, RULES, USED)
    items, rejects = scan_page(ARTICLES, records, salt, RULES)
    rows, bad = build_rows(ARTICLES, items, USED, CATALOGUE, RULES, KNOWN)
    return rows, rejects + bad


def comparable(rows: list[Any]) -> list[tuple[Any, ...]]:
    # prices may come as the exact float the ERP wrote or as a Decimal: the same number
    return [
        (
            r.key,
            r.data,
            r.data_json,
            r.derived,
            r.digest,
            {
                n: Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
                for n, v in r.prices.items()
            },
        )
        for r in rows
    ]


@settings(max_examples=300, deadline=None)
@given(pages(clean=False))
def test_a_page_decides_what_each_record_decides(records: list[dict[str, Any]]) -> None:
    slow_rows, slow_rejects = one_by_one(records)
    fast_rows, fast_rejects = page_at_once(records)
    assert comparable(fast_rows) == comparable(slow_rows)
    assert sorted(map(str, fast_rejects)) == sorted(map(str, slow_rejects))


@settings(max_examples=200, deadline=None)
@given(pages(clean=False))
def test_a_page_of_exact_numbers_decides_what_each_record_decides(
    records: list[dict[str, Any]],
) -> None:
    """A reply holding one number a float cannot keep is decoded the exact way: every
    non-integer number of the page is then a Decimal, beside the whole numbers' ints."""
    exact = decode_json(json.dumps({"dati": records}).encode())["dati"]
    slow_rows, slow_rejects = one_by_one(exact)
    fast_rows, fast_rejects = page_at_once(exact)
    assert comparable(fast_rows) == comparable(slow_rows)
    assert sorted(map(str, fast_rejects)) == sorted(map(str, slow_rejects))


def test_a_whole_price_beside_a_long_number_is_kept() -> None:
    """A whole-number price in a page whose other numbers came as Decimals (a weight of
    17 significant digits sent the reply the exact way) failed the run: an int has no
    digits to count the way a Decimal has."""
    body = (
        b'{"dati":[{"codice":"ZA2","descrizione":"whole","prz_listino":[[1,5]],'
        b'"cod_grp_merc":"G1","alq_iva":"22","peso":2},'
        b'{"codice":"ZB2","descrizione":"long","prz_listino":[[1,1.5]],'
        b'"cod_grp_merc":"G1","alq_iva":"22","peso":0.30000000000000004}]}'
    )
    records = decode_json(body, decimals=False)["dati"]
    assert records[1]["peso"] == Decimal("0.30000000000000004")
    rows, rejects = page_at_once(records)
    assert not rejects
    assert [r.key for r in rows] == ["ZA2", "ZB2"]
    assert comparable(rows) == comparable(one_by_one(records)[0])
    assert rows[0].prices == {1: 5}


@settings(max_examples=30, deadline=None)
@given(pages(clean=True))
def test_clean_pages_take_the_column_way_and_agree(records: list[dict[str, Any]]) -> None:
    fast_rows, fast_rejects = page_at_once(records)
    slow_rows, slow_rejects = one_by_one(records)
    assert not fast_rejects and not slow_rejects
    assert comparable(fast_rows) == comparable(slow_rows)
    # the column way gives prices as the floats and ints the ERP sent (no Decimal made)
    assert all(type(v) in (float, int) for r in fast_rows for v in r.prices.values())
    assert fast_rows[0].data["prz_listino"] == {"1": "10.5", "2": "9.99", "3": 12}


def test_a_bad_value_in_a_clean_page_rejects_only_its_record() -> None:
    records = [{"codice": f"A{i}", **{n: _clean(n, i) for n in FIELDS}} for i in range(5)]
    records[2]["descrizione"] = "far too long for the field"
    records[4]["cod_grp_merc"] = "G404"
    rows, rejects = page_at_once(records)
    assert [r.key for r in rows] == ["A0", "A1", "A3"]
    assert rejects == [
        ("A2", "field descrizione: text of 26 characters, longer than 12"),
        ("A4", "unknown category 'G404' in cod_grp_merc"),
    ]


# --- decoding ----------------------------------------------------------------------


_number = st.one_of(
    st.integers(0, 8).flatmap(
        lambda p: st.decimals(allow_nan=False, allow_infinity=False, places=p)
    ),
    st.integers(-(2**70), 2**70),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_number, st.text(alphabet="0123456789.e:-", max_size=24)), max_size=6))
def test_fast_decoding_keeps_every_digit(values: list[Any]) -> None:
    # numbers written as the ERP might write them (str of a Decimal: 1.50, 1E+2, 0E-8)
    items = [str(v) if not isinstance(v, str) else json.dumps(v) for v in values]
    text = ('{"dati":[' + ",".join('{"v":' + i + "}" for i in items) + "]}").encode()
    exact = decode_json(text)["dati"]
    fast = decode_json(text, decimals=False)["dati"]
    for e, f in zip(exact, fast, strict=True):
        a, b = e["v"], f["v"]
        if isinstance(b, float):
            assert isinstance(a, Decimal) and Decimal(repr(b)) == a
        else:
            assert a == b and type(a) is type(b)


def test_numbers_a_float_cannot_hold_take_the_exact_way() -> None:
    assert _short_numbers(b'{"a":1.5,"b":[1,-2.25],"c":"8010000010000123456789"}')
    assert _short_numbers(b'{"next":"a3e4f0e1","k":"10e5"}')  # inside strings: no matter
    assert not _short_numbers(b'{"a":1234567890.1234567}')  # 17 significant digits
    assert not _short_numbers(b'{"a": 1.5e-7}')
    assert not _short_numbers(b"[1, -2.5E+5]")
    assert not _short_numbers(b'{"a":123456789012345678901}')  # beyond 64 bits
    assert decode_json(b'{"a":1234567890.1234567}', decimals=False) == {
        "a": Decimal("1234567890.1234567")
    }
    assert decode_json(b'{"a":[1.5, 1e-400]}', decimals=False) == {
        "a": [Decimal("1.5"), Decimal("1E-400")]
    }


# --- a list reply cut into its records' texts without decoding --------------------


def lazy_page(body: bytes) -> Any:
    import httpx

    from passweb_tui.engine.erp.client import MexalClient
    from passweb_tui.engine.erp.settings import ErpConfig

    config = ErpConfig("http://erp.test/webapi", "u", "p", azienda="A", anno=2026)
    client = MexalClient(
        config, transport=httpx.MockTransport(lambda r: httpx.Response(200, content=body))
    )
    return client.list_page("articoli", lazy=True)


def test_a_clean_reply_is_cut_as_record_texts_cuts_it() -> None:
    from passweb_tui.engine.batch import record_texts

    records = [{"codice": f"A{i}", "d": "x},{y", "p": [[1, 2.5]]} for i in range(3)]
    body = json.dumps(
        {"dati": records, "next": "tok", "data_ric_elab": "20261127 101500"},
        separators=(",", ":"),
    ).encode()
    page = lazy_page(body)
    assert page.next_token == "tok" and str(page.data_ric_elab) == "2026-11-27 10:15:00"
    keys, texts = page.cut()
    assert keys == ["A0", "A1", "A2"]
    assert texts == record_texts(body, keys)
    assert page.records == records  # decoded when asked for


def test_replies_that_do_not_cut_cleanly_are_decoded() -> None:
    from passweb_tui.engine.erp.client import LazyPage

    def body(records: list[dict[str, Any]]) -> bytes:
        envelope = {"dati": records, "next": None, "data_ric_elab": "20250903 101500"}
        return json.dumps(envelope, separators=(",", ":")).encode()

    tricky = [
        [{"codice": "A1", "d": "ends with },{"}, {"codice": "A2", "d": ""}],  # a false cut
        [{"codice": "A1"}, {"codice": "A1"}],  # a key twice
        [{"codice": 'A"1'}, {"codice": "A2"}],  # an escaped key
        [{"codice": "A1", "sub": [{"codice": "B"}]}, {"codice": "A2"}],  # a nested key
    ]
    for records in tricky:
        page = lazy_page(body(records))
        assert isinstance(page, LazyPage)
        assert page.cut() is None, records
        assert page.records == records
    # a `}]` after the records (here in the token) makes the envelope unreadable apart:
    # such a reply is decoded at once, and nothing in it is lost
    odd = lazy_page(
        json.dumps(
            {"dati": [{"codice": "A1"}], "next": "t}]", "data_ric_elab": "20250903 101500"}
        ).encode()
    )
    assert not isinstance(odd, LazyPage) and odd.next_token == "t}]"
    assert odd.records == [{"codice": "A1"}]
    # an empty list, and a reply whose records region is not JSON, are not lazy or raise
    assert lazy_page(body([])).records == []
    broken = (
        b'{"dati":[{"codice":"A1",oops},{"codice":"A2"}],"next":null,'
        b'"data_ric_elab":"20250903 101500"}'
    )
    page = lazy_page(broken)
    import pytest

    from passweb_tui.engine.erp.errors import MalformedResponseError

    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        _ = page.records


# --- what the store cannot keep ---------------------------------------------------------


def test_values_the_store_cannot_keep_reject_only_their_record() -> None:
    records = [{"codice": f"A{i}", **{n: _clean(n, i) for n in FIELDS}} for i in range(9)]
    records[1]["prz_listino"] = [[1, 8010000000001], [2, 9.99]]
    records[2]["descrizione"] = "nul\x00byte"
    records[3]["prz_listino"] = [[1, 999999999999.999]]  # under 10^12, 15 digits
    records[4]["descrizione"] = "a\\u0000b"  # a backslash and "u0000": no NUL
    records[5]["prz_listino"] = [[1, 1.5], [2, -1_000_000_000_000.0]]
    # a reply with a longer number is decoded to Decimals: 17 digits are more than a
    # SQLite store keeps exactly, trailing zeros are not digits kept
    records[7]["prz_listino"] = [[1, Decimal("1234567890.1234567")]]
    records[8]["prz_listino"] = [[1, Decimal("12.5000000000000000000")]]
    rows, rejects = page_at_once(records)
    assert [r.key for r in rows] == ["A0", "A3", "A4", "A6", "A8"]
    assert rejects == [
        (
            "A1",
            "prz_listino: price list 1: 8010000000001 is beyond what the store keeps"
            " (less than 10^12)",
        ),
        ("A2", "field descrizione: text with a NUL character (0x00), which the store cannot keep"),
        (
            "A5",
            "prz_listino: price list 2: -1000000000000 is beyond what the store keeps"
            " (less than 10^12)",
        ),
        (
            "A7",
            "prz_listino: price list 1: 1234567890.1234567 has more significant digits"
            " than the store keeps exactly (15)",
        ),
    ]
    slow_rows, slow_rejects = one_by_one(records)
    assert comparable(rows) == comparable(slow_rows) and rejects == slow_rejects


def test_a_key_with_a_nul_is_rejected_without_it() -> None:
    records = [{"codice": f"A{i}", **{n: _clean(n, i) for n in FIELDS}} for i in range(3)]
    records[1]["codice"] = "A\x001"
    rows, rejects = page_at_once(records)
    assert [r.key for r in rows] == ["A0", "A2"]
    assert rejects == [
        (
            None,
            "key codice 'A\\x001': text with a NUL character (0x00), which the store cannot keep",
        )
    ]


def test_a_long_key_with_a_nul_is_rejected_without_it_too() -> None:
    """Too long and with a NUL: no part of the key goes to the store's reject and retry
    tables, which could not keep the NUL either (PostgreSQL refuses it)."""
    records = [{"codice": f"A{i}", **{n: _clean(n, i) for n in FIELDS}} for i in range(3)]
    records[1]["codice"] = "A\x00" + "x" * 300
    rows, rejects = page_at_once(records)
    assert [r.key for r in rows] == ["A0", "A2"]
    ((key, reason),) = rejects
    assert key is None and "NUL character" in reason


def test_a_condition_price_and_a_rate_beyond_their_columns_are_rejected() -> None:
    conditions = ENTITIES["conditions"]
    used = ("cod_conto", "prezzo", "tipo")
    page = [
        {"codice": f"501.0000{i}+A+X", "cod_conto": f"501.0000{i}", "tipo": "A", "prezzo": p}
        for i, p in enumerate([12.5, 2500000000000, 999999999999.99, 0, None])
    ]
    salt = digest_salt(conditions, RULES, used)
    items, _ = scan_page(conditions, page, salt, RULES)
    rows, rejects = build_rows(conditions, items, used, {"prezzo": FieldSpec("N", 16)}, RULES)
    assert len(rows) == 4
    assert rejects == [
        ("501.00001+A+X", "prezzo: 2500000000000 is beyond what the store keeps (less than 10^12)")
    ]
    currencies = ENTITIES["currencies"]
    rates = [
        {"codice": 1, "sigla_iso": "EUR", "descrizione": "Euro", "cambio": 1},
        {"codice": 2, "sigla_iso": "XXX", "descrizione": "Far", "cambio": 10**16},
        {"codice": 3, "sigla_iso": "XXY", "descrizione": "Near", "cambio": 999999999999999},
        # under 10^16, but 16 digits: SQLite would keep 10^16
        {"codice": 4, "sigla_iso": "XXZ", "descrizione": "Long", "cambio": 9999999999999999},
        {"codice": 5, "sigla_iso": "XYZ", "descrizione": "Mid", "cambio": 1234567890123456},
    ]
    salt = digest_salt(currencies, RULES)
    items, _ = scan_page(currencies, rates, salt, RULES)
    rows, rejects = build_rows(currencies, items, None, {}, RULES)
    assert [r.key for r in rows] == ["1", "3"]
    assert rejects == [
        ("2", "cambio: 10000000000000000 is beyond what the store keeps (less than 10^16)"),
        ("4", "cambio: 9999999999999999 has more significant digits than the store keeps"
              " exactly (15)"),
        ("5", "cambio: 1234567890123456 has more significant digits than the store keeps"
              " exactly (15)"),
    ]  # fmt: skip
    # a huge one is said in short, not with the hundreds of digits of its exact value
    items, _ = scan_page(currencies, [{**rates[1], "cambio": 1e300}], salt, RULES)
    assert build_rows(currencies, items, None, {}, RULES)[1] == [
        ("2", "cambio: 1e+300 is beyond what the store keeps (less than 10^16)")
    ]


def test_the_worker_rejects_what_the_sync_rejects() -> None:
    """builder.build_page (the worker's way for a first TOTAL) gives the same rows and
    rejects for a reply holding values the store cannot keep."""
    records = [{"codice": f"A{i}", **{n: _clean(n, i) for n in FIELDS}} for i in range(5)]
    records[1]["prz_listino"] = [[1, 8010000000001]]
    records[3]["descrizione"] = "nul\x00byte"
    content = json.dumps({"dati": records}).encode()
    assert b"\\u0000" in content and not nul_free(content)
    salt = digest_salt(ARTICLES, RULES, USED)
    built = build_page("articles", content, USED, CATALOGUE, RULES, KNOWN, salt)
    assert built is not None
    _, _, scan_rejects, n, compact, bad = built
    assert n == 5 and not scan_rejects
    assert [c[0] for c in compact] == ["A0", "A2", "A4"]
    assert [k for k, _ in bad] == ["A1", "A3"]
    _, slow_rejects = one_by_one(records)
    assert bad == slow_rejects


def test_a_reply_without_the_json_spelling_of_nul_holds_none() -> None:
    assert nul_free(b'{"dati":[{"codice":"A1","descrizione":"plain"}]}')
    assert not nul_free(b'{"dati":[{"codice":"A1","descrizione":"a\\u0000b"}]}')
    assert not nul_free(None)


def test_a_customers_links_are_checked_alike_by_page_and_by_record() -> None:
    """A page whose customers all name known lookup records takes the column way; one
    naming an unknown payment rejects only that customer, with the reason the
    per-record way gives."""
    customers = ENTITIES["customers"]
    used = ("ragione_sociale", "cod_pagamento", "cod_listino", "valuta")
    catalogue = {"cod_listino": FieldSpec("N", 2), "valuta": FieldSpec("N", 4)}
    known = {"payments": {"RD", "BB30"}, "price_lists": {"1", "2"}, "currencies": {"1"}}
    page = [
        {"codice": f"501.0000{i}", "ragione_sociale": f"C{i}", "cod_pagamento": pay,
         "cod_listino": lst, "valuta": cur, "trasf_sito": [[1, "S"]]}
        for i, (pay, lst, cur) in enumerate(
            [("RD", 1, 1), ("BB30", 2.0, 0), ("", 0, 1), ("XX", 1, 1), ("RD", 3, 1)]
        )
    ]  # fmt: skip
    salt = digest_salt(customers, RULES, used)
    items, _ = scan_page(customers, page, salt, RULES)
    assert batch._build_columns(customers, items[:3], used, catalogue, RULES, known)
    assert batch._build_columns(customers, items, used, catalogue, RULES, known) is None
    rows, rejects = build_rows(customers, items, used, catalogue, RULES, known)
    assert [r.key for r in rows] == ["501.00000", "501.00001", "501.00002"]
    assert rejects == [
        ("501.00003", "unknown payment 'XX' in cod_pagamento"),
        ("501.00004", "unknown price list '3' in cod_listino"),
    ]
    one = [
        build_row(customers, q.record, used, catalogue, RULES, known, q.digest) for q in items[:3]
    ]
    assert [(r.key, r.data_json, r.derived) for r in one] == [
        (r.key, r.data_json, r.derived) for r in rows
    ]
    # a lookup table the store holds nothing of is not checked
    rows, rejects = build_rows(customers, items, used, catalogue, RULES, {"payments": set()})
    assert len(rows) == 5 and not rejects
