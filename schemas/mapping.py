"""Field standardization: source field names and values onto the canonical ones of the brief.

Every source keeps its own field names (``客户ID``, ``購買時間``, ``customerId``). A per-source
mapping, shipped as ``schemas/mappings/<source>.yaml`` and optionally extended by a user file,
says which names mean which canonical field, what type each canonical field has and which
spellings of a category value are the same value (``零售业``/``线下零售`` -> ``retail``). It
may also declare how bare numbers in a time field are read (``time_formats``: ``epoch_s``,
``epoch_ms``, ``excel_serial``, ``yyyymmdd``; undeclared numbers are ``ambiguous_time``) and
the source's business key (``identity``: ``key`` and ``state`` fields, see
:mod:`custpulse.processors.identity`).

:func:`standardize` applies one mapping to one raw record in three steps: rename, coerce by type,
map values. It never raises: a field it cannot read becomes ``None`` and is reported as a
:class:`FieldProblem` (errors as data); unknown fields are kept under ``extra``.

Name matching: NFKC, case-folded, spaces, ``_``, ``-`` and ``.`` dropped, a trailing ``*``
(required marker) and bracketed parts such as ``(秒)`` / ``（元）`` / ``【必填】`` dropped. So
``停留时长(秒)``, ``customer_id``, ``CustomerID`` and ``Customer Id`` all match their alias.

>>> from datetime import UTC
>>> fields, problems = standardize(
...     {"客户ID": "U1", "購買時間": "2024-03-15 10:30:00", "订单金额": "¥1,234.50",
...      "订单状态": "已支付", "备注": "x"},
...     load_mapping("orders"), UTC)
>>> fields["user_id"], fields["order_time"].isoformat(), fields["amount"], fields["status"]
('U1', '2024-03-15T10:30:00+00:00', 1234.5, 'paid')
>>> fields["extra"], problems
({'备注': 'x'}, [])
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from custpulse.errors import ConfigError
from custpulse.schemas.config_models import (
    CLASSES,
    EXTRA,
    SOURCES,
    MappingFileYaml,
    NestedKeyYaml,
    SectionYaml,
    SourcesYaml,
    validate,
)
from custpulse.schemas.config_models import TYPES as TYPES  # re-exported: the file's vocabulary
from custpulse.schemas.times import AMBIGUOUS, TIME_FORMATS, read_time
from custpulse.schemas.yamlfiles import read_user_yaml, read_yaml

_CLASS_TYPES: dict[str, tuple[str, ...]] = {
    "identifier": ("string",),
    "personal": ("string",),
    "categorical": ("string", "boolean"),
    "numeric": ("decimal", "integer"),
    "time": ("time",),
    "free_text": ("string",),
    "records": ("list", "json"),
}
_IMPLIED_CLASS = {"time": "time", "decimal": "numeric", "integer": "numeric",
                  "boolean": "categorical"}
"""The class of a field whose type says it all; string, list and json fields must declare one."""
_MAX_NUMBER_TEXT = 64  # longer "numbers" are not numbers we accept
_INT_LIMIT = 2**63  # integers must fit a signed 64-bit field downstream


@dataclass(frozen=True)
class FieldMapping:
    """How one source's records become canonical fields.

    ``aliases`` maps a normalized source name (see :func:`normalize_name`) to its canonical
    field; ``types`` has one entry per canonical field, in output order; ``values`` maps, per
    string field, a normalized source value (:func:`normalize_value`) to its canonical value.

    ``time_formats`` declares, per time field, how a bare number is read (one of
    :data:`~custpulse.schemas.times.TIME_FORMATS`); an undeclared time field refuses numbers
    as ambiguous. ``identity_key`` / ``identity_state`` are the source's business key (see
    :mod:`custpulse.processors.identity`): canonical fields that, all present, name the thing
    a record is about (an order), and fields whose values tell one state of that thing from
    another (its status); a redelivery has the same values of both.
    """

    source: str
    version: int
    aliases: dict[str, str]
    types: dict[str, str]
    values: dict[str, dict[str, str]]
    time_formats: dict[str, str] = field(default_factory=dict)
    identity_key: tuple[str, ...] = ()
    identity_state: tuple[str, ...] = ()
    classes: dict[str, str] = field(default_factory=dict)
    nested: dict[str, NestedFields] = field(default_factory=dict)
    plans: dict[tuple[str, ...], Any] = field(
        default_factory=dict, init=False, compare=False, repr=False, hash=False)
    """:func:`standardize`'s reading plans by key tuple (a cache; see :func:`_plan_of`). Not an
    argument: a mapping made from another (``dataclasses.replace``) starts with none. The
    tables above are not to be changed once records were read with a mapping."""

    def class_of(self, canon: str) -> str | None:
        """The data class of a canonical field (see :data:`CLASSES`), or None if undeclared."""
        return self.classes.get(canon)

    @property
    def fields(self) -> tuple[str, ...]:
        """The canonical field names, in output order."""
        return tuple(self.types)

    def canonical_name(self, name: str) -> str | None:
        """The canonical field a source field name stands for, or None if no alias matches.

        >>> load_mapping("orders").canonical_name("購買時間 ")
        'order_time'
        """
        try:
            return self.aliases.get(normalize_name(name))
        except Exception:  # noqa: BLE001 (an unreadable name matches nothing)
            return None


@dataclass(frozen=True)
class NestedFields:
    """The declared keys of a ``records`` field's objects: normalized source name -> canonical
    key, and each canonical key's class (one of identifier, personal, categorical, numeric,
    free_text). Keys not declared are dropped at ingest."""

    aliases: dict[str, str]
    classes: dict[str, str]

    def canonical_name(self, name: object) -> str | None:
        try:
            return self.aliases.get(normalize_name(str(name)))
        except Exception:  # noqa: BLE001
            return None


@dataclass(frozen=True)
class FieldProblem:
    """Something :func:`standardize` could not take as given, as data.

    ``code`` is ``duplicate_field``, ``wrong_type``, ``bad_time`` or ``ambiguous_time`` (a bare
    number in a time field whose mapping declares no ``time_formats`` entry). ``message`` never
    contains the offending value (it may be personal data), only names and types.
    """

    code: str
    field: str
    message: str


# ---------------------------------------------------------------------------------------------
# Names and values


_BRACKETED = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|【[^【】]*】|〔[^〔〕]*〕|<[^<>]*>")
_SEPARATORS = re.compile(r"[\s_\-.*]+")


@lru_cache(maxsize=4096)
def normalize_name(name: str) -> str:
    """The form in which source names are compared.

    >>> [normalize_name(n) for n in (" 停留時長（秒） ", "Customer_ID", "客户姓名*")]
    ['停留時長', 'customerid', '客户姓名']
    """
    text = unicodedata.normalize("NFKC", name).strip()
    bare = _BRACKETED.sub("", text)
    if _SEPARATORS.sub("", bare):  # a name that is nothing but brackets keeps them
        text = bare
    return _SEPARATORS.sub("", text).casefold()


def normalize_value(value: str) -> str:
    """The form in which category values are compared: NFKC, stripped, case-folded.

    >>> normalize_value(" ＡＰＰ ")
    'app'
    """
    return unicodedata.normalize("NFKC", value).strip().casefold()


def _clean_text(value: str) -> str:
    if value.isascii():  # NFKC leaves ASCII as it is
        return value.strip()
    return unicodedata.normalize("NFKC", value).strip()


# ---------------------------------------------------------------------------------------------
# Loading mappings


def load_mapping(source: str, path: str | Path | None = None) -> FieldMapping:
    """The mapping of ``source``: the shipped default with the user file at ``path`` merged over.

    User aliases, types and value maps add to or override the default ones. A user file holds
    one source (top-level ``source:``; may be omitted here) or several (top-level keys
    ``customers``/``behavior``/``orders``/``tickets``). A bad file raises
    :class:`~custpulse.errors.ConfigError` naming the file, the place in it and the problem
    (what a file may say: :class:`~custpulse.schemas.config_models.MappingFileYaml`).
    """
    if source not in SOURCES:
        raise ConfigError(f"Unknown source {source!r}: use one of {', '.join(SOURCES)}.")
    user = None
    if path is not None:
        user = _user_sections(path, expected=source).get(source)
    return _build(source, _default_section(source), user)


def load_mappings(path: str | Path | None = None) -> dict[str, FieldMapping]:
    """The mappings of all four sources, the user file at ``path`` (if any) merged over them."""
    sections = {} if path is None else _user_sections(path, expected=None)
    return {s: _build(s, _default_section(s), sections.get(s)) for s in SOURCES}


def _fail(origin: str, problem: str) -> ConfigError:
    return ConfigError(
        f"Mapping file {origin} {problem}; fix it or leave it out to use the defaults."
    )


_Layer = tuple[SectionYaml, str]
"""One source's section of a mapping file, validated, with its origin as messages name it."""


