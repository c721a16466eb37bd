"""The hot-path JSON (msgspec) reads and writes what the standard library (Faust's codec on
changelog recovery) reads and writes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custpulse.schemas import wire

_SCALARS = (st.none() | st.booleans() | st.integers(-(2 ** 100), 2 ** 100)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text())
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=5)
                       | st.dictionaries(st.text(), inner, max_size=5), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(_VALUES)
def test_what_wire_writes_the_standard_library_reads_back_equal_and_vice_versa(value):
    assert json.loads(wire.dumps(value)) == value
    assert wire.loads(json.dumps(value)) == value
    assert wire.loads(wire.dumps(value)) == value


def test_not_json_is_a_value_error():
    for bad in (b"{", b"\xff\xfe", b"", b"[1,]"):
        with pytest.raises(ValueError):
            wire.loads(bad)
