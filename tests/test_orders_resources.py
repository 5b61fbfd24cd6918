"""Article resources from the simulator: files by content hash, never written twice,
only new or changed ones downloaded, removal of what the ERP no longer has."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_orders_helpers import erp_config

from passweb_tui.engine.erp.client import MexalClient, Page
from passweb_tui.engine.erp.errors import ErpError
from passweb_tui.engine.erp.values import format_datetime, parse_datetime
from passweb_tui.engine.orders.resources import WATERMARK, _Download, sync_resources
from passweb_tui.engine.state import get_state
from passweb_tui.engine.store import Store, open_store
from passweb_tui.engine.sync import Scope, SyncOptions, SyncRunner


def test_resources_by_hash_only_new_or_changed_and_removal(sim: Any, tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    folder = tmp_path / "resources"
    try:
        with MexalClient(erp_config(sim)) as client:
            assert SyncRunner(store, client, SyncOptions()).run("total").status == "ok"
            with store.read() as conn:
                codes = list(
                    conn.execute(
                        sa.text("SELECT code FROM articles ORDER BY code LIMIT 40")
                    ).scalars()
                )
            first = sync_resources(store, client, folder, articles=codes)
            assert first.articles == 40 and not first.errors
            assert first.listed > 0 and first.downloaded == first.listed == first.written
            with store.read() as conn:
                rows = conn.execute(sa.text("SELECT * FROM web_resource")).mappings().all()
            assert len(rows) == first.listed
            for r in rows:
                data = (folder / r["path"]).read_bytes()
                assert hashlib.sha256(data).hexdigest() == r["sha256"] and len(data) == r["size"]
                assert r["path"].endswith(".png" if r["tipo"] == "immagine" else ".pdf")

            # nothing changed: nothing is downloaded again
            again = sync_resources(store, client, folder, articles=codes)
            assert (again.downloaded, again.unchanged) == (0, first.listed)

            # a lost file comes back; an attachment whose stamp changed is fetched again,
            # whatever the "since" says (the stamps are the ERP's clock, not this machine's)
            lost = folder / rows[0]["path"]
            lost.unlink()
            changed_article = rows[-1]["article_code"]
            with store.write() as conn:
                conn.execute(
                    sa.text(
                        "UPDATE web_resource SET dt_mod = '20000101 000000' WHERE article_code = :a"
                    ),
                    {"a": changed_article},
                )
            n_changed = sum(1 for r in rows if r["article_code"] == changed_article)
            future = sync_resources(
                store, client, folder, articles=codes, since=datetime(2999, 1, 1)
            )
            assert future.downloaded == 1 + n_changed and lost.exists()
            assert future.written == 1  # the changed ones brought the same bytes: no write
            past = sync_resources(store, client, folder, articles=codes, since=datetime(2001, 1, 1))
            assert past.downloaded == 0 and past.unchanged == first.listed

            # an article gone from the ERP: its resources and their files go too
            gone = rows[0]["article_code"]
            gone_paths = [r["path"] for r in rows if r["article_code"] == gone]
            sim.admin("DELETE", f"records/articoli/{gone}")
            removed = sync_resources(store, client, folder, articles=codes, remove_missing=True)
            assert removed.removed == len(gone_paths)
            assert not any((folder / p).exists() for p in gone_paths)
            assert sync_resources(store, client, folder, mode="none").articles == 0
    finally:
        store.close()


def test_an_article_the_site_gets_back_gets_its_attachments_again(sim: Any, tmp_path: Path) -> None:
    """The site loses an article (its resources removed), then gets it back: it is a new
    article again, and gets all its attachments, however old."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    folder = tmp_path / "resources"
    articles = sa.table("articles", sa.column("code"))
    try:
        with MexalClient(erp_config(sim)) as client:
            assert SyncRunner(store, client, SyncOptions()).run("total").status == "ok"
            with store.read() as conn:
                codes = list(
                    conn.execute(sa.select(articles.c.code).order_by("code").limit(5)).scalars()
                )
            first = sync_resources(store, client, folder, articles=codes)
            with store.read() as conn:
                listed = conn.execute(
                    sa.text("SELECT article_code, COUNT(*) FROM web_resource GROUP BY 1")
                ).all()
            back, n = next((code, count) for code, count in listed if count)
            assert first.downloaded >= n
            with store.write() as conn:  # as a TOTAL does for an article flagged off
                row = conn.execute(sa.text("SELECT * FROM articles WHERE code = :c"), {"c": back})
                saved = dict(row.mappings().one())
                conn.execute(sa.text("DELETE FROM articles WHERE code = :c"), {"c": back})
            rest = [c for c in codes if c != back]
            sync_resources(store, client, folder, articles=rest, remove_missing=True)
            with store.write() as conn:  # and the flag comes back on
                conn.execute(sa.table("articles", *map(sa.column, saved)).insert(), [saved])
            # a "changed" step whose mark is past every attachment's stamp
            again = sync_resources(
                store, client, folder, articles=[back], since=datetime(2999, 1, 1)
            )
            assert again.downloaded == n
            with store.read() as conn:
                stored = conn.execute(
                    sa.text("SELECT COUNT(*) FROM web_resource WHERE article_code = :c"),
                    {"c": back},
                ).scalar_one()
            assert stored == n
    finally:
        store.close()