def _default_section(source: str) -> _Layer:
    data, origin = read_yaml(None, ("mappings", f"{source}.yaml"), _fail)
    section = validate(SectionYaml, data, origin, _fail)
    if section.source != source:
        raise _fail(origin, f"must say source: {source}")
    return section, origin


def _user_sections(path: str | Path, expected: str | None) -> dict[str, _Layer]:
    """A user file's per-source sections, validated, each with its origin; a section without a
    version of its own takes the file's."""
    origin = str(path)
    spec = validate(MappingFileYaml, read_user_yaml(path, _fail), origin, _fail).root
    if isinstance(spec, SourcesYaml):
        sections: dict[str, _Layer] = {}
        for source in SOURCES:
            if source in spec.model_fields_set:
                section = getattr(spec, source) or SectionYaml()
                if section.version is None and spec.version is not None:
                    section = section.model_copy(update={"version": spec.version})
                sections[source] = (section, f"{origin} ({source} section)")
        return sections
    source = spec.source if "source" in spec.model_fields_set else expected
    if source is None:
        raise _fail(origin, f"must say which source it maps (source: one of {_list(SOURCES)})")
    if expected is not None and source != expected:
        raise _fail(origin, f"is a mapping for {source}, not for {expected}")
    return {source: (spec, origin)}


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _list(names: Iterable[object]) -> str:
    return ", ".join(str(n) for n in names)


