"""MexalClient: the synchronous httpx client of the Mexal WebAPI.

Every WebAPI quirk lives here or in values.py: the Passepartout headers,
paging with single-use `next` tokens, hex-encoded keys, the error body and its
codes, and which requests may be retried.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import contextvars
import datetime as dt
import functools
import json
import logging
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, unquote, urlsplit

import httpcore
import httpx
import orjson

from passweb_tui.engine.erp import values
from passweb_tui.engine.erp.errors import (
    AuthError,
    BusinessRuleError,
    ContextMissingError,
    ErpConnectionError,
    ErpError,
    ErpTimeoutError,
    LinkDownError,
    MalformedResponseError,
    NotFoundError,
    PoolExhaustedError,
    ReadsCutShortError,
    TokenRejectedError,
)
from passweb_tui.engine.erp.settings import ERP_MAX_IN_FLIGHT, MB, ErpConfig

log = logging.getLogger("passweb_tui.erp")

RetryListener = Callable[[ErpError, int, int, float], None]
#: told before each retry's wait of a request made in this context (a sync's thread and
#: the threads it starts, see in_context): the error, the retry's number, how many at
#: most, the wait in seconds. A sync shows them while it goes on; a request of another
#: thread sharing the client (the dashboard's check) is not its to show.
RETRY_LISTENER: contextvars.ContextVar[RetryListener | None] = contextvars.ContextVar(
    "retry_listener", default=None
)
#: set in this context (a sync's, see in_context): a retry's wait ends as soon as it is
#: set, and the request gives up with the error it last had, instead of trying again (a
#: cancelled run does not wait out the backoff of an ERP that is busy or unreachable)
RETRY_CANCEL: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "retry_cancel", default=None
)
#: set in this context (a sync's, outside its pushes): once it is set, reads of this
#: context blocked waiting for the ERP are cut short (see cut_reads) and new ones are
#: refused, both with ReadsCutShortError; writes never are
READS_CUT_BY: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "reads_cut_by", default=None
)
_R = TypeVar("_R")


def in_context(fn: Callable[..., _R]) -> Callable[..., _R]:
    """`fn` to run in a new thread within a copy of this thread's context (its retry
    listener): one copy per thread, as a context runs in one thread at a time."""
    ctx = contextvars.copy_context()
    return lambda *args, **kwargs: ctx.run(fn, *args, **kwargs)


T = TypeVar("T")

#: how many times a request that got no answer in read_timeout_s is sent again
TIMEOUT_RETRIES = 1

#: words of a 3002 reply that mean "busy", not "credentials rejected"
_BUSY_WORDS = ("esclusiv", "pool", "esaurit", "massimo", "troppe")

#: Search conditions the WebAPI understands.
CONDITIONS = frozenset({"=", "<>", ">", "<", ">=", "<=", "contiene", "inizia_per"})

#: Resources that need no Coordinate-Gestionale header (MEXAL_WEBAPI.md).
NO_CONTEXT_RESOURCES = frozenset({"aziende", "dati-generali/installazione", "dati-generali/utenti"})

#: "6001 - errore gestionale [...]" -> 6001
_CODE_RE = re.compile(r"^\s*(\d{3,5})\s*-")

#: Characters left as they are in a key's path segment ("+" joins composite keys).
_KEY_SAFE = "+-._~:@!$&'()*,;="

#: Resource used by check() to prove that the company context works.
_CONTEXT_PROBE = "articoli"

#: how much of an error reply's body is read (for its JSON detail); the rest is dropped
ERROR_BODY_MAX = 1024 * 1024


class ReplyTooLargeError(ErpError):
    """A reply's body was larger than the client takes (ErpConfig.max_reply_bytes for
    what is read into memory, the caller's limit for an attachment): the read stopped as
    soon as it went past. Never retried: the same request would bring the same."""

    def __init__(self, message: str, *, limit: int, **kw: Any) -> None:
        super().__init__(message, **kw)
        #: the limit it went past, in bytes
        self.limit = limit


class BodySink(Protocol):
    """Where a streamed reply's body goes (MexalClient.download_attachment)."""

    def start(self) -> None:
        """Before each try: forget what an earlier, failed try wrote."""

    def write(self, chunk: bytes, /) -> object:
        """The next piece of the body."""


@dataclass(frozen=True)
class Page:
    """One page of a list or search reply."""

    records: list[dict[str, Any]]  # decoded with Decimal for non-integer numbers
    next_token: str | None
    data_ric_elab: dt.datetime | None  # the ERP's clock at this reply (naive local time)
    # the reply as received, while `records` are all of its records
    content: bytes | None = field(default=None, repr=False, compare=False)


class LazyPage:
    """A page of a list reply whose records are decoded on first use.

    Its envelope (`next`, `data_ric_elab`) is read at once, from the reply with the
    records cut out; a caller that can tell from each record's text that it needs
    nothing of the page (a sync that finds every record's digest unchanged) never pays
    for decoding it. A reply that turns out to be malformed raises its
    MalformedResponseError when the records are first asked for."""

    __slots__ = ("_decode", "_end", "_page", "_start", "content", "data_ric_elab", "next_token")

    def __init__(
        self,
        content: bytes,
        start: int,
        end: int,
        next_token: str | None,
        data_ric_elab: dt.datetime | None,
        decode: Callable[[], Page],
    ) -> None:
        self.content = content
        self._start = start
        self._end = end
        self.next_token = next_token
        self.data_ric_elab = data_ric_elab
        self._decode: Callable[[], Page] | None = decode
        self._page: Page | None = None

    @property
    def records(self) -> list[dict[str, Any]]:
        if self._page is None:
            assert self._decode is not None
            self._page = self._decode()
            self._decode = None
        return self._page.records

    def cut(self, key_field: str = "codice") -> tuple[list[str], list[bytes]] | None:
        """(keys, texts): each record's key and its text as received, cut from the reply
        without decoding it; None when the reply does not cut cleanly. Clean means: every
        piece holds its key field exactly once, as a plain string (no escapes), and no
        key comes twice."""
        pieces = record_pieces(self.content, (self._start, self._end))
        if pieces is None:
            return None
        pattern = re.compile(b'"' + re.escape(key_field.encode()) + b'":"([^"\\\\]*)"')
        keys = [m.decode() for m in pattern.findall(self.content, self._start, self._end)]
        if len(keys) != len(pieces) or len(set(keys)) != len(keys):
            return None
        name = key_field.encode() + b'":"'
        for piece, key in zip(pieces, keys, strict=True):
            at = piece.find(name + key.encode() + b'"')
            if at < 0 or piece.find(name, at + 1) >= 0:
                return None
        return keys, pieces


_DATI = b'"dati":['


def _records_region(content: bytes) -> tuple[int, int] | None:
    """(start, end) of the records of a list reply (the `[` ... `]` of "dati" holds
    content[start:end]), when it opens with a record; None otherwise. The end is the
    last `}]` of the reply: the envelope read without this region then proves it right
    (a wrong cut leaves JSON that does not parse, or "dati" that is not empty)."""
    at = content.find(_DATI)
    if at < 0:
        return None
    start = at + len(_DATI)
    if content[start : start + 1] != b"{":
        return None
    end = content.rfind(b"}]")
    if end < start:
        return None
    return start, end + 1


