"""The personal data policy: what of a standardized record may leave ingest, field by field.

PIPL (seed 000) and our own rule: raw personal data lives only in the raw input topics. A
scrubber alone cannot hold that (it misses what it cannot recognise), so past ingest a value
is carried only when the source's mapping declares its field *and* its class
(:data:`custpulse.schemas.mapping.CLASSES`), and each class says what leaves:

=============  =================================================================================
class          what leaves ingest
=============  =================================================================================
identifier     the id as given; when it holds personal data (a phone, e-mail, id number, card or
               a cued name anywhere in it) its keyed token instead: the token of that kind when
               the whole id is one phone/e-mail/id number (so it joins with the customer's
               ``phone_token`` etc.), else the token of kind ``identifier``
personal       the display mask (``138****8000``, ``王*``, ``广东省深圳市南山区****``) and, except
               names and addresses, a keyed token ``<field>_token`` for joins
categorical    the (value-mapped) category with any detectable personal data masked
numeric        the number; a whole number of 10 or more digits that reads as a phone, id number
               or card rejects the record (``personal_number``): no amount is that large
time           ISO 8601 with its offset
free_text      the text with detectable personal data masked (only fields declared so)
records        per object, the keys the mapping declares under ``nested`` by their own class;
               other keys and non-object items are dropped and counted by label
(undeclared)   dropped; its name is counted (``unmapped_fields``), hashed unless it reads as a
               field name (:func:`custpulse.processors.excerpt.field_label`)
=============  =================================================================================

Event ids are unkeyed hashes of a record's key fields (:mod:`custpulse.processors.identity`);
a hash of a phone can be reversed by trying every phone, so ids are computed over
:func:`identity_view`, in which every personal value is already its keyed token.

Pure and synchronous: no I/O, no clock; the secret comes in as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from custpulse.processors.excerpt import field_label, pii_kind_by_name
from custpulse.processors.masking import PII_FIELDS, mask_as, pii_token, scrub_names, scrub_text
from custpulse.processors.pii_detect import find_spans
from custpulse.schemas.mapping import EXTRA, FieldMapping, NestedFields
from custpulse.schemas.times import to_iso

TOKEN_KINDS = ("phone", "email", "id_number")
"""Personal kinds whose fields also leave as a keyed token (joins on the value stay possible).
Names and addresses leave as display masks only; a personal field of no known kind leaves as
``****`` and a token of kind ``personal``."""

PERSONAL_NUMBER_DIGITS = 10
"""Whole numbers with at least this many digits are checked for phones, ids and cards."""

MAX_ITEMS = 1000
"""Objects of a records field carried per record; the rest are dropped (counted)."""

MAX_FREE_TEXT = 4096
"""Characters of a free-text field carried (scrubbed); the rest is cut."""

MAX_CATEGORY = 256
"""Characters of a category (or nested text) carried; a longer value is cut to this."""

MAX_IDENTIFIER = 128
"""An identifier longer than this always travels as its token (nothing that long is an id)."""


@dataclass(frozen=True, slots=True)
class Carried:
    """What leaves ingest of one record: ``data`` (JSON-ready canonical fields), the labels of
    what was dropped (``dropped``: undeclared nested keys as ``<field>.<label>``, non-object
    items as ``<field>[]``), and ``problem`` ``(code, field)`` when the record must be rejected
    instead."""

    data: dict[str, Any]
    dropped: tuple[str, ...] = ()
    problem: tuple[str, str] | None = None


def personal_kind(canon: str) -> str:
    """The masking kind of a personal field: by its canonical name (``phone``, ``user_name`` ->
    ``name``), else by what its name suggests (``emergency_phone`` -> ``phone``), else
    ``personal``."""
    if canon in PII_FIELDS:
        return PII_FIELDS[canon]
    hinted = pii_kind_by_name(canon)
    return PII_FIELDS.get(hinted, "personal") if hinted else "personal"


def protect_identifier(value: Any, secret: bytes, version: int = 1) -> str:
    """An identifier as it may leave ingest: as given, or its keyed token when it holds
    personal data (see the module table).

    >>> key = b"k" * 32
    >>> protect_identifier("U1001", key), protect_identifier("O202410150004583", key)
    ('U1001', 'O202410150004583')
    >>> protect_identifier("138 0013 8000", key) == pii_token("13800138000", key, "phone")
    True
    >>> protect_identifier("VIP13800138000", key).startswith("tok_v1_")
    True
    """
    text = str(value).strip()
    if len(text) > MAX_IDENTIFIER:
        return pii_token(text, secret, "identifier", version)
    spans = find_spans(text)
    if len(spans) == 1 and spans[0][:2] == (0, len(text)) and spans[0][2] in TOKEN_KINDS:
        return pii_token(text, secret, spans[0][2], version)
    if spans or scrub_names(text) != text:
        return pii_token(text, secret, "identifier", version)
    return text


def is_personal_number(value: Any) -> bool:
    """A number whose whole digits read as a phone, id number or bank card.

    >>> is_personal_number(13800138000), is_personal_number(1299.5), is_personal_number(10**12)
    (True, False, False)
    """
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return False
    try:
        whole = int(abs(value))
    except (OverflowError, ValueError):
        return False
    digits = str(whole)
    if len(digits) >= 16:  # past float precision: its digits cannot be checked, and no amount
        return True        # or count is that large
    return len(digits) >= PERSONAL_NUMBER_DIGITS and bool(find_spans(digits))


def _personal(canon: str, value: Any, record: dict[str, Any] | None, secret: bytes,
              version: int, out: dict[str, Any]) -> None:
    kind = personal_kind(canon)
    text = value if isinstance(value, str) else str(value)
    if kind == "personal":
        out[canon] = "****"
        out[f"{canon}_token"] = pii_token(text, secret, "personal", version)
        return
    out[canon] = mask_as(kind, text, (record or {}).get("id_number"))
    if kind in TOKEN_KINDS or kind == "bank_card":
        out[f"{canon}_token"] = pii_token(text, secret, kind, version)


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            number = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            return None
        if not number.is_finite():
            return None
        return int(number) if number == number.to_integral_value() else float(number)
    return None


def _records(canon: str, value: Any, spec: NestedFields | None, secret: bytes, version: int,
             dropped: set[str]) -> Any:
    """A records field: declared keys of each object by their class, the rest dropped."""
    items = value if isinstance(value, list) else [value]
    out: list[dict[str, Any]] = []
    if len(items) > MAX_ITEMS:
        dropped.add(f"{canon}[]")
        items = items[:MAX_ITEMS]
    for item in items:
        if not isinstance(item, dict):
            dropped.add(f"{canon}[]")
            continue
        carried: dict[str, Any] = {}
        for key, sub_value in item.items():
            sub = spec.canonical_name(key) if spec is not None else None
            if sub is None:
                dropped.add(f"{canon}.{field_label(key)}")
                continue
            if sub_value is None or sub in carried:
                continue
            cls = spec.classes[sub] if spec is not None else ""
            if cls == "numeric":
                number = _number(sub_value)
                if number is None or is_personal_number(number):
                    dropped.add(f"{canon}.{sub}")
                else:
                    carried[sub] = number
            elif isinstance(sub_value, dict | list) or isinstance(sub_value, bool):
                dropped.add(f"{canon}.{sub}")
            elif cls == "identifier":
                carried[sub] = protect_identifier(sub_value, secret, version)
            elif cls == "personal":
                _personal(sub, sub_value, None, secret, version, carried)
            else:  # categorical, free_text
                carried[sub] = scrub_text(str(sub_value)[:MAX_CATEGORY])
        out.append(carried)
    return out if isinstance(value, list) else (out[0] if out else None)


def carry(fields: dict[str, Any], mapping: FieldMapping, secret: bytes,
          version: int = 1) -> Carried:
    """What of the standardized ``fields`` (as :func:`custpulse.schemas.mapping.standardize`
    returns them) leaves ingest, by the classes of ``mapping``. Fields without a class and
    ``extra`` are not carried (ingest counts the ``extra`` names itself)."""
    out: dict[str, Any] = {}
    dropped: set[str] = set()
    for canon, value in fields.items():
        if canon == EXTRA or value is None:
            continue
        cls = mapping.class_of(canon)
        if cls == "identifier":
            out[canon] = protect_identifier(value, secret, version)
        elif cls == "personal":
            _personal(canon, value, fields, secret, version, out)
        elif cls == "numeric":
            if is_personal_number(value):
                return Carried({}, (), ("personal_number", canon))
            out[canon] = value
        elif cls == "time":
            out[canon] = to_iso(value) if isinstance(value, datetime) else value
        elif cls in ("categorical", "free_text"):
            limit = MAX_FREE_TEXT if cls == "free_text" else MAX_CATEGORY
            out[canon] = scrub_text(value[:limit]) if isinstance(value, str) else value
        elif cls == "records":
            out[canon] = _records(canon, value, mapping.nested.get(canon), secret, version,
                                  dropped)
        else:
            dropped.add(field_label(canon))
    return Carried(out, tuple(sorted(dropped)))


def identity_view(fields: dict[str, Any], mapping: FieldMapping, secret: bytes,
                  version: int = 1, carried: Carried | None = None) -> dict[str, Any]:
    """``fields`` as event ids are hashed over: every value that holds personal data replaced
    by its keyed token (personal fields; identifiers, categories and free text that hold any),
    ``records`` fields as they are carried (declared keys only, scrubbed), ``extra`` dropped.
    Values without personal data are left exactly as standardized, so ids of ordinary records
    do not change. ``carried`` (what :func:`carry` made of the same fields) saves doing the
    identifier and records work twice."""
    done = carried.data if carried is not None else {}
    view = dict(fields)
    view.pop(EXTRA, None)
    for canon, value in fields.items():
        if value is None or canon == EXTRA:
            continue
        cls = mapping.class_of(canon)
        if cls in ("identifier", "records") and canon in done:
            view[canon] = done[canon]
        elif cls == "identifier":
            view[canon] = protect_identifier(value, secret, version)
        elif cls == "personal":
            view[canon] = pii_token(str(value), secret, personal_kind(canon), version)
        elif cls in ("categorical", "free_text") and isinstance(value, str):
            if scrub_text(value) != value:
                view[canon] = pii_token(value, secret, cls, version)
        elif cls == "records":
            view[canon] = _records(canon, value, mapping.nested.get(canon), secret, version,
                                   set())
    return view


def own_id_view(record: dict[str, Any], secret: bytes, version: int = 1) -> dict[str, Any]:
    """The raw record with its own ``event_id`` tokenized if it holds personal data (only that
    key is looked at; the rest is returned as is)."""
    own = record.get("event_id")
    if isinstance(own, str | int) and not isinstance(own, bool):
        protected = protect_identifier(own, secret, version)
        if protected != str(own).strip():
            return {**record, "event_id": protected}
    return record