def _build(source: str, default: _Layer, user: _Layer | None) -> FieldMapping:
    """Merge the user section (if any) over the default one and check the result."""
    layers = [default] if user is None else [default, user]
    fields: dict[str, None] = {}
    types: dict[str, str] = {}
    values: dict[str, dict[str, str]] = {}
    time_formats: dict[str, str] = {}
    identity: dict[str, tuple[str, ...]] = {}
    classes: dict[str, str] = {}
    nested: dict[str, dict[str, NestedKeyYaml]] = {}
    for section, _ in layers:
        fields.update(dict.fromkeys(section.fields))
    aliases: dict[str, str] = {}
    for canon in fields:
        key = normalize_name(canon)
        if key in aliases:
            raise _fail(
                layers[-1][1], f"has fields {aliases[key]} and {canon} that cannot be told apart"
            )
        aliases[key] = canon
    own = dict(aliases)
    version = 1
    for section, origin in layers:
        if section.version is not None:
            version = section.version
        claimed: dict[str, str] = {}
        for canon, names in section.fields.items():
            for name in names:
                key = normalize_name(name)
                if not key:
                    raise _fail(origin, f"has an empty alias under field {canon}")
                if own.get(key, canon) != canon:
                    raise _fail(
                        origin,
                        f"gives field {canon} the alias {_show(name)}, "
                        f"which is the name of the field {own[key]}",
                    )
                if claimed.get(key, canon) != canon:
                    raise _fail(
                        origin, f"gives the alias {_show(name)} to both {claimed[key]} and {canon}"
                    )
                claimed[key] = aliases[key] = canon
        for canon, kind in section.types.items():
            _declared(canon, fields, origin, source, "gives a type to")
            types[canon] = kind
        for canon, table in section.values.items():
            _declared(canon, fields, origin, source, "has a value map for")
            merged = values.setdefault(canon, {})
            for raw, target in table.items():
                key = normalize_value(raw)
                if not key or not target.strip():
                    raise _fail(origin, f"has an empty value in the value map of {canon}")
                merged[key] = target
        for canon in section.time_formats:
            _declared(canon, fields, origin, source, "gives a time format to")
        time_formats.update(section.time_formats)
        for part in ("key", "state"):
            if part not in section.identity.model_fields_set:
                continue
            names = tuple(getattr(section.identity, part))
            for canon in names:
                if canon not in fields:
                    raise _fail(
                        origin,
                        f"names {canon} in its identity {part}, which is not a field of {source}",
                    )
            identity[part] = names  # a user file's key (or state) replaces the default one
        for canon, kind in section.classes.items():
            _declared(canon, fields, origin, source, "gives a class to")
            classes[canon] = kind
        for canon, spec in section.nested.items():
            _declared(canon, fields, origin, source, "declares nested keys of")
            nested.setdefault(canon, {}).update(spec)
    ordered_types = {canon: types.get(canon, "string") for canon in fields}
    for canon in values:
        if ordered_types[canon] != "string":
            raise _fail(
                layers[-1][1],
                f"has a value map for {canon}, but value maps apply only to string fields "
                f"({canon} is {ordered_types[canon]})",
            )
    for canon in time_formats:
        if ordered_types[canon] != "time":
            raise _fail(
                layers[-1][1],
                f"gives {canon} a time format, but time formats apply only to time fields "
                f"({canon} is {ordered_types[canon]})",
            )
    for table in values.values():  # canonical values are accepted in any case
        for target in list(table.values()):
            table.setdefault(normalize_value(target), target)
    ordered_classes = _classes(ordered_types, classes, nested, layers[-1][1])
    return FieldMapping(
        source, version, aliases, ordered_types, values, time_formats,
        identity.get("key", ()), identity.get("state", ()), ordered_classes,
        {canon: _nested_fields(canon, spec, layers[-1][1]) for canon, spec in nested.items()},
    )


