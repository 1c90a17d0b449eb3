"""A third host added by an inventory edit: the backup MX of b.test.

The tests here run in order: the host is added and converged, then it stands in for
b.test's server while that is down.
"""

import json
import shlex
import subprocess
import time

import pytest

from conftest import PASSWORDS, PROBE, host, journal, now, run_playbook, send_as, token, wait_for_message

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


# What adding a backup MX changes on the server it stands in for: mail the backup hands
# on skips the SPF check, postscreen, the own domain guard and the port 25 filters there
# (the backup judged it).
TRUSTS_ITS_BACKUP = {f"postfix : {task}" for task in (
    "Write the backup MX hosts that skip postscreen and port 25's milters", "Configure the SPF check",
    "Write the trusted senders, the domains only they may use on port 25 and the clients exempt from the AUTH rate",
    "Check postfix configuration", "Check postfix parameters for unknown or misspelt names", "Reload postfix",
    "Check STARTTLS with the configuration in force")}


def test_adding_the_host_changes_only_its_primary_s_trust_in_it(added):
    changed = run_playbook("site.yml", added)
    assert changed["mx.a.test"] == [], changed["mx.a.test"]
    assert "postfix : Write the backup MX hosts that skip postscreen and port 25's milters" in changed["mx.b.test"]
    assert set(changed["mx.b.test"]) <= TRUSTS_ITS_BACKUP, changed["mx.b.test"]
    assert changed[NEW], "the new host was not set up"
    # The backup's address, in both of B's tables and in its SPF check's skip list.
    address = host(NEW).check_output("hostname -I").split()[0]
    b = host("mx.b.test")
    assert f"{address} DISABLE" in b.check_output("cat /etc/postfix/backup_mx_milters.cidr").splitlines()
    assert f"{address} permit" in b.check_output("cat /etc/postfix/backup_mx_postscreen.cidr").splitlines()
    assert f"{address} OK" in b.check_output("cat /etc/postfix/trusted_senders.cidr").splitlines()
    assert f",{address}" in b.check_output("grep ^skip_addresses /etc/postfix-policyd-spf-python/policyd-spf.conf")


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


JUNK_PHRASE = "mailbundle lab junk phrase"
REJECT_PHRASE = "mailbundle lab reject phrase"


def spamd_saw(name, tok, since):
    """Whether the host's spamd scanned the message whose Message-ID holds tok."""
    return f"processing message <{tok}@" in host(name).check_output(f"journalctl -q -o cat -t spamd --since @{since}")


def nothing_bounced(since):
    """The backup queued no bounce and holds nothing since then."""
    log = journal(NEW, "postfix*", since)
    assert "sender non-delivery notification" not in log and "status=bounced" not in log, log[-3000:]
    assert host(NEW).check_output("postqueue -j") == ""


def test_backup_refuses_at_smtp_time_what_the_primary_would_refuse(probe):
    """A backup that took these and then met the primary's refusal would bounce them to
    the (forged) sender: backscatter. It refuses them itself, 5xx, so nothing bounces."""
    since = now(NEW)
    spam_tok, forged_tok = token(), token()
    spam = probe("smtp", NEW, 25, "--starttls", "--mail-from", "someone@example.org", "--rcpt", "bob@b.test",
                 "--token", spam_tok, "--text", REJECT_PHRASE)
    assert spam["data"][0] == 550, spam
    assert spamd_saw(NEW, spam_tok, since)
    forged = probe("smtp", NEW, 25, "--starttls", "--mail-from", "news@dmarc-reject.test", "--rcpt", "bob@b.test",
                   "--token", forged_tok)
    assert forged["data"][0] == 550 and "DMARC" in forged["data"][1], forged
    nothing_bounced(since)


def test_what_the_backup_took_the_primary_files_as_the_backup_judged_it(probe):
    """Scored just below the reject score at the backup: taken there, handed to B, which
    scans it no more (its filters would see the backup, not the sender) and files it
    into Junk by the backup's spam headers; nothing bounces."""
    since_backup, since_b = now(NEW), now("mx.b.test")
    tok = token()
    sent = probe("smtp", NEW, 25, "--starttls", "--mail-from", "someone@example.org", "--rcpt", "bob@b.test",
                 "--token", tok, "--text", JUNK_PHRASE)
    assert sent["data"][0] == 250, sent
    message = wait_for_message(probe, "mx.b.test", "bob@b.test", tok, folder="Junk")
    assert message["X-Spam-Flag"] == "YES" and "LAB_JUNK_PHRASE" in message["X-Spam-Status"], message
    assert any(f"by {NEW}" in r for r in message.get_all("Received")), message.get_all("Received")
    assert spamd_saw(NEW, tok, since_backup)
    assert not spamd_saw("mx.b.test", tok, since_b)
    nothing_bounced(since_backup)


def test_mail_a_peer_forwards_through_the_backup_with_b_s_domain_arrives(probe):
    """A forwards a message whose sender is a b.test address (no SRS), through the
    backup: the backup takes it from A (a trusted sender), and B takes it from its
    backup instead of refusing its own domain from outside, which would make the backup
    bounce it."""
    a = host("mx.a.test")
    subprocess.run(["docker", "cp", str(PROBE), "mx.a.test:/root/mailprobe.py"], check=True)
    since = now(NEW)
    tok = token()
    sent = json.loads(a.check_output(shlex.join(
        ["python3", "/root/mailprobe.py", "smtp", "--host", NEW, "--port", "25", "--starttls",
         "--mail-from", "someone@b.test", "--rcpt", "bob@b.test", "--token", tok])))
    assert sent["data"][0] == 250, sent
    deadline = time.monotonic() + 120
    while not any(probe("imap", "mx.b.test", 993, "--tls", "--user", "bob@b.test", "--password",
                        PASSWORDS["bob@b.test"], "--token", tok, "--folder", folder).get("found")
                  for folder in ("INBOX", "Junk")):
        assert time.monotonic() < deadline, journal(NEW, "postfix*", since)[-3000:]
        time.sleep(3)
    nothing_bounced(since)


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
