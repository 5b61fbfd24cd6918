"""Article resources (images, technical sheets) fetched from the ERP into the data
folder, stored by content hash so an identical file is never written twice.

Modes: "none"; "changed" (the default: download what changed since the resource
watermark, and everything of articles new to this step); "all". Listing an article's
attachments is one small request per article; downloads are the costly part and are
made only for new or changed attachments.

A download is streamed to a temporary file in the folder, hashed as it comes, and moved
to its place only when whole; one past its limit (ErpConfig.max_attachment_bytes, which
is [sync] resource_max_mb, or clearly more than the ERP's listing says) is stopped as
soon as it goes past, and is a reject of the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from passweb_tui.engine import models
from passweb_tui.engine.erp.client import MexalClient, ReplyTooLargeError, byte_size, in_context
from passweb_tui.engine.erp.errors import ErpError, NotFoundError
from passweb_tui.engine.erp.values import format_datetime, parse_datetime
from passweb_tui.engine.orders.models import WebResource, WebResourceArticle, utcnow
from passweb_tui.engine.state import get_state, set_state
from passweb_tui.engine.store import Store

log = logging.getLogger(__name__)

res_t = WebResource.__table__  # type: ignore[attr-defined]
seen_t = WebResourceArticle.__table__  # type: ignore[attr-defined]
articles_t = models.Article.__table__  # type: ignore[attr-defined]
changes_t = models.ChangeEntry.__table__  # type: ignore[attr-defined]

MODES = ("none", "changed", "all")
#: the resource step's own "since" (ERP local time, "AAAAMMGG HHMMSS")
WATERMARK = "resources_since"
PAGE = 200
OVERLAP = timedelta(minutes=65)
#: how much more than the ERP's listing says (`dimensione`) an attachment may bring: a
#: quarter more and 64 KiB, for a listing that rounds or lags a file changed since; a
#: body past that is not the file the listing describes
LISTING_LEEWAY_BYTES = 64 * 1024
#: downloads on their way, in the folder itself (never under its "??/" folders of files)
TEMP_PREFIX = ".download."
#: a temporary file nobody has written to for this long was left by a process that died
STALE_DOWNLOAD = timedelta(hours=1)


#: one change-log entry: key, change ("inserted", "updated", "deleted"), field, old, new
Change = tuple[str, str, str | None, str | None, str | None]


def resource_key(article: str, nome: str) -> str:
    """An attachment's key in the change log: its article's code and its name."""
    return f"{article}/{nome}"


@dataclass
class ResourceResult:
    articles: int = 0
    listed: int = 0
    downloaded: int = 0
    written: int = 0  # files written (a download whose content was already there is not)
    inserted: int = 0  # attachments new to the site, downloaded (or, dry, that would be)
    updated: int = 0  # attachments the site had, downloaded again (new stamp or size)
    unchanged: int = 0
    removed: int = 0
    bytes: int = 0
    requests: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # article, reason
    #: what the step did (or, dry, would do) to the site's attachments, as the change
    #: log has it: (key "ARTICLE/name", change, field, old, new)
    changes: list[Change] = field(default_factory=list)
    #: where the next "changed" may start: set only by a pass over every article that
    #: ended without errors (and wrote, so not a dry run); None otherwise
    next_since: datetime | None = None


def _stamp(text: str) -> datetime:
    try:
        return parse_datetime(text)
    except ValueError:
        return datetime.max  # an unreadable stamp: fetch it rather than miss a change


def _extension(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"%PDF"):
        return ".pdf"
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    return ".bin"


def _relative_path(digest: str, head: bytes) -> str:
    """Where a file of SHA-256 `digest` that starts with `head` is kept in the folder."""
    return f"{digest[:2]}/{digest}{_extension(head)}"


class _Download:
    """An attachment on its way (a BodySink): hashed as it comes and, given a folder,
    written to a temporary file there, which `keep` moves to its place by content hash
    once the download is whole, and `discard` removes otherwise."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.temp: Path | None = None
        self._file: Any = None
        self.hash = hashlib.sha256()
        self.head = b""  # the first bytes, which tell the file's kind
        self.size = 0

    def start(self) -> None:
        self.hash = hashlib.sha256()
        self.head = b""
        self.size = 0
        if self.folder is None:
            return
        if self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{TEMP_PREFIX}{os.getpid()}.{secrets.token_hex(8)}.tmp"
            self.temp = self.folder / name
            # os.open with 0o666, not mkstemp's 0o600: a kept file has the umask's mode,
            # as files written whole always had (a web server may serve them)
            fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            self._file = os.fdopen(fd, "wb")
        else:  # a retry starts over
            self._file.seek(0)
            self._file.truncate()

    def write(self, chunk: bytes) -> None:
        self.hash.update(chunk)
        if len(self.head) < 4:
            self.head = (self.head + chunk)[:4]
        self.size += len(chunk)
        if self._file is not None:
            self._file.write(chunk)

    def keep(self) -> tuple[str, str, bool]:
        """Move the whole download to its place: (digest, relative path, whether written;
        not when the folder has that content already)."""
        assert self.folder is not None and self._file is not None and self.temp is not None
        self._file.close()
        self._file = None
        digest = self.hash.hexdigest()
        rel = _relative_path(digest, self.head)
        path = self.folder / rel
        if path.exists() and path.stat().st_size == self.size:
            return digest, rel, False  # discard() removes the temporary file
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.temp, path)  # whole files only, even if the process dies mid-way
        self.temp = None
        return digest, rel, True

    def discard(self) -> None:
        """Remove what is left of the download (nothing once it was kept)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if self.temp is not None:
            with contextlib.suppress(OSError):
                self.temp.unlink(missing_ok=True)
            self.temp = None


def download_limit(item: dict[str, Any], max_bytes: int) -> tuple[int, str] | str:
    """How many bytes a listed attachment may bring, and how to name that limit in a
    reject's reason; or, when its listing already says it is bigger than `max_bytes`,
    why it is not downloaded at all."""
    setting = f"{byte_size(max_bytes)} ([sync] resource_max_mb)"
    listed = item.get("dimensione")
    if not isinstance(listed, int) or isinstance(listed, bool) or listed < 0:
        return max_bytes, setting  # no usable size listed: only the setting holds
    if listed > max_bytes:
        return f"the ERP lists it at {listed:,} bytes, more than {setting}; not downloaded"
    allowed = listed + listed // 4 + LISTING_LEEWAY_BYTES
    if allowed >= max_bytes:
        return max_bytes, setting
    return allowed, (
        f"the {listed:,} bytes the ERP's listing gives (with a quarter more and 64 KiB of"
        f" leeway, {allowed:,} bytes)"
    )


def _sweep_stale_downloads(folder: Path) -> None:
    """Temporary files of downloads whose process died mid-way (a live download writes
    to its file all the time)."""
    if not folder.is_dir():
        return
    cutoff = time.time() - STALE_DOWNLOAD.total_seconds()
    for path in folder.glob(f"{TEMP_PREFIX}*.tmp"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


def sync_resources(
    store: Store,
    client: MexalClient,
    folder: Path,
    *,
    mode: str = "changed",
    since: datetime | None = None,
    articles: Sequence[str] | None = None,
    remove_missing: bool = False,
    dry_run: bool = False,
    check: Callable[[], None] | None = None,
    save_mark: bool = True,
    run_id: int | None = None,
    would_store: Collection[str] = (),
) -> ResourceResult:
    """Bring the site's article resources up to date; see the module's docstring.

    What it does to the site's attachments is in `result.changes`, and, given the
    `run_id` of a run that writes, in the change log, each page's with its rows.

    A pass over every article that ends without errors moves the resource watermark to
    `result.next_since`; with `save_mark` false the caller saves it or not (with
    `set_resources_since`). A pass over some `articles` never moves it.

    `would_store`: the articles a dry run before this step would have stored (a first
    TOTAL's, all of them): their resources are looked at as if they were stored, so
    that the dry run predicts what the real run will fetch.
    """
    if mode not in MODES:
        raise ValueError(f"resource mode must be one of {', '.join(MODES)}, got {mode!r}")
    result = ResourceResult()
    if mode == "none":
        return result
    if not dry_run:
        _sweep_stale_downloads(folder)
    max_bytes: int = client.config.max_attachment_bytes
    with store.read() as conn:
        if since is None and mode == "changed":
            mark = get_state(conn, WATERMARK)
            since = parse_datetime(mark) if mark else None
        query = sa.select(articles_t.c.code).order_by(articles_t.c.code)
        if articles is not None:
            query = query.where(articles_t.c.code.in_(list(articles)))
        codes = list(conn.execute(query).scalars())
    if would_store:
        named = set(articles) if articles is not None else None
        codes = sorted({*codes, *(c for c in would_store if named is None or c in named)})
    started: datetime | None = None
    clocks: list[datetime] = []  # the ERP's clock at its listings
    lock = threading.Lock()
    for start in range(0, len(codes), PAGE):
        if check is not None:
            check()
        page = codes[start : start + PAGE]
        listings: dict[str, list[dict[str, Any]] | None] = {}

        def list_one(code: str, listings: dict[str, Any] = listings) -> None:
            try:
                listing = client.attachments_page(code)
                items: list[dict[str, Any]] | None = listing.records
                if listing.data_ric_elab is not None:
                    with lock:
                        clocks.append(listing.data_ric_elab)
            except NotFoundError:
                items = None  # the ERP no longer has the article
            except ErpError as exc:
                with lock:
                    result.errors.append((code, f"listing its attachments failed: {exc}"))
                return
            with lock:
                listings[code] = items
                result.requests += 1

        _in_threads(page, list_one, client.config.max_in_flight)
        # the ERP's stamps are its naive local time: the next "since" is the ERP's clock
        # at this step's first listing (this machine's only when the ERP gives none), an
        # overlap earlier, as CHANGED does
        if started is None:
            started = (min(clocks) if clocks else datetime.now()) - OVERLAP
        with store.read() as conn:
            known = {
                (r.article_code, r.nome): r
                for r in conn.execute(
                    sa.select(res_t).where(res_t.c.article_code.in_(list(listings)))
                ).all()
            }
            seen_before = set(
                conn.execute(
                    sa.select(seen_t.c.article_code).where(
                        seen_t.c.article_code.in_(list(listings))
                    )
                ).scalars()
            )
        wanted: list[tuple[str, dict[str, Any]]] = []
        gone: list[tuple[str, str]] = []
        for code, items in listings.items():
            result.articles += 1
            names = set()
            for item in items or []:
                nome = str(item.get("nome") or "")
                if not nome:
                    continue
                names.add(nome)
                result.listed += 1
                old = known.get((code, nome))
                stamp = str(item.get("dt_mod") or "")
                present = old is not None and (folder / old.path).is_file()
                same = (
                    old is not None
                    and present
                    and old.dt_mod == stamp
                    and old.size == item.get("dimensione")
                )
                fresh = code not in seen_before or mode == "all"
                # a stored attachment is fetched again when its stamp or size changed,
                # whenever that was; "since" only spares downloading an attachment the
                # site never had, of an article it knows, that is older than the last step
                if same or (old is None and not fresh and since and _stamp(stamp) < since):
                    result.unchanged += 1
                    continue
                wanted.append((code, item))
            if remove_missing:
                gone.extend(k for k in known if k[0] == code and k[1] not in names)
        rows: list[dict[str, Any]] = []
        failed: set[str] = set()  # articles with an attachment that did not come
        page_changes: list[Change] = []

        def fetch_one(
            job: tuple[str, dict[str, Any]],
            rows: list[Any] = rows,
            failed: set[str] = failed,
            known: dict[tuple[str, str], Any] = known,
            page_changes: list[Change] = page_changes,
        ) -> None:
            code, item = job
            nome = str(item["nome"])
            limit = download_limit(item, max_bytes)
            download = _Download(None if dry_run else folder)
            try:
                if isinstance(limit, str):
                    raise _NotFetched(limit)
                client.download_attachment(code, nome, download, max_bytes=limit[0], limit=limit[1])
                if dry_run:
                    digest, rel, wrote = download.hash.hexdigest(), "", False
                else:
                    digest, rel, wrote = download.keep()
            except (ErpError, _NotFetched, OSError) as exc:
                why = f"could not be stored: {exc}" if isinstance(exc, OSError) else str(exc)
                if isinstance(exc, ReplyTooLargeError):
                    why += "; nothing stored"
                with lock:
                    result.errors.append((code, f"attachment {nome}: {why}"))
                    failed.add(code)
                return
            finally:
                download.discard()
            size = download.size
            stamp, old = str(item.get("dt_mod") or ""), known.get((code, nome))
            with lock:
                result.requests += 1
                result.downloaded += 1
                result.written += int(wrote)
                key = resource_key(code, nome)
                if old is not None:
                    result.updated += 1
                    fields = [
                        (name, before, after)
                        for name, before, after in (
                            ("dt_mod", old.dt_mod, stamp),
                            ("size", str(old.size), str(size)),
                            ("sha256", old.sha256, digest),
                        )
                        if before != after
                    ]
                    # the same file again, because the site's copy was missing
                    fields = fields or [("file", "missing", rel or old.path)]
                    page_changes.extend((key, "updated", *f) for f in fields)
                else:
                    result.inserted += 1
                    page_changes.append((key, "inserted", None, None, None))
                result.bytes += size
                rows.append(
                    {
                        "article_code": code,
                        "nome": str(item["nome"]),
                        "tipo": str(item.get("tipo") or ""),
                        "dt_mod": str(item.get("dt_mod") or ""),
                        "size": size,
                        "sha256": digest,
                        "path": rel,
                        "fetched_at": utcnow(),
                    }
                )

        _in_threads(wanted, fetch_one, client.config.max_in_flight)
        result.removed += len(gone)
        page_changes.sort()  # the threads' order is chance
        page_changes.extend((resource_key(*k), "deleted", None, None, None) for k in gone)
        result.changes.extend(page_changes)
        if dry_run:
            continue
        with store.write() as conn:
            if run_id is not None:
                _log_changes(conn, run_id, page_changes)
            done = [(r["article_code"], r["nome"]) for r in rows]
            for code, nome in done + gone:
                conn.execute(
                    sa.delete(res_t).where(res_t.c.article_code == code, res_t.c.nome == nome)
                )
            if rows:
                conn.execute(sa.insert(res_t), rows)
            # "seen" spares later steps the article's attachments older than their mark:
            # one whose download failed must stay new, so the next step fetches it all
            new_seen = [c for c in listings if c not in seen_before and c not in failed]
            if new_seen:
                conn.execute(
                    sa.insert(seen_t),
                    [{"article_code": c, "listed_at": utcnow()} for c in new_seen],
                )
    if remove_missing and not dry_run:
        orphans = _remove_orphans(store, folder, run_id)
        result.removed += len(orphans)
        result.changes.extend(orphans)
    if articles is None and not dry_run and started is not None and not result.errors:
        # the next "changed" starts where this one did, once all of this one is done. A
        # step with errors keeps the old mark so that what failed is tried again; a step
        # over some articles tells nothing of the others: an attachment added to one of
        # those meanwhile would be older than its mark, and no later "changed" would
        # fetch it
        result.next_since = started
        if save_mark:
            with store.write() as conn:
                set_resources_since(conn, started)
    return result


class _NotFetched(Exception):
    """An attachment not downloaded, with the reason."""


def set_resources_since(conn: sa.Connection, since: datetime) -> None:
    """Move the resource watermark, in the caller's transaction."""
    set_state(conn, WATERMARK, format_datetime(since))


def _log_changes(conn: sa.Connection, run_id: int, changes: Sequence[Change]) -> None:
    if changes:
        at = utcnow()
        conn.execute(
            sa.insert(changes_t),
            [
                {
                    "run_id": run_id,
                    "at": at,
                    "entity": "resources",
                    "key": key,
                    "change": change,
                    "field": name,
                    "old": old,
                    "new": new,
                }
                for key, change, name, old, new in changes
            ],
        )


def _remove_orphans(store: Store, folder: Path, run_id: int | None) -> list[Change]:
    """Resources of articles the site no longer has, and files nothing refers to."""
    with store.write() as conn:
        orphan = res_t.c.article_code.not_in(sa.select(articles_t.c.code))
        removed: list[Change] = [
            (resource_key(r.article_code, r.nome), "deleted", None, None, None)
            for r in conn.execute(
                sa.select(res_t.c.article_code, res_t.c.nome)
                .where(orphan)
                .order_by(res_t.c.article_code, res_t.c.nome)
            )
        ]
        conn.execute(sa.delete(res_t).where(orphan))
        if run_id is not None:
            _log_changes(conn, run_id, removed)
        # and that they were listed: an article the site gets back is new again, and new
        # articles get all their attachments, however old
        conn.execute(
            sa.delete(seen_t).where(seen_t.c.article_code.not_in(sa.select(articles_t.c.code)))
        )
        keep = set(conn.execute(sa.select(res_t.c.path)).scalars())
    if folder.exists():
        for path in folder.glob("??/*"):
            if path.is_file() and f"{path.parent.name}/{path.name}" not in keep:
                path.unlink(missing_ok=True)
    return removed


def _in_threads(items: Sequence[Any], work: Callable[[Any], None], n: int) -> None:
    feed = iter(items)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                item = next(feed, None)
            if item is None:
                return
            work(item)

    threads = [threading.Thread(target=in_context(worker), daemon=True) for _ in range(max(1, n))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
