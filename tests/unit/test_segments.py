"""Tag library and segment evaluator: hand-computed expectations at the brief's boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from custpulse.errors import ConfigError
from custpulse.processors.profile import profile_view
from custpulse.processors.segments import Evaluation, evaluate, next_deadline, transition
from custpulse.schemas.segments import PROFILE_FIELDS, Persisted, load_library

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
LIB = load_library()
US = timedelta(microseconds=1)
VALUE_NAMES = [r.name for r in LIB.groups["value"].rules]
ACTIVITY_NAMES = [r.name for r in LIB.groups["activity"].rules]
DEFAULT_TEXT = (Path(__file__).parents[2] / "schemas" / "segments" / "default.yaml").read_text(
    encoding="utf-8")


def view(**values):
    base = dict.fromkeys(PROFILE_FIELDS)
    base.update(values)
    return base


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def ev(history=None, as_of=NOW, **values) -> Evaluation:
    return evaluate(LIB, view(**values), history, as_of=as_of)


# ---------------------------------------------------------------- loader


def test_shipped_library_shape():
    assert LIB.version == 1
    assert VALUE_NAMES == ["high_value", "churned", "potential", "churn_risk", "regular",
                           "low_value"]
    assert ACTIVITY_NAMES == ["churned", "sleeping", "silent", "active", "regular"]
    assert [s.name for s in LIB.scores] == ["r", "f", "m"]
    assert [s.field for s in LIB.scores] == ["recency_days", "frequency_365d", "monetary_365d"]
    assert [t.name for t in LIB.tags.rules] == [
        "high_complaint_risk", "key_account", "early_adopter", "high_return_rate"]
    for group in (*LIB.groups.values(), LIB.tags):
        assert group.definition and group.definition_zh and group.cadence
        assert all(rule.definition and rule.definition_zh for rule in group.rules)
    for group in LIB.groups.values():
        assert group.rules[-1].criteria is None  # catch-all
        assert all(rule.criteria is not None for rule in group.rules[:-1])
    assert Persisted("potential", 90) in set(LIB.leaves())


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "tags.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True),
                    encoding="utf-8")
    return path


def _default():
    return yaml.safe_load(DEFAULT_TEXT)


def test_user_file_replaces_default(tmp_path):
    data = _default()
    data["version"] = 7
    del data["scores"], data["tags"]
    data["groups"]["value"]["rules"] = [
        {"name": "ordered", "definition": "Has an order.",
         "criteria": {"field": "last_order_at", "op": "not_null"}},
        {"name": "other", "definition": "Everyone else.", "criteria": "always"},
    ]
    lib = load_library(_write(tmp_path, data))
    assert lib.version == 7 and lib.scores == () and lib.tags.rules == ()
    result = evaluate(lib, view(last_order_at=ago(3)), as_of=NOW)
    assert result.segment == "ordered" and result.rfm == {"score": ""}
    assert result.traits["last_order_at"] == "2026-06-27T12:00:00.000+00:00"  # ISO string


def _mutated(path_keys, value):
    data = _default()
    node = data
    for key in path_keys[:-1]:
        node = node[key]
    node[path_keys[-1]] = value
    return data


BAD = {
    "bad op": (("groups", "value", "rules", 4, "criteria"),
               {"all": [{"field": "recency_days", "op": "=<", "value": 90}]}, "unknown op '=<'"),
    "unknown field": (("groups", "value", "rules", 4, "criteria"),
                      {"all": [{"field": "recency", "op": "<=", "value": 90}]},
                      "unknown field 'recency'"),
    "missing catch-all": (("groups", "activity", "rules", 4, "criteria"),
                          {"field": "visits_30d", "op": ">=", "value": 1}, "no catch-all"),
    "catch-all not last": (("groups", "value", "rules", 0, "criteria"), "always",
                           "before the end"),
    "duplicate name": (("groups", "value", "rules", 1, "name"), "high_value",
                       "two rules named 'high_value'"),
    "bad value": (("tags", "rules", 0, "criteria"),
                  {"field": "open_complaints", "op": ">=", "value": "one"}, "does not fit"),
    "unknown persisted segment": (("groups", "value", "rules", 4, "criteria"),
                                  {"persisted": {"segment": "vip", "for_days": 3}}, "'vip'"),
    "missing version": (("version",), 0, "version"),
    "unknown group": (("groups", "lifecycle"), {}, "unknown key 'lifecycle'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_invalid_library_raises_config_error(tmp_path, case):
    keys, value, fragment = BAD[case]
    path = _write(tmp_path, _mutated(keys, value))
    with pytest.raises(ConfigError) as err:
        load_library(path)
    message = str(err.value)
    assert str(path) in message and fragment in message
    assert "\n" not in message and message.endswith(".")


@pytest.mark.parametrize("text, fragment", [
    ("version: [1\n", "not valid YAML"), ("- 1\n", "mapping at the top level"),
    ("", "mapping at the top level")])
def test_unreadable_library(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_library(_write(tmp_path, text))
    with pytest.raises(ConfigError, match="cannot be read"):
        load_library(tmp_path / "missing.yaml")


# ---------------------------------------------------------------- value segment


@pytest.mark.parametrize("values, expected", [
    # high_value: R <= 30, F >= 10, M >= 50000 (boundaries inclusive)
    ({"recency_days": 30, "frequency_365d": 10, "monetary_365d": 50000}, "high_value"),
    ({"recency_days": 30.0001, "frequency_365d": 10, "monetary_365d": 50000}, "regular"),
    ({"recency_days": 30, "frequency_365d": 9, "monetary_365d": 50000}, "regular"),
    ({"recency_days": 30, "frequency_365d": 10, "monetary_365d": 49999.99}, "regular"),
    # churned: R >= 180 and F <= 2, or never ordered and inactive >= 180
    ({"recency_days": 180, "frequency_365d": 2}, "churned"),
    ({"recency_days": 179.9999, "frequency_365d": 2}, "churn_risk"),
    ({"recency_days": 180, "frequency_365d": 3}, "churn_risk"),
    ({"inactive_days": 180}, "churned"),
    ({"inactive_days": 179.9999}, "low_value"),
    # potential: R <= 30, F < 10, AOV >= 1000
    ({"recency_days": 30, "frequency_365d": 9, "avg_order_value": 1000}, "potential"),
    ({"recency_days": 30, "frequency_365d": 9, "avg_order_value": 999.99}, "regular"),
    ({"recency_days": 30, "frequency_365d": 10, "avg_order_value": 5000,
      "monetary_365d": 49999.99}, "regular"),
    # churn_risk: R >= 90 and F <= 3
    ({"recency_days": 90, "frequency_365d": 3}, "churn_risk"),
    ({"recency_days": 89.9999, "frequency_365d": 3}, "regular"),
    ({"recency_days": 90, "frequency_365d": 4}, "regular"),
    # regular: R <= 90; low_value: everyone else
    ({"recency_days": 90.0001, "frequency_365d": 4}, "low_value"),
    ({}, "low_value"),
])
def test_value_segment(values, expected):
    assert ev(**values).segment == expected


def test_recency_is_recomputed_from_last_order_at():
    big = {"frequency_365d": 10, "monetary_365d": 50000}
    assert ev(last_order_at=ago(30), recency_days=99.0, **big).segment == "high_value"
    assert ev(last_order_at=NOW - timedelta(days=30) - US, **big).segment == "regular"
    iso = "2026-05-31T12:00:00.000+00:00"  # profile_view's form, exactly 30 days before NOW
    assert ev(last_order_at=iso, **big).segment == "high_value"
    assert ev(last_order_at=iso, **big).traits["recency_days"] == 30.0


def test_persisted_promotion():
    potential = {"last_order_at": ago(10), "frequency_365d": 5, "monetary_365d": 10000,
                 "avg_order_value": 2000}
    assert ev(**potential).segment == "potential"
    assert ev({"segment": "potential", "since": ago(89)}, **potential).segment == "potential"
    promoted = ev({"segment": "potential", "since": ago(90)}, **potential)
    assert promoted.segment == "high_value"
    assert promoted.traits["history_segment"] == "potential"
    assert promoted.traits["history_since"] == "2026-04-01T12:00:00.000+00:00"
    # the promoted segment holds while recent and big, and is lost when no longer recent
    assert ev({"segment": "high_value", "since": ago(1)}, **potential).segment == "high_value"
    lapsed = dict(potential, last_order_at=ago(31))
    assert ev({"segment": "high_value", "since": ago(1)}, **lapsed).segment == "regular"
    # history given as ISO text; a malformed history is no history
    assert ev({"segment": "potential", "since": "2026-04-01T12:00:00Z"},
              **potential).segment == "high_value"
    assert ev({"segment": "potential", "since": "soon"}, **potential).segment == "potential"


# ---------------------------------------------------------------- activity


@pytest.mark.parametrize("values, expected", [
    ({"inactive_days": 180}, "churned"),
    ({"inactive_days": 179.99, "visits_7d": 5}, "sleeping"),
    ({"inactive_days": 90}, "sleeping"),
    ({"inactive_days": 89.99}, "silent"),
    ({"inactive_days": 30, "visits_7d": 5}, "silent"),
    ({"inactive_days": 29.99, "visits_7d": 3}, "active"),
    ({"inactive_days": 0.5, "visits_7d": 2}, "regular"),
    ({"days_since_register": 200}, "churned"),
    ({"days_since_register": 45}, "silent"),
    ({}, "regular"),
])
def test_activity_segment(values, expected):
    assert ev(**values).activity_segment == expected


def test_inactive_days_from_last_seen_at():
    assert ev(last_seen_at=ago(30)).activity_segment == "silent"
    assert ev(last_seen_at=NOW - timedelta(days=30) + US).activity_segment == "regular"


# ---------------------------------------------------------------- RFM scores


@pytest.mark.parametrize("field, cases", [
    ("recency_days", [(0, 5), (7, 5), (7.0001, 4), (30, 4), (30.0001, 3), (90, 3), (90.5, 2),
                      (180, 2), (180.0001, 1), (None, 1)]),
    ("frequency_365d", [(25, 5), (20, 5), (19, 4), (10, 4), (9, 3), (5, 3), (4, 2), (2, 2),
                        (1, 1), (0, 1), (None, 1)]),
    ("monetary_365d", [(50000, 5), (49999.99, 4), (20000, 4), (19999.99, 3), (5000, 3),
                       (4999.99, 2), (1000, 2), (999.99, 1), (0, 1), (None, 1)]),
])
def test_rfm_bands(field, cases):
    key = {"recency_days": "r", "frequency_365d": "f", "monetary_365d": "m"}[field]
    for value, score in cases:
        assert ev(**{field: value}).rfm[key] == score, (field, value)


def test_rfm_score_string():
    result = ev(recency_days=3, frequency_365d=12, monetary_365d=50000)
    assert result.rfm == {"r": 5, "f": 4, "m": 5, "score": "545"}
    assert ev().rfm == {"r": 1, "f": 1, "m": 1, "score": "111"}


# ---------------------------------------------------------------- tags


@pytest.mark.parametrize("values, expected", [
    ({"open_complaints": 1}, ("high_complaint_risk",)),
    ({"open_complaints": 0, "complaints_total": 3}, ("high_complaint_risk",)),
    ({"open_complaints": 0, "complaints_total": 2, "satisfaction_mean": 2.01}, ()),
    ({"satisfaction_mean": 2}, ("high_complaint_risk",)),
    ({"customer_type": "enterprise", "monetary_365d": 100000}, ("key_account",)),
    ({"customer_type": "enterprise", "monetary_365d": 99999.99}, ()),
    ({"customer_type": "individual", "monetary_365d": 500000}, ()),
    ({"days_since_register": 365, "orders_total": 1}, ("early_adopter",)),
    ({"days_since_register": 364.99, "orders_total": 1}, ()),
    ({"days_since_register": 400, "orders_total": 0}, ()),
    ({"orders_total": 5, "return_rate": 0.3}, ("high_return_rate",)),
    ({"orders_total": 4, "return_rate": 0.5}, ()),
    ({"orders_total": 5, "return_rate": 0.29}, ()),
    ({"open_complaints": 2, "orders_total": 6, "return_rate": 0.5},
     ("high_complaint_risk", "high_return_rate")),
])
def test_tags(values, expected):
    assert ev(**values).tags == expected


def test_early_adopter_from_register_date_text():
    assert ev(register_date="2025-06-30 12:00:00", orders_total=1).tags == ("early_adopter",)
    assert ev(register_date="2025-07-01", orders_total=1).tags == ()


# ---------------------------------------------------------------- traits


def test_traits_hold_the_values_behind_the_decision():
    result = ev(last_order_at=ago(10), frequency_365d=12, monetary_365d=60000.0,
                avg_order_value=5000.0, visits_7d=4, last_seen_at=ago(1), open_complaints=1,
                complaints_total=1, satisfaction_mean=4.5, region="广东省深圳市")
    assert (result.segment, result.activity_segment) == ("high_value", "active")
    assert result.tags == ("high_complaint_risk",)
    assert result.traits == {
        "recency_days": 10.0, "frequency_365d": 12, "monetary_365d": 60000.0,
        "avg_order_value": 5000.0, "visits_7d": 4,
        "open_complaints": 1, "complaints_total": 1, "satisfaction_mean": 4.5,
    }
    catch_all = ev(last_seen_at=ago(1))
    assert catch_all.traits == {"recency_days": None, "frequency_365d": None,
                                "monetary_365d": None}


def test_profile_view_evaluates():
    result = evaluate(LIB, profile_view(None, NOW), as_of=NOW)
    assert (result.segment, result.activity_segment, result.tags) == ("low_value", "regular", ())


# ---------------------------------------------------------------- deadlines


def test_deadline_recent_potential_customer():
    last = ago(10)
    values = view(last_order_at=last, frequency_365d=5, avg_order_value=2000,
                  monetary_365d=10000, last_seen_at=ago(1))
    deadline = next_deadline(LIB, values, as_of=NOW)
    assert deadline == last + timedelta(days=30) + US
    assert evaluate(LIB, values, as_of=deadline - US).segment == "potential"
    assert evaluate(LIB, values, as_of=deadline).segment == "regular"
    # from there: R >= 90 at exactly +90 days, then the silent threshold of last_seen_at + 30
    assert next_deadline(LIB, values, as_of=deadline) == ago(1) + timedelta(days=30)
    quiet = dict(values, last_seen_at=None)
    assert next_deadline(LIB, quiet, as_of=deadline) == last + timedelta(days=90)
    assert next_deadline(LIB, quiet, as_of=last + timedelta(days=90)) == (
        last + timedelta(days=90) + US)
    assert next_deadline(LIB, quiet, as_of=last + timedelta(days=90) + US) == (
        last + timedelta(days=180))


def test_deadline_activity_and_register():
    assert next_deadline(LIB, view(last_seen_at=ago(29)), as_of=NOW) == ago(29) + timedelta(30)
    assert next_deadline(LIB, view(register_date="2026-06-01"), as_of=NOW) == datetime(
        2026, 7, 1, tzinfo=UTC)
    assert next_deadline(LIB, view(), as_of=NOW) is None
    assert next_deadline(LIB, view(frequency_365d=3), as_of=NOW) is None


def test_deadline_without_timestamp_uses_the_days_in_the_view():
    assert next_deadline(LIB, view(recency_days=10), as_of=NOW) == ago(10) + timedelta(30) + US


def test_deadline_persisted():
    values = view(last_order_at=ago(10), frequency_365d=5, avg_order_value=2000,
                  last_seen_at=ago(1))
    history = {"segment": "potential", "since": ago(89)}
    assert next_deadline(LIB, values, history, as_of=NOW) == NOW + timedelta(days=1)
    assert next_deadline(LIB, values, {"segment": "regular", "since": ago(89)},
                         as_of=NOW) == ago(10) + timedelta(30) + US


def test_naive_as_of_is_rejected():
    with pytest.raises(ValueError):
        evaluate(LIB, view(), as_of=datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError):
        next_deadline(LIB, view(), as_of=datetime(2026, 1, 1))  # noqa: DTZ001


# ---------------------------------------------------------------- transitions


def _e(segment, activity, tags=()):
    return Evaluation(segment, activity, {"score": ""}, tuple(tags), {})


def test_transitions():
    first = _e("potential", "active", ["key_account"])
    assert transition(None, first) == [
        ("value", None, "potential"), ("activity", None, "active"),
        ("tag:key_account", None, "on")]
    assert transition(first, first) == []
    later = _e("high_value", "active", ["high_complaint_risk"])
    assert transition(first, later) == [
        ("value", "potential", "high_value"),
        ("tag:high_complaint_risk", "off", "on"), ("tag:key_account", "on", "off")]
    assert transition(later, _e("high_value", "silent", ["high_complaint_risk"])) == [
        ("activity", "active", "silent")]


# ---------------------------------------------------------------- properties

_numbers = st.one_of(st.none(), st.integers(-10**6, 10**13),
                     st.floats(allow_nan=True, allow_infinity=True))
_views = st.fixed_dictionaries({name: _numbers for name in PROFILE_FIELDS})
_as_of = st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))
_history = st.one_of(st.none(), st.fixed_dictionaries({
    "segment": st.sampled_from(VALUE_NAMES),
    "since": st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))}))


@settings(max_examples=300, deadline=None)
@given(values=_views, as_of=_as_of, history=_history)
def test_evaluate_total_and_deadline_consistent(values, as_of, history):
    result = evaluate(LIB, values, history, as_of=as_of)
    assert result.segment in VALUE_NAMES and result.activity_segment in ACTIVITY_NAMES
    assert set(result.tags) <= {t.name for t in LIB.tags.rules}
    assert all(1 <= result.rfm[k] <= 5 for k in "rfm")
    deadline = next_deadline(LIB, values, history, as_of=as_of)
    assert deadline is None or deadline > as_of
    # nothing changes by time alone before the deadline
    try:
        probe = (deadline - US) if deadline is not None else as_of + timedelta(days=3650)
    except OverflowError:
        return
    later = evaluate(LIB, values, history, as_of=probe)
    assert (later.segment, later.activity_segment, later.rfm, later.tags) == (
        result.segment, result.activity_segment, result.rfm, result.tags)


_days = st.floats(0, 400, allow_nan=False)
_recent = st.fixed_dictionaries({
    "ago_order": st.one_of(st.none(), _days), "ago_seen": st.one_of(st.none(), _days),
    "ago_register": st.one_of(st.none(), _days), "frequency_365d": st.integers(0, 25),
    "monetary_365d": st.floats(0, 200000), "avg_order_value": st.floats(0, 5000),
    "visits_7d": st.integers(0, 10), "orders_total": st.integers(0, 30)})


@settings(max_examples=300, deadline=None)
@given(raw=_recent, history=_history)
def test_time_alone_changes_nothing_before_the_deadline(raw, history):
    def at(key):
        return None if raw[key] is None else NOW - timedelta(days=raw[key])

    values = view(last_order_at=at("ago_order"), last_seen_at=at("ago_seen"),
                  register_date=at("ago_register"),
                  **{k: v for k, v in raw.items() if not k.startswith("ago_")})
    deadline = next_deadline(LIB, values, history, as_of=NOW)
    before = evaluate(LIB, values, history, as_of=NOW)
    probes = [NOW + timedelta(days=3650)] if deadline is None else [
        NOW + (deadline - NOW) / 2, deadline - US]
    for probe in probes:
        later = evaluate(LIB, values, history, as_of=probe)
        assert (later.segment, later.activity_segment, later.rfm, later.tags) == (
            before.segment, before.activity_segment, before.rfm, before.tags)
