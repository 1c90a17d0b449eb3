"""The accounts-as-code checks: each bad value is named, a good set passes."""

import importlib.util
import pathlib
import re
import subprocess
import sys

import bcrypt
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "mailaccounts", ROOT / "roles/mailaccounts/filter_plugins/mailaccounts.py")
mailaccounts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mailaccounts)
errors = mailaccounts.mailaccounts_errors

HASH = yaml.safe_load((ROOT / "inventory/lab/group_vars/all/vault.yml").read_text())["vault_mail_hash_alice"]
DOMAINS = ["example.test", "example.org"]


def account(address, **extra):
    return {"address": address, "password_hash": HASH, "quota": "1G", **extra}


def test_the_lab_accounts_are_valid():
    lab = yaml.safe_load((ROOT / "inventory/lab/group_vars/all/mail.yml").read_text())
    vault = yaml.safe_load((ROOT / "inventory/lab/group_vars/all/vault.yml").read_text())
    accounts = [dict(a, password_hash=vault[a["password_hash"].strip("{} ")]) for a in lab["mail_accounts"]]
    assert errors(lab["mail_domains"], accounts, lab["mail_aliases"]) == []


def test_a_catch_all_is_valid():
    assert errors(DOMAINS, [account("alice@example.test")], [{"address": "@example.org", "to": ["alice@example.test"]}]) == []


@pytest.mark.parametrize("secret", ["hunter2", "{PLAIN}hunter2", "$1$abc$def", "", None])
def test_a_plain_password_is_refused_without_being_printed(secret):
    found = errors(DOMAINS, [account("alice@example.test", password_hash=secret)], [])
    assert len(found) == 1 and "alice@example.test" in found[0] and "password_hash" in found[0]
    if secret:
        assert secret not in found[0]


@pytest.mark.parametrize("accounts, aliases, needle", [
    ([account("alice@elsewhere.example")], [], "'alice@elsewhere.example' is outside the hosted domains"),
    ([account("Alice@example.test")], [], "'Alice@example.test' is not a lower-case mail address"),
    ([account("alice@example.test"), account("alice@example.test")], [], "'alice@example.test' is defined 2 times"),
    ([account("alice@example.test")], [{"address": "alice@example.test", "to": ["bob@example.test"]}],
     "'alice@example.test' is defined 2 times"),
    ([account("alice@example.test", quota="lots")], [], "quota 'lots' of 'alice@example.test'"),
    ([account("alice@example.test")], [{"address": "a@example.test", "to": ["b@example.test"]},
                                       {"address": "b@example.test", "to": ["a@example.test"]}],
     "alias loop a@example.test -> b@example.test -> a@example.test"),
    ([account("alice@example.test")], [{"address": "x@example.test", "to": []}], "'x@example.test' needs a non-empty list"),
    ([account("alice@example.test")], [{"address": "x@example.test", "to": ["alice@example.test"],
                                        "senders": ["mallory@example.test"]}],
     "sender 'mallory@example.test' of 'x@example.test' is not an account"),
    ([account("alice@example.test", pasword="typo")], [], "unknown keys ['pasword']"),
])
def test_a_bad_value_is_named(accounts, aliases, needle):
    found = errors(DOMAINS, accounts, aliases)
    assert any(needle in e for e in found), found


def test_a_bad_domain_is_named():
    assert any("'Example.TEST' is not a lower-case domain name" in e for e in errors(["Example.TEST"], [], []))


# --- scripts/mail-password-hash ------------------------------------------------------

SCRIPT = ROOT / "scripts/mail-password-hash"


def _hash(password):
    return subprocess.run([sys.executable, str(SCRIPT)], input=password + "\n", capture_output=True, text=True,
                          check=False, timeout=60)


def test_the_hash_script_makes_a_bcrypt_hash_the_accounts_check_takes():
    made = _hash("correct horse battery")
    assert made.returncode == 0, made.stderr
    assert re.fullmatch(r"\{BLF-CRYPT\}\$2b\$12\$[./0-9A-Za-z]{53}", made.stdout), made.stdout
    assert bcrypt.checkpw(b"correct horse battery", made.stdout.removeprefix("{BLF-CRYPT}").encode())
    assert not bcrypt.checkpw(b"correct horse battery!", made.stdout.removeprefix("{BLF-CRYPT}").encode())
    assert "correct horse" not in made.stdout + made.stderr
    assert errors(DOMAINS, [account("alice@example.test", password_hash=made.stdout)], []) == []


@pytest.mark.parametrize(("password", "message"), [
    ("short-pw", "at least 12 characters"),
    ("ü" * 37, "at most 72 bytes"),
], ids=["short", "over-72-bytes"])
def test_the_hash_script_refuses_a_password_it_cannot_hash_in_full(password, message):
    made = _hash(password)
    assert made.returncode != 0 and message in made.stderr, made.stderr
    assert made.stdout == ""