def _kept(folder: Path, *chunks: bytes) -> tuple[str, str, bool]:
    """A download of `chunks` into `folder`, kept as a sync keeps one."""
    download = _Download(folder)
    try:
        download.start()
        for chunk in chunks:
            download.write(chunk)
        return download.keep()
    finally:
        download.discard()


def test_identical_content_is_written_once(tmp_path: Path) -> None:
    d1, p1, wrote1 = _kept(tmp_path, b"%PDF-1.4 same sheet", b" for two articles")
    d2, p2, wrote2 = _kept(tmp_path, b"%P", b"DF-1.4 same sheet for two articles")
    assert (d1, p1) == (d2, p2) and wrote1 and not wrote2
    assert p1.endswith(".pdf") and len(list(tmp_path.glob("??/*"))) == 1
    assert list(tmp_path.glob(".download.*")) == []  # the second one's file is gone


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="resource mode"):
        sync_resources(None, None, tmp_path, mode="some")  # type: ignore[arg-type]


def test_the_next_since_is_the_erps_clock_not_this_machines(tmp_path: Path) -> None:
    """An ERP whose clock is three hours behind this machine: the step's "since" comes
    from the ERP's clock, so an attachment the ERP adds right after the step (stamped
    with its own, earlier time) is still fetched by the next step."""
    from datetime import timedelta
    from types import SimpleNamespace

    from passweb_tui.engine.erp.client import Page
    from passweb_tui.engine.erp.values import parse_datetime
    from passweb_tui.engine.orders.resources import OVERLAP, WATERMARK
    from passweb_tui.engine.state import get_state

    erp_now = datetime.now().replace(microsecond=0) - timedelta(hours=3)
    png = b"\x89PNG" + b"x" * 20
    listed: list[dict[str, Any]] = [{"nome": "foto", "tipo": "immagine", "dimensione": len(png),
                                     "dt_mod": erp_now.strftime("%Y%m%d %H%M%S")}]  # fmt: skip

    def download_attachment(code: str, nome: str, into: Any, **limits: Any) -> int:
        into.start()
        into.write(png)
        return len(png)

    client = SimpleNamespace(
        config=SimpleNamespace(max_in_flight=1, max_attachment_bytes=1 << 20),
        attachments_page=lambda code: Page(list(listed), None, erp_now),
        download_attachment=download_attachment,
    )
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with store.write() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO articles (code, published, data, digest, synced_at)"
                    " VALUES ('A1', 1, '{}', 'd', '2026-01-01 00:00:00')"
                )
            )
        folder = tmp_path / "res"
        first = sync_resources(store, client, folder)  # type: ignore[arg-type]
        assert first.downloaded == 1
        with store.read() as conn:
            since = parse_datetime(get_state(conn, WATERMARK) or "")
        assert since == erp_now - OVERLAP
        # the ERP adds a sheet a minute later by its clock (hours ago by this machine's)
        listed.append({"nome": "scheda", "tipo": "scheda", "dimensione": len(png),
                       "dt_mod": (erp_now + timedelta(minutes=1)).strftime("%Y%m%d %H%M%S")})  # fmt: skip
        second = sync_resources(store, client, folder)  # type: ignore[arg-type]
        assert second.downloaded == 1 and second.unchanged == 1
    finally:
        store.close()


