"""The From header check of the submission ports (roles/postfix/files/mail-from-guard):
which From headers a login may send, judged against the sender login map Postfix uses
for the envelope."""

import importlib.machinery
import importlib.util
import pathlib

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "roles/postfix/files/mail-from-guard"
_loader = importlib.machinery.SourceFileLoader("mail_from_guard", str(SCRIPT))
_spec = importlib.util.spec_from_loader("mail_from_guard", _loader)
guard = importlib.util.module_from_spec(_spec)
_loader.exec_module(guard)

# As roles/postfix/templates/etc/postfix/sender_login.j2 writes it.
MAP = """# Ansible managed
alice@example.test alice@example.test
bob@example.test bob@example.test
postmaster@example.test alice@example.test
team@example.test alice@example.test, bob@example.test
"""
OWNERS = guard.read_owners(MAP)


@pytest.mark.parametrize("value", [
    "alice@example.test",
    "Alice <alice@example.test>",
    "\"Alice Liddell\" <Alice@Example.Test>",
    "Alice <alice+news@example.test>",
    "The postmaster <postmaster@example.test>",
    "team@example.test",
    "=?utf-8?q?Alice_=C3=A9t=C3=A9?= <alice@example.test>",
    "\"alice@example.test\" <alice@example.test>",
], ids=["bare", "named", "case", "extension", "owned alias", "shared alias", "encoded name", "own address as name"])
def test_a_login_may_send_as_its_own_addresses(value):
    assert guard.judge("alice@example.test", [value], OWNERS) is None


@pytest.mark.parametrize("value, why", [
    ("bob@example.test", "From: bob@example.test is not an address of alice@example.test"),
    ("Bob <bob@example.test>", "is not an address of"),
    ("ceo@example.test", "is not an address of"),
    ("someone@elsewhere.example", "is not an address of"),
    ("\"bob@example.test\" <alice@example.test>", "the From header's name shows bob@example.test"),
    ("\"Bob (bob@example.test)\" <alice@example.test>", "the From header's name shows bob@example.test"),
    # Unquoted, such a name reads as a second address.
    ("bob@example.test <alice@example.test>", "exactly one address"),
    ("=?utf-8?q?bob=40example=2Etest?= <alice@example.test>", "exactly one address"),
    ("alice@example.test, bob@example.test", "exactly one address"),
    ("Alice <alice@example.test>, Alice <alice@example.test>", "exactly one address"),
    ("undisclosed-recipients:;", "exactly one address"),
    ("", "exactly one address"),
], ids=["another mailbox", "another named", "no one's", "outside domain", "address as name",
        "address in the name", "unquoted address as name", "encoded address as name", "two addresses", "twice", "group", "empty"])
def test_any_other_from_is_refused_with_the_reason(value, why):
    assert why in (guard.judge("alice@example.test", [value], OWNERS) or "")


def test_one_from_header_exactly():
    assert "exactly one From header, this one has 2" in guard.judge(
        "alice@example.test", ["alice@example.test", "alice@example.test"], OWNERS)
    assert "this one has 0" in guard.judge("alice@example.test", [], OWNERS)


def test_the_map_is_read_again_when_it_changes(tmp_path):
    path = tmp_path / "sender_login"
    path.write_text(MAP)
    owners = guard.Owners(str(path))
    assert "carol@example.org" not in owners.get()
    path.write_text(MAP + "carol@example.org carol@example.org\n")
    assert owners.get()["carol@example.org"] == {"carol@example.org"}


def test_bad_arguments_are_a_usage_error(capsys):
    assert guard.main(["mail-from-guard", "/etc/postfix/sender_login"]) == 2
    assert "usage: mail-from-guard" in capsys.readouterr().err