def _declared(canon: str, fields: dict[str, None], origin: str, source: str, what: str) -> None:
    """Refuse a section entry for a field that no ``fields`` entry declares."""
    if canon not in fields:
        raise _fail(
            origin,
            f"{what} {canon}, which is not a field of {source} (declare it under fields)",
        )


def _classes(
    types: dict[str, str],
    declared: dict[str, str],
    nested: dict[str, Any],
    origin: str,
) -> dict[str, str]:
    """Every field's class: declared, or implied by its type; refuse what does not fit."""
    out: dict[str, str] = {}
    for canon, kind in types.items():
        cls = declared.get(canon) or _IMPLIED_CLASS.get(kind)
        if cls is None:
            raise _fail(
                origin,
                f"gives the {kind} field {canon} no class: say under classes: what it holds "
                f"({_list(CLASSES)}); personal data is carried only as masks and tokens",
            )
        if kind not in _CLASS_TYPES[cls]:
            raise _fail(
                origin,
                f"gives the {kind} field {canon} the class {cls}, which applies only to "
                f"{' or '.join(_CLASS_TYPES[cls])} fields",
            )
        out[canon] = cls
    for canon in nested:
        if out.get(canon) != "records":
            raise _fail(origin, f"declares nested keys of {canon}, which is not of class records")
    return out


def _nested_fields(canon: str, spec: dict[str, NestedKeyYaml], origin: str) -> NestedFields:
    aliases: dict[str, str] = {}
    for sub, declared in spec.items():
        for name in [sub, *declared.aliases]:
            key = normalize_name(name)
            if aliases.get(key, sub) != sub:
                raise _fail(origin, f"gives the nested alias {_show(name)} to both "
                                    f"{canon}.{aliases[key]} and {canon}.{sub}")
            aliases[key] = sub
    return NestedFields(aliases, {sub: declared.class_ for sub, declared in spec.items()})


# ---------------------------------------------------------------------------------------------
# Standardizing one record