class ExtraAttachments:
    """The simulator's attachments, plus ones a test adds to an article (the simulator
    derives its own from its data), and downloads that fail once, as a transient ERP
    error does."""

    def __init__(self, client: MexalClient, monkeypatch: pytest.MonkeyPatch) -> None:
        self.added: dict[str, list[dict[str, Any]]] = {}
        self.failing: set[tuple[str, str]] = set()
        listing, download = client.attachments_page, client.download_attachment

        def attachments_page(code: str) -> Page:
            page = listing(code)
            return Page([*page.records, *self.added.get(code, [])], None, page.data_ric_elab)

        def download_attachment(code: str, nome: str, into: Any, **limits: Any) -> int:
            if (code, nome) in self.failing:
                self.failing.discard((code, nome))
                raise ErpError("503 - pool exhausted (after retries)")
            if any(item["nome"] == nome for item in self.added.get(code, [])):
                into.start()
                into.write(self.content(code, nome))
                return len(self.content(code, nome))
            return download(code, nome, into, **limits)

        monkeypatch.setattr(client, "attachments_page", attachments_page)
        monkeypatch.setattr(client, "download_attachment", download_attachment)

    @staticmethod
    def content(code: str, nome: str) -> bytes:
        return f"%PDF-1.4 {nome} of {code}".encode()

    def add(self, code: str, nome: str, stamp: datetime) -> None:
        size = len(self.content(code, nome))
        item = {
            "tipo": "scheda",
            "nome": nome,
            "dt_mod": format_datetime(stamp),
            "dimensione": size,
        }
        self.added.setdefault(code, []).append(item)


def _erp_now(sim: Any) -> datetime:
    return parse_datetime(sim.admin("GET", "clock").json()["now"])


def _move_erp_clock(sim: Any, by: timedelta) -> None:
    offset = float(sim.admin("GET", "clock").json()["offset_s"])
    sim.admin("PUT", "clock", json={"offset_s": offset + by.total_seconds()})


def _resources_since(store: Store) -> str | None:
    with store.read() as conn:
        return get_state(conn, WATERMARK)


