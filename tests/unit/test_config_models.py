"""The YAML layer (custpulse.schemas.config_models): the three files' models, the one way their
problems are reported, and the dataclasses the loaders build from them."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
import yaml

from custpulse.errors import ConfigError
from custpulse.processors.campaigns import CampaignRules, Trigger, load_campaigns
from custpulse.schemas.config_models import CampaignsYaml, LibraryYaml, validate
from custpulse.schemas.mapping import NestedFields, load_mapping, load_mappings
from custpulse.schemas.segments import (
    AllOf,
    AnyOf,
    Condition,
    Persisted,
    Rule,
    ScoreSpec,
    TagGroup,
    TagLibrary,
    load_library,
)

SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def shipped(*parts: str) -> str:
    return resources.files("custpulse.schemas").joinpath(*parts).read_text(encoding="utf-8")


def problem(load, path: Path) -> str:
    """The message of the ConfigError ``load(path)`` raises, checked to be one sentence that
    names the file."""
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    assert len(SENTENCE_END.findall(message.replace(str(path), "FILE"))) == 1, message
    assert "Traceback" not in message and message.endswith(".")
    return message


# --- field mappings ----------------------------------------------------------------------------

MAPPING_BAD = [
    # unknown keys: at the top level, in a nested key's declaration, in one source's section
    ("source: orders\ntypez:\n  amount: decimal\n",
     "has the unknown key 'typez' at the top level (allowed: version, source, fields, types,"),
    ("source: orders\nnested:\n  items:\n    sku2: {class: identifier, alias: [x]}\n",
     "has the unknown key 'alias' at nested.items.sku2 (allowed: class, aliases)"),
    ("orders:\n  feilds: {}\n", "has the unknown key 'feilds' at orders (allowed: version,"),
    # wrong types: a YAML boolean is not a version, a mapping is not a list of names
    ("source: orders\nversion: true\n", "has true at version, which is not a whole number"),
    ("source: orders\nidentity:\n  key: {order_id: 1}\n",
     "has a mapping at identity.key, which is not a list"),
    ("source: orders\nfields:\n  user_id: [[a]]\n", "has a list at fields.user_id[0], which is not text"),
    ("orders:\n  types:\n    amount: [decimal]\n", "has the unknown type ['decimal'] at orders.types.amount"),
    ("source: orders\nvalues:\n  status: {on: paid}\n",
     "has the YAML boolean true as a key at values.status (quote it if it is text)"),
    # missing keys
    ("source: orders\nnested:\n  items:\n    sku2: {aliases: [x]}\n",
     "is missing the key 'class' at nested.items.sku2"),
]


@pytest.mark.parametrize(("text", "fragment"), MAPPING_BAD)
def test_bad_mapping_names_the_place_and_the_problem(tmp_path, text, fragment):
    message = problem(lambda p: load_mapping("orders", p), write(tmp_path, text))
    assert message.startswith("Mapping file ") and fragment in message, message


@pytest.mark.parametrize("source", ["customers", "behavior", "orders", "tickets"])
def test_shipped_mapping_as_a_user_file_is_the_shipped_mapping(tmp_path, source):
    path = write(tmp_path, shipped("mappings", f"{source}.yaml"))
    assert load_mapping(source, path) == load_mapping(source)


def test_user_mapping_builds_the_same_dataclass_fields(tmp_path):
    path = write(tmp_path, """
tickets:
  version: 4
  fields:
    agent: [坐席, 12]
    agent_since:
    extra_info: 附加
  types:
    agent_since: time
    extra_info: json
  values:
    agent: {A组: team_a, 7: team_b}
  time_formats:
    agent_since: epoch_ms
  identity:
    state: [closed_at]
  classes:
    agent: categorical
    extra_info: records
  nested:
    extra_info:
      code: {class: identifier, aliases: 编号}
      note: {class: free_text}
