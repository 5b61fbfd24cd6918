"""The Italian tax code (codice fiscale): its shape and its check character.

A person's code is 16 characters: six letters for surname and name, the year, a
letter for the month, the day (plus 40 for women), four for the place of birth and a
check character; a digit of the date or place may be replaced by a letter
(L M N P Q R S T U V for 0-9) when two people would otherwise share a code. A
company's tax code is its 11-digit VAT number. The ERP simulator refuses a customer
whose code is neither; the demo's shoppers make codes of the first kind.
"""

from __future__ import annotations

import re

#: the letters that stand for 0-9 in a person's code where two would otherwise clash
OMOCODIA = "LMNPQRSTUV"
_DIGIT = f"[0-9{OMOCODIA}]"
PERSON = re.compile(rf"[A-Z]{{6}}{_DIGIT}{{2}}[ABCDEHLMPRST]{_DIGIT}{{2}}[A-Z]{_DIGIT}{{3}}[A-Z]")
COMPANY = re.compile(r"[0-9]{11}")
#: what a character in an odd position (the 1st, 3rd, ...) adds to the check sum
_ODD = dict(
    zip(
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        (1, 0, 5, 7, 9, 13, 15, 17, 19, 21,  # 0-9
         1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20,  # A-N
         11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23),  # O-Z
        strict=True,
    )
)  # fmt: skip


def check_char(first15: str) -> str:
    """The check character of a person's code from its first 15 characters."""
    total = 0
    for i, c in enumerate(first15.upper()):
        if i % 2 == 0:
            total += _ODD[c]
        else:
            total += int(c) if c.isdigit() else ord(c) - ord("A")
    return chr(ord("A") + total % 26)


def problem(code: str) -> str | None:
    """What is wrong with a tax code, in the ERP's words, or None when it is right."""
    value = code.strip().upper()
    if COMPANY.fullmatch(value):
        return None
    if not PERSON.fullmatch(value):
        return (
            f"codice fiscale {code!r} non valido: attese 16 lettere e cifre"
            " (persona) o 11 cifre (societa')"
        )
    expected = check_char(value[:15])
    if value[15] != expected:
        return (
            f"codice fiscale {code!r} errato: il carattere di controllo e' {value[15]},"
            f" dovrebbe essere {expected}"
        )
    return None
