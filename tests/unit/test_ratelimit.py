"""The sending limits' shape check (roles/ratelimit/filter_plugins/ratelimit.py)."""

import importlib.util
import pathlib

import pytest

PLUGIN = pathlib.Path(__file__).resolve().parents[2] / "roles/ratelimit/filter_plugins/ratelimit.py"
_spec = importlib.util.spec_from_file_location("ratelimit_plugin", PLUGIN)
ratelimit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ratelimit)


def test_good_limits_have_no_errors():
    assert ratelimit.ratelimit_errors([[200, 3600], [1000, 86400]],
                                      {"news@example.test": [], "bob@example.test": [[5, 60]]}) == []


@pytest.mark.parametrize(("limits", "by_account", "expected"), [
    ([], {}, "ratelimit_limits: [] must be a non-empty list"),
    ("200/h", {}, "ratelimit_limits: '200/h' must be a non-empty list"),
    ([[200, 0]], {}, "ratelimit_limits: [200, 0] is not [recipients, seconds]"),
    ([[200, "3600"]], {}, "ratelimit_limits: [200, '3600'] is not"),
    ([[True, 3600]], {}, "ratelimit_limits: [True, 3600] is not"),
    ([[200, 3600, 1]], {}, "ratelimit_limits: [200, 3600, 1] is not"),
    ([[200, 3600]], {"bob@example.test": [5, 60]}, "sending_limits of 'bob@example.test': 5 is not"),
    ([[200, 3600]], {"bob@example.test": None}, "sending_limits of 'bob@example.test': None is not a list"),
    ([[200, 3600]], [], "ratelimit_limits_by_account: [] must be a mapping"),
])
def test_bad_limits_are_named(limits, by_account, expected):
    errors = ratelimit.ratelimit_errors(limits, by_account)
    assert any(expected in error for error in errors), errors