def record_pieces(content: bytes, bounds: tuple[int, int] | None = None) -> list[bytes] | None:
    """Each record's own text in a list reply, cut between records (the region of the
    records as `_records_region` finds it, unless given); None when there is no region.

    In JSON a quote inside a string is escaped, so `},{"` is found between two records
    of the array and elsewhere only inside a record (an array of objects, or a string
    that ends in `},{`): a caller checks that the pieces are one per record, each with
    its own key. The last piece runs to the last `}]` of the reply, so it always holds
    its whole record (and perhaps a little of the envelope after it, which only makes
    its digest differ the more). Lazy pages and decoded pages are cut here alike, so a
    record's digest does not depend on which way its page went."""
    if bounds is None:
        bounds = _records_region(content)
    if bounds is None:
        return None
    start, end = bounds
    return content[start : end - 1].split(b'},{"')


def _envelope_fields(
    data: Mapping[str, Any], bad: Callable[[str], Exception], clock: bool = False
) -> tuple[str | None, dt.datetime | None]:
    """The page's `next` token and the ERP's clock at the reply (`clock`: required, as
    in a page of a resource's list, `GET /risorse/{res}`, which MEXAL_WEBAPI.md shows
    with it; a search's or a description's reply is read without it)."""
    token = data.get("next")
    if token is not None and (not isinstance(token, str) or not token):
        raise bad(f"has an unusable 'next' token: {token!r}")
    stamp = data.get("data_ric_elab")
    if stamp is None and not clock:
        return token, None
    if stamp is None:
        # every list page of the WebAPI carries the ERP's clock; one without it is no
        # list of the ERP: taken for an empty one, a TOTAL against a wrong address or
        # a proxy's own answer would remove every record
        raise bad(
            "has no 'data_ric_elab' (the ERP's clock every list reply carries): is a Mexal"
            " WebAPI at this address?"
        )
    try:
        when = values.parse_datetime(stamp)
    except ValueError as exc:
        raise bad(f"has a bad 'data_ric_elab': {exc}") from None
    return token, when


@dataclass(frozen=True)
class Filter:
    """One search condition; filters of a search are ANDed, a list `valore` is an OR."""

    campo: str
    condizione: str
    valore: Any
    case_insensitive: bool = False

    def __post_init__(self) -> None:
        if self.condizione not in CONDITIONS:
            raise ValueError(
                f"unknown search condition {self.condizione!r} on field {self.campo!r}; "
                f"use one of {', '.join(sorted(CONDITIONS))}"
            )
        if not self.campo:
            raise ValueError("a search filter needs a field name")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "campo": self.campo,
            "condizione": self.condizione,
            "valore": self.valore,
        }
        if self.case_insensitive:
            body["case_insensitive"] = True
        return body


@dataclass(frozen=True)
class FieldInfo:
    """One field of a resource, as `?info=true` describes it."""

    name: str
    type: str  # "C" text, "N" number, "D" date, "T" time, "A" array
    length: int | None
    key: bool
    array_size: int
    description: str

    @property
    def is_array(self) -> bool:
        return self.type == "A" or self.array_size > 0


class _PassepartoutAuth(httpx.Auth):
    """Adds the Authorization header at send time, so it sits in no default header set."""

    def __init__(self, header: str) -> None:
        self._header = header

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "<Passepartout auth>"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send a non-finite number to the ERP: {value}")
        as_float = float(value)
        # json writes floats by their shortest repr; refuse values a float would round.
        if Decimal(repr(as_float)) != value:
            raise ValueError(f"number {value} has more digits than the ERP can take exactly")
        return as_float
    if isinstance(value, dt.datetime):
        return values.format_datetime(value)
    if isinstance(value, dt.date):
        return values.format_date(value)
    if isinstance(value, dt.time):
        return values.format_time(value)
    raise ValueError(f"cannot send a {type(value).__name__} to the ERP: {value!r}")


def _encode_json(body: Any) -> bytes:
    return json.dumps(body, default=_json_default, ensure_ascii=False, allow_nan=False).encode()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} in JSON")


def _shape_table() -> bytes:
    """bytes.translate table that keeps the shape of JSON numbers: digits and the point
    to "0", e/E to "e", signs to "-", what may come before a value (: [ ,) to ":",
    whitespace to "_", anything else to " "."""
    out = bytearray(b" " * 256)
    for chars, to in (
        ("0123456789.", "0"),
        ("eE", "e"),
        ("+-", "-"),
        (":[,", ":"),
        (" \t\r\n", "_"),
    ):
        for c in chars:
            out[ord(c)] = ord(to)
    return bytes(out)


_SHAPE = _shape_table()
# 17 digits and points: a non-integer of 16 significant digits, or an integer orjson
# might not hold (it holds integers up to 2**64 exactly)
_LONG_RUN = b"0" * 17
_EXPONENT = b"0e"
_NUMBER_BODY = frozenset(b"0-")


def _starts_a_value(shape: bytes, i: int) -> bool:
    """Whether the run of digits ending at shape[i] is a JSON number (not part of a
    string): what comes before it, past signs and whitespace, can start a value."""
    while i > 0 and shape[i - 1] in _NUMBER_BODY:
        i -= 1
    while i > 0 and shape[i - 1] == 95:  # "_"
        i -= 1
    return i == 0 or shape[i - 1] == 58  # ":"


def _short_numbers(content: bytes) -> bool:
    """True when no number in the text is 17 or more digits and points long or has an
    exponent: then each non-integer has at most 15 significant digits, which a float
    holds exactly (its shortest repr gives the same digits back), and each integer fits
    in 64 bits. Found in a few C passes over the text; a string that
    looks like a number after a colon can only make this say False, which costs speed,
    never exactness."""
    shape = content.translate(_SHAPE)
    for pattern in (_LONG_RUN, _EXPONENT):
        i = shape.find(pattern)
        while i != -1:
            if _starts_a_value(shape, i):
                return False
            i = shape.find(pattern, i + len(pattern))
    return True


def decode_json(content: bytes, *, decimals: bool = True) -> Any:
    """The ERP's JSON with Decimal for every non-integer number (money stays exact).

    With `decimals=False` a reply whose numbers all have at most 15 significant digits
    is decoded by the faster orjson, non-integer numbers as float: nothing is lost, since
    `Decimal(repr(value))` gives back the number as the ERP wrote it (less any trailing
    zeros). Any other reply, and any reply orjson refuses, goes the exact way, which
    also gives the error message."""
    if not decimals and _short_numbers(content):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(content, parse_float=Decimal, parse_constant=_reject_constant)
    except RecursionError:  # a ValueError as any other reply that is not JSON read here
        raise ValueError("arrays or objects nested deeper than can be read") from None


_UTF8_BOM = b"\xef\xbb\xbf"


