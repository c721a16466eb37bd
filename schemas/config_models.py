"""The YAML layer: pydantic models of what custpulse's three configuration files may say.

* field mappings (``schemas/mappings/<source>.yaml``, and a user file merged over them):
  :class:`SectionYaml` for one source, :class:`MappingFileYaml` for a user file;
* the tag library (``schemas/segments/default.yaml``, or a user file instead): :class:`LibraryYaml`;
* campaign triggers (``schemas/campaigns/default.yaml``, or a user file instead):
  :class:`CampaignsYaml`.

The models hold a file's raw shape, checked: every mapping in a file refuses keys it does not
know (naming the ones it does), and YAML types are taken strictly: a YAML boolean is not a number
and a number is not text, except for the names and values a mapping file lists (the alias ``12``
is the text ``"12"``). A check across the fields of one file is a model validator. The loaders
(:mod:`custpulse.schemas.mapping`, :mod:`custpulse.schemas.segments`,
:mod:`custpulse.processors.campaigns`) call :func:`validate` and build their frozen dataclasses
from the models; the checks that need more than one file (a user mapping merged over a shipped
one) they make themselves, in the same one-sentence form.

Every problem of a failed validation is reported by :func:`config_error`: one sentence naming the
file, the place (``groups.value.rules[2].criteria``) and what is wrong there, never echoing more
of the file than one short value.

>>> def fail(origin, problem):
...     return ConfigError(f"Campaign file {origin} {problem}.")
>>> validate(CampaignsYaml, {"version": 1, "holdout_share": 1, "triggers": []}, "c.yaml", fail)
Traceback (most recent call last):
...
custpulse.errors.ConfigError: Campaign file c.yaml has 1 at holdout_share, which is not below 1.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    RootModel,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from custpulse.errors import ConfigError
from custpulse.schemas.times import TIME_FORMATS
from custpulse.schemas.yamlfiles import Fail

# ---------------------------------------------------------------------------------------------
# What the files may name

SOURCES = ("customers", "behavior", "orders", "tickets")
"""The sources a mapping file maps."""

TYPES = ("string", "decimal", "integer", "boolean", "time", "list", "json")
"""Type names a mapping may give a canonical field."""

CLASSES = ("identifier", "personal", "categorical", "numeric", "time", "free_text", "records")
"""Data classes a mapping gives a field: what of its value may leave ingest (docs/contract.md,
"Personal data policy"). ``identifier``: an id of a thing (tokenized if it holds personal data);
``personal``: display mask plus keyed token; ``categorical``: a category, scrubbed; ``numeric``;
``time``; ``free_text``: carried scrubbed (only fields declared so); ``records``: a list of
objects whose declared keys (``nested``) are carried by their own classes, the rest dropped."""

_NESTED_CLASSES = ("identifier", "personal", "categorical", "numeric", "free_text")

EXTRA = "extra"
"""Key of the standardized output that holds the fields no alias matched (never dropped); no
mapping may declare a field of that name."""

PROFILE_FIELDS = (
    "orders_total", "monetary_total", "first_order_at", "last_order_at",
    "frequency_30d", "frequency_90d", "frequency_365d",
    "monetary_30d", "monetary_90d", "monetary_365d",
    "avg_order_value", "mean_interpurchase_days", "returns_total", "refunds_total",
    "return_rate", "recency_days", "last_seen_at", "inactive_days", "visits_7d", "visits_30d",
    "active_channels", "funnel_latest_step", "tickets_total", "open_complaints",
    "complaints_total", "satisfaction_mean", "handling_minutes_mean", "region", "member_level",
    "industry", "register_date", "customer_type", "company_size", "days_since_register",
)
"""Fields of the profile view that criteria may read (units: see processors/segments.py)."""

OPS = ("<", "<=", ">", ">=", "==", "!=", "in", "not_in", "is_null", "not_null")
"""The comparisons of a tag library condition."""

GROUPS = ("value", "activity")
"""The exclusive groups, in evaluation order: value -> segment, activity -> activity_segment."""

TAG_PREFIX = "tag:"
"""A campaign trigger's group ``tag:<name>`` is the on/off segment of one custom tag."""

_SNAKE = re.compile(r"[a-z][a-z0-9_]*")

# ---------------------------------------------------------------------------------------------
# Reporting: the one way a file's problem becomes a ConfigError

