"""Campaign triggers: segment alerts -> marketing actions, with a measured holdout (pure).

Rules live in a versioned YAML file (shipped default ``schemas/campaigns/default.yaml``; a user
file given to :func:`load_campaigns` *replaces* it). A trigger matches a segment alert when the
alert's ``group`` equals ``when.group``, its ``new`` segment equals ``when.to`` and, if
``when.from`` is given, its ``old`` segment is one of those (missing ``from`` = any previous
segment, including none). Groups are ``'value'``, ``'activity'`` and ``'tag:<name>'``; a tag's
segments are ``'on'``/``'off'`` (``when: {group: "tag:key_account", to: "on"}``).

Holdout: a share ``holdout_share`` of eligible customers is deliberately not contacted so that
the effect of a campaign can be measured against them (the brief's "closing the loop"). The
draw is deterministic per ``(campaign, user_id)`` (:func:`in_holdout`): the same customer is
always in or always out of the holdout of one campaign, across restarts and rule versions.
Held-out customers still get a trigger message, with ``"holdout": true``; **consumers must not
contact them** - the message exists so that the outcome of both groups can be compared.

Ids: ``trigger_id`` is derived from the alert id and the trigger name, so a redelivered alert
yields the same trigger ids and consumers deduplicate on them.

>>> rules = load_campaigns()
>>> alert = {"alert_id": "a-1", "user_id": "U1", "group": "value", "old": None,
...          "new": "potential", "rule_version": 2, "traits": {},
...          "event_time": "2026-03-01T00:00:00.000+00:00"}
>>> [(m["trigger"], m["action"]["campaign"]) for m in campaign_triggers(rules, alert)]
[('new_potential_coupon', 'new_customer_coupon')]
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custpulse.errors import ConfigError
from custpulse.schemas.config_models import GROUPS as GROUPS  # re-exported: the file's groups
from custpulse.schemas.config_models import TAG_PREFIX as TAG_PREFIX
from custpulse.schemas.config_models import CampaignsYaml, TriggerYaml, validate
from custpulse.schemas.yamlfiles import read_yaml

TRIGGER_VERSION = 1


@dataclass(frozen=True)
class Trigger:
    """One rule: alerts of ``group`` entering ``to`` (from one of ``from_``, or from anything
    when ``from_`` is None) get ``action`` (``type``, ``campaign``, ``channel``, optional
    ``description`` and any further keys the consumer understands)."""

    name: str
    group: str
    to: str
    from_: tuple[str, ...] | None
    action: dict[str, Any]

    def matches(self, alert: Mapping[str, Any]) -> bool:
        """True if the segment alert moves a customer into this trigger's segment."""
        if alert.get("group") != self.group or alert.get("new") != self.to:
            return False
        if alert.get("old") == alert.get("new"):
            return False  # not a move
        return self.from_ is None or alert.get("old") in self.from_


@dataclass(frozen=True)
class CampaignRules:
    """The trigger set of one rules file; ``holdout_share`` is a fraction in ``[0, 1)``."""

    version: int
    holdout_share: float
    triggers: tuple[Trigger, ...]


def load_campaigns(path: str | Path | None = None) -> CampaignRules:
    """The campaign rules: the shipped default, or the user file at ``path`` instead of it.

    A bad file raises :class:`~custpulse.errors.ConfigError` with one sentence naming the file,
    the place in it and the problem (unreadable, not YAML, missing or unknown keys, share outside
    ``[0, 1)``, duplicate trigger names, unknown segment group; see
    :class:`~custpulse.schemas.config_models.CampaignsYaml`).
    """
    data, origin = read_yaml(path, ("campaigns", "default.yaml"), _fail)
    spec = validate(CampaignsYaml, data, origin, _fail)
    return CampaignRules(version=spec.version, holdout_share=float(spec.holdout_share),
                         triggers=tuple(_trigger(trigger) for trigger in spec.triggers))


def in_holdout(user_id: str, campaign: str, share: float) -> bool:
    """Deterministic holdout draw: the first 8 hex digits of sha256(``campaign + '\\x00' +
    user_id``) read as a number in ``[0, 1)`` (divided by 2**32), compared with ``share``.

    >>> in_holdout("U1", "win_back_offer", 0.0), in_holdout("U1", "win_back_offer", 1.0)
    (False, True)
    """
    digest = hashlib.sha256(f"{campaign}\x00{user_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32 < share


def trigger_id(alert_id: str, trigger_name: str) -> str:
    """``'t-'`` + the first 24 hex digits of sha256(``alert_id + trigger_name``) (alert ids
    have a fixed length, so the concatenation is unambiguous)."""
    return "t-" + hashlib.sha256((alert_id + trigger_name).encode()).hexdigest()[:24]


def campaign_triggers(rules: CampaignRules, alert: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One JSON-ready trigger message per trigger of ``rules`` matching the segment alert
    (the dict of :func:`~custpulse.processors.alerts.segment_alert`), in rules order.

    ``event_time`` is the alert's (the time of the segment move, ISO 8601 UTC); ``holdout``
    says whether the customer is held out of the action's campaign (do not contact). An alert
    marked ``historical`` (its move is older than the freshness horizon) triggers nothing.
    """
    messages: list[dict[str, Any]] = []
    if alert.get("historical"):
        return messages  # a replay of old moves must not contact anyone
    for trig in rules.triggers:
        if not trig.matches(alert):
            continue
        user_id = alert["user_id"]
        messages.append(
            {
                "v": TRIGGER_VERSION,
                "trigger_id": trigger_id(alert["alert_id"], trig.name),
                "alert_id": alert["alert_id"],
                "user_id": user_id,
                "trigger": trig.name,
                "action": dict(trig.action),
                "holdout": in_holdout(user_id, trig.action["campaign"], rules.holdout_share),
                "holdout_share": rules.holdout_share,
                "rule_version": rules.version,
                "segment_rule_version": alert["rule_version"],
                "traits": dict(alert.get("traits") or {}),
                "event_time": alert["event_time"],
            }
        )
    return messages


# --- loading -----------------------------------------------------------------------------


def _fail(origin: str, problem: str) -> ConfigError:
    return ConfigError(
        f"Campaign file {origin} {problem}; fix it or leave it out to use the defaults."
    )


def _trigger(spec: TriggerYaml) -> Trigger:
    when = spec.when
    from_ = None if when.from_ is None else tuple(when.from_)
    return Trigger(spec.name, when.group, when.to, from_, spec.action.as_written)