def standardize(
    record: Mapping[Any, Any], mapping: FieldMapping, zone: tzinfo
) -> tuple[dict[str, object], list[FieldProblem]]:
    """Rename, coerce and value-map one raw record. Never raises.

    Returns the canonical fields that arrived (in mapping order; missing or unreadable ones are
    ``None``) plus ``extra``: a dict of the fields no alias matched, and of source fields that
    lost a ``duplicate_field`` contest, under their original keys. Naive times are read in
    ``zone``.
    """
    try:
        items = list(record.items())
    except Exception:  # noqa: BLE001 (a broken mapping is data, not a crash)
        return {EXTRA: {}}, [FieldProblem("wrong_type", "", "the record is not a readable mapping")]
    plan = _plan_of(items, mapping)
    if plan is None:
        return _standardize_items(items, mapping, zone)
    reads, extra_at = plan
    problems: list[FieldProblem] = []
    out: dict[str, object] = {}
    for canon, kind, index, time_format, table in reads:
        value, problem = _read_value(canon, kind, items[index][1], zone, time_format, table)
        if problem is not None:
            problems.append(problem)
        out[canon] = value
    out[EXTRA] = {items[i][0]: items[i][1] for i in extra_at}
    return out, problems


def _read_value(
    canon: str, kind: str, value: object, zone: tzinfo, time_format: str | None,
    table: dict[str, str] | None,
) -> tuple[object, FieldProblem | None]:
    """One canonical field's value from its only source value: coerced, then value-mapped."""
    if type(value) is str and value.isascii():
        if kind == "string":
            # _coerce_safely's result for ASCII text (NFKC leaves it as it is), inline
            value = value.strip() or None
            if value is not None and table is not None:
                value = table.get(value.casefold(), value)
            return value, None
        if kind == "time" and ":" in value and (time_format is None
                                                or time_format in TIME_FORMATS):
            # _to_time's result for ISO 8601 and "YYYY-MM-DD HH:MM[:SS]" text, inline; other
            # text (and these when unreadable) go the whole way
            moment = _iso_time(value.strip(), zone)
            if moment is not None:
                return moment, None
    value, problem = _coerce_safely(canon, kind, value, zone, time_format)
    if problem is None and table is not None and isinstance(value, str):
        value = table.get(normalize_value(value), value)
    return value, problem


_READ_CACHE_MAX = 65_536


def field_reader(
    mapping: FieldMapping, keys: tuple[Any, ...], fields: Collection[str], zone: tzinfo
) -> Callable[[Mapping[Any, Any]], dict[str, object]] | None:
    """For records with exactly ``keys``: a function giving the canonical ``fields`` of a
    record as :func:`standardize` gives them for the record restricted to the keys that map
    to ``fields`` (what a reader of a few fields of many rows of one file needs: an import
    reads user id, time and ids of every row). Text values of text fields are read once per
    distinct value. None when a key is not text or two keys map to one of ``fields`` (then
    only :func:`standardize` decides)."""
    steps = _field_steps(mapping, keys, fields)
    if steps is None:
        return None
    seen: dict[tuple[str, str], object] = {}

    def read(record: Mapping[Any, Any]) -> dict[str, object]:
        out: dict[str, object] = {}
        for canon, kind, key, time_format, table in steps:
            value = record[key]
            if kind == "string" and type(value) is str:
                known = seen.get((canon, value), seen)
                if known is seen:
                    known = _read_value(canon, kind, value, zone, time_format, table)[0]
                    if len(seen) >= _READ_CACHE_MAX:
                        seen.clear()
                    seen[(canon, value)] = known
                out[canon] = known
            else:
                out[canon] = _read_value(canon, kind, value, zone, time_format, table)[0]
        return out

    return read


def _field_steps(
    mapping: FieldMapping, keys: tuple[Any, ...], fields: Collection[str]
) -> tuple[tuple[str, str, str, str | None, dict[str, str] | None], ...] | None:
    """Per canonical field of ``fields`` that ``keys`` feed (mapping order): ``(canonical
    name, type, raw key, time format, value table)``; None when :func:`standardize` alone
    decides (a key that is not text, two keys for one of ``fields``)."""
    picked = []
    for key in keys:
        if type(key) is not str:
            return None
        if mapping.canonical_name(key) in fields:
            picked.append(key)
    plan = _plan_of([(key, None) for key in picked], mapping)
    if plan is None:
        return None
    return tuple((canon, kind, picked[index], time_format, table)
                 for canon, kind, index, time_format, table in plan[0])


_TEXT_OR_NONE = frozenset((str, type(None)))
_MUTABLE_KINDS = frozenset(("list", "json"))
"""Types read into values a caller could change: read per cell, never shared between rows."""