customers:
""")
    tickets = load_mapping("tickets", path)
    default = load_mapping("tickets")
    assert tickets.version == 4
    assert tickets.aliases == default.aliases | {
        "agent": "agent", "坐席": "agent", "12": "agent", "agentsince": "agent_since",
        "extrainfo": "extra_info", "附加": "extra_info"}
    assert tickets.types == default.types | {
        "agent": "string", "agent_since": "time", "extra_info": "json"}
    assert tickets.values["agent"] == {"a组": "team_a", "7": "team_b", "team_a": "team_a",
                                       "team_b": "team_b"}
    assert tickets.time_formats == {"agent_since": "epoch_ms"}
    assert (tickets.identity_key, tickets.identity_state) == (default.identity_key, ("closed_at",))
    assert tickets.classes == default.classes | {
        "agent": "categorical", "agent_since": "time", "extra_info": "records"}
    assert tickets.nested == {"extra_info": NestedFields(
        {"code": "code", "编号": "code", "note": "note"}, {"code": "identifier", "note": "free_text"})}
    # an empty identity part replaces the default one; a section left empty maps nothing more
    path = write(tmp_path, "orders:\n  identity:\n    key:\ncustomers:\n", "two.yaml")
    mappings = load_mappings(path)
    assert mappings["orders"].identity_key == () and mappings["orders"].identity_state == (
        "status",)
    assert mappings["customers"] == load_mapping("customers")


def test_mapping_file_of_one_source_must_name_it_when_asked_for_all(tmp_path):
    path = write(tmp_path, "source:\nfields:\n  user_id: [x]\n")
    assert "must say which source it maps" in problem(load_mappings, path)
    assert "must say which source" in problem(lambda p: load_mapping("orders", p), path)


# --- the tag library ---------------------------------------------------------------------------


def library_text(**changes) -> str:
    """The shipped library with ``changes`` (dotted path -> value; None deletes the key)."""
    data = yaml.safe_load(shipped("segments", "default.yaml"))
    for dotted, value in changes.items():
        *parents, last = [int(p) if p.isdigit() else p for p in dotted.split("__")]
        node = data
        for part in parents:
            node = node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return yaml.safe_dump(data, allow_unicode=True)


LIBRARY_BAD = [
    ({"groups__value__rules__4__criteria": {"field": "recency_days", "op": "<=", "value": 90,
                                            "unit": "days"}},
     "has the unknown key 'unit' at groups.value.rules[4].criteria (rule 'regular'; allowed: "
     "field, op, value)"),
    ({"scores__r__bands__0__field": "recency_days"},
     "has the unknown key 'field' at scores.r.bands[0] (allowed: score, op, value)"),
    ({"version": "1"}, "has '1' at version, which is not a whole number"),
    ({"scores__f__bands__0__score": True},
     "has true at scores.f.bands[0].score, which is not a whole number"),
    ({"groups__value__definition": 5}, "has 5 at groups.value.definition, which is not text"),
    ({"groups__value__rules__0__criteria": {"persisted": {"segment": "potential",
                                                         "for_days": True}}},
     "has true at groups.value.rules[0].criteria.persisted.for_days (rule 'high_value'), which "
     "is not a number of days (0 or more)"),
    ({"groups__value__rules__2__criteria": None},
     "is missing the key 'criteria' at groups.value.rules[2] (rule 'potential')"),
    ({"scores__m__default": None}, "is missing the key 'default' at scores.m"),
    ({"groups__activity": None}, "is missing the key 'activity' at groups"),
    ({"groups__value__rules__1__criteria__any__0__all__0__field": "recency"},
     "has the unknown field 'recency' at groups.value.rules[1].criteria.any[0].all[0].field "
     "(rule 'churned'; known fields"),
    ({"groups__value__rules__1__name": "Churned"},
     "has the name 'Churned' at groups.value.rules[1].name (use snake_case)"),
]


@pytest.mark.parametrize(("changes", "fragment"), LIBRARY_BAD)
def test_bad_library_names_the_place_and_the_problem(tmp_path, changes, fragment):
    message = problem(load_library, write(tmp_path, library_text(**changes)))
    assert message.startswith("Tag library ") and fragment in message, message
    assert "<" not in message.split(" at ")[1].split(" ")[0]  # no union tag in the place


def test_shipped_library_as_a_user_file_is_the_shipped_library(tmp_path):
    assert load_library(write(tmp_path, shipped("segments", "default.yaml"))) == load_library()


LIBRARY = """
version: 3
groups:
  value:
    definition: "  Value.  "
    definition_zh: 价值
    cadence: real time
    rules:
      - name: big
        definition: Big.
        definition_zh: 大
        criteria:
          all:
            - {field: monetary_365d, op: ">=", value: 1000}
            - any:
                - {field: region, op: in, value: [north, south]}
                - persisted: {segment: big, for_days: 30}
                - persisted: {segment: big}
      - name: rest
        definition: Everyone else.
        criteria: always
  activity:
    definition: Activity.
    definition_zh: 活跃
    cadence: on events
    rules:
      - {name: any_customer, definition: All., definition_zh: null, criteria: always}
