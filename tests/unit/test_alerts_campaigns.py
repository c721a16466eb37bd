"""Segment alerts and campaign triggers: ids, message shapes, matching, holdout, rule loading."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources

import pytest

from custpulse.errors import ConfigError
from custpulse.processors.alerts import alert_id, segment_alert, timer_cause
from custpulse.processors.campaigns import (
    CampaignRules,
    Trigger,
    campaign_triggers,
    in_holdout,
    load_campaigns,
    trigger_id,
)

T = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
BASE_ID_ARGS = ("U1", "value", None, "potential", "e-1", 1)


def make_alert(group="value", old=None, new="potential", user="U1", cause="e-1", version=1):
    return segment_alert(
        user_id=user,
        group=group,
        old=old,
        new=new,
        rule_version=version,
        traits={"recency_days": 3.0, "frequency": 1, "monetary": 5000.0},
        cause=cause,
        event_time=T,
        processing_time=T + timedelta(seconds=2),
        late=False,
    )


# --- alert ids ----------------------------------------------------------------------------


def test_alert_id_is_the_documented_hash():
    expected = hashlib.sha256(b"U1\x00value\x00\x00potential\x00e-1\x001").hexdigest()[:24]
    assert alert_id(*BASE_ID_ARGS) == "a-" + expected == "a-9b945e45563dd8100bc4ba77"


def test_alert_id_is_stable_across_calls():
    assert {alert_id(*BASE_ID_ARGS) for _ in range(5)} == {"a-9b945e45563dd8100bc4ba77"}


@pytest.mark.parametrize(
    "index, other",
    [(0, "U2"), (1, "activity"), (2, "regular"), (3, "high_value"), (4, "e-2"), (5, 2)],
)
def test_alert_id_changes_with_each_field(index, other):
    args = list(BASE_ID_ARGS)
    args[index] = other
    assert alert_id(*args) != alert_id(*BASE_ID_ARGS)


def test_alert_id_fields_do_not_run_together():
    assert alert_id("U1", "value", "a", "bc", "e", 1) != alert_id("U1", "value", "ab", "c", "e", 1)


def test_timer_cause_convention():
    deadline = datetime(2026, 3, 1, 8, tzinfo=timezone(timedelta(hours=8)))
    assert timer_cause(deadline) == "timer:2026-03-01T00:00:00.000+00:00"


# --- segment alerts -------------------------------------------------------------------------


def test_segment_alert_shape():
    alert = segment_alert(
        user_id="U1",
        group="activity",
        old="silent",
        new="sleeping",
        rule_version=3,
        traits={"recency_days": 90.0},
        cause="timer:2026-03-01T00:00:00.000+00:00",
        event_time=datetime(2026, 3, 1, 8, tzinfo=timezone(timedelta(hours=8))),
        processing_time=datetime(2026, 3, 1, 0, 5, 0, 123456, tzinfo=UTC),
        late=True,
    )
    assert alert == {
        "v": 1,
        "alert_id": alert_id(
            "U1", "activity", "silent", "sleeping", "timer:2026-03-01T00:00:00.000+00:00", 3
        ),
        "user_id": "U1",
        "group": "activity",
        "old": "silent",
        "new": "sleeping",
        "rule_version": 3,
        "traits": {"recency_days": 90.0},
        "cause": "timer:2026-03-01T00:00:00.000+00:00",
        "event_time": "2026-03-01T00:00:00.000+00:00",
        "processing_time": "2026-03-01T00:05:00.123+00:00",
        "late": True,
        "historical": False,
    }
    assert json.loads(json.dumps(alert)) == alert


def test_segment_alert_copies_traits():
    traits = {"frequency": 1}
    alert = segment_alert(
        user_id="U1", group="value", old=None, new="potential", rule_version=1, traits=traits,
        cause="e-1", event_time=T, processing_time=T, late=False,
    )  # fmt: skip
    traits["frequency"] = 2
    assert alert["traits"] == {"frequency": 1} and alert["old"] is None


@pytest.mark.parametrize(
    "change",
    [
        {"event_time": datetime(2026, 3, 1)},  # naive
        {"old": "potential"},  # not a move
        {"cause": ""},
        {"user_id": ""},
    ],
)
def test_segment_alert_rejects_bad_input(change):
    kwargs = dict(
        user_id="U1", group="value", old=None, new="potential", rule_version=1, traits={},
        cause="e-1", event_time=T, processing_time=T, late=False,
    )  # fmt: skip
    kwargs.update(change)
    with pytest.raises(ValueError):
        segment_alert(**kwargs)


# --- trigger matching -----------------------------------------------------------------------


def names(alert, rules=None):
    return [m["trigger"] for m in campaign_triggers(rules or load_campaigns(), alert)]


def test_shipped_default_rules():
    rules = load_campaigns()
    assert rules.version == 1 and rules.holdout_share == 0.1
    assert [t.name for t in rules.triggers] == [
        "new_potential_coupon",
        "churn_risk_winback",
        "new_high_value_manager",
        "sleeping_reactivation",
    ]
    assert rules.triggers[3] == Trigger(
        name="sleeping_reactivation",
        group="activity",
        to="sleeping",
        from_=("silent",),
        action=rules.triggers[3].action,
    )
    assert resources.files("custpulse.schemas").joinpath("campaigns", "default.yaml").is_file()


@pytest.mark.parametrize(
    "group, old, new, expected",
    [
        ("value", None, "potential", ["new_potential_coupon"]),  # any previous, including none
        ("value", "low_value", "potential", ["new_potential_coupon"]),
        ("value", "high_value", "churn_risk", ["churn_risk_winback"]),
        ("value", "potential", "high_value", ["new_high_value_manager"]),
        ("value", "high_value", "regular", []),
        ("activity", "silent", "sleeping", ["sleeping_reactivation"]),
        ("activity", "active", "sleeping", []),  # from: [silent] only
        ("activity", None, "sleeping", []),
        ("activity", "sleeping", "churned", []),
        ("activity", "active", "potential", []),  # right segment name, wrong group
        ("tag:key_account", None, "potential", []),
    ],
)
def test_default_trigger_matching(group, old, new, expected):
    assert names(make_alert(group=group, old=old, new=new)) == expected


def test_non_move_never_matches():
    alert = make_alert(new="potential") | {"old": "potential"}
    assert names(alert) == []


def write(tmp_path, text, name="campaigns.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


TAG_RULES = """
version: 7
holdout_share: 0.25
triggers:
  - name: key_account_welcome
    when: {group: "tag:key_account", to: "on", from: ["off"]}
    action: {type: assign, campaign: key_account_desk, channel: crm_task, priority: 2}
  - name: any_potential
    when: {group: value, to: potential}
    action: {type: coupon, campaign: c1, channel: sms}
  - name: any_potential_second
    when: {group: value, to: potential}
    action: {type: offer, campaign: c2, channel: email}