def column_reader(
    mapping: FieldMapping, keys: tuple[Any, ...], fields: Collection[str], zone: tzinfo
) -> Callable[[Sequence[Mapping[Any, Any]]], dict[str, list[object]]] | None:
    """:func:`field_reader` by columns: for records that all have exactly ``keys``, a function
    giving per canonical field of ``fields`` the list of its values, record by record, equal
    to ``[field_reader(...)(record)[field] for record in records]``. A column of text (or
    missing) cells, such as every column of a CSV file, reads each distinct cell once (values
    of the types ``list`` and ``json`` excepted: they are not shared); other columns cell by
    cell (``1``, ``1.0`` and ``True`` are equal keys of a dict, not equal
    values). None when :func:`field_reader` would be None."""
    steps = _field_steps(mapping, keys, fields)
    if steps is None:
        return None

    def read(records: Sequence[Mapping[Any, Any]]) -> dict[str, list[object]]:
        out: dict[str, list[object]] = {}
        for canon, kind, key, time_format, table in steps:
            column = [record[key] for record in records]
            if kind not in _MUTABLE_KINDS and set(map(type, column)) <= _TEXT_OR_NONE:
                distinct = dict.fromkeys(column)
                if len(distinct) < len(column):
                    for value in distinct:
                        distinct[value] = _read_value(canon, kind, value, zone, time_format,
                                                      table)[0]
                    out[canon] = [distinct[value] for value in column]
                    continue
            out[canon] = [_read_value(canon, kind, value, zone, time_format, table)[0]
                          for value in column]
        return out

    return read


_PLANS_MAX = 512
"""Reading plans kept per mapping (distinct key sets seen); past it the cache starts over."""
_PLAN_KEY_CHARS_MAX = 4096
"""Plans are kept only for key sets of at most this many characters in all, so the cache holds
at most ~2 M characters of keys however large the records a producer sends."""
_Plan = tuple[tuple[tuple[str, str, int, "str | None", "dict[str, str] | None"], ...],
              tuple[int, ...]]


def _plan_of(items: list[tuple[Any, Any]], mapping: FieldMapping) -> _Plan | None:
    """How to read records with exactly these keys in this order: per canonical field present
    (in mapping order) its type, the position of its item, its time format and value table;
    and the positions of the items no alias matches (``extra``). None when the general path
    must decide: a key that is not text, or two keys for one canonical field (a contest for
    the first non-empty value, reported as ``duplicate_field``). A record read by its plan
    gives what :func:`_standardize_items` gives (tests/unit/test_mapping_plan.py)."""
    keys = tuple(key for key, _ in items)
    for key in keys:
        if type(key) is not str:
            return None
    plans = mapping.plans
    plan = plans.get(keys)
    if plan is None:
        plan = _make_plan(keys, mapping)
        if sum(map(len, keys)) <= _PLAN_KEY_CHARS_MAX:  # larger key sets are not kept
            if len(plans) >= _PLANS_MAX:
                plans.clear()
            plans[keys] = plan
    return plan or None


def _make_plan(keys: tuple[str, ...], mapping: FieldMapping) -> _Plan | tuple[()]:
    at: dict[str, int] = {}
    extra_at = []
    for index, key in enumerate(keys):
        canon = mapping.canonical_name(key)
        if canon is None:
            extra_at.append(index)
        elif canon in at:
            return ()  # a contest: the general path
        else:
            at[canon] = index
    reads = tuple(
        (canon, kind, at[canon], mapping.time_formats.get(canon),
         mapping.values.get(canon) or None)
        for canon, kind in mapping.types.items() if canon in at
    )
    return reads, tuple(extra_at)


