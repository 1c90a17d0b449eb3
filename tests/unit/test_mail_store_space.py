"""The policy service that answers 452 while the mail store is full
(roles/postfix/files/mail-store-space), spoken to as Postfix's smtpd does
(SMTPD_POLICY_README: name=value lines, a blank line, several requests per connection)."""

import os
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "roles/postfix/files/mail-store-space"
REQUEST = ("request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
           "client_address=192.0.2.7\nsender=someone@example.net\nrecipient={}\n\n")


def ask(min_free, paths, recipients):
    """The service's whole output for one connection with one request per recipient."""
    done = subprocess.run([sys.executable, str(SCRIPT), str(min_free), *paths],
                          input="".join(REQUEST.format(r) for r in recipients),
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def free_bytes(path):
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def test_room_is_dunno_for_every_request_of_the_connection(tmp_path):
    assert ask(1, [str(tmp_path)], ["bob@example.test", "alice@example.test"]) == "action=DUNNO\n\n" * 2


def test_less_room_than_asked_is_452_for_every_recipient(tmp_path):
    reply = ask(free_bytes(tmp_path) * 2 + 1, ["/", str(tmp_path)], ["bob@example.test", "alice@example.test"])
    full = "action=452 4.3.1 Insufficient system storage: the mail store is full, try again later\n\n"
    assert reply == full * 2


def test_any_full_path_defers_and_an_unreadable_one_too(tmp_path):
    reply = ask(1, [str(tmp_path), str(tmp_path / "missing")], ["bob@example.test"])
    assert reply.startswith("action=452 4.3.1 "), reply


@pytest.mark.parametrize("argv", [[], ["many", "/var/mail"], ["100"]], ids=["nothing", "not a number", "no path"])
def test_bad_arguments_are_a_usage_error(argv):
    done = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True,
                          input="", timeout=30, check=False)
    assert done.returncode == 2 and "usage: mail-store-space" in done.stderr