"""


def test_user_file_replaces_default_and_tag_groups_match(tmp_path):
    rules = load_campaigns(write(tmp_path, TAG_RULES))
    assert rules.version == 7 and len(rules.triggers) == 3
    assert names(make_alert(group="tag:key_account", old="off", new="on"), rules) == [
        "key_account_welcome"
    ]
    assert names(make_alert(group="tag:key_account", old="on", new="off"), rules) == []
    assert names(make_alert(group="tag:other", old="off", new="on"), rules) == []
    # several triggers on one alert: one message each, in file order
    assert names(make_alert(), rules) == ["any_potential", "any_potential_second"]
    # nothing of the default survives
    assert names(make_alert(old="high_value", new="churn_risk"), rules) == []


def test_trigger_message_shape():
    alert = make_alert(version=4)
    [msg] = campaign_triggers(load_campaigns(), alert)
    assert msg == {
        "v": 1,
        "trigger_id": "t-"
        + hashlib.sha256((alert["alert_id"] + "new_potential_coupon").encode()).hexdigest()[:24],
        "alert_id": alert["alert_id"],
        "user_id": "U1",
        "trigger": "new_potential_coupon",
        "action": {
            "type": "coupon",
            "campaign": "new_customer_coupon",
            "channel": "sms",
            "description": "New-customer coupon for customers entering 'potential'",
        },
        "holdout": in_holdout("U1", "new_customer_coupon", 0.1),
        "holdout_share": 0.1,
        "rule_version": 1,
        "segment_rule_version": 4,
        "traits": {"recency_days": 3.0, "frequency": 1, "monetary": 5000.0},
        "event_time": "2026-03-01T08:30:00.000+00:00",
    }
    assert json.loads(json.dumps(msg)) == msg


def test_trigger_ids_are_stable():
    assert trigger_id("a-9b945e45563dd8100bc4ba77", "new_potential_coupon") == (
        "t-ab3f592a2d131545bb39f878"
    )
    rules = load_campaigns()
    first = campaign_triggers(rules, make_alert())
    again = campaign_triggers(load_campaigns(), make_alert())  # redelivery after a restart
    assert [m["trigger_id"] for m in first] == [m["trigger_id"] for m in again]
    other = campaign_triggers(rules, make_alert(cause="e-2"))
    assert first[0]["trigger_id"] != other[0]["trigger_id"]


def test_action_is_copied_not_shared():
    rules = load_campaigns()
    [msg] = campaign_triggers(rules, make_alert())
    msg["action"]["channel"] = "changed"
    assert rules.triggers[0].action["channel"] == "sms"


# --- holdout --------------------------------------------------------------------------------


def test_holdout_hand_computed():
    # sha256("win_back_offer\x00U3")[:8] = 0f1191b1 -> 0.0589; U2: 2a5870bd -> 0.1654
    assert in_holdout("U3", "win_back_offer", 0.1) is True
    assert in_holdout("U2", "win_back_offer", 0.1) is False
    assert in_holdout("U2", "win_back_offer", 0.2) is True
    assert in_holdout("U5", "win_back_offer", 0.01) is False  # 0.0145


def test_holdout_edges_and_determinism():
    ids = [f"U{i}" for i in range(1000)]
    assert not any(in_holdout(u, "c", 0.0) for u in ids)
    assert [in_holdout(u, "c", 0.3) for u in ids] == [in_holdout(u, "c", 0.3) for u in ids]


def test_holdout_share_over_10000_ids():
    ids = [f"user-{i:05d}" for i in range(10_000)]
    share = sum(in_holdout(u, "win_back_offer", 0.1) for u in ids) / len(ids)
    assert 0.09 <= share <= 0.11
    # a different campaign draws a different (independent) holdout
    other = {u for u in ids if in_holdout(u, "reactivation", 0.1)}
    mine = {u for u in ids if in_holdout(u, "win_back_offer", 0.1)}
    assert other != mine and len(other & mine) < 0.05 * len(ids)


def test_holdout_message_is_still_sent():
    rules = CampaignRules(version=1, holdout_share=0.1, triggers=load_campaigns().triggers)
    msgs = campaign_triggers(rules, make_alert(user="U3", old="high_value", new="churn_risk"))
    assert [(m["trigger"], m["holdout"]) for m in msgs] == [("churn_risk_winback", True)]


# --- loader validation ----------------------------------------------------------------------

GOOD_TRIGGER = """
  - name: t1
    when: {group: value, to: potential}
    action: {type: coupon, campaign: c1, channel: sms}
