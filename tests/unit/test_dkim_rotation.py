"""Which DKIM selector signs each domain, run after run (roles/opendkim/filter_plugins/
opendkim_rotation.py): a new host signs with the first selector at once; a host in a
rotation moves to it only once its record was found, and retires the others after the
grace period; nothing moves back by itself."""

import importlib.util
import pathlib

PLUGIN = pathlib.Path(__file__).resolve().parents[2] / "roles/opendkim/filter_plugins/opendkim_rotation.py"
_spec = importlib.util.spec_from_file_location("opendkim_rotation_plugin", PLUGIN)
plugin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plugin)

DAY = 86400
GRACE = 7 * DAY
T0 = 1_800_000_000


def rotate(state, selectors, found=(), now=T0, domains=("example.test",)):
    checks = [{"item": domain, "rc": 0 if domain in found else 1} for domain in domains]
    return plugin.opendkim_rotation(state, list(domains), list(selectors), checks, now, GRACE)


def test_a_new_host_signs_with_the_first_selector_at_once():
    assert rotate({}, ["mail2026", "mail2025"]) == {
        "example.test": {"signing": "mail2026", "since": T0, "staged": None, "retired": []}}


def test_a_staged_selector_waits_for_its_record():
    settled = rotate({}, ["mail2026"])
    staged = rotate(settled, ["mail2027", "mail2026"], now=T0 + 30 * DAY)
    # Signing stays; the old one has signed past the grace, but nothing else may be
    # retired while the new one is not signing.
    assert staged["example.test"] == {"signing": "mail2026", "since": T0, "staged": "mail2027", "retired": []}
    assert plugin.opendkim_in_rotation(staged, ["example.test"], ["mail2027", "mail2026"]) == ["example.test"]


def test_signing_moves_once_the_record_is_found_and_the_old_key_retires_after_the_grace():
    staged = rotate(rotate({}, ["mail2026"]), ["mail2027", "mail2026"], now=T0 + DAY)
    switched = rotate(staged, ["mail2027", "mail2026"], found=["example.test"], now=T0 + 2 * DAY)
    assert switched["example.test"] == {"signing": "mail2027", "since": T0 + 2 * DAY, "staged": None, "retired": []}
    assert plugin.opendkim_in_rotation(switched, ["example.test"], ["mail2027", "mail2026"]) == []
    # A day before the grace is over, the old key is still in use; at its end, retired.
    assert rotate(switched, ["mail2027", "mail2026"], now=T0 + 8 * DAY)["example.test"]["retired"] == []
    retired = rotate(switched, ["mail2027", "mail2026"], now=T0 + 9 * DAY)
    assert retired["example.test"] == {"signing": "mail2027", "since": T0 + 2 * DAY, "staged": None,
                                       "retired": ["mail2026"]}


def test_each_domain_moves_on_its_own_record():
    domains = ("example.test", "example.org")
    staged = rotate(rotate({}, ["mail2026"], domains=domains), ["mail2027", "mail2026"], domains=domains)
    moved = rotate(staged, ["mail2027", "mail2026"], found=["example.org"], domains=domains, now=T0 + DAY)
    assert moved["example.org"]["signing"] == "mail2027"
    assert moved["example.test"]["signing"] == "mail2026"
    assert moved["example.test"]["staged"] == "mail2027"


def test_a_record_that_was_not_checked_does_not_count():
    # The check failed to run (no result for the domain) or failed: no move.
    staged = rotate(rotate({}, ["mail2026"]), ["mail2027", "mail2026"])
    state = plugin.opendkim_rotation(staged, ["example.test"], ["mail2027", "mail2026"], [], T0 + DAY, GRACE)
    assert state["example.test"]["signing"] == "mail2026"
    failed = [{"item": "example.test", "rc": 1, "stdout": "key OK"}]
    state = plugin.opendkim_rotation(staged, ["example.test"], ["mail2027", "mail2026"], failed, T0 + DAY, GRACE)
    assert state["example.test"]["signing"] == "mail2026"


def test_a_signing_selector_taken_out_of_the_list_is_replaced_at_once():
    # The site's list says it: the first selector signs, unchecked (as on a new host).
    settled = rotate({}, ["mail2026"])
    assert rotate(settled, ["mail2027"], now=T0 + DAY)["example.test"] == {
        "signing": "mail2027", "since": T0 + DAY, "staged": None, "retired": []}


def test_a_retired_selector_put_first_again_is_staged_like_any_new_one():
    switched = rotate(rotate(rotate({}, ["mail2026"]), ["mail2027", "mail2026"]), ["mail2027", "mail2026"],
                      found=["example.test"], now=T0 + DAY)
    retired = rotate(switched, ["mail2027", "mail2026"], now=T0 + 30 * DAY)
    assert retired["example.test"]["retired"] == ["mail2026"]
    back = rotate(retired, ["mail2026", "mail2027"], now=T0 + 31 * DAY)
    assert back["example.test"] == {"signing": "mail2027", "since": T0 + DAY, "staged": "mail2026", "retired": []}


def test_a_damaged_state_starts_over_with_the_first_selector():
    for state in ({"example.test": {"signing": "mail2026"}}, {"example.test": None},
                  {"example.test": {"signing": "mail2026", "since": "yesterday"}}):
        assert rotate(state, ["mail2027", "mail2026"])["example.test"]["signing"] == "mail2027"