def json_body(response: httpx.Response) -> bytes:
    """A reply's JSON text as UTF-8, whatever the charset its Content-Type declares.

    The WebAPI answers in UTF-8; a reply that declares another charset (a server set up
    for windows-1252, say) is decoded with it and spelled again in UTF-8, so that
    accented descriptions arrive as written instead of failing to decode. A leading
    byte-order mark is dropped. Raises ValueError (the caller's "not valid JSON") when
    the charset is unknown or the bytes are not valid in it."""
    content = response.content
    charset = response.charset_encoding
    if charset is not None:
        try:
            name = codecs.lookup(charset).name
        except LookupError:
            raise ValueError(f"the reply declares an unknown charset {charset!r}") from None
        if name not in ("utf-8", "ascii"):
            try:
                content = content.decode(name).encode()
            except UnicodeError as exc:
                raise ValueError(
                    f"the reply is not valid {charset} as it declares ({exc})"
                ) from None
    if content.startswith(_UTF8_BOM):
        content = content[len(_UTF8_BOM) :]
    return content


def _unlink_stream(response: httpx.Response) -> None:
    """A read reply, freed as soon as nobody holds it.

    httpx keeps a Response and its byte stream in a reference cycle, which only the
    cycle collector frees, and a sync makes that collector run rarely (a page of a list
    is half a megabyte, so replies waiting for it add up). The body is read and the
    stream closed by the time `request` returns; an empty stream in its place breaks
    the cycle."""
    response.close()
    response.stream = httpx.ByteStream(b"")


def byte_size(n: int) -> str:
    """'100 MB' for a whole number of MB (of 1,048,576 bytes), else '1,500 bytes'."""
    return f"{n // MB:,} MB" if n >= MB and n % MB == 0 else f"{n:,} bytes"


def _declared_size(response: httpx.Response) -> int | None:
    """The size of the body a reply announces (Content-Length), when it is the size of
    what iter_bytes will give (no Content-Encoding); None otherwise."""
    length = response.headers.get("Content-Length")
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if length is None or encoding not in ("", "identity"):
        return None
    length = length.strip()
    return int(length) if length.isdigit() else None


def _take_body(
    response: httpx.Response,
    max_bytes: int,
    too_large: Callable[[int | None], ErpError],
    write: Callable[[bytes], object],
) -> int:
    """Give a streamed reply's body, piece by piece as it comes off the wire, to `write`,
    and return its size. A body that announces more than `max_bytes` is refused before
    any of it is read, and one that goes past as it comes is refused right there (raises
    `too_large(announced size or None)`): what is past the limit is never read."""
    declared = _declared_size(response)
    if declared is not None and declared > max_bytes:
        raise too_large(declared)
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(None)
        write(chunk)
    return size


def _read_error_body(response: httpx.Response) -> None:
    """An error reply's body, read for its detail: its first ERROR_BODY_MAX bytes."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= ERROR_BODY_MAX:
            break  # a body that large holds no usable detail; closing drops the rest
    response._content = b"".join(chunks)[:ERROR_BODY_MAX]


class _Sockets(httpcore.NetworkBackend):
    """The standard network backend, with streams whose reads can be cut short (see
    READS_CUT_BY): closing a client does not end a read another thread is blocked in,
    which waits until its read timeout (five minutes by default), and so would a
    cancelled run waiting for that thread."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _CuttableStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return _CuttableStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


#: the sockets blocked in a read now, each with the event that cuts it short
_READING: dict[socket.socket, threading.Event] = {}
_READING_LOCK = threading.Lock()


