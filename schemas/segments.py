"""The tag library: versioned segment rules, read from YAML and never eval'ed.

The shipped default is ``schemas/segments/default.yaml`` (its comments describe the criteria
language); a user file given to :func:`load_library` replaces it entirely. The library holds

* exclusive rule groups (``value`` -> the value segment, ``activity`` -> the activity segment):
  ordered rules, the first match wins, the last rule is the catch-all (``criteria: always``);
* RFM scores (``r``, ``f``, ``m``): ordered bands of ``(condition, score)`` and a default;
* custom tags: independent rules, a customer may carry several.

Criteria read only the fields of the profile view (:data:`PROFILE_FIELDS`). ``version`` is the
rule_version stamped on every decision. A bad file raises :class:`~custpulse.errors.ConfigError`.

>>> library = load_library()
>>> library.version, [rule.name for rule in library.groups["value"].rules]
(1, ['high_value', 'churned', 'potential', 'churn_risk', 'regular', 'low_value'])
>>> [score.name for score in library.scores], [tag.name for tag in library.tags.rules][:2]
(['r', 'f', 'm'], ['high_complaint_risk', 'key_account'])
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custpulse.errors import ConfigError
from custpulse.schemas.yamlfiles import parse_yaml, read_user_yaml, shipped_text

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

TIME_FIELDS = {
    "recency_days": "last_order_at",
    "inactive_days": "last_seen_at",
    "days_since_register": "register_date",
}
"""Time-derived fields (real-valued days) and the timestamp each is measured from."""

OPS = ("<", "<=", ">", ">=", "==", "!=", "in", "not_in", "is_null", "not_null")
GROUPS = ("value", "activity")
"""The exclusive groups, in evaluation order: value -> segment, activity -> activity_segment."""

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TOP_KEYS = ("version", "groups", "scores", "tags")
_GROUP_KEYS = ("definition", "definition_zh", "cadence", "rules")
_SCORE_KEYS = ("field", "definition", "definition_zh", "cadence", "bands", "default")


@dataclass(frozen=True)
class Condition:
    """Leaf ``{field, op, value}``; a comparison with an unknown (None) field is False."""

    field: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class AllOf:
    items: tuple[Criteria, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Criteria, ...]


@dataclass(frozen=True)
class Persisted:
    """The current value segment is ``segment`` and has been for at least ``for_days`` days."""

    segment: str
    for_days: float = 0


Criteria = Condition | AllOf | AnyOf | Persisted


@dataclass(frozen=True)
class Rule:
    """A named rule; ``criteria`` None is the catch-all (``criteria: always``)."""

    name: str
    definition: str
    criteria: Criteria | None
    definition_zh: str = ""


@dataclass(frozen=True)
class TagGroup:
    """Rules with their written definition and update cadence; ``exclusive``: first match wins
    and the last rule is the catch-all, otherwise every rule is an independent tag."""

    name: str
    definition: str
    definition_zh: str
    cadence: str
    rules: tuple[Rule, ...]
    exclusive: bool = True


@dataclass(frozen=True)
class ScoreSpec:
    """One score (``r``, ``f``, ``m``): the first band whose condition holds gives the score."""

    name: str
    field: str
    definition: str
    definition_zh: str
    cadence: str
    bands: tuple[tuple[Condition, int], ...]
    default: int


@dataclass(frozen=True)
class TagLibrary:
    version: int
    groups: dict[str, TagGroup]
    scores: tuple[ScoreSpec, ...]
    tags: TagGroup

    def leaves(self) -> Iterator[Condition | Persisted]:
        """Every leaf condition of the library: groups, tags and score bands."""
        for group in (*self.groups.values(), self.tags):
            for rule in group.rules:
                if rule.criteria is not None:
                    yield from iter_leaves(rule.criteria)
        for score in self.scores:
            for condition, _ in score.bands:
                yield condition


def iter_leaves(criteria: Criteria) -> Iterator[Condition | Persisted]:
    """The leaves of ``criteria``, depth first, in file order."""
    if isinstance(criteria, AllOf | AnyOf):
        for item in criteria.items:
            yield from iter_leaves(item)
    else:
        yield criteria


def load_library(path: str | Path | None = None) -> TagLibrary:
    """The shipped default library, or the user file at ``path`` (which replaces it entirely)."""
    if path is None:
        origin = "custpulse/schemas/segments/default.yaml (shipped default)"
        return _parse(parse_yaml(shipped_text("segments", "default.yaml"), origin, _fail), origin)
    return _parse(read_user_yaml(path, _fail), str(path))


def _fail(origin: str, problem: str) -> ConfigError:
    return ConfigError(
        f"Tag library {origin} {problem}; fix it or leave it out to use the shipped default."
    )


def _mapping(data: Any, where: str, origin: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _fail(origin, f"must have a mapping at {where}")
    unknown = [str(k) for k in data if k not in allowed]
    if unknown:
        raise _fail(origin, f"has unknown key {unknown[0]!r} at {where} "
                            f"(allowed: {', '.join(allowed)})")
    return data


def _text(data: dict[str, Any], key: str, where: str, origin: str, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise _fail(origin, f"needs a non-empty text {key} at {where}")
    return value.strip()


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse(data: Any, origin: str) -> TagLibrary:
    data = _mapping(data, "the top level", origin, _TOP_KEYS)
    version = data.get("version")
    if not _integer(version) or version < 1:
        raise _fail(origin, "needs version: a positive integer (the rule_version)")
    groups_data = _mapping(data.get("groups"), "groups", origin, GROUPS)
    missing = [g for g in GROUPS if g not in groups_data]
    if missing:
        raise _fail(origin, f"has no group {missing[0]!r} under groups")
    groups = {g: _group(groups_data[g], g, f"groups.{g}", origin, True) for g in GROUPS}
    scores_data = data.get("scores") or {}
    if not isinstance(scores_data, dict):
        raise _fail(origin, "must have a mapping of score name to score at scores")
    scores = tuple(_score(str(name), spec, origin) for name, spec in scores_data.items())
    no_tags = {"definition": "No custom tags.", "definition_zh": "无", "cadence": "-", "rules": []}
    tags = _group(data.get("tags") or no_tags, "tags", "tags", origin, False)
    library = TagLibrary(version, groups, scores, tags)
    segments = {rule.name for rule in groups["value"].rules}
    for leaf in library.leaves():
        if isinstance(leaf, Persisted) and leaf.segment not in segments:
            raise _fail(origin, f"has a persisted condition on {leaf.segment!r}, which is not a "
                                f"rule of group value")
    return library


def _group(data: Any, name: str, where: str, origin: str, exclusive: bool) -> TagGroup:
    data = _mapping(data, where, origin, _GROUP_KEYS)
    texts = [_text(data, key, where, origin) for key in _GROUP_KEYS[:3]]
    rules_data = data.get("rules")
    if not isinstance(rules_data, list) or (exclusive and not rules_data):
        raise _fail(origin, f"needs a list of rules at {where}.rules")
    rules: list[Rule] = []
    for i, raw in enumerate(rules_data):
        rule = _rule(raw, f"{where}.rules[{i}]", origin)
        if any(r.name == rule.name for r in rules):
            raise _fail(origin, f"has two rules named {rule.name!r} in {where}")
        last = i == len(rules_data) - 1
        if rule.criteria is None and not exclusive:
            raise _fail(origin, f"has a tag {rule.name!r} that is always on at {where}")
        if rule.criteria is None and not last:
            raise _fail(origin, f"has catch-all rule {rule.name!r} before the end of {where} "
                                f"(rules after it can never match)")
        if exclusive and last and rule.criteria is not None:
            raise _fail(origin, f"has no catch-all in {where}: its last rule must say "
                                f"criteria: always")
        rules.append(rule)
    return TagGroup(name, *texts, tuple(rules), exclusive)


def _rule(raw: Any, where: str, origin: str) -> Rule:
    raw = _mapping(raw, where, origin, ("name", "definition", "definition_zh", "criteria"))
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _fail(origin, f"needs a name in snake_case at {where}")
    definition = _text(raw, "definition", where, origin)
    zh = _text(raw, "definition_zh", where, origin, required=False)
    if "criteria" not in raw:
        raise _fail(origin, f"has no criteria for rule {name!r} (write criteria: always for "
                            f"the catch-all)")
    criteria = raw["criteria"]
    parsed = None if criteria == "always" else _criteria(criteria, f"{where}.criteria", origin)
    return Rule(name, definition, parsed, zh)


def _criteria(node: Any, where: str, origin: str) -> Criteria:
    if isinstance(node, dict) and len(node) == 1 and next(iter(node)) in ("all", "any"):
        key, items = next(iter(node.items()))
        if not isinstance(items, list) or not items:
            raise _fail(origin, f"needs a non-empty list under {key} at {where}")
        parsed = tuple(_criteria(item, f"{where}.{key}[{i}]", origin)
                       for i, item in enumerate(items))
        return AllOf(parsed) if key == "all" else AnyOf(parsed)
    if isinstance(node, dict) and "persisted" in node:
        _mapping(node, where, origin, ("persisted",))
        spec = _mapping(node["persisted"], f"{where}.persisted", origin, ("segment", "for_days"))
        days = spec.get("for_days", 0)
        if not isinstance(spec.get("segment"), str) or not _number(days) or days < 0:
            raise _fail(origin, f"needs persisted: {{segment: <name>, for_days: <days >= 0>}} "
                                f"at {where}")
        return Persisted(spec["segment"], days)
    return _condition(node, where, origin, ("field", "op", "value"))


def _condition(node: Any, where: str, origin: str, keys: tuple[str, ...]) -> Condition:
    if not isinstance(node, dict) or "op" not in node:
        raise _fail(origin, f"needs all, any, persisted or {{field, op, value}} at {where}")
    node = _mapping(node, where, origin, keys)
    field, op, value = node.get("field"), node.get("op"), node.get("value")
    if field not in PROFILE_FIELDS:
        raise _fail(origin, f"uses unknown field {field!r} at {where} (known fields: see "
                            f"PROFILE_FIELDS in custpulse.schemas.segments)")
    if op not in OPS:
        raise _fail(origin, f"uses unknown op {op!r} at {where} (use one of {' '.join(OPS)})")
    if op in ("is_null", "not_null"):
        ok = "value" not in node
    elif op in ("in", "not_in"):
        ok = isinstance(value, list) and bool(value)
    elif op in ("==", "!="):
        ok = _number(value) or isinstance(value, str | bool)
    else:
        ok = _number(value)
    if not ok:
        raise _fail(origin, f"has a value that does not fit op {op!r} at {where}")
    return Condition(field, op, tuple(value) if isinstance(value, list) else value)


def _score(name: str, spec: Any, origin: str) -> ScoreSpec:
    where = f"scores.{name}"
    if not _NAME.fullmatch(name) or name == "score":
        raise _fail(origin, f"has a score named {name!r} (use snake_case, not 'score')")
    spec = _mapping(spec, where, origin, _SCORE_KEYS)
    texts = [_text(spec, key, where, origin) for key in ("definition", "definition_zh", "cadence")]
    bands_data, default = spec.get("bands"), spec.get("default")
    if not isinstance(bands_data, list) or not bands_data:
        raise _fail(origin, f"needs a non-empty list of bands at {where}.bands")
    bands = []
    for i, band in enumerate(bands_data):
        band_where = f"{where}.bands[{i}]"
        score = band.get("score") if isinstance(band, dict) else None
        if not _integer(score):
            raise _fail(origin, f"needs an integer score at {band_where}")
        node = {k: v for k, v in band.items() if k != "score"} | {"field": spec.get("field")}
        bands.append((_condition(node, band_where, origin, ("field", "op", "value")), score))
    if not _integer(default):
        raise _fail(origin, f"needs an integer default at {where}")
    return ScoreSpec(name, bands[0][0].field, *texts, tuple(bands), default)