"""


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("version: 1\nholdout_share: 1.0\ntriggers: []\n", "holdout_share"),
        ("version: 1\nholdout_share: -0.1\ntriggers: []\n", "holdout_share"),
        ("version: 1\nholdout_share: '0.1'\ntriggers: []\n", "holdout_share"),
        ("version: 1\nholdout_share: true\ntriggers: []\n", "holdout_share"),
        ("holdout_share: 0.1\ntriggers: []\n", "'version'"),
        ("version: 0\nholdout_share: 0.1\ntriggers: []\n", "version"),
        ("version: 1\nholdout_share: 0.1\n", "'triggers'"),
        ("version: 1\nholdout_share: 0.1\ntriggers: {a: 1}\n", "at triggers, which is not a list"),
        ("version: 1\nholdout_share: 0.1\nextra: 1\ntriggers: []\n", "'extra'"),
        ("version: 1\nholdout_share: 0.1\ntriggers:" + GOOD_TRIGGER * 2, "two triggers named"),
        (
            "version: 1\nholdout_share: 0.1\ntriggers:" + GOOD_TRIGGER.replace("value", "values"),
            "unknown group 'values'",
        ),
        (
            "version: 1\nholdout_share: 0.1\ntriggers:" + GOOD_TRIGGER.replace("value", "'tag:'"),
            "unknown group 'tag:'",
        ),
        (
            "version: 1\nholdout_share: 0.1\ntriggers:"
            + GOOD_TRIGGER.replace(" campaign: c1,", ""),
            "missing the key 'campaign' at triggers[0].action",
        ),
        (
            "version: 1\nholdout_share: 0.1\ntriggers:" + GOOD_TRIGGER.replace("to: potential", ""),
            "missing the key 'to' at triggers[0].when",
        ),
        (
            "version: 1\nholdout_share: 0.1\ntriggers:"
            + GOOD_TRIGGER.replace("to: potential", "to: potential, form: [a]"),
            "'form'",
        ),
        (
            "version: 1\nholdout_share: 0.1\ntriggers:"
            + GOOD_TRIGGER.replace("to: potential", "to: potential, from: silent"),
            "when.from",
        ),
        (
            "version: 1\nholdout_share: 0.1\ntriggers:"
            + GOOD_TRIGGER.replace("to: potential", "to: potential, from: []"),
            "when.from",
        ),
        (
            "version: 1\nholdout_share: 0.1\ntriggers:"
            + GOOD_TRIGGER.replace("    action: {type: coupon, campaign: c1, channel: sms}\n", ""),
            "'action'",
        ),
        (
            "version: 1\nholdout_share: 0.1\ntriggers:"
            + GOOD_TRIGGER.replace("channel: sms", "channel: sms, at: 2026-01-01"),
            "plain JSON",
        ),
        ("version: 1\nholdout_share: 0.1\ntriggers: [42]\n", "not a mapping"),
        ("- 1\n- 2\n", "top level"),
        ("", "top level"),
        ("version: [1\n", "not valid YAML"),
    ],
)
def test_loader_rejects_bad_files(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_campaigns(path)
    message = str(info.value)
    assert str(path) in message and fragment in message
    assert "\n" not in message and message.endswith(".") and message.count(". ") == 0


def test_loader_accepts_minimal_file(tmp_path):
    rules = load_campaigns(write(tmp_path, "version: 2\nholdout_share: 0\ntriggers: []\n"))
    assert rules == CampaignRules(version=2, holdout_share=0.0, triggers=())


def test_loader_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_campaigns(tmp_path / "nope.yaml")