def _standardize_items(
    items: list[tuple[Any, Any]], mapping: FieldMapping, zone: tzinfo
) -> tuple[dict[str, object], list[FieldProblem]]:
    """:func:`standardize` of a record's items, by the general path (any keys)."""
    problems: list[FieldProblem] = []
    chosen: dict[str, object] = {}
    names: dict[str, list[str]] = {}
    winner: dict[str, Any] = {}
    extra: dict[Any, Any] = {}
    for key, value in items:
        canon = _canonical_of(key, mapping)
        if canon is None:
            extra[key] = value
            continue
        names.setdefault(canon, []).append(_key_text(key))
        if canon not in chosen:
            chosen[canon], winner[canon] = value, key
        elif _is_empty(chosen[canon]) and not _is_empty(value):
            extra[winner[canon]] = chosen[canon]
            chosen[canon], winner[canon] = value, key
        else:
            extra[key] = value
    out: dict[str, object] = {}
    for canon, kind in mapping.types.items():
        if canon not in chosen:
            continue
        if len(names[canon]) > 1:
            sources = ", ".join(_show(n) for n in names[canon])
            problems.append(
                FieldProblem(
                    "duplicate_field",
                    canon,
                    f"source fields {sources} all map to {canon}; the first non-empty one was used",
                )
            )
        value, problem = _coerce_safely(
            canon, kind, chosen[canon], zone, mapping.time_formats.get(canon)
        )
        if problem is not None:
            problems.append(problem)
        elif isinstance(value, str):
            table = mapping.values.get(canon)
            if table:
                value = table.get(normalize_value(value), value)
        out[canon] = value
    out[EXTRA] = extra
    return out, problems


def _key_text(key: object) -> str:
    return key if isinstance(key, str) else repr(key)


def _canonical_of(key: object, mapping: FieldMapping) -> str | None:
    return mapping.canonical_name(_key_text(key))


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _coerce_safely(
    canon: str, kind: str, value: object, zone: tzinfo, time_format: str | None = None
) -> tuple[object, FieldProblem | None]:
    if _is_empty(value):
        return None, None
    try:
        if kind == "time":
            result, reason = _to_time(value, zone, time_format)
        else:
            result, reason = _COERCERS[kind](value, zone)
    except Exception:  # noqa: BLE001 (whatever the value, it becomes a reported problem)
        result, reason = None, f"could not be read as {kind} ({type(value).__name__})"
    if reason is None:
        return result, None
    if reason == _AMBIGUOUS_TIME:
        return None, FieldProblem("ambiguous_time", canon, f"{canon}: {reason}")
    code = "bad_time" if kind == "time" else "wrong_type"
    return None, FieldProblem(code, canon, f"{canon}: {reason}")


# Each coercer returns (value, None) or (None, reason); reasons name types, never values.

_Coerced = tuple[object, str | None]

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
_CURRENCY_PREFIX = re.compile(r"^(?:¥|rmb|cny)\s*", re.IGNORECASE)
_CURRENCY_SUFFIX = re.compile(r"\s*(?:元|圆|块|塊|rmb|cny|yuan)$", re.IGNORECASE)
_COUNT_SUFFIX = re.compile(
    r"\s*(?:秒钟|秒鐘|秒|s|sec|secs|seconds?|分钟|分鐘|分|min|mins|minutes?|次|个|個|件|星)$",
    re.IGNORECASE,
)


def _number_text(text: str, money: bool) -> Decimal | None:
    """Decimal of a numeric text with the affixes we accept, or None."""
    text = _clean_text(text)
    if len(text) > _MAX_NUMBER_TEXT:
        return None
    sign = ""
    if money:
        if text[:1] in "+-" and text[1:2] and not text[1:2].isdigit():
            sign, text = text[0], text[1:].lstrip()
        text = _CURRENCY_SUFFIX.sub("", _CURRENCY_PREFIX.sub("", text))
    else:
        text = _COUNT_SUFFIX.sub("", text)
    text = text.strip()
    if _GROUPED.fullmatch(text):
        text = text.replace(",", "")
    if not _NUMBER.fullmatch(text):
        return None
    number = Decimal(text)
    return -number if sign == "-" else number


def _to_decimal(value: object, zone: tzinfo) -> _Coerced:
    if isinstance(value, bool):
        return None, "expected a decimal number, got a boolean"
    if isinstance(value, int | float | Decimal):
        number = float(value)
    elif isinstance(value, str):
        parsed = _number_text(value, money=True)
        if parsed is None:
            return None, "expected a decimal number, got text that is not one"
        number = float(parsed)
    else:
        return None, f"expected a decimal number, got {type(value).__name__}"
    if not math.isfinite(number):
        return None, "expected a finite decimal number"
    return number, None


