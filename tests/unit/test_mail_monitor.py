"""mail-monitor's sending-limit check and its alert rule, on log lines as Postfix
writes them on Debian 13 (refused at DATA, with the login) and Debian 12 (at RCPT)."""

import importlib.machinery
import importlib.util
import json
import os
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


# --- The services check asks Postfix's per-connection policy services a request ---------

def policy_server(path, behaviour):
    """A UNIX socket server at path that answers one connection as behaviour says."""
    import socket
    import threading

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve():
        conn, _ = server.accept()
        with conn:
            request = b""
            while not request.endswith(b"\n\n"):
                request += conn.recv(4096)
            if behaviour == "answers":
                assert b"request=smtpd_access_policy\n" in request
                conn.sendall(b"action=prepend X-Comment: skipped\n\n")
            elif behaviour == "silent":
                threading.Event().wait(3)
        server.close()

    threading.Thread(target=serve, daemon=True).start()


@pytest.mark.parametrize("behaviour, fault", [
    ("answers", None),
    ("closes", "closed the connection without an answer"),
    ("silent", "timed out"),
    ("absent", "No such file or directory"),
], ids=["answers", "closes", "silent", "absent"])
def test_a_policy_service_that_gives_no_answer_is_a_fault(tmp_path, behaviour, fault):
    path = tmp_path / "policyd-spf"
    if behaviour != "absent":
        policy_server(path, behaviour)
    assert monitor.policy_fault(str(path), timeout=1) == fault


def test_the_services_check_names_a_policy_service_that_gives_no_answer(tmp_path, monkeypatch):
    monkeypatch.setattr(monitor.subprocess, "run",
                        lambda argv, **_kw: subprocess.CompletedProcess(argv, 0, "active\n" if "is-active" in argv
                                                                        else "", ""))
    conf = {"services": ["postfix.service"],
            "policy_services": [{"name": "policyd-spf", "socket": str(tmp_path / "gone")}]}
    outcome = monitor.check_services(conf)
    assert not outcome["ok"]
    assert "policy service policyd-spf does not answer (No such file or directory)" in outcome["message"]
    conf["policy_services"] = []
    assert monitor.check_services(conf)["ok"]


@pytest.mark.parametrize("recovered, flushed", [(["disk"], True), (["services", "queue"], True),
                                                (["certificate"], False), ([], False)],
                         ids=["disk", "services", "certificate", "none"])
def test_deferred_mail_is_retried_when_a_check_that_defers_it_recovers(monkeypatch, recovered, flushed):
    calls = []
    monkeypatch.setattr(monitor.subprocess, "run",
                        lambda argv, **_kw: calls.append(argv) or subprocess.CompletedProcess(argv, 0, "", ""))
    monkeypatch.setattr(monitor.syslog, "syslog", lambda *_args: None)
    assert monitor.flush_after_recovery(recovered) == flushed
    assert calls == ([["postqueue", "-f"]] if flushed else [])


def file_systems(monkeypatch, systems):
    """Paths on fake file systems: {path: (device, blocks, free blocks, inodes, free inodes)}."""
    real_stat, real_statvfs = os.stat, os.statvfs  # the os module is pytest's too

    def stat(path, *args, **kwargs):
        if str(path) not in systems:
            return real_stat(path, *args, **kwargs)
        return type("Stat", (), {"st_dev": systems[path][0]})

    def statvfs(path):
        if str(path) not in systems:
            return real_statvfs(path)
        _, blocks, bavail, files, favail = systems[path]
        return type("StatVFS", (), {"f_blocks": blocks, "f_bavail": bavail, "f_files": files, "f_favail": favail})
    monkeypatch.setattr(monitor.os, "stat", stat)
    monkeypatch.setattr(monitor.os, "statvfs", statvfs)


DISK = {"disk": {"paths": ["/var/mail/vhosts", "/var/spool/postfix"], "used_max_percent": 85}}


def test_disk_names_the_full_file_system_first_and_alerts_for_it(monkeypatch):
    file_systems(monkeypatch, {"/var/mail/vhosts": (1, 1000, 500, 100, 90),
                               "/var/spool/postfix": (2, 1000, 0, 100, 90)})
    outcome = monitor.check_disk(DISK)
    assert not outcome["ok"] and outcome["subjects"] == ["/var/spool/postfix"], outcome
    assert outcome["message"] == ("disk of /var/spool/postfix 100% used, inodes 10% used; "
                                  "disk of /var/mail/vhosts 50% used, inodes 10% used (limit 85%)")
    assert outcome["metrics"] == {"disk_used_percent": 100, "disk_inodes_used_percent": 10}


