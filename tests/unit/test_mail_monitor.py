"""mail-monitor's sending-limit check and its alert rule, on log lines as Postfix
writes them on Debian 13 (refused at DATA, with the login) and Debian 12 (at RCPT)."""

import importlib.machinery
import importlib.util
import json
import pathlib
import subprocess

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "roles/monitoring/files/mail-monitor"
_loader = importlib.machinery.SourceFileLoader("mail_monitor", str(SCRIPT))
_spec = importlib.util.spec_from_loader("mail_monitor", _loader)
monitor = importlib.util.module_from_spec(_spec)
_loader.exec_module(monitor)

REPLY = "Sending limit of this account reached, try again later"
TRIXIE = ("9131A1F24F0: reject: DATA from unknown[fd42::5]: 450 4.7.1 <DATA>: Data command rejected: "
          f"{REPLY}; from=<info@example.org> to=<bob@example.test> proto=ESMTP helo=<client> "
          "sasl_method=PLAIN sasl_username=carol@example.org")
BOOKWORM = ("NOQUEUE: reject: RCPT from unknown[172.18.0.5]: 450 4.7.1 <bob@example.test>: Recipient address "
            f"rejected: {REPLY}; from=<alice@example.test> to=<bob@example.test> proto=ESMTP helo=<client>")
OTHER = ("NOQUEUE: reject: RCPT from unknown[172.18.0.5]: 554 5.7.1 <x@elsewhere.example>: Relay access "
         "denied; from=<mallory@example.test> to=<x@elsewhere.example> proto=ESMTP helo=<client>")
CONF = {"sending_limit": {"reply": REPLY, "window_minutes": 15}}


def journal(monkeypatch, lines, returncode=0):
    calls = []

    def run(argv, **_kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, returncode, "\n".join(lines) + "\n", "no journal")
    monkeypatch.setattr(monitor.subprocess, "run", run)
    return calls


def test_no_refusal_is_ok(monkeypatch):
    journal(monkeypatch, [OTHER])
    outcome = monitor.check_sending_limit(CONF)
    assert outcome["ok"] and outcome["subjects"] == [], outcome


def test_refusals_name_the_login_or_the_sender(monkeypatch):
    calls = journal(monkeypatch, [TRIXIE, TRIXIE, BOOKWORM, OTHER])
    outcome = monitor.check_sending_limit(CONF)
    assert not outcome["ok"]
    assert outcome["subjects"] == ["alice@example.test", "carol@example.org"]
    assert "alice@example.test (1 refused)" in outcome["message"]
    assert "carol@example.org (2 refused)" in outcome["message"]
    assert outcome["metrics"]["sending_limit_refused"] == 3
    assert "-15min" in calls[0] and "postfix/submission/smtpd" in calls[0]


def test_an_unreadable_journal_is_a_failure_not_silence(monkeypatch):
    journal(monkeypatch, [], returncode=1)
    assert not monitor.check_sending_limit(CONF)["ok"]


@pytest.fixture
def rounds(monkeypatch, tmp_path):
    """Run main() with the given sending-limit outcomes; return the alerts sent."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"checks": ["sending_limit"], "state_dir": str(tmp_path), "repeat_hours": 24,
                                  "metrics_files": [], **CONF}))
    sent = []
    monkeypatch.setattr(monitor, "alert", lambda conf, name, status, message: sent.append((status, message)))

    def run(*outcomes):
        for outcome in outcomes:
            monkeypatch.setattr(monitor, "CHECKS", {"sending_limit": lambda conf, outcome=outcome: outcome})
            monkeypatch.setattr("sys.argv", ["mail-monitor", "--config", str(config)])
            assert monitor.main() == 0
        return sent
    return run


def test_a_new_account_is_alerted_while_the_check_fires(rounds):
    carol = monitor.result(False, "carol", subjects=["carol@example.org"])
    both = monitor.result(False, "carol and alice", subjects=["carol@example.org", "alice@example.test"])
    quiet = monitor.result(True, "none")
    assert rounds(carol, carol, both, both, quiet) == [
        ("firing", "carol"), ("firing", "carol and alice"), ("resolved", "none")]
