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

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custpulse.errors import ConfigError
from custpulse.schemas.config_models import (
    GROUPS,
    AllYaml,
    AnyYaml,
    CriteriaYaml,
    GroupYaml,
    LibraryYaml,
    PersistedYaml,
    RuleYaml,
    ScoreYaml,
    TagsYaml,
    validate,
)
from custpulse.schemas.config_models import OPS as OPS  # re-exported: the file's vocabulary
from custpulse.schemas.config_models import PROFILE_FIELDS as PROFILE_FIELDS
from custpulse.schemas.yamlfiles import read_yaml

TIME_FIELDS = {
    "recency_days": "last_order_at",
    "inactive_days": "last_seen_at",
    "days_since_register": "register_date",
}
"""Time-derived fields (real-valued days) and the timestamp each is measured from."""


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
    """The shipped default library, or the user file at ``path`` (which replaces it entirely).

    A bad file raises :class:`~custpulse.errors.ConfigError` naming the file, the place in it
    and the problem (see :class:`~custpulse.schemas.config_models.LibraryYaml`).
    """
    data, origin = read_yaml(path, ("segments", "default.yaml"), _fail)
    return _library(validate(LibraryYaml, data, origin, _fail))


def _fail(origin: str, problem: str) -> ConfigError:
    return ConfigError(
        f"Tag library {origin} {problem}; fix it or leave it out to use the shipped default."
    )


_NO_TAGS = TagGroup("tags", "No custom tags.", "无", "-", (), exclusive=False)


def _library(spec: LibraryYaml) -> TagLibrary:
    groups = {name: _group(name, getattr(spec.groups, name), True) for name in GROUPS}
    scores = tuple(_score(name, score) for name, score in spec.scores.items())
    tags = _NO_TAGS if spec.tags is None else _group("tags", spec.tags, False)
    return TagLibrary(spec.version, groups, scores, tags)


def _group(name: str, spec: GroupYaml | TagsYaml, exclusive: bool) -> TagGroup:
    rules = tuple(_rule(rule) for rule in spec.rules)
    return TagGroup(name, spec.definition, spec.definition_zh, spec.cadence, rules, exclusive)


def _rule(spec: RuleYaml) -> Rule:
    criteria = None if spec.criteria == "always" else _criteria(spec.criteria)
    return Rule(spec.name, spec.definition, criteria, spec.definition_zh or "")


def _criteria(spec: CriteriaYaml) -> Criteria:
    if isinstance(spec, AllYaml):
        return AllOf(tuple(_criteria(item) for item in spec.all))
    if isinstance(spec, AnyYaml):
        return AnyOf(tuple(_criteria(item) for item in spec.any))
    if isinstance(spec, PersistedYaml):
        return Persisted(spec.persisted.segment, spec.persisted.for_days)
    return _condition(spec.field, spec.op, spec.value)


def _condition(field: str, op: str, value: Any) -> Condition:
    return Condition(field, op, tuple(value) if isinstance(value, list) else value)


def _score(name: str, spec: ScoreYaml) -> ScoreSpec:
    bands = tuple((_condition(spec.field, band.op, band.value), band.score) for band in spec.bands)
    return ScoreSpec(name, spec.field, spec.definition, spec.definition_zh, spec.cadence, bands,
                     spec.default)