_KEY = "[key]"
"""The last place pydantic names when a mapping's key (not its value) is refused."""
_TAGS = frozenset(
    {"<one source>", "<several sources>", "<always>", "<all>", "<any>", "<persisted>",
     "<condition>"}
)
"""The tags of the discriminated unions below: pydantic names them as places, the file has none."""
_MAPPING_ERRORS = ("dict_type", "model_type", "model_attributes_type")
_REASONS = {
    "string_type": "is not text",
    "int_type": "is not a whole number",
    "int_from_float": "is not a whole number",
    "float_type": "is not a number",
    "bool_type": "is not true or false",
    "list_type": "is not a list",
    "dict_type": "is not a mapping",
    "model_type": "is not a mapping",
    "model_attributes_type": "is not a mapping",
    "too_short": "has fewer than {min_length} items",
    "greater_than_equal": "is below {ge}",
    "greater_than": "is not above {gt}",
    "less_than": "is not below {lt}",
    "less_than_equal": "is above {le}",
    "finite_number": "is not a finite number",
}
"""Pydantic's error types as the clause after "has <value> at <place>, which"."""

_M = TypeVar("_M", bound=BaseModel)
_V = TypeVar("_V")


def validate(model: type[_M], data: Any, origin: str, fail: Fail) -> _M:
    """``data`` (a parsed YAML file) as ``model``, or the :func:`config_error` of its problem."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise config_error(err, data, origin, fail) from None


def config_error(err: ValidationError, data: Any, origin: str, fail: Fail) -> ConfigError:
    """The first problem of a failed validation of ``data``, in the sentence ``fail`` makes of
    ``origin`` and a problem: what is wrong, and where in the file (the key path, and the name of
    the rule or trigger it is in).

    Problems are "has <value> at <place>, which <reason>" (a type or a bound), "is missing the
    key <k> at <place>", or a validator's own words (:func:`refuse`); ``value`` is shown only
    when it is short and not a list or mapping.
    """
    detail = err.errors(include_url=False)[0]
    ctx = detail.get("ctx") or {}
    loc = tuple(part for part in detail["loc"] if part not in _TAGS) + tuple(ctx.get("at", ()))
    kind, given = detail["type"], detail.get("input")
    if kind == "missing":
        return fail(origin, f"is missing the key {_show(loc[-1])} at {_where(loc[:-1], data)}")
    if kind == "extra_forbidden":
        return fail(origin, f"has the unknown key {_show(loc[-1])} at {_where(loc[:-1], data)}")
    if not loc and kind in _MAPPING_ERRORS:
        if given is None:
            return fail(origin, "is empty (it must be a YAML mapping at the top level)")
        return fail(origin, f"must be a YAML mapping at the top level, not {_shown(given)}")
    as_key = " as a key" if loc and loc[-1] == _KEY else ""
    where = _where(loc[:-2] if as_key else loc, data)
    if "problem" in ctx:
        problem = ctx["problem"]
        if "{where}" in problem:
            text = problem.replace("{where}", where.path) + where.note(ctx.get("hint", ""))
        else:
            text = f"{problem}{as_key} at {where.path}{where.note(ctx.get('hint', ''))}"
        return fail(origin, text)
    reason = ctx.get("reason") or _reason(kind, ctx, detail["msg"])
    return fail(origin, f"has {_shown(given)}{as_key} at {where}, which {reason}")


def _reason(kind: str, ctx: dict[str, Any], message: str) -> str:
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    template = _REASONS.get(kind)
    if template is None:
        return f"is not valid here ({message.rstrip('.')})"
    bounds = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in ctx.items()}
    return template.format(**bounds)


def refuse(problem: str, hint: str = "", at: tuple[str | int, ...] = ()) -> PydanticCustomError:
    """A validator's problem, said of the file: ``problem`` ("has the unknown op '=<'") is
    followed by the place, or has it where it says ``{where}``; ``hint`` follows in brackets;
    ``at`` is the place of the problem below the validated value (a key, an index, ...)."""
    return PydanticCustomError("config", "{problem}", {"problem": problem, "hint": hint, "at": at})


def unfit(reason: str) -> PydanticCustomError:
    """A validator's refusal of the value it was given: "has <value> at <place>, which
    <reason>"."""
    return PydanticCustomError("config", "{reason}", {"reason": reason})