scores:
  r:
    field: recency_days
    definition: Recency.
    definition_zh: 近度
    cadence: daily
    bands:
      - {op: "<=", value: 30.5, score: 5}
      - {op: is_null, score: 0}
    default: 1
tags:
  definition: Tags.
  definition_zh: 标签
  cadence: on events
  rules:
    - name: vip
      definition: VIP.
      criteria: {field: member_level, op: "==", value: gold}
"""


def test_user_library_builds_the_same_dataclasses(tmp_path):
    big = Rule("big", "Big.", AllOf((
        Condition("monetary_365d", ">=", 1000),
        AnyOf((Condition("region", "in", ("north", "south")), Persisted("big", 30),
               Persisted("big", 0))),
    )), "大")
    expected = TagLibrary(
        version=3,
        groups={
            "value": TagGroup("value", "Value.", "价值", "real time",
                              (big, Rule("rest", "Everyone else.", None, "")), True),
            "activity": TagGroup("activity", "Activity.", "活跃", "on events",
                                 (Rule("any_customer", "All.", None, ""),), True),
        },
        scores=(ScoreSpec("r", "recency_days", "Recency.", "近度", "daily",
                          ((Condition("recency_days", "<=", 30.5), 5),
                           (Condition("recency_days", "is_null", None), 0)), 1),),
        tags=TagGroup("tags", "Tags.", "标签", "on events",
                      (Rule("vip", "VIP.", Condition("member_level", "==", "gold"), ""),), False),
    )
    library = load_library(write(tmp_path, LIBRARY))
    assert library == expected
    assert type(library.groups["value"].rules[0].criteria.items[1].items[1].for_days) is int
    without = load_library(write(tmp_path, LIBRARY.split("scores:")[0], "bare.yaml"))
    assert without.scores == () and without.tags == TagGroup(
        "tags", "No custom tags.", "无", "-", (), False)


# --- campaign triggers -------------------------------------------------------------------------

TRIGGER = """version: 1
holdout_share: 0.1
triggers:
  - name: t1
    when: {group: value, to: potential}
    action: {type: coupon, campaign: c1, channel: sms}
"""

CAMPAIGNS_BAD = [
    (TRIGGER.replace("to: potential", "to: potential, fromm: [a]"),
     "has the unknown key 'fromm' at triggers[0].when (trigger 't1'; allowed: group, to, from)"),
    (TRIGGER + "owner: me\n",
     "has the unknown key 'owner' at the top level (allowed: version, holdout_share, triggers)"),
    (TRIGGER.replace("0.1", "'0.1'"), "has '0.1' at holdout_share, which is not a number"),
    (TRIGGER.replace("version: 1", "version: true"), "has true at version, which is not a whole"),
    (TRIGGER.replace("name: t1", "name: 7"), "has 7 at triggers[0].name, which is not text"),
    (TRIGGER.replace("to: potential", "to: potential, from: silent"),
     "has 'silent' at triggers[0].when.from (trigger 't1'), which is not a list"),
    (TRIGGER.replace("holdout_share: 0.1", "holdout_share: 1"),
     "has 1 at holdout_share, which is not below 1"),
    (TRIGGER.replace(" channel: sms", ""),
     "is missing the key 'channel' at triggers[0].action (trigger 't1')"),
    (TRIGGER.replace("holdout_share: 0.1\n", ""), "is missing the key 'holdout_share' at the top"),
]


@pytest.mark.parametrize(("text", "fragment"), CAMPAIGNS_BAD)
def test_bad_campaigns_name_the_place_and_the_problem(tmp_path, text, fragment):
    message = problem(load_campaigns, write(tmp_path, text))
    assert message.startswith("Campaign file ") and fragment in message, message
    assert message.count(". ") == 0


def test_shipped_campaigns_as_a_user_file_are_the_shipped_campaigns(tmp_path):
    path = write(tmp_path, shipped("campaigns", "default.yaml"))
    assert load_campaigns(path) == load_campaigns()


def test_user_campaigns_build_the_same_dataclasses(tmp_path):
    path = write(tmp_path, """