def test_disk_counts_inodes_and_one_file_system_once(monkeypatch):
    file_systems(monkeypatch, {"/var/mail/vhosts": (1, 1000, 900, 100, 5),
                               "/var/spool/postfix": (1, 1000, 900, 100, 5)})
    outcome = monitor.check_disk(DISK)
    assert not outcome["ok"] and outcome["subjects"] == ["/var/mail/vhosts"], outcome
    assert outcome["message"] == "disk of /var/mail/vhosts 10% used, inodes 95% used (limit 85%)"


def test_disk_below_the_limit_is_ok_and_a_missing_path_is_not(monkeypatch):
    file_systems(monkeypatch, {"/var/mail/vhosts": (1, 1000, 150, 0, 0), "/var/spool/postfix": (2, 1000, 900, 10, 9)})
    assert monitor.check_disk(DISK)["ok"]
    missing = monitor.check_disk({"disk": {"paths": ["/nonexistent"], "used_max_percent": 85}})
    assert not missing["ok"] and "disk of /nonexistent" in missing["message"], missing


# --- Security updates: apt-get -s dist-upgrade as Debian 13 and 12 print it -------------

SIMULATION = "\n".join([
    "Reading package lists...",
    "Inst login.defs [1:4.17.4-2] (1:4.17.4-2+deb13u1 Debian-Security:13/stable-security [all])",
    "Inst libzstd1 [1.5.7+dfsg-1] (1.5.7+dfsg-1+deb13u1 Debian:13.2/stable [amd64])",
    "Inst php8.2-fpm [8.2.28-1~deb12u1] (8.2.29-1~deb12u1 Debian-Security:12/oldstable-security [amd64]) []",
    "Inst tzdata [2025a-0+deb12u1] (2025b-0+deb12u1 Debian:12.12/oldstable, Debian:12-updates/oldstable-updates [all])",
    "Inst roundcube-core [1.6.22+dfsg-0+deb13u1] (99:1.0 Local:13/trixie-security [all])",
    "Inst newpackage (1.0 Debian-Security:13/stable-security [amd64])",
    "Conf login.defs (1:4.17.4-2+deb13u1 Debian-Security:13/stable-security [all])",
])
UPDATES = {"security_updates": {"grace_hours": 36, "lists_max_age_hours": 48, "first": ["roundcube", "php"]}}


def test_security_upgrades_are_told_by_their_archive():
    assert monitor.security_upgrades(SIMULATION) == {
        "login.defs": "1:4.17.4-2+deb13u1", "php8.2-fpm": "8.2.29-1~deb12u1",
        "roundcube-core": "99:1.0", "newpackage": "1.0"}


@pytest.fixture
def apt(monkeypatch, tmp_path):
    """check_security_updates against a fake apt: lists of the given age, the
    simulation above; returns a function that runs the check at a given time."""
    lists = tmp_path / "lists"
    lists.mkdir()
    monkeypatch.setattr(monitor, "APT_LISTS", str(lists))
    monkeypatch.setattr(monitor.subprocess, "run",
                        lambda argv, **_: subprocess.CompletedProcess(argv, 0, SIMULATION, ""))
    start = 1_800_000_000

    def check(hours_later, lists_age_hours=1, **changes):
        release = lists / "mirror_dists_trixie_InRelease"
        release.write_text("x")
        os.utime(release, (start, start + hours_later * 3600 - lists_age_hours * 3600))
        monkeypatch.setattr(monitor, "now", lambda: start + hours_later * 3600)
        conf = {"state_dir": str(tmp_path), "security_updates": {**UPDATES["security_updates"], **changes}}
        return monitor.check_security_updates(conf)
    return check


def test_pending_security_updates_wait_out_the_grace_then_fire_web_facing_first(apt):
    first = apt(0)
    assert first["ok"] and first["metrics"]["security_updates_pending"] == 4, first
    assert apt(35.9)["ok"]
    late = apt(36)
    assert not late["ok"] and late["subjects"] == ["login.defs", "newpackage", "php8.2-fpm", "roundcube-core"]
    named = late["message"].split(": ", 1)[1]
    assert named.startswith("php8.2-fpm 8.2.29-1~deb12u1, roundcube-core 99:1.0, login.defs"), named
    # No grace: at once.
    assert not apt(0, grace_hours=0)["ok"]


def test_stale_package_lists_fire_and_no_lists_is_a_failure(apt, tmp_path):
    stale = apt(0, lists_age_hours=49)
    assert not stale["ok"] and "49 h ago" in stale["message"], stale
    (tmp_path / "lists" / "mirror_dists_trixie_InRelease").unlink()
    none = monitor.check_security_updates({"state_dir": str(tmp_path), **UPDATES})
    assert not none["ok"] and "no package lists" in none["message"], none