class _Where:
    """A place in a file: the key path (``triggers[0].when``, or "the top level") and the name
    of the rule or trigger it lies in, if any."""

    def __init__(self, path: str, item: str) -> None:
        self.path, self.item = path, item

    def __str__(self) -> str:
        return self.path + self.note()

    def note(self, hint: str = "") -> str:
        notes = [text for text in (self.item, hint) if text]
        return f" ({'; '.join(notes)})" if notes else ""


def _where(loc: tuple[Any, ...], data: Any) -> _Where:
    """``loc`` (pydantic's place of an error) as a place in ``data``, the parsed file."""
    path, item, item_at, node, key = "", "", -1, data, None
    for depth, part in enumerate(loc):
        if isinstance(node, list) and isinstance(part, int) and not isinstance(part, bool):
            path += f"[{part}]"
            node = node[part] if -len(node) <= part < len(node) else None
            name = node.get("name") if isinstance(node, dict) else None
            if isinstance(name, str) and isinstance(key, str):  # rules[2] is "rule 'churned'"
                item, item_at = f"{key.removesuffix('s')} {_show(name)}", depth
        else:
            named = isinstance(part, str) and part.isidentifier()
            path += (f".{part}" if path else part) if named else f"[{_show(part)}]"
            node = node.get(part) if isinstance(node, dict) else None
            key = part
    if loc[item_at + 1 :] == ("name",):
        item = ""  # the problem is the item's name itself
    return _Where(path or "the top level", item)


def _show(value: object) -> str:
    """A short value as written (cut with "…", which cannot read as a sentence's end)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _shown(value: Any) -> str:
    """A value as a problem names it: short scalars as written, anything larger by its kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list | tuple):
        return "a list" if value else "an empty list"
    if isinstance(value, str | int | float):
        return _show(value)
    return f"a {type(value).__name__}"


# ---------------------------------------------------------------------------------------------
# Shared shapes


class _Strict(BaseModel):
    """A mapping of a file: unknown keys are refused naming the known ones (``extra='forbid'``,
    worded here), values are taken with strict types, and a validated model is frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.model_config.get("extra") == "forbid":
            known = [field.alias or name for name, field in cls.model_fields.items()]
            for key in data:
                if key not in known:
                    raise refuse(f"has the unknown key {_show(key)}",
                                 f"allowed: {', '.join(known)}")
        return data


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _non_blank(value: str) -> str:
    if not value.strip():
        raise unfit("is blank")
    return value


def _trimmed(value: str) -> str:
    return _non_blank(value).strip()


Text = Annotated[StrictStr, AfterValidator(_non_blank)]
"""Text that is not blank, kept as written."""
Trimmed = Annotated[StrictStr, AfterValidator(_trimmed)]
"""Text that is not blank, without its leading and trailing white space."""
Version = Annotated[StrictInt, Field(ge=1)]
"""A file's version: a whole number, 1 or more."""


def _one_of(allowed: tuple[str, ...], what: str, hint: str = "") -> Callable[[Any], Any]:
    """A validator of one of ``allowed``: anything else "has the unknown <what> <value>"."""

    def check(value: Any) -> Any:
        if not isinstance(value, str) or value not in allowed:
            raise refuse(f"has the unknown {what} {_show(value)}",
                         hint or f"use one of {', '.join(allowed)}")
        return value

    return check


def _or_empty(value: Any) -> Any:
    """A key with nothing after it (YAML null) as an empty mapping."""
    return {} if value is None else value


# ---------------------------------------------------------------------------------------------
# Field mappings


def _listed_text(value: Any) -> Any:
    """A name or value a mapping lists: text, or a bare YAML number read as its text; a YAML
    boolean (``yes``, ``on``) is refused: it was meant as text."""
    if isinstance(value, bool):
        raise refuse(f"has the YAML boolean {_shown(value)}", "quote it if it is text")
    return str(value) if isinstance(value, int | float) else value


def _field_name(value: Any) -> Any:
    if not isinstance(value, str) or not _SNAKE.fullmatch(value):
        raise refuse(f"has the field name {_show(value)}",
                     "canonical names are lowercase ASCII snake_case")
    if value == EXTRA:
        raise refuse(f"uses the reserved name {EXTRA!r}", "it holds the fields no alias matched")
    return value