version: 5
holdout_share: 0
triggers:
  - name: " welcome "
    when: {group: "tag:key_account", to: "on", from: ["off"]}
    action: {channel: crm_task, priority: 2, type: assign, campaign: desk, meta: {a: [1, null]}}
  - name: any_potential
    when: {group: value, to: potential, from: null}
    action: {type: coupon, campaign: c1, channel: sms, description: ""}
""")
    rules = load_campaigns(path)
    assert rules == CampaignRules(version=5, holdout_share=0.0, triggers=(
        Trigger(" welcome ", "tag:key_account", "on", ("off",),
                {"channel": "crm_task", "priority": 2, "type": "assign", "campaign": "desk",
                 "meta": {"a": [1, None]}}),
        Trigger("any_potential", "value", "potential", None,
                {"type": "coupon", "campaign": "c1", "channel": "sms", "description": ""}),
    ))
    assert type(rules.holdout_share) is float
    assert list(rules.triggers[0].action) == ["channel", "priority", "type", "campaign", "meta"]


# --- the one way of reporting ------------------------------------------------------------------


def fail(origin: str, problem: str) -> ConfigError:
    return ConfigError(f"File {origin} {problem}.")


def test_validate_returns_the_model_or_one_sentence():
    spec = validate(CampaignsYaml, yaml.safe_load(TRIGGER), "c.yaml", fail)
    assert spec.triggers[0].action.as_written == {"type": "coupon", "campaign": "c1",
                                                  "channel": "sms"}
    with pytest.raises(ConfigError, match=r"^File c\.yaml is empty \(it must be a YAML mapping"):
        validate(CampaignsYaml, None, "c.yaml", fail)
    with pytest.raises(ConfigError, match="^File c.yaml must be a YAML mapping at the top level, "
                                          "not a list.$"):
        validate(CampaignsYaml, [1, 2], "c.yaml", fail)


def test_problems_never_echo_the_document():
    secret = {f"key{i}": "x" * 50 for i in range(50)}
    data = yaml.safe_load(TRIGGER) | {"triggers": secret}
    with pytest.raises(ConfigError) as info:
        validate(CampaignsYaml, data, "c.yaml", fail)
    assert str(info.value) == "File c.yaml has a mapping at triggers, which is not a list."
    long_name = "n" * 500
    data = yaml.safe_load(TRIGGER.replace("group: value", f"group: {long_name}"))
    with pytest.raises(ConfigError) as info:
        validate(CampaignsYaml, data, "c.yaml", fail)
    message = str(info.value)
    assert len(message) < 250 and "n" * 60 not in message and "…" in message
    assert "at triggers[0].when.group (trigger 't1'; use value, activity, churn or tag:<name>)" in message


def test_places_drop_union_tags_and_name_the_rule():
    data = yaml.safe_load(library_text())
    data["groups"]["value"]["rules"][0]["criteria"] = {
        "all": [{"persisted": {"segment": "big", "for_day": 3}}]}
    with pytest.raises(ConfigError) as info:
        validate(LibraryYaml, data, "t.yaml", fail)
    assert str(info.value) == (
        "File t.yaml has the unknown key 'for_day' at groups.value.rules[0].criteria.all[0]"
        ".persisted (rule 'high_value'; allowed: segment, for_days)."
    )
    data["groups"]["value"]["rules"][0]["criteria"] = {"all": ["always"]}
    with pytest.raises(ConfigError, match=r"needs all, any, persisted or \{field, op, value\} at "
                                          r"groups\.value\.rules\[0\]\.criteria\.all\[0\] "):
        validate(LibraryYaml, data, "t.yaml", fail)
