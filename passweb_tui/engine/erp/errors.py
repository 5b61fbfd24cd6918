"""Typed errors for what the Mexal WebAPI (or the way to it) can answer.

Every error carries the HTTP status, the ERP's numeric code when it sent one,
the ERP's detail text, and the method and path of the request, never headers
or credentials.
"""

from __future__ import annotations

#: the class names a failed run's error starts with when the ERP refused the
#: credentials or the company (see sync.failure_text)
CREDENTIAL_ERRORS = ("AuthError", "ContextMissingError")


def refused_credentials(error: str | None) -> bool:
    """Whether a failed run's recorded error is the ERP refusing the credentials."""
    return (error or "").startswith(CREDENTIAL_ERRORS)


class ErpError(Exception):
    """Base of every ERP failure."""

    #: whether a read that failed this way may be retried
    retryable = False
    #: seconds the server asked us to wait (Retry-After), when it said so
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        detail: str | None = None,
        method: str | None = None,
        path: str | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.detail = detail
        self.method = method
        self.path = path
        #: a write whose effect in the ERP is not known (sent, but no clear answer)
        self.outcome_unknown = outcome_unknown

    def __str__(self) -> str:
        where = f" ({self.method} {self.path})" if self.method and self.path else ""
        return f"{self.message}{where}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, "
            f"code={self.code!r}, method={self.method!r}, path={self.path!r})"
        )


class AuthError(ErpError):
    """Credentials rejected (401, 2002/3002). Never retried: the ERP locks users."""


class ContextMissingError(ErpError):
    """Coordinate-Gestionale missing or wrong (1001)."""


class NotFoundError(ErpError):
    """The resource or record does not exist (404)."""


class BusinessRuleError(ErpError):
    """The ERP refused the data (6001), e.g. an unknown or missing field."""


class PoolExhaustedError(ErpError):
    """Too many requests in flight for this user, or the pool is full (503)."""

    retryable = True


class ErpTimeoutError(ErpError):
    """The ERP (408) or the network timed out."""

    retryable = True


class LinkDownError(ErpError):
    """The WebAPI cannot reach the gestionale (5001) or the server failed (5xx)."""

    retryable = True


class ErpConnectionError(ErpError):
    """The connection could not be made or was dropped."""

    retryable = True
    #: what answered at the address spoke no HTTP (a reply that is not an HTTP status
    #: line), where a dropped connection said nothing
    not_http = False


class MalformedResponseError(ErpError):
    """The reply was not what the WebAPI documents (bad JSON, wrong shape)."""

    retryable = True
    #: the reply was no JSON at all (a web page), not JSON cut short or of another shape
    not_json = False
    #: the reply began as JSON but could not be decoded (perhaps cut short on its way);
    #: False for a reply decoded whole, of another shape than the WebAPI's
    undecodable = False


class TokenRejectedError(ErpError):
    """A `next` paging token was consumed or rejected."""


class ReadsCutShortError(ErpError):
    """The client's reads were cut short (MexalClient.cut_reads_short): its run was
    cancelled. Never retried."""
