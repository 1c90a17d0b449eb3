"""Dovecot's sendmail for Sieve (roles/ratelimit/files/mail-sieve-sendmail): the account
an envelope sender stands for, the questions it asks the limit service, and what it does
with a message above the limit. The lab test (test_sending_limits.py) runs it for real."""

import importlib.machinery
import importlib.util
import pathlib
import socket
import threading

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "roles/ratelimit/files/mail-sieve-sendmail"
_loader = importlib.machinery.SourceFileLoader("mail_sieve_sendmail", str(SCRIPT))
_spec = importlib.util.spec_from_loader("mail_sieve_sendmail", _loader)
wrapper = importlib.util.module_from_spec(_spec)
_loader.exec_module(wrapper)

FORWARDED = (b"Return-Path: <x@outside.example>\r\nReceived: from mx1 by mx1 with LMTP\r\n"
             b"From: x@outside.example\r\nSubject: hi\r\n\r\nReceived: in the body does not count\r\n")
REPLY = (b"X-Sieve: Pigeonhole Sieve\r\nFrom: carol@example.org\r\nAuto-Submitted: auto-replied (vacation)\r\n"
         b"Subject: Away\r\n\r\nReceived: in the body does not count\r\n")


@pytest.mark.parametrize(("argv", "expected"), [
    (["-i", "-f", "carol@example.org", "--", "bob@example.test"], ("carol@example.org", ["bob@example.test"])),
    (["-fcarol@example.org", "-oi", "a@x.example", "b@y.example"], ("carol@example.org", ["a@x.example", "b@y.example"])),
    (["-i", "-f", "<>", "--", "-odd@x.example"], ("<>", ["-odd@x.example"])),
])
def test_the_command_line_dovecot_writes_is_read(argv, expected):
    assert wrapper.parse(argv) == expected


@pytest.mark.parametrize("argv", [["-i", "-f", "a@x.example"], ["-t", "-f", "a@x.example"], ["-f"],
                                  ["-bs", "a@x.example"]])
def test_what_dovecot_never_writes_is_refused(argv):
    with pytest.raises(ValueError):
        wrapper.parse(argv)


@pytest.mark.parametrize(("sender", "account"), [
    ("carol@example.org", "carol@example.org"),
    ("Carol@Example.ORG", "carol@example.org"),
    ("carol+news@example.org", "carol@example.org"),
    ("carol+a+b@example.org", "carol@example.org"),
    ("<>", ""), ("", ""), (None, ""), ("postmaster", ""),
])
def test_every_subaddress_counts_as_the_account(sender, account):
    assert wrapper.account_of(sender) == account


def test_only_a_message_that_came_in_is_kept_above_the_limit():
    assert wrapper.came_in(FORWARDED)
    assert not wrapper.came_in(REPLY)
    assert not wrapper.came_in(REPLY.replace(b"\r\n", b"\n"))


class PolicyService:
    """A stand-in for policyd-rate-limit: records each request, answers from a list."""

    def __init__(self, path, answers):
        self.requests, self.answers = [], list(answers)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.server.accept()
        with conn:
            buffer = b""
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buffer += chunk
                while b"\n\n" in buffer:
                    request, buffer = buffer.split(b"\n\n", 1)
                    self.requests.append(dict(line.split("=", 1) for line in request.decode().splitlines()))
                    conn.sendall(f"action={self.answers.pop(0) if self.answers else 'dunno'}\n\n".encode())


def patch(monkeypatch, message):
    """Feed the wrapper the message; record the programs it would start instead of running them."""
    started = []

    def fake_run(command, input=None, **kwargs):
        started.append((command, input))
        return type("Done", (), {"returncode": 0, "stderr": b""})()

    monkeypatch.setattr(wrapper.subprocess, "run", fake_run)
    monkeypatch.setattr(wrapper.syslog, "syslog", lambda *args: None)
    stdin = type("Stdin", (), {"buffer": type("Buffer", (), {"read": lambda self: message})()})()
    monkeypatch.setattr(wrapper.sys, "stdin", stdin)
    return started


def run(monkeypatch, tmp_path, answers, message, argv):
    """Run the wrapper against a stand-in limit service."""
    path = tmp_path / "policy"
    service = PolicyService(path, answers)
    monkeypatch.setattr(wrapper, "POLICY_SOCKET", str(path))
    started = patch(monkeypatch, message)
    status = wrapper.main(argv)
    service.thread.join(timeout=5)
    return status, service.requests, started


def test_under_the_limit_it_asks_as_postfix_does_and_sends(monkeypatch, tmp_path):
    status, requests, started = run(monkeypatch, tmp_path, [], FORWARDED,
                                    ["-i", "-f", "Carol+x@example.org", "--", "a@x.example", "b@y.example"])
    assert status == 0
    # One question per recipient at RCPT (Debian 12's policyd-rate-limit counts there),
    # one at DATA with the count (Debian 13's), all for the account's login.
    assert [(r["protocol_state"], r.get("recipient"), r.get("recipient_count")) for r in requests] == [
        ("RCPT", "a@x.example", None), ("RCPT", "b@y.example", None), ("DATA", None, "2")]
    assert {r["sasl_username"] for r in requests} == {"carol@example.org"}
    assert len({r["instance"] for r in requests}) == 1
    assert started == [([wrapper.SENDMAIL, "-i", "-f", "carol@example.org", "--", "a@x.example", "b@y.example"],
                        FORWARDED)]


def test_a_forwarded_message_above_the_limit_is_kept_in_the_inbox(monkeypatch, tmp_path):
    status, _, started = run(monkeypatch, tmp_path, ["dunno", "defer_if_permit Sending limit reached"], FORWARDED,
                             ["-i", "-f", "carol@example.org", "--", "bob@example.test"])
    assert status == 0
    assert started == [([wrapper.LDA, "-e", "-d", "carol@example.org", "-m", "INBOX", "-f", "carol@example.org"],
                        FORWARDED)]


def test_a_vacation_reply_above_the_limit_is_not_sent(monkeypatch, tmp_path):
    status, _, started = run(monkeypatch, tmp_path, ["defer_if_permit Sending limit reached"], REPLY,
                             ["-i", "-f", "carol@example.org", "--", "x@outside.example"])
    assert status == 0
    assert started == []


def test_no_account_or_no_limit_service_is_a_temporary_failure(monkeypatch, tmp_path):
    started = patch(monkeypatch, REPLY)
    monkeypatch.setattr(wrapper, "POLICY_SOCKET", str(tmp_path / "nothing-here"))
    assert wrapper.main(["-i", "-f", "<>", "--", "x@outside.example"]) == wrapper.EX_TEMPFAIL
    assert wrapper.main(["-i", "-f", "carol@example.org", "--", "x@outside.example"]) == wrapper.EX_TEMPFAIL
    assert started == []
