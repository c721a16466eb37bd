"""Reading custpulse's YAML configuration files (shipped defaults and users' files) with
one-sentence errors. Each caller passes ``fail(origin, problem) -> ConfigError`` so the message
names its kind of file ("Mapping file ...", "Tag library ...", "Campaign file ..."); what a file
may say is checked by :mod:`custpulse.schemas.config_models`, in the same sentences."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from custpulse.errors import ConfigError

Fail = Callable[[str, str], ConfigError]


def parse_yaml(text: str, origin: str, fail: Fail) -> Any:
    """``yaml.safe_load`` with a one-sentence error naming ``origin`` and the line."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise fail(origin, f"is not valid YAML{where}") from None


def read_yaml(path: str | Path | None, shipped: tuple[str, ...], fail: Fail) -> tuple[Any, str]:
    """A configuration file, parsed, with its origin as messages name it: the user file at
    ``path``, or (``path`` None) the file ``shipped`` inside ``custpulse/schemas``."""
    if path is None:
        origin = f"custpulse/schemas/{'/'.join(shipped)} (shipped default)"
        return parse_yaml(shipped_text(*shipped), origin, fail), origin
    return read_user_yaml(path, fail), str(path)


def read_user_yaml(path: str | Path, fail: Fail) -> Any:
    """A user's YAML file (UTF-8, BOM allowed), parsed."""
    origin = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise fail(origin, "is not UTF-8 text") from None
    except OSError as err:
        raise fail(origin, f"cannot be read ({type(err).__name__})") from None
    return parse_yaml(text, origin, fail)


@cache
def shipped_text(*parts: str) -> str:
    """The text of a file shipped inside ``custpulse.schemas`` (works when installed)."""
    return resources.files("custpulse.schemas").joinpath(*parts).read_text(encoding="utf-8")
