"""A third host added by an inventory edit: the backup MX of b.test.

The tests here run in order: the host is added and converged, then it stands in for
b.test's server while that is down.
"""

import json
import time

import pytest

from conftest import host, journal, now, run_playbook, send_as, token, wait_for_message

EXISTING = ["mx.a.test", "mx.b.test"]
NEW = "mx2.b.test"

# The inventory edit an operator makes: the new host in the backup_mx group, naming
# the server it stands in for.
ADDED = """all:
  children:
    backup_mx:
      hosts:
        mx2.b.test:
          mail_backup_mx_for: [mx.b.test]
"""


@pytest.fixture(scope="module")
def added(tmp_path_factory):
    path = tmp_path_factory.mktemp("inventory") / "added.yml"
    path.write_text(ADDED)
    return path


def test_adding_the_host_changes_nothing_on_the_others(added):
    changed = run_playbook("site.yml", added)
    for name in EXISTING:
        assert changed[name] == [], (name, changed[name])
    assert changed[NEW], "the new host was not set up"


def test_second_run_changes_nothing_on_the_new_host(added):
    """Idempotence of the new host (Molecule's own step ran before it was added)."""
    changed = run_playbook("site.yml", added, limit=NEW)
    assert changed == {NEW: []}, changed


def test_records_name_the_backup_as_next_mx(added):
    changed = run_playbook("molecule/multihost/records.yml", added)
    # b.test's snippet on the controller (written once, for the first mail host) and the
    # resolver's zone change; nothing on any mail host.
    assert changed.pop("mx.a.test") == ["Write a zone-file snippet per domain"], changed
    assert changed.pop("ns.lab.test"), "the resolver did not publish the backup MX"
    assert all(tasks == [] for tasks in changed.values()), changed
    # b.test's zone now names the backup (before, the name did not resolve there).
    assert host("mx.a.test").check_output(f"getent hosts {NEW}").split()[1] == NEW


def monitor(name):
    """The host's checks as mail-monitor sees them now (--status alerts nobody)."""
    return json.loads(host(name).check_output("/usr/local/sbin/mail-monitor --status"))["checks"]


def test_backup_is_watched_without_a_mail_store():
    checks = monitor(NEW)
    assert sorted(checks) == ["certificate", "disk", "queue", "security_updates", "services"], checks
    assert all(check["ok"] for check in checks.values()), checks
    assert checks["services"]["message"] == "services: all running", checks["services"]
    assert host(NEW).service("mail-monitor.timer").is_running


def test_backup_listens_on_smtp_only(client):
    from_outside = client.run(
        "python3 -c \"import socket\nfor p in (25, 465, 587, 143, 993):\n"
        "    s = socket.socket(); s.settimeout(3)\n"
        "    print(p, s.connect_ex(('mx2.b.test', p)) == 0)\"")
    assert from_outside.stdout.split("\n")[0] == "25 True", from_outside.stdout
    assert all(line.endswith("False") for line in from_outside.stdout.strip().split("\n")[1:]), from_outside.stdout


def test_backup_refuses_unknown_recipients_at_rcpt(probe):
    out = probe("smtp", NEW, 25, "--starttls", "--mail-from", "someone@a.test",
                "--rcpt", "nobody@b.test", "--rcpt", "alice@a.test", "--no-data")
    assert out["tls_version"] in ("TLSv1.2", "TLSv1.3"), out
    unknown, elsewhere = out["rcpt"]
    assert unknown[0] == 550 and "nobody@b.test" in unknown[1], unknown
    assert elsewhere[0] == 554 and "Relay access denied" in elsewhere[1], elsewhere


def test_backup_accepts_for_existing_recipients(probe):
    out = probe("smtp", NEW, 25, "--starttls", "--mail-from", "someone@a.test",
                "--rcpt", "bob@b.test", "--rcpt", "team@b.test", "--no-data")
    assert [code for code, _ in out["rcpt"]] == [250, 250], out


def held_for_b(backup, address):
    """Whether the backup holds mail for address, deferred because B refused it."""
    for line in backup.check_output("postqueue -j").splitlines():
        for recipient in json.loads(line)["recipients"]:
            reason = recipient.get("delay_reason", "")
            if recipient["address"] == address and "mx.b.test" in reason and "Connection refused" in reason:
                return True
    return False


def test_backup_holds_mail_while_b_is_down_and_delivers_after(probe):
    b, backup = host("mx.b.test"), host(NEW)
    tok = token()
    b.check_output("systemctl stop postfix")
    try:
        since_a, since_backup = now("mx.a.test"), now(NEW)
        send_as(probe, "mx.a.test", "alice@a.test", "bob@b.test", tok)
        # A found B refused and handed the message to the next MX, verified; the
        # backup tried B itself, found it refused too, and keeps the message. The
        # message is in the backup's queue before its own attempt at B: wait for the
        # reason the backup gives for holding it, and for its log (journald may lag).
        deadline = time.monotonic() + 120
        while not (held_for_b(backup, "bob@b.test")
                   and "Connection refused" in journal(NEW, "postfix*", since_backup)):
            assert time.monotonic() < deadline, (
                journal("mx.a.test", "postfix*", since_a)[-2000:], journal(NEW, "postfix*", since_backup)[-2000:])
            time.sleep(2)
        assert f"Verified TLS connection established to {NEW}" in journal("mx.a.test", "postfix*", since_a)
        queued = journal(NEW, "postfix*", since_backup)
        assert "connect to mx.b.test" in queued and "Connection refused" in queued, queued[-3000:]
        # The backup's own monitoring sees the mail it holds.
        queue = monitor(NEW)["queue"]
        assert queue["metrics"]["queue_active"] + queue["metrics"]["queue_deferred"] >= 1, queue
    finally:
        b.check_output("systemctl start postfix")
    since_backup = now(NEW)
    backup.check_output("postqueue -f")
    message = wait_for_message(probe, "mx.b.test", "bob@b.test", tok)
    assert any(f"by {NEW}" in r for r in message.get_all("Received")), message.get_all("Received")
    # The backup checked B's certificate against the CA and B's name.
    assert "Verified TLS connection established to mx.b.test" in journal(NEW, "postfix*", since_backup)
    assert backup.check_output("postqueue -j") == ""


def test_backup_keeps_mail_for_two_weeks():
    assert host(NEW).check_output("postconf -h maximal_queue_lifetime") == "14d"