def _as_list(value: Any) -> Any:
    """A key with nothing after it as no names, and one name as a list of it."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


ListedText = Annotated[StrictStr, BeforeValidator(_listed_text)]
FieldName = Annotated[str, BeforeValidator(_field_name)]
"""A canonical field name: lowercase ASCII snake_case, not ``extra``."""
Aliases = Annotated[list[ListedText], BeforeValidator(_as_list)]
FieldNames = Annotated[list[FieldName], BeforeValidator(_as_list)]
Table = Annotated[dict[FieldName, _V], BeforeValidator(_or_empty)]
"""A section keyed by canonical field name (an empty one may be left empty in YAML)."""


class NestedKeyYaml(_Strict):
    """A declared key of the objects of a ``records`` field: its class and its source names."""

    class_: Annotated[str, BeforeValidator(_one_of(_NESTED_CLASSES, "nested class"))] = Field(
        alias="class"
    )
    aliases: Aliases = []


class IdentityYaml(_Strict):
    """A source's business key (see :mod:`custpulse.processors.identity`); a part that a file
    gives replaces the default one, also when given empty (``model_fields_set`` says which)."""

    key: FieldNames = []
    state: FieldNames = []


class SectionYaml(_Strict):
    """One source's mapping: a shipped ``schemas/mappings/<source>.yaml``, a user file for one
    source, or one source's section of a user file for several."""

    version: Version | None = None
    source: Annotated[str, BeforeValidator(_one_of(SOURCES, "source"))] | None = None
    fields: Table[Aliases] = {}
    types: Table[Annotated[str, BeforeValidator(_one_of(TYPES, "type"))]] = {}
    values: Table[Annotated[dict[ListedText, ListedText], BeforeValidator(_or_empty)]] = {}
    time_formats: Table[Annotated[str, BeforeValidator(_one_of(TIME_FORMATS, "time format"))]] = {}
    identity: Annotated[IdentityYaml, BeforeValidator(_or_empty)] = IdentityYaml()
    classes: Table[Annotated[str, BeforeValidator(_one_of(CLASSES, "class"))]] = {}
    nested: Table[dict[FieldName, NestedKeyYaml]] = {}


class SourcesYaml(_Strict):
    """A user mapping file of several sources: a section per source (an empty one maps nothing
    more), and the version of the sections that give none."""

    version: Version | None = None
    customers: SectionYaml | None = None
    behavior: SectionYaml | None = None
    orders: SectionYaml | None = None
    tickets: SectionYaml | None = None

    @model_validator(mode="after")
    def _sections_map_their_source(self) -> SourcesYaml:
        for source in SOURCES:
            section = getattr(self, source)
            if section is not None and section.source not in (None, source):
                raise refuse(f"has its {source} section say source: {_show(section.source)}",
                             at=(source, "source"))
        return self


def _mapping_file_kind(data: Any) -> str:
    several = isinstance(data, dict) and any(key in SOURCES for key in data)
    return "<several sources>" if several else "<one source>"


class MappingFileYaml(
    RootModel[
        Annotated[
            Annotated[SectionYaml, Tag("<one source>")]
            | Annotated[SourcesYaml, Tag("<several sources>")],
            Discriminator(_mapping_file_kind),
        ]
    ]
):
    """A user mapping file: one source (top-level ``source:``, which may be left out when the
    caller names the source) or several (top-level keys customers/behavior/orders/tickets)."""


# ---------------------------------------------------------------------------------------------
# The tag library


def _snake_name(value: Any) -> Any:
    if not isinstance(value, str) or not _SNAKE.fullmatch(value):
        raise refuse(f"has the name {_show(value)}", "use snake_case")
    return value


def _score_name(value: Any) -> Any:
    if not isinstance(value, str) or not _SNAKE.fullmatch(value) or value == "score":
        raise refuse(f"has a score named {_show(value)}", "use snake_case, not 'score'")
    return value


def _days(value: Any) -> Any:
    if not _is_number(value) or value < 0:
        raise unfit("is not a number of days (0 or more)")
    return value


def _value_fits(op: str, value: Any, given: bool) -> None:
    """Refuse a condition's value that does not fit its op: none for is_null/not_null, a
    non-empty list for in/not_in, a number, text or boolean for ==/!=, else a number."""
    if op in ("is_null", "not_null"):
        fits = not given
    elif op in ("in", "not_in"):
        fits = isinstance(value, list) and bool(value)
    elif op in ("==", "!="):
        fits = _is_number(value) or isinstance(value, str | bool)
    else:
        fits = _is_number(value)
    if not fits:
        raise refuse(f"has a value that does not fit op {op!r}", at=("value",) if given else ())


