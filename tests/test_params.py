import pytest

from hadcore.errors import ParameterError
from hadcore.params import Param


def test_int_parses_strings_and_checks_range_and_parity():
    p = Param("outer", "int", 7, "outer window", min=3, max=21, odd=True)
    assert p.coerce("9") == 9
    assert p.coerce(11.0) == 11
    for bad in ("8", "1", "23", "abc", 7.5, True):
        with pytest.raises(ParameterError, match="outer"):
            p.coerce(bad)


def test_error_names_allowed_values_and_received_value():
    p = Param("lam", "float", 1e-3, "ridge", min=0.0, max=1.0)
    with pytest.raises(ParameterError) as exc:
        p.coerce("2")
    assert "number in [0, 1]" in str(exc.value) and "'2'" in str(exc.value)
    with pytest.raises(ParameterError):
        p.coerce("nan")


def test_bool_choice_and_optional_path():
    b = Param("flag", "bool", False, "a flag")
    assert b.coerce("yes") is True and b.coerce("0") is False
    with pytest.raises(ParameterError):
        b.coerce("maybe")
    c = Param("mode", "choice", "ADM", "final detector", choices=("ADM", "RX"))
    assert c.coerce("rx") == "RX"
    with pytest.raises(ParameterError, match="one of ADM, RX"):
        c.coerce("svm")
    w = Param("weights", "path", None, "weights file", optional=True)
    assert w.coerce(None) is None and w.coerce("a.pt") == "a.pt"


def test_declaration_with_invalid_default_is_rejected():
    with pytest.raises(ParameterError):
        Param("outer", "int", 8, "even default", odd=True)
    with pytest.raises(ValueError):
        Param("x", "complex", 1, "unknown type")
