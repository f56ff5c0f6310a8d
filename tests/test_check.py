"""The validation module: one wording for allowed values, integers, keys and spelling hints."""

import numpy as np
import pytest

from eegkit._check import (check_keys, check_option, did_you_mean, ensure_int, positive_int,
                           short_repr, validate_type)
from eegkit._errors import ManifestError, ParameterError


def test_check_option_lists_allowed_values_and_hints():
    assert check_option("overrun", "block", ("drop-oldest", "block")) == "block"
    with pytest.raises(ParameterError) as info:
        check_option("overrun", "blok", ("drop-oldest", "block"), "start()")
    assert str(info.value) == ("start(): invalid value for the 'overrun' parameter. Allowed values are "
                               "'drop-oldest' and 'block', but got 'blok' instead. Did you mean 'block'?")
    with pytest.raises(ManifestError, match=r"^Invalid value for the 'x' key. Allowed values are "
                                            r"'a', 'b', and 'c', but got \[1\] instead.$"):
        check_option("x", [1], ("a", "b", "c"), what="key", error=ManifestError)
    with pytest.raises(ParameterError, match="The only allowed value is 'a'"):
        check_option("x", "b", ("a",))


@pytest.mark.parametrize("value", [True, 1.0, "3", None, 0, -2])
def test_positive_int_rejects_bools_floats_strings_and_small_values(value):
    with pytest.raises(ParameterError, match=r"^batch: block must be a positive integer, got "):
        positive_int(value, "block", "batch")


def test_ensure_int_accepts_numpy_integers_and_returns_int():
    out = ensure_int(np.int64(3), "n", min=0)
    assert out == 3 and type(out) is int
    with pytest.raises(ParameterError, match="n must be an integer >= 5, got 4"):
        ensure_int(4, "n", min=5)


def test_validate_type_never_takes_a_bool_for_a_number():
    assert validate_type(None, (int, float, None), "'min'") is None
    with pytest.raises(ParameterError, match="'min' must be a number, got bool True"):
        validate_type(True, (int, float, None), "'min'", type_name="a number")


def test_keys_and_hints():
    assert did_you_mean("statsu", ["status", "run"]) == " Did you mean 'status'?"
    assert did_you_mean("zzz", ["status"]) == ""
    with pytest.raises(ParameterError, match=r"^src: unknown key\(s\) \['tpye', 'zz'\]; allowed are "
                                             r"type, params. Did you mean 'type' for 'tpye'\?$"):
        check_keys({"type": 1, "tpye": 1, "zz": 2}, ("type", "params"), "src")
    check_keys({"type": 1}, ("type", "params"), "src")


def test_short_repr_is_bounded():
    assert short_repr("abc") == "'abc'"
    assert len(short_repr("x" * 10_000)) < 100
    assert len(short_repr(list(range(10_000)))) < 100
