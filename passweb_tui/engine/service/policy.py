"""Who may launch which sync (DOMAIN.md): origins site, erp and scheduler; Ho.Re.Ca. rules."""

from __future__ import annotations

ORIGINS = ("site", "erp", "scheduler")
KINDS = ("total", "changed", "partial")


class PolicyRefused(Exception):
    """The launch policy forbids this kind from this origin; the message says why."""


def refusal(
    kind: str, origin: str, *, horeca: bool = False, scheduled_kind: str = "changed"
) -> str | None:
    """Why `origin` may not launch `kind` on this site, or None when it may."""
    if origin not in ORIGINS:
        return f"unknown origin {origin!r}; expected one of {', '.join(ORIGINS)}"
    if kind not in KINDS:
        return f"unknown sync kind {kind!r}; expected one of {', '.join(KINDS)}"
    if origin == "scheduler":
        if kind == "partial":
            return "a PARTIAL sync is never scheduled"
        if kind == "total" and not horeca:
            return "only CHANGED may be scheduled (TOTAL only on Ho.Re.Ca. sites)"
        if kind != scheduled_kind:
            return f"this site's scheduled sync is {scheduled_kind.upper()}, not {kind.upper()}"
        return None
    if origin == "erp":
        if horeca:
            return (
                "on a Ho.Re.Ca. site only the site back end launches non-automatic syncs; "
                "the ERP side may not"
            )
        if kind == "partial":
            return "a PARTIAL sync is launched from the site only"
        return None
    return None  # the site back end may launch every kind


def check(kind: str, origin: str, *, horeca: bool = False, scheduled_kind: str = "changed") -> None:
    """Raise PolicyRefused when `origin` may not launch `kind`."""
    reason = refusal(kind, origin, horeca=horeca, scheduled_kind=scheduled_kind)
    if reason is not None:
        raise PolicyRefused(reason)
