"""The public contract documents every setting the worker reads."""

from __future__ import annotations

from pathlib import Path

from custpulse.settings import Settings, env_name

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "contract.md"


def test_every_setting_is_in_the_contract():
    text = CONTRACT.read_text(encoding="utf-8")
    missing = [env_name(name) for name in Settings.model_fields if f"`{env_name(name)}`" not in text]
    assert missing == []
