"""Finding personal data in free text: spans of phones, resident ids, bank cards and e-mails.

Pure and total (no I/O, no clock). Detection works on a copy of the text with full-width ASCII
mapped 1:1 to ASCII, so spans line up with the original. What is found and how:

* **Resident ids** (GB 11643): 18 digits whose last may be ``X`` with the check digit verified,
  or the old 15 digits with a valid birth date (YYMMDD); digits may be split by spaces, dashes
  or dots, and may follow letters (``id11010519491231002X``). A random 18-digit number passes
  the check digit 1 time in 11, so some order numbers in free text are masked too: free text
  errs towards masking. The bare shape (18 or 15 digits not glued to letters or digits) is an
  id whatever its check digit (a mistyped id is still personal).
* **Bank cards**: 13 to 19 digits (separators allowed) passing the Luhn check, not glued to
  letters (order ids such as ``O2024...`` stay).
* **Phones**: ``phonenumbers.PhoneNumberMatcher`` for region CN with leniency VALID (mobiles
  and landlines in any grouping: ``1380 013 8000``, ``138.0013.8000``, ``(010) 8888 6666``,
  ``+86 10 8888 6666``) and, by shape, mobiles glued to letters (``Tel13800138000``) or in
  ranges the matcher holds invalid (``140 0000 0000``). It all runs only on texts with at least
  7 digits.
* **E-mails**, internationalised too: a local part of letters (any script), digits and
  ``._%+-``, then ``@`` (or ``(at)``/``[at]``), then dot-separated labels (``.`` or ``。``)
  ending in a 2+ letter label (``张伟@例子.中国``).

Names are not found here (see :func:`custpulse.processors.masking._scrub_names`: surname list,
cue words, titles and verbs; a name with none of these around it cannot be told from other
words, the documented limit).
"""

from __future__ import annotations

import re

from phonenumbers import Leniency, PhoneNumberMatcher

FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_SEP = r"[ \-.]?"

_DOT = r"(?:\.|。(?=[^\W\d_A-Za-z]))"  # 。 only before a label in another script (例子。中国)
_LABEL = r"(?:[A-Za-z0-9-]+|[^\W_A-Za-z0-9]+)"  # a domain label: ASCII, or another script
_TLD = r"(?:[A-Za-z]{2,}|[^\W\d_A-Za-z]{2,})"
_EMAIL = re.compile(
    r"(?:(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+|[^\W\d_A-Za-z]+)"  # ASCII or other-script local
    rf"(?:@|\s*[(\[]at[)\]]\s*){_LABEL}(?:{_DOT}{_LABEL})*{_DOT}{_TLD}",
    re.IGNORECASE)
_ID18 = re.compile(rf"(?<![0-9])[1-9](?:{_SEP}[0-9]){{16}}{_SEP}[0-9Xx](?![0-9])")
_ID15 = re.compile(rf"(?<![0-9])[1-9](?:{_SEP}[0-9]){{14}}(?![0-9Xx])")
_ID_SHAPE = re.compile(r"(?<![0-9A-Za-z])(?:[1-9][0-9]{16}[0-9Xx]|[1-9][0-9]{14})(?![0-9A-Za-z])")
_CARD = re.compile(rf"(?<![0-9A-Za-z])[0-9](?:{_SEP}[0-9]){{12,18}}(?![0-9A-Za-z])")
# Shapes the matcher does not take (glued to letters, number ranges it holds invalid).
_LOOSE_PHONE = re.compile(
    r"(?<![0-9])(?:(?:\+|00)?86[ -]?)?1[ .\-]?[3-9](?:[ .\-]?[0-9]){9}(?![0-9])"
    r"|(?<![0-9A-Za-z])0[1-9][0-9]{1,2}[ -]?[0-9]{7,8}(?![0-9A-Za-z])")
_DIGIT = re.compile(r"[0-9]")


def _digits(s: str) -> str:
    return "".join(c for c in s if "0" <= c <= "9" or c in "Xx").upper()


def valid_id18(digits: str) -> bool:
    """GB 11643 check digit of an 18-character resident id (digits, last may be X)."""
    if len(digits) != 18 or not digits[:17].isdigit():
        return False
    total = sum(int(c) * w for c, w in zip(digits[:17], _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == digits[17]


def valid_id15(digits: str) -> bool:
    """A 15-digit resident id: area code, then a birth date YYMMDD that exists."""
    if len(digits) != 15 or not digits.isdigit():
        return False
    month, day = int(digits[8:10]), int(digits[10:12])
    return 1 <= month <= 12 and 1 <= day <= 31


def luhn(digits: str) -> bool:
    """The Luhn check of a card number (digits only)."""
    if not digits.isdigit() or not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_spans(text: str) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(start, end, kind)`` spans, sorted; kinds ``email``, ``id_number``,
    ``phone`` and ``bank_card``, in that order of precedence where spans overlap.

    >>> find_spans("证件id11010519491231002X，电话1380 013 8000")
    [(4, 22, 'id_number'), (25, 38, 'phone')]
    """
    t = str(text).translate(FULLWIDTH)
    spans: list[tuple[int, int, str]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e, _ in spans)

    for m in _EMAIL.finditer(t):
        spans.append((m.start(), m.end(), "email"))
    if len(_DIGIT.findall(t)) >= 7:
        for m in _ID18.finditer(t):
            if valid_id18(_digits(m[0])) and free(m.start(), m.end()):
                spans.append((m.start(), m.end(), "id_number"))
        for m in _ID15.finditer(t):
            if valid_id15(_digits(m[0])) and free(m.start(), m.end()):
                spans.append((m.start(), m.end(), "id_number"))
        for m in _ID_SHAPE.finditer(t):  # the bare shape, checked or not: a typo is personal too
            if free(m.start(), m.end()):
                spans.append((m.start(), m.end(), "id_number"))
        for match in PhoneNumberMatcher(t, "CN", leniency=Leniency.VALID):
            if free(match.start, match.end):
                spans.append((match.start, match.end, "phone"))
        for m in _LOOSE_PHONE.finditer(t):
            if free(m.start(), m.end()):
                spans.append((m.start(), m.end(), "phone"))
        for m in _CARD.finditer(t):
            if luhn(_digits(m[0])) and free(m.start(), m.end()):
                spans.append((m.start(), m.end(), "bank_card"))
    return sorted(spans)


def mask_card(value: str) -> str:
    """A bank card as ``****`` and its last 4 digits.

    >>> mask_card("6222 0212 3456 7890 128")
    '****0128'
    """
    digits = _digits(value)
    return "****" + digits[-4:] if len(digits) >= 8 else "****"
