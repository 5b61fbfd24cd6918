"""Property-based tests: what parses ERP values, and diff/apply over any ERP-side history.

CI keeps the example counts small; the full run is
`PASSWEB_TUI_HARD_EXAMPLES=200 pytest -m slow tests/test_hard_properties.py`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from conftest import SimProcess, start_sim
from hard_support import erp_records, in_step, open_engine, store_diffs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from passweb_tui.engine.erp import values
from passweb_tui.engine.facade import Engine

FAST = settings(max_examples=60, deadline=None)

# --- parsing ERP values ------------------------------------------------------------

indexes = st.integers(min_value=0, max_value=10_000)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=20),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
)  # fmt: skip


@FAST
@given(st.dictionaries(indexes, scalars, max_size=12))
def test_indexed_arrays_round_trip(mapping: dict[int, object]) -> None:
    pairs = values.to_indexed(mapping)
    assert [i for i, _ in pairs] == sorted(mapping)
    assert values.parse_indexed(pairs) == mapping
    assert values.parse_indexed(json.loads(json.dumps(pairs, default=str))).keys() == mapping.keys()


@FAST
@given(st.lists(st.tuples(indexes, scalars), min_size=2, max_size=8))
def test_indexed_arrays_with_a_repeated_index_are_refused(items: list[tuple[int, object]]) -> None:
    pairs = [list(p) for p in items]
    pairs.append([pairs[0][0], "again"])
    with pytest.raises(ValueError, match="appears twice"):
        values.parse_indexed(pairs)


@FAST
@given(st.one_of(st.text(max_size=5), st.integers(), st.lists(st.integers(), max_size=3)))
def test_malformed_arrays_raise_value_error_never_anything_else(junk: object) -> None:
    try:
        values.parse_indexed([junk])
    except ValueError as exc:
        assert "array" in str(exc)


@FAST
@given(st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2999, 12, 31)))
def test_dates_times_round_trip_to_the_second(moment: dt.datetime) -> None:
    moment = moment.replace(microsecond=0)
    assert values.parse_date(values.format_date(moment.date())) == moment.date()
    assert values.parse_time(values.format_time(moment.time())) == moment.time()
    assert values.parse_datetime(values.format_datetime(moment)) == moment


@FAST
@given(st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_eight_digits_are_a_date_or_a_value_error(text: str) -> None:
    try:
        day = values.parse_date(text)
    except ValueError as exc:
        assert text in str(exc)
    else:
        assert values.format_date(day) == text


@FAST
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers()))
def test_numbers_become_the_decimal_they_print_as(number: float | int) -> None:
    d = values.to_decimal(number)
    assert d == Decimal(repr(number)) if isinstance(number, float) else d == number
    assert values.to_decimal(str(d)) == d


@FAST
@given(
    st.one_of(st.just(math.nan), st.just(math.inf), st.booleans(), st.none(), st.text(max_size=6))
)
def test_non_numbers_are_refused_with_value_error(junk: object) -> None:
    if isinstance(junk, str):
        try:
            values.to_decimal(junk)
        except ValueError:
            return
        assert "," not in junk  # what parsed must have been a number with a dot
        return
    with pytest.raises(ValueError):
        values.to_decimal(junk)


@FAST
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1))
def test_every_key_survives_hex_and_needs_hex_iff_it_has_a_slash(key: str) -> None:
    assert values.unhex_key(values.hex_key(key)) == key
    assert values.needs_hex(key) == ("/" in key or "\\" in key)
    assert all(c in "0123456789ABCDEF" for c in values.hex_key(key))


# --- diff/apply: any ERP history, then CHANGED, leaves the store equal to the ERP ----

EXAMPLES = int(os.environ.get("PASSWEB_TUI_HARD_EXAMPLES", "4"))

mutation = st.tuples(
    st.sampled_from(["articoli", "clienti", "particolarita"]),
    st.integers(min_value=1, max_value=15),
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from([None, ["trasf_sito"], ["descrizione"], ["prz_listino"], ["gest_precanc"]]),
).map(lambda t: ("mutate", *t))
addition = st.integers(min_value=0, max_value=10**6).map(lambda n: ("add", n))
removal = st.integers(min_value=0, max_value=10**6).map(lambda n: ("delete", n))
histories = st.lists(st.one_of(mutation, addition, removal), min_size=1, max_size=6)


@pytest.fixture(scope="module")
def prop_sim() -> Iterator[SimProcess]:
    p = start_sim("--articles", "200", "--customers", "40", "--orders", "2", "--seed", "31")
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def prop_engine(prop_sim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One store for all examples: each example starts from where the last left it."""
    db = f"sqlite:///{tmp_path_factory.mktemp('prop') / 'store.db'}"
    engine = open_engine(db, prop_sim)
    assert engine.run("total").status == "ok"
    yield engine
    engine.close()


def apply_history(sim: SimProcess, history: list[tuple]) -> set[str]:
    """Play the history on the ERP; returns the article keys deleted outright."""
    deleted: set[str] = set()
    for step in history:
        if step[0] == "mutate":
            _, resource, count, seed, fields = step
            if resource != "articoli" and fields not in (None, ["trasf_sito"]):
                fields = None  # those fields are articles'
            if resource == "particolarita" and fields:
                fields = None
            body = {"resource": resource, "count": count, "seed": seed}
            if fields:
                body["fields"] = fields
            sim.admin("POST", "mutate", json=body)
        elif step[0] == "add":
            articles = erp_records(sim, "articoli")
            base = articles[sorted(articles)[step[1] % len(articles)]]
            record = {
                k: v for k, v in base.items() if k not in ("dt_mod_sistema", "ora_mod_sistema")
            }
            record["codice"] = f"HP{step[1]:07d}"
            if record["codice"] in articles:
                continue
            record["descrizione"] = f"property article {step[1]}"
            reply = httpx.post(
                f"{sim.root}/sim/records/articoli",
                json=json.loads(json.dumps(record, default=float)),
                timeout=30,
            )
            assert reply.status_code == 200, reply.text
        else:
            keys = sorted(k for k in erp_records(sim, "articoli") if "/" not in k)
            victim = keys[step[1] % len(keys)]
            sim.admin("DELETE", f"records/articoli/{victim}")
            deleted.add(victim)
    return deleted


def check_history(sim: SimProcess, engine: Engine, history: list[tuple]) -> None:
    deleted = apply_history(sim, history)
    result = engine.run("changed")
    assert result.status in ("ok", "ok_with_rejects"), result.error
    # CHANGED: every stored record the ERP still has equals it field by field; records
    # deleted outright stay until a TOTAL (DOMAIN.md: CHANGED sees flag changes only)
    diffs = store_diffs(engine, sim)
    stale = {code for entity, code, what in diffs if what == "in the store, not in the ERP"}
    assert [d for d in diffs if d[2] != "in the store, not in the ERP"] == []
    assert stale <= deleted
    if deleted:
        assert engine.run("total").status in ("ok", "ok_with_rejects")
    assert in_step(engine) == {}
    assert store_diffs(engine, sim) == []


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(histories)
def test_any_erp_history_then_changed_leaves_the_store_equal_to_the_erp(
    prop_sim: SimProcess, prop_engine: Engine, history: list[tuple]
) -> None:
    check_history(prop_sim, prop_engine, history)


@pytest.mark.slow
@settings(max_examples=max(EXAMPLES, 60), deadline=None, suppress_health_check=list(HealthCheck))
@given(histories)
def test_any_erp_history_sweep(
    prop_sim: SimProcess, prop_engine: Engine, history: list[tuple]
) -> None:
    check_history(prop_sim, prop_engine, history)