Op = Annotated[str, BeforeValidator(_one_of(OPS, "op", f"use one of {' '.join(OPS)}"))]
ProfileField = Annotated[
    str,
    BeforeValidator(_one_of(PROFILE_FIELDS, "field",
                            "known fields: see PROFILE_FIELDS in custpulse.schemas.segments")),
]


class ConditionYaml(_Strict):
    """Leaf ``{field, op, value}``."""

    field: ProfileField
    op: Op
    value: Any = None

    @model_validator(mode="after")
    def _fits(self) -> ConditionYaml:
        _value_fits(self.op, self.value, "value" in self.model_fields_set)
        return self


class PersistedForYaml(_Strict):
    segment: StrictStr
    for_days: Annotated[int | float, BeforeValidator(_days)] = 0


class PersistedYaml(_Strict):
    """``{persisted: {segment, for_days}}``: the value segment, held for at least that long."""

    persisted: PersistedForYaml


class AllYaml(_Strict):
    all: list[CriteriaYaml] = Field(min_length=1)


class AnyYaml(_Strict):
    any: list[CriteriaYaml] = Field(min_length=1)


def _criteria_kind(node: Any) -> str | None:
    if isinstance(node, str) and node == "always":
        return "<always>"
    if isinstance(node, dict):
        for key in ("all", "any", "persisted"):
            if key in node:
                return f"<{key}>"
        if "field" in node or "op" in node:
            return "<condition>"
    return None


def _criteria_error(alternatives: str) -> Discriminator:
    return Discriminator(
        _criteria_kind, custom_error_type="config", custom_error_message="{problem}",
        custom_error_context={"problem": f"needs {alternatives} or {{field, op, value}}"},
    )


_CRITERIA = (
    Annotated[AllYaml, Tag("<all>")]
    | Annotated[AnyYaml, Tag("<any>")]
    | Annotated[PersistedYaml, Tag("<persisted>")]
    | Annotated[ConditionYaml, Tag("<condition>")]
)
CriteriaYaml = Annotated[_CRITERIA, _criteria_error("all, any, persisted")]
"""Criteria below a rule's own: all, any, persisted or a condition."""
RuleCriteriaYaml = Annotated[
    Annotated[Literal["always"], Tag("<always>")] | _CRITERIA,
    _criteria_error("always, all, any, persisted"),
]
"""A rule's criteria: ``always`` (the catch-all) or criteria."""
AllYaml.model_rebuild()
AnyYaml.model_rebuild()


class RuleYaml(_Strict):
    name: Annotated[str, BeforeValidator(_snake_name)]
    definition: Trimmed
    definition_zh: Trimmed | None = None
    criteria: RuleCriteriaYaml


class _RulesYaml(_Strict):
    """Rules with their written definition and update cadence; in an ``exclusive`` group the
    first match wins, so only the last rule is (and must be) the catch-all."""

    exclusive: ClassVar[bool] = True
    definition: Trimmed
    definition_zh: Trimmed
    cadence: Trimmed
    rules: list[RuleYaml]

    @field_validator("rules")
    @classmethod
    def _catch_all_last(cls, rules: list[RuleYaml]) -> list[RuleYaml]:
        names: set[str] = set()
        for index, rule in enumerate(rules):
            name, last = _show(rule.name), index == len(rules) - 1
            if rule.name in names:
                raise refuse(f"has two rules named {name}")
            names.add(rule.name)
            if rule.criteria == "always" and not cls.exclusive:
                raise refuse(f"has a tag {name} that is always on", at=(index, "criteria"))
            if rule.criteria == "always" and not last:
                raise refuse(f"has the catch-all rule {name} before the end of {{where}}",
                             "rules after it can never match")
            if cls.exclusive and last and rule.criteria != "always":
                raise refuse("has no catch-all in {where}",
                             "its last rule must say criteria: always")
        return rules


class GroupYaml(_RulesYaml):
    """An exclusive group (``value``, ``activity``)."""

    rules: list[RuleYaml] = Field(min_length=1)


class TagsYaml(_RulesYaml):
    """The custom tags: independent rules, a customer may carry several."""

    exclusive: ClassVar[bool] = False


class GroupsYaml(_Strict):
    value: GroupYaml
    activity: GroupYaml