def _to_integer(value: object, zone: tzinfo) -> _Coerced:
    if isinstance(value, bool):
        return None, "expected a whole number, got a boolean"
    if isinstance(value, int):
        number: Decimal | None = Decimal(value)
    elif isinstance(value, float | Decimal):
        if not math.isfinite(value):
            return None, "expected a whole number, got a non-finite number"
        number = Decimal(value)
    elif isinstance(value, str):
        number = _number_text(value, money=False)
        if number is None:
            return None, "expected a whole number, got text that is not one"
    else:
        return None, f"expected a whole number, got {type(value).__name__}"
    if abs(number) >= _INT_LIMIT:
        return None, "expected a whole number within 64 bits"
    if number != number.to_integral_value():
        return None, "expected a whole number, got a fraction"
    return int(number), None


_TRUE = frozenset({"true", "t", "yes", "y", "1", "是", "有", "对", "對"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "否", "无", "無", "不是"})


def _to_boolean(value: object, zone: tzinfo) -> _Coerced:
    if isinstance(value, bool):
        return value, None
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value), None
    if isinstance(value, str):
        text = normalize_value(value)
        if text in _TRUE:
            return True, None
        if text in _FALSE:
            return False, None
        return None, "expected a yes/no value, got text that is not one"
    return None, f"expected a yes/no value, got {type(value).__name__}"


_AMBIGUOUS_TIME = (
    "a bare number is not read as a time unless the mapping declares its format "
    f"(time_formats: {' | '.join(TIME_FORMATS)})"
)


def _to_time(value: object, zone: tzinfo, time_format: str | None = None) -> _Coerced:
    """A time value: text forms always, bare numbers only as ``time_format`` declares them
    (see :mod:`custpulse.schemas.times`); naive values are wall-clock times in ``zone``."""
    if isinstance(value, str):
        value = _clean_text(value)
    elif not isinstance(value, int | float | datetime | date) or isinstance(value, bool):
        return None, f"expected a time, got {type(value).__name__}"
    moment, why = read_time(value, zone, time_format)
    if why == AMBIGUOUS:
        return None, _AMBIGUOUS_TIME
    if moment is None or moment.utcoffset() is None:
        return None, (
            "time could not be read (use 'YYYY-MM-DD HH:MM:SS', ISO 8601, or declare the "
            "format of numbers under time_formats)"
        )
    if not 1 < moment.year < 9999:  # offsets are under a day: only these years can overflow
        moment.astimezone(UTC)  # raises (-> reported) when the time has no UTC equivalent
    return moment, None


def _iso_time(text: str, zone: tzinfo) -> datetime | None:
    """``text`` read by :func:`datetime.fromisoformat` (naive: in ``zone``) when that is what
    :func:`_to_time` would give, else None (then it decides)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if 1 < moment.year < 9999 and moment.utcoffset() is not None:
        return moment
    return None


def _to_list(value: object, zone: tzinfo) -> _Coerced:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None, "expected a list, got text that is not JSON"
    if isinstance(value, list | tuple):
        return list(value), None
    return None, f"expected a list, got {type(value).__name__}"


def _to_json(value: object, zone: tzinfo) -> _Coerced:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None, "expected a JSON object or list, got text that is not JSON"
    if isinstance(value, dict | list):
        return value, None
    if isinstance(value, tuple):
        return list(value), None
    return None, f"expected a JSON object or list, got {type(value).__name__}"


def _to_string(value: object, zone: tzinfo) -> _Coerced:
    if isinstance(value, str):
        text = _clean_text(value)
        return (text or None), None
    if isinstance(value, bool):
        return None, "expected text, got a boolean"
    if isinstance(value, int):
        return str(value), None
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            return None, "expected text, got a non-finite number"
        return (str(int(value)) if value == int(value) else str(value)), None
    return None, f"expected text, got {type(value).__name__}"


_COERCERS = {
    "string": _to_string,
    "decimal": _to_decimal,
    "integer": _to_integer,
    "boolean": _to_boolean,
    "time": _to_time,
    "list": _to_list,
    "json": _to_json,
}