def _stored_file(store: Store, folder: Path, code: str, nome: str) -> bytes | None:
    """The bytes the site has for an article's attachment (None: it has none)."""
    with store.read() as conn:
        path = conn.execute(
            sa.text("SELECT path FROM web_resource WHERE article_code = :a AND nome = :n"),
            {"a": code, "n": nome},
        ).scalar_one_or_none()
    if path is None or not (folder / path).is_file():
        return None
    return (folder / path).read_bytes()


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.slow)], indirect=True
)
def test_a_partial_of_some_articles_does_not_hide_attachments_added_elsewhere(
    sim: Any, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sync partial --entity resources --code A` looks at article A only: a sheet the
    ERP added to article B before it is still brought by the next CHANGED."""
    store = open_store(db_url)
    folder = tmp_path / "resources"
    options = SyncOptions(resources_dir=folder)
    try:
        with MexalClient(erp_config(sim)) as client:
            extra = ExtraAttachments(client, monkeypatch)
            assert SyncRunner(store, client, options).run("total").status == "ok"
            with store.read() as conn:
                a, b = conn.execute(
                    sa.text("SELECT code FROM articles ORDER BY code LIMIT 2")
                ).scalars()
            # by the ERP's clock: a sheet added to B an hour after the TOTAL, and the
            # operator's partial of A two hours after that
            extra.add(b, "scheda-2", _erp_now(sim) + timedelta(hours=1))
            _move_erp_clock(sim, timedelta(hours=3))
            mark = _resources_since(store)
            partial = SyncRunner(store, client, options).run(
                "partial", scope=Scope(("resources",), (a,))
            )
            assert partial.status == "ok"
            assert _stored_file(store, folder, b, "scheda-2") is None  # B was not looked at
            assert _resources_since(store) == mark
            changed = SyncRunner(store, client, options).run("changed")
            assert changed.status == "ok"
            assert _stored_file(store, folder, b, "scheda-2") == extra.content(b, "scheda-2")
            # nor does a partial of every article move it (DOMAIN: no PARTIAL does)
            mark = _resources_since(store)
            _move_erp_clock(sim, timedelta(hours=3))
            whole = SyncRunner(store, client, options).run("partial", scope=Scope(("resources",)))
            assert whole.status == "ok" and _resources_since(store) == mark
    finally:
        store.close()


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.slow)], indirect=True
)
def test_a_new_articles_attachment_whose_download_failed_comes_with_the_next_run(
    sim: Any, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new article's sheet, older than the resource step's mark, fails to download (a
    transient ERP error): the run lists it as a reject with its reason, and the next
    CHANGED brings it."""
    store = open_store(db_url)
    folder = tmp_path / "resources"
    options = SyncOptions(resources_dir=folder)
    try:
        with MexalClient(erp_config(sim)) as client:
            extra = ExtraAttachments(client, monkeypatch)
            assert SyncRunner(store, client, options).run("total").status == "ok"
            new = "NEW0001"
            sim.admin(
                "POST",
                "records/articoli",
                json={"codice": new, "descrizione": "Nuovo", "alq_iva": "22",
                      "um_principale": "PZ", "trasf_sito": [[1, "S"]]},
            )  # fmt: skip
            extra.add(new, "scheda", datetime(2020, 1, 1, 9, 0))
            extra.failing.add((new, "scheda"))
            failed = SyncRunner(store, client, options).run("changed")
            assert failed.status == "ok_with_rejects"
            assert failed.entities["articles"]["inserted"] == 1
            assert failed.entities["resources"]["rejected"] == 1
            with store.read() as conn:
                rejects = conn.execute(
                    sa.text("SELECT entity, key, reason FROM sync_rejects WHERE run_id = :r"),
                    {"r": failed.run_id},
                ).all()
            assert [(e, k) for e, k, _ in rejects] == [("resources", new)]
            assert "scheda" in rejects[0][2] and "503" in rejects[0][2]
            assert _stored_file(store, folder, new, "scheda") is None

            again = SyncRunner(store, client, options).run("changed")
            assert again.status == "ok"
            assert _stored_file(store, folder, new, "scheda") == extra.content(new, "scheda")
    finally:
        store.close()


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.slow)], indirect=True
)
def test_a_failed_or_cancelled_run_leaves_the_resources_since_where_it_was(
    sim: Any, db_url: str, tmp_path: Path
) -> None:
    """Like the CHANGED watermark, the resource step's mark moves only with a run that
    ends well: not when the run is cancelled in that step, nor when it ends failed
    because another run took its lease over while the step was running."""
    import threading

    from passweb_tui.engine.models import metadata
    from passweb_tui.engine.sync import ProgressEvent

    store = open_store(db_url)
    folder = tmp_path / "resources"
    # no heartbeat within the run: the take-over is found at its end
    options = SyncOptions(resources_dir=folder, lease_seconds=600)
    try:
        with MexalClient(erp_config(sim)) as client:
            assert SyncRunner(store, client, options).run("total").status == "ok"
            mark = _resources_since(store)
            assert mark is not None
            _move_erp_clock(sim, timedelta(hours=3))  # a good run now would move it

            cancel = threading.Event()

            def cancel_in_resources(ev: ProgressEvent) -> None:
                if ev.phase == "resources":
                    cancel.set()

            cancelled = SyncRunner(
                store, client, options, on_event=cancel_in_resources, cancel=cancel
            ).run("changed")
            assert cancelled.status == "cancelled" and _resources_since(store) == mark

            def take_over(ev: ProgressEvent) -> None:
                if ev.phase == "resources":
                    with store.write() as conn:
                        conn.execute(
                            sa.update(metadata.tables["sync_lease"]).values(holder="elsewhere:1:x")
                        )

            failed = SyncRunner(store, client, options, on_event=take_over).run("changed")
            assert failed.status == "failed" and "taken over" in (failed.error or "")
            assert failed.entities["resources"]["fetched"] > 0  # the step itself went through
            assert _resources_since(store) == mark
    finally:
        store.close()


# --- downloads past their limit, streamed downloads ------------------------------------

MB = 1024 * 1024


def _with_image(client: MexalClient, codes: list[str], n: int) -> list[str]:
    """The first `n` of `codes` whose listing has an "immagine"."""
    found = [c for c in codes if any(i["nome"] == "immagine" for i in client.attachments(c))]
    assert len(found) >= n
    return found[:n]


def _listed_size(size: int | None) -> Any:
    """A listing rewrite: the image's `dimensione` becomes `size` (None: left out)."""

    def rewrite(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for item in records:
            if item["nome"] == "immagine":
                item.pop("dimensione")
                if size is not None:
                    item["dimensione"] = size
        return records

    return rewrite


def _stored(store: Store) -> dict[tuple[str, str], dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(sa.text("SELECT * FROM web_resource")).mappings().all()
    return {(r["article_code"], r["nome"]): dict(r) for r in rows}


def _files_are_the_stored_ones(store: Store, folder: Path) -> None:
    """No temporary file left behind, and every file in the folder is one the site has."""
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert not [p for p in on_disk if ".download." in p or p.endswith(".tmp")]
    assert on_disk == {r["path"] for r in _stored(store).values()}


def _first_codes_after_a_total(store: Store, client: MexalClient) -> list[str]:
    """The first 40 article codes of the store, after a TOTAL into it."""
    assert SyncRunner(store, client, SyncOptions()).run("total").status == "ok"
    with store.read() as conn:
        return list(
            conn.execute(sa.text("SELECT code FROM articles ORDER BY code LIMIT 40")).scalars()
        )


def test_a_download_past_its_limit_is_stopped_stores_nothing_and_is_a_reject(
    sim: Any, tmp_path: Path
) -> None:
    """The reviewer's case: a proxy in front of the ERP serves far more than the listing
    says, or than [sync] resource_max_mb allows. Each such download stops as soon as it
    goes past (or, announced, before it starts), nothing of it is stored, memory never
    holds it, and each is a reject naming the attachment, the article and the limit;
    the other attachments are stored as before."""
    import tracemalloc

    from lying_proxy import Lie, LyingProxy

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    folder = tmp_path / "resources"
    body = 20 * MB
    try:
        with MexalClient(erp_config(sim)) as direct:
            codes = _first_codes_after_a_total(store, direct)
            a, b, c, d, fine = _with_image(direct, codes, 5)
            expected = {i["nome"]: direct.get_attachment(fine, i["nome"])
                        for i in direct.attachments(fine)}  # fmt: skip
        with LyingProxy(sim) as proxy:
            # a: no size listed, 20 MB that announce no length: stopped at 1 MB as it comes
            proxy.listings[a] = _listed_size(None)
            unannounced = proxy.lie(a, "immagine", Lie(body, announce=False))
            # b: listed at 10 bytes (the reviewer's), 200 KB announced: refused unread
            proxy.listings[b] = _listed_size(10)
            proxy.lie(b, "immagine", Lie(200_000))
            # c: the listing itself says 2 MB: not even asked for
            proxy.listings[c] = _listed_size(2 * MB)
            # d: no size listed, 20 MB announced: refused unread by the setting
            proxy.listings[d] = _listed_size(None)
            proxy.lie(d, "immagine", Lie(body))
            config = erp_config(proxy, max_attachment_bytes=1 * MB)
            with MexalClient(config) as client:
                tracemalloc.start()
                try:
                    result = sync_resources(store, client, folder, articles=[a, b, c, d, fine])
                    peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
        reasons = dict(result.errors)
        assert sorted(reasons) == sorted([a, b, c, d]), result.errors
        for code in (a, b, d):
            assert reasons[code].startswith("attachment immagine: ")
            assert f"/risorse/articoli/{code}/allegati/immagine" in reasons[code]
            assert reasons[code].endswith("; nothing stored")
        assert "larger than 1 MB ([sync] resource_max_mb): stopped as it went past" in reasons[a]
        assert "announced a reply of 200,000 bytes, more than the 10 bytes the ERP's" in reasons[b]
        assert "refused unread" in reasons[b]
        assert f"announced a reply of {body:,} bytes, more than 1 MB ([sync]" in reasons[d]
        assert reasons[c] == (
            "attachment immagine: the ERP lists it at 2,097,152 bytes, more than 1 MB"
            " ([sync] resource_max_mb); not downloaded"
        )
        assert proxy.hits[f"/webapi/risorse/articoli/{c}/allegati/immagine"] == 0
        # not retried (the same request brings the same), and stopped well before its end
        assert proxy.hits[f"/webapi/risorse/articoli/{a}/allegati/immagine"] == 1
        assert unannounced.sent[0] < body
        assert peak < 4 * MB, f"the download's memory peaked at {peak:,} bytes"
        stored = _stored(store)
        assert not [k for k in stored if k[1] == "immagine" and k[0] in (a, b, c, d)]
        for nome, data in expected.items():  # stored as before: same content, same place
            row = stored[(fine, nome)]
            digest = hashlib.sha256(data).hexdigest()
            assert (row["sha256"], row["size"]) == (digest, len(data))
            assert row["path"] == f"{digest[:2]}/{digest}{'.png' if nome == 'immagine' else '.pdf'}"
            assert (folder / row["path"]).read_bytes() == data
        _files_are_the_stored_ones(store, folder)
    finally:
        store.close()


def test_a_download_streams_to_its_file_a_cut_one_starts_over_and_a_failed_one_leaves_nothing(
    sim: Any, tmp_path: Path
) -> None:
    """An attachment of 12 MB (listed so) is never held whole in memory; its first try
    is cut by the connection dropping, and the retry's file holds the whole body once,
    not the first try's bytes before it. One that is cut every time is a reject and
    leaves no temporary file."""
    import tracemalloc

    from lying_proxy import Lie, LyingProxy, lie_digest

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    folder = tmp_path / "resources"
    size = 12 * MB
    try:
        with MexalClient(erp_config(sim)) as direct:
            codes = _first_codes_after_a_total(store, direct)
            big, broken = _with_image(direct, codes, 2)
        with LyingProxy(sim) as proxy:
            proxy.listings[big] = _listed_size(size)
            once = proxy.lie(big, "immagine", Lie(size, drop_after=300_000, drops=1))
            proxy.listings[broken] = _listed_size(MB)
            proxy.lie(broken, "immagine", Lie(MB, drop_after=100_000))
            with MexalClient(erp_config(proxy, max_retries=2)) as client:
                tracemalloc.start()
                try:
                    result = sync_resources(store, client, folder, articles=[big, broken])
                    peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
        assert once.sent == [300_000, size]
        assert [code for code, _ in result.errors] == [broken]
        assert "attachment immagine: connection to the ERP" in result.errors[0][1]
        row = _stored(store)[(big, "immagine")]
        digest = lie_digest(size)
        assert (row["sha256"], row["size"], row["path"]) == (
            digest,
            size,
            f"{digest[:2]}/{digest}.pdf",
        )
        assert (folder / row["path"]).stat().st_size == size
        assert peak < size // 3, f"the download's memory peaked at {peak:,} bytes"
        assert (broken, "immagine") not in _stored(store)
        _files_are_the_stored_ones(store, folder)
    finally:
        store.close()