class _CuttableStream(httpcore.NetworkStream):
    """A stream of `_Sockets` (a TLS one made of it is one too)."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        sock = inner.get_extra_info("socket")
        self._sock = sock if isinstance(sock, socket.socket) else None

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        cut_by = READS_CUT_BY.get()
        sock = self._sock
        if cut_by is None or sock is None:
            return self._inner.read(max_bytes, timeout)
        with _READING_LOCK:
            if cut_by.is_set():
                raise httpcore.ReadError("the read was cut short")
            _READING[sock] = cut_by
        try:
            return self._inner.read(max_bytes, timeout)
        finally:
            with _READING_LOCK:
                _READING.pop(sock, None)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _CuttableStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def cut_reads(cut_by: threading.Event) -> int:
    """Cut short every read blocked now in a context whose READS_CUT_BY is `cut_by`
    (set already: reads that would start after this are refused at once): their
    sockets are shut down, so the reads end at once with an error. How many were cut."""
    with _READING_LOCK:
        socks = [sock for sock, event in _READING.items() if event is cut_by]
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    return len(socks)


def _cuttable(client: httpx.Client) -> bool:
    """Give the client's connection pools (its own and any proxy's) the `_Sockets`
    backend; False when the client is not made of httpcore pools as httpx 0.27-0.29
    builds it (a transport given by the caller, as in tests): its reads cannot be cut
    short then, and a cancel waits for them."""
    transports = [getattr(client, "_transport", None)]
    transports += [t for t in getattr(client, "_mounts", {}).values() if t is not None]
    pools = [getattr(t, "_pool", None) for t in transports]
    if not all(
        isinstance(getattr(p, "_network_backend", None), httpcore.SyncBackend) for p in pools
    ):
        return False
    for pool in pools:
        pool._network_backend = _Sockets(pool._network_backend)  # type: ignore[union-attr]
    return True


def _tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):  # httpx wraps the ssl error; follow the chain a few links
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _duration(seconds: float) -> str:
    """'45 s', '5 min 3 s', '2 h 0 min' for an error message."""
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.3g} s" if seconds < 10 else f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def _is_scalar_key(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def _error_code(detail: str | None) -> int | None:
    if not detail:
        return None
    m = _CODE_RE.match(detail)
    return int(m.group(1)) if m else None


class MexalClient:
    """Talks to one Mexal WebAPI as one user, in one company and year.

    Thread-safe: several threads may call it at once; at most
    `config.max_in_flight` requests are on the wire at any moment.
    """

    def __init__(
        self,
        config: ErpConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        on_response: Callable[[httpx.Response, float], None] | None = None,
    ) -> None:
        """`sleep`, `jitter` and `clock` drive the retry backoff and its time limit
        (tests make them instant); `on_response(response, seconds)` sees every reply,
        e.g. for timing figures."""
        if not 1 <= config.max_in_flight <= ERP_MAX_IN_FLIGHT:
            raise ValueError(f"max_in_flight must be between 1 and {ERP_MAX_IN_FLIGHT}")
        self.config = config
        self._sleep = sleep
        self._jitter = jitter
        self._clock = clock
        # when the ERP's current run of busy answers began and when the last came (None:
        # it answered since); shared by every request and thread of this client
        self._busy: tuple[float, float] | None = None
        self._busy_lock = threading.Lock()
        self._on_response = on_response
        #: an HTTP reply has come from the ERP (then a connection closed without one is
        #: a dropped connection, not plain HTTP sent to an HTTPS port)
        self._answered = False
        self._base = config.base_url.rstrip("/")
        self._base_path = urlsplit(self._base).path
        self._slots = threading.BoundedSemaphore(config.max_in_flight)
        credentials = base64.b64encode(f"{config.user}:{config.password}".encode()).decode()
        header = f"Passepartout {credentials}"
        if config.dominio:
            header += f" Dominio={config.dominio}"
        self._auth = _PassepartoutAuth(header)
        self._context = self._context_header(config)
        timeout = httpx.Timeout(
            connect=config.connect_timeout_s,
            read=config.read_timeout_s,
            write=config.read_timeout_s,
            pool=config.read_timeout_s,
        )
        limits = httpx.Limits(
            max_connections=config.max_in_flight,
            max_keepalive_connections=config.max_in_flight,
        )
        self._http = httpx.Client(
            timeout=timeout,
            limits=limits,
            verify=self._verify(config),
            transport=transport,
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )
        #: whether reads of this client can be cut short (see READS_CUT_BY)
        self.cuttable = _cuttable(self._http)

    # --- setup ------------------------------------------------------------------

    @staticmethod
    def _context_header(config: ErpConfig) -> str:
        anno = config.anno if config.anno is not None else dt.date.today().year
        parts = [f"Azienda={config.azienda}"]
        if config.sottoazienda:
            parts.append(f"SottoAzienda={config.sottoazienda}")
        parts.append(f"Anno={anno}")
        if config.magazzino is not None:
            parts.append(f"Magazzino={config.magazzino}")
        return " ".join(parts)

    @staticmethod
    def _verify(config: ErpConfig) -> ssl.SSLContext | bool:
        if config.ca_file:
            try:
                context = ssl.create_default_context(cafile=config.ca_file)
            except (OSError, ssl.SSLError) as exc:
                error = ErpConnectionError(
                    f"CA file {config.ca_file!r} cannot be used: {exc.__class__.__name__}: {exc}"
                )
                error.retryable = False  # a setting to correct: no retry mends it
                raise error from None
            # the CA of one's own ERP, often made by a plain `openssl req -x509` with no
            # key usage extension: Python 3.13's strict checks (on by default there)
            # would refuse it where 3.11 and 3.12 accept it. The chain, the name and the
            # dates are verified all the same.
            context.verify_flags &= ~ssl.VERIFY_X509_STRICT
            return context
        return config.verify_tls

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MexalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self.config
        return f"<MexalClient {self._base} user={c.user} azienda={c.azienda} anno={c.anno}>"

    # --- connectivity -----------------------------------------------------------

    def installation(self) -> dict[str, Any]:
        """GET dati-generali/installazione: the ERP's version and companies."""
        data = self._read(
            "GET",
            self._resource_path("dati-generali/installazione"),
            None,
            context=False,
            parse=self._parse_object,
        )
        return data

    def check(self) -> dict[str, Any]:
        """Prove that the ERP answers, the credentials work and the company is usable.

        Returns {"version": str, "anno": int, "azienda": str}; raises the typed
        error of whatever failed first.
        """
        try:
            info = self.installation()
        except NotFoundError as exc:
            raise NotFoundError(
                f"no Mexal WebAPI answers at {self._base} (HTTP 404 on its installation data)",
                status=exc.status,
                method=exc.method,
                path=exc.path,
            ) from None
        self.list_page(_CONTEXT_PROBE, fields=["codice"], max=1)
        version = info.get("versione") or info.get("version") or "unknown"
        anno = self.config.anno if self.config.anno is not None else dt.date.today().year
        return {"version": str(version), "anno": anno, "azienda": self.config.azienda}

    # --- reading ------------------------------------------------------------------

    def list_page(
        self,
        resource: str,
        *,
        fields: Sequence[str] | None = None,
        max: int | None = None,
        next_token: str | None = None,
        decimals: bool = True,
        lazy: bool = False,
    ) -> Page | LazyPage:
        """One page of `GET /risorse/{resource}` (`decimals`: see `decode_json`; `lazy`:
        a LazyPage where the reply allows, its numbers decoded as with decimals=False)."""
        params = self._page_params(fields, max, next_token)
        return self._read(
            "GET",
            self._resource_path(resource),
            None,
            params=params,
            context=self._needs_context(resource),
            parse=self._page_parser(decimals, lazy, clock=True),
            token=next_token is not None,
        )

    def _page_parser(
        self, decimals: bool, lazy: bool, clock: bool = False
    ) -> Callable[[httpx.Response, str, str], Page | LazyPage]:
        """How a page is read; `clock`: the ERP's clock required in the reply (a page of
        a resource's list: one without it, and without records, is no list of the ERP,
        and taken for an empty one a TOTAL would remove every record)."""
        if lazy:
            parse: Callable[..., Page | LazyPage] = self._parse_page_lazy
        else:
            parse = self._parse_page if decimals else self._parse_page_floats
        return functools.partial(parse, clock=clock) if clock else parse

    def search_page(
        self,
        resource: str,
        filters: Sequence[Filter],
        *,
        fields: Sequence[str] | None = None,
        max: int | None = None,
        next_token: str | None = None,
        decimals: bool = True,
        lazy: bool = False,
    ) -> Page | LazyPage:
        """One page of `POST /risorse/{resource}/ricerca` (filters ANDed)."""
        params = self._page_params(fields, max, next_token)
        body = {"filtri": [f.to_json() for f in filters]}
        return self._read(
            "POST",
            self._resource_path(resource) + "/ricerca",
            body,
            params=params,
            context=self._needs_context(resource),
            parse=self._page_parser(decimals, lazy),
            token=next_token is not None,
        )

    def iter_pages(
        self,
        resource: str,
        *,
        filters: Sequence[Filter] = (),
        fields: Sequence[str] | None = None,
        page_size: int = 1000,
        key_field: str = "codice",
        decimals: bool = True,
        lazy: bool = False,
    ) -> Iterator[Page | LazyPage]:
        """Every page of a list (or of a search, with filters), following `next`.

        `decimals=False` lets non-integer numbers come as float where that is exact
        (see `decode_json`): faster, for callers that canonicalise numbers themselves.
        `lazy=True` (which implies it) gives LazyPages where the replies allow: their
        records are decoded only if asked for.

        A `next` token is single use, so a page asked with one is never retried
        as is: if it fails, paging goes on with a search `key_field > last key
        seen` ANDed with the filters (lists come ordered by key). No record is
        yielded twice and none is skipped. Resuming needs `key_field` in the
        records (among `fields`, when fields are chosen); without it a failed
        page raises its error.
        """
        filters = tuple(filters)
        last_page: Page | LazyPage | None = None  # the last page yielded
        yielded = False
        guard: set[Any] = set()  # keys of the page before a resume, never to repeat
        token: str | None = None
        resumed = False  # paging a `key_field > last key` search
        stalled = 0
        while True:
            # the last key is read from the records only when it is needed (a resume)
            last_key = last_page.records[-1].get(key_field) if resumed and last_page else None
            try:
                if resumed or filters:
                    extra = (Filter(key_field, ">", last_key),) if resumed else ()
                    page = self.search_page(
                        resource,
                        filters + extra,
                        fields=fields,
                        max=page_size,
                        next_token=token,
                        decimals=decimals,
                        lazy=lazy,
                    )
                else:
                    page = self.list_page(
                        resource,
                        fields=fields,
                        max=page_size,
                        next_token=token,
                        decimals=decimals,
                        lazy=lazy,
                    )
            except ErpError as exc:
                if token is None or not (exc.retryable or isinstance(exc, TokenRejectedError)):
                    raise
                stalled += 1
                if stalled > self.config.max_retries:
                    raise
                token = None
                if not yielded:
                    # nothing handed out yet: starting over cannot repeat a record
                    log.info("paging %s: first token failed (%s); starting over", resource, exc)
                    continue
                last_key = last_page.records[-1].get(key_field) if last_page else None
                if not _is_scalar_key(last_key):
                    raise  # without the key field in the records there is nothing to resume from
                log.info(
                    "paging %s: page with a next token failed (%s); going on after %s=%r",
                    resource,
                    exc.__class__.__name__,
                    key_field,
                    last_key,
                )
                resumed = True
                guard = {r.get(key_field) for r in last_page.records} if last_page else set()
                continue
            if guard:
                # the search already excludes keys up to the last one; a cheap extra check
                kept = [r for r in page.records if r.get(key_field) not in guard]
                guard = set()
                if len(kept) != len(page.records):
                    page = Page(kept, page.next_token, page.data_ric_elab)
            # a LazyPage always has records (it is made only of a reply that opens with one)
            if isinstance(page, LazyPage) or page.records:
                last_page = page
                yielded = True
                stalled = 0
                yield page
            token = page.next_token
            if token is None:
                return

    def get(
        self, resource: str, key: str, *, fields: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        """One record by key, or None when the ERP has no such record."""
        path, params = self._key_path(resource, key)
        if fields:
            params["fields"] = ",".join(fields)
        try:
            return self._read(
                "GET",
                path,
                None,
                params=params,
                context=self._needs_context(resource),
                parse=self._parse_object,
            )
        except NotFoundError:
            return None

    def info(self, resource: str) -> list[FieldInfo]:
        """The fields of a resource (`?info=true`)."""
        return self._read(
            "GET",
            self._resource_path(resource),
            None,
            params={"info": "true"},
            context=self._needs_context(resource),
            parse=self._parse_info,
        )

    def get_bytes(self, path: str) -> bytes:
        """A binary resource under /risorse, e.g. `articoli/ART1/allegati/immagine`, read
        into memory: at most `config.max_attachment_bytes` of it."""
        return self._read(
            "GET",
            self._resource_path(path),
            None,
            context=True,
            parse=lambda r, m, p: r.content,
            accept="*/*",
            max_bytes=self.config.max_attachment_bytes,
        )

    def attachments(self, codice: str) -> list[dict[str, Any]]:
        """The attachments an article lists (`articoli/{codice}/allegati`)."""
        return self.attachments_page(codice).records

    def attachments_page(self, codice: str) -> Page:
        """The same, as a page: with the ERP's clock at the reply (`data_ric_elab`)."""
        path, params = self._key_path("articoli", codice)
        page: Page = self._read(
            "GET", path + "/allegati", None, params=params, context=True, parse=self._parse_page
        )
        return page

    def get_attachment(self, codice: str, nome: str) -> bytes:
        """The bytes of one article attachment (`articoli/{codice}/allegati/{nome}`),
        read into memory: at most `config.max_attachment_bytes` of them. A sync streams
        them to a file instead, with download_attachment."""
        path, params = self._key_path("articoli", codice)
        return self._read(
            "GET",
            f"{path}/allegati/{quote(nome, safe='')}",
            None,
            params=params,
            context=True,
            parse=lambda r, m, p: r.content,
            accept="*/*",
            max_bytes=self.config.max_attachment_bytes,
        )

    def download_attachment(
        self,
        codice: str,
        nome: str,
        into: BodySink,
        *,
        max_bytes: int | None = None,
        limit: str | None = None,
    ) -> int:
        """Stream one article attachment into `into` as it comes off the wire, never
        holding it whole; return its size. Retried as any read is: each try starts
        `into` over. A body past `max_bytes` (default `config.max_attachment_bytes`),
        announced or as it comes, stops the download there with ReplyTooLargeError,
        whose message names the limit as `limit` says it (default: its bytes)."""
        cap = self.config.max_attachment_bytes if max_bytes is None else max_bytes
        path, params = self._key_path("articoli", codice)
        path = f"{path}/allegati/{quote(nome, safe='')}"
        size = 0

        def receive(response: httpx.Response) -> None:
            nonlocal size
            into.start()
            size = _take_body(
                response,
                cap,
                lambda declared: self._too_large(path, cap, limit, declared),
                into.write,
            )

        self._read(
            "GET",
            path,
            None,
            params=params,
            context=True,
            parse=lambda r, m, p: None,
            accept="*/*",
            receive=receive,
        )
        return size

    def _too_large(
        self,
        path: str,
        max_bytes: int,
        limit: str | None,
        declared: int | None,
        method: str = "GET",
    ) -> ReplyTooLargeError:
        said = limit or f"the client's limit of {byte_size(max_bytes)} for one reply"
        if declared is not None:
            what = f"announced a reply of {declared:,} bytes, more than {said}: refused unread"
        else:
            what = f"sent a reply larger than {said}: stopped as it went past"
        return ReplyTooLargeError(
            f"the ERP at {self._base} {what}", limit=max_bytes, method=method, path=path
        )

    # --- writing ------------------------------------------------------------------

    def create(self, resource: str, record: Mapping[str, Any]) -> str:
        """POST a new record; returns its key, parsed from the `Location` header.

        Never retried: if the answer is lost the record may or may not exist,
        and the error says so (`outcome_unknown`).
        """
        path = self._resource_path(resource)
        response = self._write("POST", path, dict(record), context=self._needs_context(resource))
        location = response.headers.get("Location")
        key = self._key_from_location(resource, location)
        if key is None:
            raise MalformedResponseError(
                f"ERP answered {response.status_code} to a create without a usable Location "
                f"header ({location!r}); whether the record was created is unknown",
                status=response.status_code,
                method="POST",
                path=path,
                outcome_unknown=True,
            )
        return key

    def update(
        self,
        resource: str,
        key: str,
        record: Mapping[str, Any],
        *,
        solo_testata: bool = False,
    ) -> None:
        """PUT a record. A document must carry every row unless `solo_testata`."""
        path, params = self._key_path(resource, key)
        if solo_testata:
            params["solo_testata"] = "true"
        self._write("PUT", path, dict(record), params=params, context=self._needs_context(resource))

    def delete(self, resource: str, key: str) -> None:
        """DELETE a record."""
        path, params = self._key_path(resource, key)
        self._write("DELETE", path, None, params=params, context=self._needs_context(resource))

    # --- paths ------------------------------------------------------------------

    def _resource_path(self, resource: str) -> str:
        resource = resource.strip("/")
        if not resource or ".." in resource.split("/"):
            raise ValueError(f"not a WebAPI resource name: {resource!r}")
        return f"{self._base_path}/risorse/{resource}"

    def _key_path(self, resource: str, key: str) -> tuple[str, dict[str, str]]:
        values.check_key(key)
        base = self._resource_path(resource)
        if values.needs_hex(key):
            return f"{base}/{values.hex_key(key)}", {"encoding": "hex"}
        return f"{base}/{quote(key, safe=_KEY_SAFE)}", {}

    @staticmethod
    def _needs_context(resource: str) -> bool:
        return resource.strip("/") not in NO_CONTEXT_RESOURCES

    def _key_from_location(self, resource: str, location: str | None) -> str | None:
        if not location:
            return None
        parts = urlsplit(location)
        prefix = self._resource_path(resource) + "/"
        path = parts.path
        if not path.startswith(prefix):
            # a server behind a proxy may leave out our base path; accept /risorse/...
            alt = f"/webapi/risorse/{resource.strip('/')}/"
            if not path.startswith(alt):
                return None
            prefix = alt
        tail = path[len(prefix) :]
        if not tail or "/" in tail:
            return None
        if "encoding=hex" in parts.query:
            try:
                return values.unhex_key(tail)
            except ValueError:
                return None
        key = unquote(tail)
        try:
            return values.check_key(key)
        except ValueError:
            return None

    @staticmethod
    def _page_params(
        fields: Sequence[str] | None, max: int | None, next_token: str | None
    ) -> dict[str, str]:
        params: dict[str, str] = {}
        if fields:
            params["fields"] = ",".join(fields)
        if max is not None:
            if max < 1:
                raise ValueError(f"max must be at least 1, got {max}")
            params["max"] = str(max)
        if next_token is not None:
            params["next"] = next_token
        return params

    # --- parsing ------------------------------------------------------------------

    @staticmethod
    def _decode(response: httpx.Response, method: str, path: str, decimals: bool = True) -> Any:
        try:
            return decode_json(json_body(response), decimals=decimals)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            snippet = response.content[:60].decode("utf-8", "replace")
            error = MalformedResponseError(
                f"ERP sent a reply that is not valid JSON ({exc}); it starts {snippet!r}",
                status=response.status_code,
                method=method,
                path=path,
            )
            # not JSON from its first character (a web page): no WebAPI answered, where a
            # reply cut short on its way is one that did
            start = response.content.lstrip().removeprefix(_UTF8_BOM).lstrip()[:1]
            error.not_json = start not in (b"{", b"[")
            error.undecodable = not error.not_json
            raise error from None

    def _parse_object(
        self, response: httpx.Response, method: str, path: str, decimals: bool = True
    ) -> dict[str, Any]:
        data = self._decode(response, method, path, decimals)
        if not isinstance(data, dict):
            raise MalformedResponseError(
                f"ERP sent a JSON {type(data).__name__} where an object was expected",
                status=response.status_code,
                method=method,
                path=path,
            )
        return data

    def _parse_page(
        self, response: httpx.Response, method: str, path: str, clock: bool = False
    ) -> Page:
        return self._page_of(response, method, path, True, clock)

    def _parse_page_floats(
        self, response: httpx.Response, method: str, path: str, clock: bool = False
    ) -> Page:
        return self._page_of(response, method, path, False, clock)

    def _page_of(
        self, response: httpx.Response, method: str, path: str, decimals: bool, clock: bool = False
    ) -> Page:
        data = self._parse_object(response, method, path, decimals)

        def bad(what: str) -> MalformedResponseError:
            return MalformedResponseError(
                f"ERP list reply {what}", status=response.status_code, method=method, path=path
            )

        records = data.get("dati", [])
        if records is None:
            records = []
        if not isinstance(records, list):
            raise bad(f"has 'dati' as a {type(records).__name__}, not a list")
        for record in records:
            if not isinstance(record, dict):
                raise bad(f"has a record that is a {type(record).__name__}, not an object")
        token, when = _envelope_fields(data, bad, clock)
        return Page(records, token, when, json_body(response))

    def _parse_page_lazy(
        self, response: httpx.Response, method: str, path: str, clock: bool = False
    ) -> Page | LazyPage:
        """A page whose records are decoded only when asked for, when the reply lets its
        envelope be read apart from them; otherwise a page decoded now."""
        try:
            content = json_body(response)
        except ValueError:  # the decoding way gives the error
            return self._page_of(response, method, path, False, clock)
        bounds = _records_region(content)
        if bounds is not None:
            start, end = bounds
            try:
                envelope = orjson.loads(content[:start] + content[end:])
            except orjson.JSONDecodeError:
                envelope = None
            if isinstance(envelope, dict) and envelope.get("dati") == []:

                def bad(what: str) -> MalformedResponseError:
                    return MalformedResponseError(
                        f"ERP list reply {what}",
                        status=response.status_code,
                        method=method,
                        path=path,
                    )

                token, when = _envelope_fields(envelope, bad, clock)

                def decode() -> Page:
                    return self._page_of(response, method, path, False, clock)

                return LazyPage(content, start, end, token, when, decode)
        return self._page_of(response, method, path, False, clock)

    def _parse_info(self, response: httpx.Response, method: str, path: str) -> list[FieldInfo]:
        page = self._page_of(response, method, path, True)
        if not page.records:
            # every resource has fields: a reply naming none is no description of one
            raise MalformedResponseError(
                "ERP field description lists no field: is a Mexal WebAPI at this address?",
                status=response.status_code,
                method=method,
                path=path,
            )
        result: list[FieldInfo] = []
        for item in page.records:
            try:
                name = item["nome"]
                kind = item.get("tipo") or ""
                length = item.get("lunghezza")
                array_size = item.get("dim_array") or 0
                if not isinstance(name, str) or not name or not isinstance(kind, str):
                    raise ValueError(item)
                if length is not None and not isinstance(length, int):
                    raise ValueError(item)
                if not isinstance(array_size, int):
                    raise ValueError(item)
            except (KeyError, ValueError):
                raise MalformedResponseError(
                    f"ERP field description is not usable: {item!r}",
                    status=response.status_code,
                    method=method,
                    path=path,
                ) from None
            result.append(
                FieldInfo(
                    name=name,
                    type=kind,
                    length=length,
                    key=bool(item.get("chiave")),
                    array_size=array_size,
                    description=str(item.get("descrizione") or ""),
                )
            )
        return result

    # --- the wire -----------------------------------------------------------------

    def _read(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        parse: Callable[[httpx.Response, str, str], T],
        params: Mapping[str, str] | None = None,
        context: bool = True,
        token: bool = False,
        accept: str = "application/json",
        max_bytes: int | None = None,
        receive: Callable[[httpx.Response], None] | None = None,
    ) -> T:
        """A read (GET or a search): retried with backoff, unless it carries a `next` token.
        For `max_bytes` and `receive`, see _send."""
        return self._retrying(
            method,
            path,
            lambda: parse(
                self._send(method, path, body, params, context, token, accept, max_bytes, receive),
                method,
                path,
            ),
            lambda exc: not token and exc.retryable,
        )

    def _write(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        params: Mapping[str, str] | None = None,
        context: bool = True,
    ) -> httpx.Response:
        """A write: sent once, except after the ERP's 503 "too many requests" refusal,
        which it gives before doing anything (so sending again cannot apply it twice).
        A lost answer is reported with outcome_unknown set, and never sent again."""
        return self._retrying(
            method,
            path,
            lambda: self._send(method, path, body, params, context, False, "application/json"),
            lambda exc: isinstance(exc, PoolExhaustedError) and not exc.outcome_unknown,
        )

    def _retrying(
        self,
        method: str,
        path: str,
        send: Callable[[], T],
        again: Callable[[ErpError], bool],
    ) -> T:
        """`send()`, and again after a backoff while it fails with an error `again`
        accepts: at most max_retries times, and while the ERP answers busy, only within
        max_unavailable_s of its first busy answer (see ErpConfig)."""
        attempt = timeouts = 0
        while True:
            try:
                result = send()
            except ErpError as exc:
                if exc.status is not None and not isinstance(exc, PoolExhaustedError):
                    self._served()  # an answer other than "busy": the ERP is there
                if not again(exc):
                    raise
                retries = self.config.max_retries
                if isinstance(exc, ErpTimeoutError) and exc.status is None:
                    # each wait for an answer that never came took its whole timeout
                    # (read_timeout_s: the ERP's own limit for a request): tried again
                    # TIMEOUT_RETRIES times, not max_retries (half an hour of silence)
                    timeouts += 1
                    if timeouts > TIMEOUT_RETRIES and attempt < retries:
                        exc.message += f" ({attempt + 1} tries)"
                        exc.args = (exc.message,)
                        raise
                delay = self._backoff(attempt, exc) if attempt < retries else 0.0
                if isinstance(exc, PoolExhaustedError):
                    self._check_unavailable(exc, delay, attempt, retries)
                if attempt >= retries:
                    if attempt and isinstance(exc, ErpTimeoutError):
                        exc.message += f" ({attempt + 1} tries)"
                        exc.args = (exc.message,)
                    raise
                attempt += 1
                # (debug: a sync says each retry itself, and a service its outage once)
                log.debug(
                    "%s %s failed (%s); retry %d of %d in %.2f s",
                    method,
                    path,
                    exc.__class__.__name__,
                    attempt,
                    self.config.max_retries,
                    delay,
                )
                listener = RETRY_LISTENER.get()
                if listener is not None:
                    try:
                        listener(exc, attempt, retries, delay)
                    except Exception:  # a listener never stops a request
                        log.debug("retry listener failed", exc_info=True)
                cancel = RETRY_CANCEL.get()
                if cancel is None:
                    self._sleep(delay)
                elif cancel.is_set() or cancel.wait(delay):
                    raise exc from None  # given up: the caller sees why it stopped
            else:
                self._served()
                return result

    def _served(self) -> None:
        """The ERP answered: a run of busy answers, if any, is over."""
        if self._busy is not None:
            with self._busy_lock:
                self._busy = None

    def _check_unavailable(
        self, exc: PoolExhaustedError, delay: float, attempt: int, retries: int
    ) -> None:
        """Raise `exc` when waiting `delay` more would keep retrying past
        max_unavailable_s of busy answers, or when no retry is left after some; its
        message then says for how long the ERP stayed unavailable."""
        now = self._clock()
        limit = self.config.max_unavailable_s
        with self._busy_lock:
            # a long-lived client (the UI, the service) may have met a busy ERP long
            # ago, with no request since: that old run says nothing about this one
            busy = self._busy
            since = busy[0] if busy is not None and now - busy[1] <= limit else now
            self._busy = (since, now)
        waited = now - since
        over = waited + delay > limit
        if not over and attempt < retries:
            return
        if not over and attempt == 0 and waited < 1:
            raise exc  # retries are off (a quick check): there is no "for how long" to say
        asked = f", asking to retry in {exc.retry_after:g} s" if exc.retry_after else ""
        exc.message += f"; the ERP stayed unavailable for {_duration(waited)}{asked}"
        if over:
            exc.message += f" (retries stop after {_duration(limit)} of busy answers)"
        exc.args = (exc.message,)
        raise exc

    def _backoff(self, attempt: int, exc: ErpError) -> float:
        cfg = self.config
        delay = min(cfg.backoff_max_s, cfg.backoff_base_s * (2**attempt))
        # "equal jitter": half fixed, half random, so clients spread out but never hammer
        delay = delay / 2 + delay / 2 * self._jitter()
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, float):
            # never sooner than the server asked (within the longest wait we allow)
            delay = min(cfg.backoff_max_s, max(delay, retry_after))
        return delay

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        params: Mapping[str, str] | None,
        context: bool,
        token: bool,
        accept: str,
        max_bytes: int | None = None,
        receive: Callable[[httpx.Response], None] | None = None,
    ) -> httpx.Response:
        """One request and its reply. The body is read as it comes, within the request's
        slot and its cut (READS_CUT_BY): by `receive(response)` for a reply of 2xx when
        given (which streams it elsewhere), else into `response.content`, at most
        `max_bytes` (default `config.max_reply_bytes`) of it, past which it raises
        ReplyTooLargeError; an error reply's first ERROR_BODY_MAX bytes."""
        headers = {"Accept": accept}
        if context:
            headers["Coordinate-Gestionale"] = self._context
        content = None
        if body is not None:
            content = _encode_json(body)
            headers["Content-Type"] = "application/json"
        write = method in ("POST", "PUT", "DELETE") and not path.endswith("/ricerca")
        url = self._base[: len(self._base) - len(self._base_path)] + path
        cut_by = None if write else READS_CUT_BY.get()
        if cut_by is not None and cut_by.is_set():
            raise self._cut_short(method, path)
        started = time.perf_counter()
        with self._slots:
            # (a write's own reply is never cut short: its outcome must be known)
            cutting = READS_CUT_BY.set(cut_by)
            try:
                request = self._http.build_request(
                    method, url, params=params, content=content, headers=headers
                )
                response = self._http.send(request, auth=self._auth, stream=True)
                self._answered = True
                try:
                    self._take_reply(response, method, path, max_bytes, receive)
                finally:
                    response.close()
            except httpx.TransportError as exc:
                self._log(method, path, None, started, token)
                if cut_by is not None and cut_by.is_set():
                    raise self._cut_short(method, path) from None
                if isinstance(exc, httpx.TimeoutException):
                    sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
                    waited = self.config.read_timeout_s if sent else self.config.connect_timeout_s
                    raise ErpTimeoutError(
                        f"the ERP at {self._base} did not answer in {_duration(waited)}"
                        f" ({exc.__class__.__name__})"
                        + ("; whether the change was applied is unknown" if write and sent else ""),
                        method=method,
                        path=path,
                        outcome_unknown=write and sent,
                    ) from None
                raise self._transport_error(exc, method, path, write) from None
            except httpx.DecodingError as exc:
                # a body that does not match its Content-Encoding (a proxy's error page)
                self._log(method, path, None, started, token)
                raise MalformedResponseError(
                    f"ERP reply could not be decoded ({exc})"
                    + ("; whether the change was applied is unknown" if write else ""),
                    method=method,
                    path=path,
                    outcome_unknown=write,
                ) from None
            finally:
                READS_CUT_BY.reset(cutting)
        _unlink_stream(response)
        self._log(method, path, response.status_code, started, token)
        if self._on_response is not None:
            self._on_response(response, time.perf_counter() - started)
        if response.status_code >= 300:
            raise self._error(response, method, path, token, write)
        return response

    def _take_reply(
        self,
        response: httpx.Response,
        method: str,
        path: str,
        max_bytes: int | None,
        receive: Callable[[httpx.Response], None] | None,
    ) -> None:
        if response.status_code >= 300:
            _read_error_body(response)
        elif receive is not None:
            receive(response)
        else:
            cap = self.config.max_reply_bytes if max_bytes is None else max_bytes
            chunks: list[bytes] = []
            _take_body(
                response,
                cap,
                lambda declared: self._too_large(path, cap, None, declared, method),
                chunks.append,
            )
            # as Response.read() keeps it (one piece is not copied)
            response._content = b"".join(chunks)

    def _cut_short(self, method: str, path: str) -> ReadsCutShortError:
        return ReadsCutShortError(
            f"the read from the ERP at {self._base} was cut short: the run was cancelled",
            method=method,
            path=path,
        )

    def _transport_error(
        self, exc: httpx.TransportError, method: str, path: str, write: bool
    ) -> ErpConnectionError:
        reason = str(exc) or exc.__class__.__name__
        if isinstance(exc, httpx.LocalProtocolError):
            # a request that could not be written as HTTP: its header values (the
            # credentials among them) are never repeated
            reason = (
                "the request could not be written as HTTP ("
                + re.sub(r"b?'[^']*'|b?\"[^\"]*\"", "(a value not shown)", reason)
                + ")"
            )
            error = ErpConnectionError(
                f"no request could be sent to the ERP at {self._base}: {reason}",
                method=method,
                path=path,
            )
            error.retryable = False
            return error
        if _tls_failure(exc) and "WRONG_VERSION_NUMBER" in reason:
            # what answered is no TLS server: plain HTTP on that port, most likely
            error = ErpConnectionError(
                f"the ERP at {self._base} does not speak TLS on that port ({reason}); if"
                " it serves plain HTTP there, the URL should start with http://",
                method=method,
                path=path,
            )
            error.retryable = False
            return error
        if _tls_failure(exc):
            # a certificate problem does not heal by retrying
            if self.config.ca_file:  # the hint is not to give one: it was given
                hint = f"the CA file {self.config.ca_file!r} does not vouch for it"
            else:
                hint = "give its CA with --ca-file (or ca_file in the config file)"
            error = ErpConnectionError(
                f"the ERP's TLS certificate at {self._base} was not accepted ({reason}); {hint}",
                method=method,
                path=path,
            )
            error.retryable = False
            return error
        if isinstance(exc, httpx.ConnectError):
            return ErpConnectionError(
                f"cannot reach the ERP at {self._base}: {reason}", method=method, path=path
            )
        unknown = "; whether the change was applied is unknown" if write else ""
        if (
            self._base.startswith("http://")
            and "without sending a response" in reason
            and not self._answered
        ):
            # what a TLS server does with plain HTTP, as well as a dropped connection: the
            # hint only while the ERP has never answered (it did over HTTP, else)
            unknown += "; if the ERP serves HTTPS on that port, the URL should start with https://"
        lost = ErpConnectionError(
            f"connection to the ERP at {self._base} was lost: {reason}{unknown}",
            method=method,
            path=path,
            outcome_unknown=write,
        )
        # an answer that is no HTTP (another kind of server on that port: h11 finds an
        # "illegal" status or header line), not a connection dropped before or during
        # a reply ("without sending a response", "... complete message body")
        lost.not_http = isinstance(exc, httpx.RemoteProtocolError) and (
            reason.lower().startswith("illegal ")
        )
        return lost

    @staticmethod
    def _log(method: str, path: str, status: int | None, started: float, token: bool) -> None:
        if log.isEnabledFor(logging.DEBUG):
            ms = (time.perf_counter() - started) * 1000
            log.debug(
                "%s %s%s -> %s in %.1f ms",
                method,
                path,
                " (next)" if token else "",
                status or "no answer",
                ms,
            )

    def _error(
        self, response: httpx.Response, method: str, path: str, token: bool, write: bool
    ) -> ErpError:
        """The typed error for a non-2xx reply."""
        status = response.status_code
        detail: str | None = None
        if response.content:
            try:
                data = decode_json(json_body(response))
                if isinstance(data, dict) and isinstance(data.get("error"), dict):
                    raw = data["error"].get("response-detail")
                    detail = str(raw) if raw is not None else None
            except ValueError:
                detail = None
        code = _error_code(detail)
        said = f": {detail}" if detail else ""
        kw: dict[str, Any] = {
            "status": status,
            "code": code,
            "detail": detail,
            "method": method,
            "path": path,
        }
        low = (detail or "").lower()
        # 3002 is both "credentials rejected" and "busy" (exclusive use, pool exhausted,
        # too many requests): the text tells them apart, and a busy one is retried
        busy = status == 503 or any(w in low for w in _BUSY_WORDS)
        if status == 401 or code == 2002 or (code == 3002 and not busy):
            return AuthError(f"ERP rejected the credentials (HTTP {status}){said}", **kw)
        if code == 1001:
            return ContextMissingError(
                f"ERP refused the company context (Coordinate-Gestionale {self._context}){said}",
                **kw,
            )
        if status == 400 and (code == 1003 or token):
            return TokenRejectedError(f"ERP rejected the paging token (HTTP 400){said}", **kw)
        if code == 6001:
            return BusinessRuleError(f"ERP refused the request{said}", **kw)
        if status == 404:
            return NotFoundError(f"ERP has no such record or resource (HTTP 404){said}", **kw)
        if status == 408:
            return ErpTimeoutError(
                f"ERP timed out working on the request (HTTP 408){said}",
                **kw,
                outcome_unknown=write,
            )
        if busy or code == 3002:
            error: ErpError = PoolExhaustedError(
                f"ERP is busy: too many requests in flight (HTTP {status}){said}", **kw
            )
            retry_after = response.headers.get("Retry-After")
            if retry_after and retry_after.strip().isdigit():
                error.retry_after = float(retry_after)
            return error
        if code == 5001 or status >= 500:
            return LinkDownError(
                f"ERP failed to serve the request (HTTP {status}){said}",
                **kw,
                outcome_unknown=write,
            )
        return ErpError(f"ERP refused the request (HTTP {status}){said}", **kw)