class BandYaml(_Strict):
    """One band of a score: its condition on the score's field, and the score it gives."""

    score: StrictInt
    op: Op
    value: Any = None

    @model_validator(mode="after")
    def _fits(self) -> BandYaml:
        _value_fits(self.op, self.value, "value" in self.model_fields_set)
        return self


class ScoreYaml(_Strict):
    field: ProfileField
    definition: Trimmed
    definition_zh: Trimmed
    cadence: Trimmed
    bands: list[BandYaml] = Field(min_length=1)
    default: StrictInt


class LibraryYaml(_Strict):
    """A tag library file; ``version`` is the rule_version stamped on every decision."""

    version: Version
    groups: GroupsYaml
    scores: Annotated[
        dict[Annotated[str, BeforeValidator(_score_name)], ScoreYaml], BeforeValidator(_or_empty)
    ] = {}
    tags: TagsYaml | None = None

    @model_validator(mode="after")
    def _persisted_segments_exist(self) -> LibraryYaml:
        segments = {rule.name for rule in self.groups.value.rules}
        for at, persisted in self._persisted():
            if persisted.segment not in segments:
                raise refuse(f"has a persisted condition on {_show(persisted.segment)}",
                             "it is not a rule of group value", at=at)
        return self

    def _persisted(self) -> Iterator[tuple[tuple[str | int, ...], PersistedForYaml]]:
        places = [(("groups", name), getattr(self.groups, name)) for name in GROUPS]
        for at, group in [*places, (("tags",), self.tags)]:
            for index, rule in enumerate(group.rules if group is not None else ()):
                yield from _persisted_in(rule.criteria, (*at, "rules", index, "criteria"))


def _persisted_in(node: Any, at: tuple[str | int, ...]) -> Iterator[tuple[Any, PersistedForYaml]]:
    if isinstance(node, AllYaml | AnyYaml):
        key = "all" if isinstance(node, AllYaml) else "any"
        for index, item in enumerate(getattr(node, key)):
            yield from _persisted_in(item, (*at, key, index))
    elif isinstance(node, PersistedYaml):
        yield (*at, "persisted"), node.persisted


# ---------------------------------------------------------------------------------------------
# Campaign triggers


CHURN_GROUP = "churn"
"""The churn risk band (``low``/``high``), announced by the fold as alerts of this group."""


def _segment_group(value: str) -> str:
    if value not in (*GROUPS, CHURN_GROUP) and not (
            value.startswith(TAG_PREFIX) and value[len(TAG_PREFIX) :]):
        raise refuse(f"has the unknown group {_show(value)}",
                     "use value, activity, churn or tag:<name>")
    return value


class WhenYaml(_Strict):
    """Alerts of ``group`` entering ``to``, from one of ``from`` (any previous, if left out)."""

    group: Annotated[Text, AfterValidator(_segment_group)]
    to: Text
    from_: list[Text] | None = Field(None, alias="from", min_length=1)


class ActionYaml(_Strict):
    """What a trigger asks for: ``type``, ``campaign``, ``channel``, an optional
    ``description``, and any further keys the consumer understands (plain JSON data)."""

    model_config = ConfigDict(extra="allow")

    type: Text
    campaign: Text
    channel: Text
    description: StrictStr = ""
    _as_written: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _plain_json(cls, data: Any, handler: Callable[[Any], ActionYaml]) -> ActionYaml:
        action = handler(data)
        try:
            json.dumps(data, allow_nan=False)
        except (TypeError, ValueError):
            raise refuse("has an action value that is not plain JSON data") from None
        action._as_written = dict(data)
        return action

    @property
    def as_written(self) -> dict[str, Any]:
        """The action's keys and values in file order (the order of the trigger messages')."""
        return dict(self._as_written)


class TriggerYaml(_Strict):
    name: Text
    when: WhenYaml
    action: ActionYaml


class CampaignsYaml(_Strict):
    """A campaign rules file; ``holdout_share`` is the share of customers not contacted."""

    version: Version
    holdout_share: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]
    triggers: list[TriggerYaml]

    @field_validator("triggers")
    @classmethod
    def _names_differ(cls, triggers: list[TriggerYaml]) -> list[TriggerYaml]:
        names: set[str] = set()
        for trigger in triggers:
            if trigger.name in names:
                raise refuse(f"has two triggers named {_show(trigger.name)}")
            names.add(trigger.name)
        return triggers
