"""Operations: backups proven by restoring them, the restore drill, alerts that reach a
webhook on another host, the daily report, and the status playbook."""

import base64
import contextlib
import json
import re
import subprocess
import time

import pytest

from conftest import container, lab_value, queue_entries, run_playbook, run_site, token, wait_for, wait_until
from test_mail import ALICE, BOB, bob_has_all_of, queue_for_bob_while_dovecot_is_stopped, send25

REPOSITORY = "/var/backups/restic-mail"
STATE = "/var/lib/mail-backup"
RESTIC = "set -a && . /etc/mail-backup/restic.env && set +a && restic"
BOB_HOME = "/var/mail/vhosts/example.test/bob"


def message_id(tok):
    return f"<{tok}@client.example.test>"


def run_unit(mail, unit):
    """Start a oneshot unit as its timer would; returns the exit status."""
    return mail.run(f"systemctl start {unit}").rc


def status(mail, name):
    return json.loads(mail.file(f"{STATE}/{name}.json").content_string)


def snapshot_ids(mail):
    listed = mail.run(f"{RESTIC} snapshots --json")
    assert listed.rc == 0, listed.stderr
    return sorted(snap["id"] for snap in json.loads(listed.stdout))


def alerts(client, since):
    """Alerts the lab client's webhook receiver got since the given time."""
    log = client.file("/var/log/lab-webhook.jsonl")
    if not log.exists:
        return []
    bodies = [json.loads(line)["body"] for line in log.content_string.splitlines() if line.strip()]
    return [body for body in bodies if body["time"] >= since]


def wait_alert(client, since, check, state, timeout=60):
    deadline = time.time() + timeout
    while True:
        found = [a for a in alerts(client, since) if a["check"] == check and a["status"] == state]
        if found or time.time() > deadline:
            return found
        time.sleep(2)


def utc_now(mail):
    return mail.run("date -u +%Y-%m-%dT%H:%M:%S+00:00").stdout.strip()


def deferred(mail):
    return sum(1 for entry in queue_entries(mail) if entry["queue_name"] == "deferred")


def inbox(probe, user, password):
    return probe("imap", 993, "--tls", "--user", user, "--password", password, "--list")["messages"]


# --- Backup and restore ------------------------------------------------------------

def test_restore_of_a_destroyed_mailbox_brings_back_its_messages_and_flags(probe, passwords, mail):
    before = [token() for _ in range(3)]
    for tok in before:
        assert send25(probe, [BOB], tok)["data"][0] == 250
    for tok in before:
        assert wait_for(probe, BOB, passwords[BOB], tok)["found"] == 1
    flagged = probe("imap", 993, "--tls", "--user", BOB, "--password", passwords[BOB], "--token", before[0],
                    "--store-flag", "\\Flagged", "--store-flag", "\\Seen")
    assert flagged["found"] == 1

    assert run_unit(mail, "mail-backup.service") == 0
    backed_up = status(mail, "backup")
    assert backed_up["result"] == "ok", backed_up

    # The mailbox is lost; mail keeps arriving after the snapshot.
    assert mail.run(f"rm -rf {BOB_HOME}").rc == 0
    after = token()
    assert send25(probe, [BOB], after)["data"][0] == 250
    assert wait_for(probe, BOB, passwords[BOB], after)["found"] == 1
    assert {m["message_id"] for m in inbox(probe, BOB, passwords[BOB])} == {message_id(after)}

    restored = run_playbook("playbooks/restore.yml", "-e", f"mailbox={BOB}", "-e", "in_place=true")
    assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr[-2000:]

    messages = inbox(probe, BOB, passwords[BOB])
    ids = [m["message_id"] for m in messages]
    for tok in before + [after]:
        assert ids.count(message_id(tok)) == 1, (tok, ids)
    flags = {m["message_id"]: m["flags"] for m in messages}
    assert {"\\Flagged", "\\Seen"} <= set(flags[message_id(before[0])])
    assert "\\Flagged" not in flags[message_id(before[1])]

    # Again: nothing is duplicated, nothing newer is lost.
    again = run_playbook("playbooks/restore.yml", "-e", f"mailbox={BOB}", "-e", "in_place=true")
    assert again.returncode == 0, again.stdout[-3000:]
    assert sorted(m["message_id"] for m in inbox(probe, BOB, passwords[BOB])) == sorted(ids)


def test_restore_without_in_place_touches_nothing_live(probe, passwords, mail):
    live = sorted(m["message_id"] for m in inbox(probe, BOB, passwords[BOB]))
    snapshot = status(mail, "backup")["snapshot"]
    target = f"/var/mail/restore/test-{token()}"
    beside = run_playbook("playbooks/restore.yml", "-e", f"mailbox={BOB}", "-e", f"snapshot={snapshot[:8]}",
                          "-e", f"target={target}")
    assert beside.returncode == 0, beside.stdout[-3000:]
    restored = mail.run(f"grep -rl '^Message-ID:' {target}{BOB_HOME}/Maildir/cur {target}{BOB_HOME}/Maildir/new")
    assert restored.rc == 0 and len(restored.stdout.split()) >= 3, restored.stdout
    assert sorted(m["message_id"] for m in inbox(probe, BOB, passwords[BOB])) == live

    # The same target again is refused, with the reason.
    refused = run_playbook("playbooks/restore.yml", "-e", f"mailbox={BOB}", "-e", f"target={target}")
    assert refused.returncode != 0
    assert "already exists and is not empty" in refused.stdout + refused.stderr
    bad = run_playbook("playbooks/restore.yml", "-e", "mailbox=bob@example.test;rm", "-e", "in_place=true")
    assert bad.returncode != 0 and "Bad restore request: mailbox 'bob@example.test;rm'" in bad.stdout + bad.stderr


# --- Restore drill ------------------------------------------------------------------

def test_drill_matches_the_snapshot_and_fails_on_a_damaged_repository(mail, client):
    assert run_unit(mail, "mail-backup.service") == 0
    assert run_unit(mail, "mail-backup-drill.service") == 0
    drill = status(mail, "drill")
    assert drill["result"] == "ok", drill
    assert drill["snapshot"] == status(mail, "backup")["snapshot"]
    assert drill["messages"] > 0 and drill["missing"] == drill["mismatched"] == 0
    assert run_unit(mail, "mail-backup-check.service") == 0

    # Bit rot in the repository: 8 bytes in every 1 KiB of every pack changed.
    since = utc_now(mail)
    assert mail.run(f"cp -a {REPOSITORY} {REPOSITORY}.keep").rc == 0
    try:
        damage = mail.run(
            f"for f in $(find {REPOSITORY}/data -type f); do "
            "size=$(stat -c %s $f); chmod u+w $f; "
            "for at in $(seq 0 1024 $size); do "
            "printf 'XXXXXXXX' | dd of=$f bs=1 seek=$at conv=notrunc status=none; done; done")
        assert damage.rc == 0, damage.stderr
        # restic check reads the data back and finds the damage too.
        assert run_unit(mail, "mail-backup-check.service") != 0
        assert status(mail, "check")["result"] == "failed"
        # The failed unit's own alert, from the monitor run its OnFailure started; then
        # that run must have ended: systemd merges a start of a oneshot that is still
        # running into it, so the drill's failure would wait for the next timer tick.
        assert wait_alert(client, since, "services", "firing"), alerts(client, since)
        assert wait_until(lambda: mail.run("systemctl is-active mail-monitor.service").stdout.strip() != "activating",
                          60)
        assert run_unit(mail, "mail-backup-drill.service") != 0
        failed = status(mail, "drill")
        # restic refuses the damaged data, or the comparison finds it.
        assert failed["result"] == "failed", failed
        assert "restic restore failed" in failed["error"] or "differ from their checksum" in failed["error"], failed
        assert wait_alert(client, since, "drill", "firing"), alerts(client, since)
    finally:
        mail.run(f"rm -rf {REPOSITORY} && mv {REPOSITORY}.keep {REPOSITORY}")
    assert run_unit(mail, "mail-backup-check.service") == 0
    assert run_unit(mail, "mail-backup-drill.service") == 0
    assert run_unit(mail, "mail-monitor.service") == 0
    assert wait_alert(client, since, "drill", "resolved")


def test_a_pass_started_during_the_timers_pass_runs_after_it(mail):
    """A failed job's OnFailure (or an admin) starts mail-monitor.service. If the timer's
    pass is under way then, the new pass is one of its own, after it: merged into the
    pass that began before the failure, the failure would wait for the next round."""
    assert mail.check_output("systemctl show -p Triggers --value mail-monitor.timer") == "mail-monitor-scheduled.service"
    # The timer's pass waits at mail-monitor's lock, held here for a while.
    assert mail.run("systemd-run --unit lock-holder-probe --collect flock /var/lib/mail-monitor/lock sleep 15").rc == 0
    assert wait_until(lambda: mail.run("systemctl is-active lock-holder-probe.service").stdout.strip() == "active", 30)
    started = mail.check_output("cut -d' ' -f1 /proc/uptime")
    assert mail.run("systemctl start --no-block mail-monitor-scheduled.service").rc == 0
    assert mail.run("systemctl start --no-block mail-monitor.service").rc == 0
    states = mail.check_output("systemctl show -p ActiveState --value mail-monitor-scheduled.service mail-monitor.service")
    assert states.split() == ["activating", "activating"], states
    assert wait_until(lambda: mail.run("systemctl is-active mail-monitor-scheduled.service mail-monitor.service").stdout.split()
                      == ["inactive", "inactive"], 90)
    shown = mail.check_output("systemctl show -p Result -p ExecMainExitTimestampMonotonic "
                              "mail-monitor-scheduled.service mail-monitor.service")
    results = re.findall(r"Result=(\S+)", shown)
    exits = [int(value) / 1e6 for value in re.findall(r"ExecMainExitTimestampMonotonic=(\d+)", shown)]
    assert results == ["success", "success"], shown
    assert all(end > float(started) for end in exits), (started, shown)


BREAKAGES = {
    "wrong password": ("cp -a /etc/mail-backup/password /etc/mail-backup/password.keep && "
                       "echo not-the-password > /etc/mail-backup/password",
                       "mv /etc/mail-backup/password.keep /etc/mail-backup/password",
                       "wrong password"),
    "missing repository": (f"mv {REPOSITORY} {REPOSITORY}.away", f"mv {REPOSITORY}.away {REPOSITORY}",
                           "repository"),
    # A repository on a file system with room for what it holds and little more, and
    # 8 MiB of new, incompressible data to back up.
    "full disk": (f"cp -a {REPOSITORY} {REPOSITORY}.keep && "
                  f"mount -t tmpfs -o size=$(( $(du -sk {REPOSITORY} | cut -f1) + 1024 ))k tmpfs {REPOSITORY} && "
                  f"cp -a {REPOSITORY}.keep/. {REPOSITORY}/ && "
                  "head -c 8M /dev/urandom > /var/mail/archive/filler.bin",
                  f"umount {REPOSITORY} && rm -rf {REPOSITORY}.keep /var/mail/archive/filler.bin",
                  "no space left on device"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_failed_backup_alerts_and_keeps_the_earlier_snapshots(mail, client, breakage):
    brk, undo, reason = BREAKAGES[breakage]
    assert mail.run("mkdir -p /var/mail/archive").rc == 0
    snapshots = snapshot_ids(mail)
    assert snapshots
    since = utc_now(mail)
    broken = mail.run(brk)
    assert broken.rc == 0, broken.stderr
    try:
        assert run_unit(mail, "mail-backup.service") != 0
        failed = status(mail, "backup")
        assert failed["result"] == "failed" and reason in failed["error"].lower(), failed
        fired = wait_alert(client, since, "backup", "firing")
        assert fired and reason in fired[0]["message"].lower(), alerts(client, since)
        logged = mail.run(f"journalctl -t mail-monitor --since '{since.replace('T', ' ')[:19]} UTC' -o cat")
        assert '"check": "backup"' in logged.stdout and '"status": "firing"' in logged.stdout, logged.stdout
        if breakage == "full disk":
            # The full repository still holds every earlier snapshot, intact.
            assert snapshot_ids(mail) == snapshots
            assert mail.run(f"{RESTIC} check").rc == 0
    finally:
        assert mail.run(undo).rc == 0
    assert snapshot_ids(mail) == snapshots
    checked = mail.run(f"{RESTIC} check")
    assert checked.rc == 0, checked.stdout + checked.stderr
    assert run_unit(mail, "mail-backup.service") == 0
    assert run_unit(mail, "mail-monitor.service") == 0
    assert wait_alert(client, since, "backup", "resolved")


# --- File systems full ---------------------------------------------------------------

STORE = "/var/mail/vhosts"
SPOOL = "/var/spool/postfix"


# A process of a stopped service may still be on its way out (a policy program that
# Postfix started, a queue flush): the unmount waits for it, up to 20 s.
UNMOUNT = "for try in $(seq 40); do umount {path} 2>/dev/null && break; sleep 0.5; done; ! findmnt -n {path}"


@contextlib.contextmanager
def on_a_small_file_system(mail, path, services):
    """path moved onto a tmpfs of its size and twice the message size limit for the
    with block (enough for Postfix's rule of 1.5 times, once the test frees it), then back
    on its own disk with what was written meanwhile. The services that keep files or
    sockets in it, or whose sandboxes would not see a new mount (Postfix's), are stopped
    around each move; sockets are not copied (each service makes its own)."""
    def move(mount):
        moved = mail.run(
            f"systemctl stop {services} && rm -rf {path}.copy && cp -a {path} {path}.copy && "
            + (f"{mount} {path} && chown --reference={path}.copy {path} && chmod --reference={path}.copy {path} && "
               if mount else f"{UNMOUNT.format(path=path)} && find {path} -mindepth 1 -delete && ")
            + f"cp -a {path}.copy/. {path}/ && find {path} -type s -delete && rm -rf {path}.copy && "
            f"systemctl start {services}")
        assert moved.rc == 0, moved.stdout + moved.stderr
        sockets = mail.run(f"ss -xlH | grep -o ' {path}/[^ ]*' | sort").stdout.split()
        missing = [socket for socket in sockets if not mail.file(socket).is_socket]
        assert not missing, f"listening on sockets that are gone: {missing}"
    try:
        move(f"mount -t tmpfs -o size=$(( $(du -sk {path} | cut -f1) + $(postconf -h message_size_limit) / 512 ))k tmpfs")
        yield
    finally:
        move(None)
    assert mail.run(f"findmnt -n {path}").stdout == ""


def filled(mail, path):
    """Fill path's file system to the last block; the KiB left (0)."""
    left = mail.run(f"dd if=/dev/zero of={path}/filler bs=64k 2>/dev/null; df --output=avail -k {path} | tail -1")
    return int(left.stdout.split()[-1])


def retried_until_taken(probe, tok, timeout=60):
    """A sender's retries on 25 (to bob) until one is taken (250 after DATA)."""
    tries = []
    taken = wait_until(lambda: tries.append(send25(probe, [BOB], tok)) or tries[-1].get("data", [0])[0] == 250,
                       timeout)
    assert taken, tries[-3:]
    return tries


def submit_to_bob(probe, passwords, tok):
    """Alice's message to bob on 587 (STARTTLS, login), Message-ID from tok."""
    return probe("smtp", 587, "--starttls", "--user", ALICE, "--password", passwords[ALICE],
                 "--mail-from", ALICE, "--rcpt", BOB, "--token", tok)


def delivered_once_space_is_freed(mail, client, probe, passwords, since, sent, freed, record, what):
    """Space freed at `freed` (time.monotonic()): the monitor's next pass resolves the disk
    alert, and every Message-ID of sent is in bob's INBOX within a minute; the seconds go
    to the JUnit XML as seconds_from_<what>_freed_to_last_delivery."""
    assert run_unit(mail, "mail-monitor.service") == 0
    assert wait_alert(client, since, "disk", "resolved")
    assert wait_until(lambda: bob_has_all_of(probe, passwords, sent), 60), (
        "the mail did not arrive within a minute of the space being freed")
    took = round(time.monotonic() - freed)
    record(f"seconds_from_{what}_freed_to_last_delivery", took)
    print(f"delivered {len(sent)} of {len(sent)} {took} s after the {what.replace('_', ' ')} was freed")


def test_a_full_mail_store_refuses_mail_for_now_alerts_and_takes_it_once_space_is_freed(
        mail, probe, passwords, client, record_testsuite_property):
    """The mail store's file system full: port 25 answers 452 4.3.1 at RCPT, so the
    sender keeps its message; mail submitted on 587 for a local mailbox is taken and
    waits in Postfix's queue (Dovecot's LMTP answers 4xx; nothing bounces); the disk
    alert fires. Space freed, the sender's retry is taken, and the monitor's next pass
    resolves the alert and has Postfix retry the queued mail at once: every Message-ID
    sent arrives, once."""
    tok = token()
    assert run_unit(mail, "mail-monitor.service") == 0
    since = utc_now(mail)
    # journalctl of Debian 12 takes no ISO 8601 time.
    journal_since = mail.check_output("date -u '+%Y-%m-%d %H:%M:%S UTC'").strip()
    sent = {f"<{tok}{n}@client.example.test>" for n in ("a", "b")}
    with on_a_small_file_system(mail, STORE, "postfix dovecot"):
        try:
            assert filled(mail, STORE) == 0
            on_25 = send25(probe, [BOB], f"{tok}a")
            assert "data" not in on_25 and on_25["rcpt"][0][0] == 452 and "4.3.1" in on_25["rcpt"][0][1], on_25
            logged = mail.run(f"journalctl --since '{journal_since}' -t postfix/mail-store-space -o cat --no-pager")
            assert f"to <{BOB}>" in logged.stdout and f"{STORE}: 0 bytes free" in logged.stdout, logged.stdout
            on_587 = submit_to_bob(probe, passwords, f"{tok}b")
            assert on_587["data"][0] == 250, on_587

            def waiting():
                return [e for e in queue_entries(mail) if e["queue_name"] == "deferred"
                        and any(r["address"] == BOB for r in e["recipients"])]
            assert wait_until(waiting, 60), queue_entries(mail)
            reasons = [r.get("delay_reason", "") for e in waiting() for r in e["recipients"]]
            print("deferred:", reasons)
            assert all(" 4." in reason or "4.3" in reason for reason in reasons), reasons
            assert run_unit(mail, "mail-monitor.service") == 0
            fired = wait_alert(client, since, "disk", "firing")
            assert fired and f"disk of {STORE} 100% used" in fired[0]["message"], alerts(client, since)
        finally:
            mail.run(f"rm -f {STORE}/filler")
        freed = time.monotonic()
        retried_until_taken(probe, f"{tok}a")
        delivered_once_space_is_freed(mail, client, probe, passwords, since, sent, freed,
                                      record_testsuite_property, "space")
    assert bob_has_all_of(probe, passwords, sent)
    assert not [e for e in queue_entries(mail) if any(r["address"] == BOB for r in e["recipients"])]


def test_a_full_queue_file_system_refuses_mail_for_now_alerts_and_takes_it_once_space_is_freed(
        mail, probe, passwords, client, record_testsuite_property):
    """Postfix's queue file system full: ports 25 and 587 answer 452 4.3.1 at MAIL
    (Postfix takes no mail it has no room to keep) and the disk alert fires. Space freed,
    the senders' retries are taken and every Message-ID arrives, once."""
    tok = token()
    assert run_unit(mail, "mail-monitor.service") == 0
    since = utc_now(mail)
    sent = {f"<{tok}{n}@client.example.test>" for n in ("a", "b")}
    # rsyslog keeps the socket of the chroot's dev/log in the spool (and its socket unit
    # would start it again at once).
    with on_a_small_file_system(mail, SPOOL, "syslog.socket rsyslog postfix dovecot policyd-rate-limit"):
        try:
            assert filled(mail, SPOOL) == 0
            on_25 = send25(probe, [BOB], f"{tok}a")
            on_587 = submit_to_bob(probe, passwords, f"{tok}b")
            for session in (on_25, on_587):
                refused = session.get("mail", [0, ""])
                assert "data" not in session and refused[0] == 452 and "4.3.1" in refused[1], session
            assert run_unit(mail, "mail-monitor.service") == 0
            fired = wait_alert(client, since, "disk", "firing")
            assert fired and f"disk of {SPOOL} 100% used" in fired[0]["message"], alerts(client, since)
        finally:
            mail.run(f"rm -f {SPOOL}/filler")
        freed = time.monotonic()
        retried_until_taken(probe, f"{tok}a")
        retry = submit_to_bob(probe, passwords, f"{tok}b")
        assert retry["data"][0] == 250, retry
        delivered_once_space_is_freed(mail, client, probe, passwords, since, sent, freed,
                                      record_testsuite_property, "queue_space")
    assert not [e for e in queue_entries(mail) if any(r["address"] == BOB for r in e["recipients"])]


# --- Monitoring ---------------------------------------------------------------------

# Not under /tmp or /var/tmp: apt reads a file: archive in place, and mail-monitor runs
# with a private /var/tmp.
FAKE_SECURITY = "/var/local/mailbundle-fake-security"
FAKE_SOURCE = "/etc/apt/sources.list.d/mailbundle-fake-security.list"


def publish_a_fake_security_update(mail):
    """A local package archive labelled Debian-Security offering roundcube-core 99:1.0
    (an index entry only: there is no package to download), added to apt's sources and
    read by apt-get update of that source alone."""
    mail.check_output(f"""set -e; mkdir -p {FAKE_SECURITY}; cd {FAKE_SECURITY}
printf 'Package: roundcube-core\\nVersion: 99:1.0\\nArchitecture: all\\nMaintainer: Lab <postmaster@example.test>\\nFilename: ./roundcube-core_99_all.deb\\nSize: 1000\\nSHA256: %064d\\nDescription: a webmail security update that never was\\n' 0 > Packages
{{ printf 'Origin: Debian\\nLabel: Debian-Security\\nSuite: stable-security\\nDate: %s\\nSHA256:\\n' "$(date -Ru)"; printf ' %s %s Packages\\n' $(sha256sum Packages | cut -d' ' -f1) $(stat -c%s Packages); }} > Release
echo 'deb [trusted=yes] file:{FAKE_SECURITY} ./' > {FAKE_SOURCE}
apt-get update -q -o Dir::Etc::SourceList={FAKE_SOURCE} -o Dir::Etc::SourceParts=- -o APT::Get::List-Cleanup=false""")


def withdraw_the_fake_security_update(mail):
    mail.run(f"rm -rf {FAKE_SECURITY} {FAKE_SOURCE} /var/lib/apt/lists/_var_local_mailbundle-fake-security*")


def test_stuck_queue_expiring_certificate_and_late_security_update_alert_and_clear(probe, passwords, mail, client):
    since = utc_now(mail)
    publish_a_fake_security_update(mail)
    # Low test limits, set as an inventory would: any deferred message, any
    # certificate with less than 200 days (Pebble's last 90), any pending security
    # update at once (the default waits 36 h for unattended-upgrades).
    low = run_site("--tags", "monitoring", "-e", "monitoring_queue_deferred_max=0",
                   "-e", "monitoring_certificate_days_min=200", "-e", "monitoring_security_updates_grace_hours=0")
    assert low.returncode == 0, low.stdout[-3000:]
    # Earlier alert mails (a second verify run) must not count for this one.
    for check in ("queue", "certificate"):
        mail.check_output(f"doveadm expunge -u {ALICE} mailbox INBOX subject '[FIRING] mx1.example.test: {check}'")
    try:
        # The CA host has no SMTP server: the message waits in the deferred queue.
        tok = token()
        sent = probe("smtp", 587, "--starttls", "--user", ALICE, "--password", passwords[ALICE],
                     "--mail-from", ALICE, "--rcpt", "nobody@ca.example.test", "--token", tok)
        assert sent["data"][0] == 250, sent
        queue_id = sent["data"][1].rsplit(" ", 1)[1]
        # This message itself is deferred, not just any.
        assert wait_until(lambda: any(entry["queue_id"] == queue_id and entry["queue_name"] == "deferred"
                                      for entry in queue_entries(mail)), 60), queue_entries(mail)
        assert run_unit(mail, "mail-monitor.service") == 0
        queue = wait_alert(client, since, "queue", "firing")
        assert queue and "deferred (limit 0)" in queue[0]["message"], alerts(client, since)
        cert = wait_alert(client, since, "certificate", "firing")
        assert cert and "expires in" in cert[0]["message"], alerts(client, since)
        # The webmail's update is named, with the web-facing packages before the rest
        # (the lab's images may lack other security updates of the day too).
        updates = wait_alert(client, since, "security_updates", "firing")
        assert updates, alerts(client, since)
        named = [item.split()[0] for item in updates[0]["message"].split(": ", 1)[1].split("; ")[0].split(", ")]
        web = [name.startswith(("roundcube", "php", "nginx")) for name in named]
        assert "roundcube-core" in named and web == sorted(web, reverse=True), updates[0]["message"]
        logged = mail.run("journalctl -t mail-monitor -o cat --no-pager -n 50").stdout
        assert '"check": "queue"' in logged and '"status": "firing"' in logged
        # The postmaster (an alias of alice) got the alerts by mail too: the very alerts
        # the webhook got, each mail carrying its alert's time (a token of this run).
        for fired in (queue[0], cert[0]):
            subject = f"[FIRING] mx1.example.test: {fired['check']}"

            def mailed(subject=subject, fired=fired):
                seen = probe("imap", 993, "--tls", "--user", ALICE, "--password", passwords[ALICE],
                             "--token", subject, "--fetch")
                return any(f'"time": "{fired["time"]}"' in base64.b64decode(raw).decode(errors="replace")
                           for raw in seen.get("raw", []))
            assert wait_until(mailed, 60), (subject, fired["time"])

        assert mail.run("postsuper -d ALL deferred").rc == 0
        assert run_unit(mail, "mail-monitor.service") == 0
        assert wait_alert(client, since, "queue", "resolved")
    finally:
        withdraw_the_fake_security_update(mail)
        back = run_site("--tags", "monitoring")
        assert back.returncode == 0, back.stdout[-3000:]
    assert run_unit(mail, "mail-monitor.service") == 0
    assert wait_alert(client, since, "certificate", "resolved")
    # Withdrawn, and the lab's own pending updates within the default 36 h: resolved.
    assert wait_alert(client, since, "security_updates", "resolved")


def test_daily_report_reaches_the_postmaster_and_counts_the_tls_reports(probe, passwords, mail):
    # The report's subject names its period; a start of this check's own, to the second,
    # finds this report and no other, and counts only this check's TLS report.
    since = mail.check_output("date '+%Y-%m-%d %H:%M:%S'").strip()
    tok = token()
    assert send25(probe, [BOB], tok)["data"][0] == 250
    # An SMTP TLS report (RFC 8460), as a receiving site sends one to the address of the
    # _smtp._tls record: the postmaster.
    report = token()
    assert send25(probe, ["postmaster@example.test"], report, "--header", "TLS-Report-Domain: example.test",
                  "--header", "TLS-Report-Submitter: reports.example.net")["data"][0] == 250
    assert wait_for(probe, BOB, passwords[BOB], tok)["found"] == 1
    assert wait_for(probe, ALICE, passwords[ALICE], report)["found"] == 1
    time.sleep(1)
    sent = mail.run(f"/usr/local/sbin/mail-daily-report postmaster@example.test '{since}' now")
    assert sent.rc == 0, sent.stderr
    # postmaster@example.test is an alias of alice; only pflogsumm writes "Grand Totals".
    seen = wait_for(probe, ALICE, passwords[ALICE], f"{since} to now", 993, "--fetch")
    assert seen["found"] == 1, seen
    text = base64.b64decode(seen["raw"][0]).decode().replace("\r\n", "\n")
    assert "Grand Totals" in text, text
    assert "SMTP TLS reports (RFC 8460) received: 1\n  1 report(s) for example.test\n  from: reports.example.net" in text, text


def test_status_playbook_shows_the_real_state(mail):
    shown = run_playbook("playbooks/status.yml", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    assert shown.returncode == 0, shown.stdout[-3000:] + shown.stderr[-2000:]
    # ansible.cfg's profile_tasks callback prints timings around the JSON document.
    plays = json.JSONDecoder().raw_decode(shown.stdout[shown.stdout.index("{\n"):])[0]["plays"]
    tasks = [task for play in plays for task in play["tasks"]]
    lines = list([task["hosts"] for task in tasks if task["task"]["name"] == "Show the host's state"][0].values())[0]["msg"]
    text = "\n".join(lines)

    assert f"{deferred(mail)} deferred" in text, text
    not_after = mail.run("date -u -d \"$(openssl x509 -noout -enddate -in /etc/ssl/mail/fullchain.pem "
                         "| cut -d= -f2)\" +%F").stdout.strip()
    assert f"until {not_after}" in text, text
    assert f"snapshot {status(mail, 'backup')['snapshot'][:8]}" in text, text
    drill = status(mail, "drill")
    assert f"snapshot {drill['snapshot'][:8]}, {drill['messages']} messages in" in text, text
    assert "[ ok ] services: all running" in lines

    # The records, from dns_records.yml's own plays (one list of lines per domain).
    printed = [task for task in tasks if task["task"]["name"] == "Print the records to publish"][0]
    records = {item["domain"]: item["msg"] for result in printed["hosts"].values() for item in result["results"]}
    address = mail.run("hostname -I").stdout.split()[0]
    assert f"mx1.example.test. IN A {address}" in records["example.test"], records["example.test"]
    for domain in ("example.test", "example.org"):
        assert "@ IN MX 10 mx1.example.test." in records[domain], records[domain]
        assert '@ IN TXT "v=spf1 mx -all"' in records[domain], records[domain]
    assert '_dmarc IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.test"' in records["example.test"]


def test_prometheus_exporters_serve_the_metrics_on_loopback_only(mail, client):
    assert run_unit(mail, "mail-monitor.service") == 0
    fetch = ("python3 -c \"import urllib.request; "
             "print(urllib.request.urlopen('http://127.0.0.1:{}/metrics', timeout=10).read().decode())\"")
    node = mail.run(fetch.format(9100))
    assert node.rc == 0, node.stderr
    assert 'mailbundle_check_ok{check="queue"} 1' in node.stdout
    assert "mailbundle_certificate_days_left " in node.stdout
    postfix = mail.run(fetch.format(9154))
    assert postfix.rc == 0, postfix.stderr
    assert any(line.startswith("postfix_up") and line.endswith(" 1") for line in postfix.stdout.splitlines()), \
        postfix.stdout[:2000]
    # From outside, neither port answers (port 25 on the same address does: other tests);
    # the firewall drops them besides (test_security.py proves that part).
    for port in (9100, 9154):
        reach = client.run(f"python3 -c \"import socket; socket.create_connection(('mx1.example.test', {port}), 5)\"")
        assert reach.rc != 0 and ("Connection refused" in reach.stderr or "timed out" in reach.stderr), \
            (port, reach.stderr)


def test_whole_host_restore_in_place_adds_what_is_missing_and_nothing_else(probe, passwords, mail):
    renewal = "/etc/letsencrypt/renewal/mail.conf"
    original = mail.file(renewal).content_string
    assert run_unit(mail, "mail-backup.service") == 0
    messages = sorted(m["message_id"] for m in inbox(probe, BOB, passwords[BOB]))
    assert mail.run(f"rm -rf {renewal} /etc/letsencrypt/renewal").rc == 0

    restored = run_playbook("playbooks/restore.yml", "-e", "in_place=true")
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert mail.file(renewal).content_string == original
    assert mail.file("/etc/letsencrypt/renewal").mode == 0o755
    assert mail.run("certbot certificates --cert-name mail").rc == 0
    assert sorted(m["message_id"] for m in inbox(probe, BOB, passwords[BOB])) == messages


# --- A restart -----------------------------------------------------------------------

# The timers the roles install or switch on (the webmail's come with Debian's roundcube
# package). The test fails on a timer that is neither here nor Debian's own.
OUR_TIMERS = {"certbot", "mail-backup", "mail-backup-check", "mail-backup-drill", "mail-monitor",
              "mail-daily-report", "policyd-rate-limit-clean", "roundcube-gc", "roundcube-cleandb"}
# The rule update's timer, on only where rule updates are (the lab has no network for them).
RULE_UPDATES = "spamassassin-maintenance"
# Debian's own; of them, unattended upgrades' two (the common role turns them on) must be
# enabled and scheduled too. None of these is run here (apt would fetch from the mirror).
DEBIAN_TIMERS = {"apt-daily", "apt-daily-upgrade", "dpkg-db-backup", "e2scrub_all", "fstrim", "logrotate",
                 "man-db", "systemd-tmpfiles-clean", "phpsessionclean"}


def test_a_restart_with_mail_in_the_queue_delivers_it_and_every_timer_runs(mail, probe, passwords, mail_name,
                                                                            record_testsuite_property):
    """The mail host restarted (docker restart: a shutdown, then a new boot) while mail
    for a mailbox waits in Postfix's queue: after the boot no unit has failed, the queued
    messages are delivered within a minute (the Message-IDs sent and found match), and
    every timer the roles install is enabled and scheduled, and one run of each, started
    through the service its timer starts, succeeds."""
    try:
        sent = queue_for_bob_while_dovecot_is_stopped(mail, token(), "restart")
    except BaseException:
        mail.run("systemctl start dovecot")
        raise
    # Docker stops it as a shutdown does (SIGRTMIN+3 to systemd), then it boots again.
    restart = subprocess.run(["docker", "restart", "-t", "60", container(mail_name)], capture_output=True, text=True, check=False)
    assert restart.returncode == 0, restart.stderr
    booted = time.time()

    def up():
        return mail.run("systemctl is-system-running --wait").stdout.strip() not in ("", "initializing", "starting")
    assert wait_until(up, 180), "the mail host did not finish booting within 3 minutes"
    state = mail.run("systemctl is-system-running").stdout.strip()
    assert state == "running", (state, mail.run("systemctl --failed --no-legend").stdout)

    assert wait_until(lambda: bob_has_all_of(probe, passwords, sent), 60), (
        f"queued mail not delivered within a minute of the boot: {queue_entries(mail)}")
    took = round(time.time() - booted)
    record_testsuite_property("seconds_from_restart_to_last_delivery", took)
    print(f"delivered {len(sent)} of {len(sent)} queued messages {took} s after the restart began")

    # NEXT (first column) is "-" for a timer with no next run; the unit is the second-last.
    listed = mail.check_output("systemctl list-timers --all --no-legend --plain").splitlines()
    timers = {line.split()[-2].removesuffix(".timer"): line for line in listed if line.strip()}
    rule_updates = lab_value("mailservers", "spam", "spamassassin_rule_updates")
    assert set(timers) - DEBIAN_TIMERS == OUR_TIMERS | ({RULE_UPDATES} if rule_updates else set()), sorted(timers)
    if not rule_updates:
        assert mail.run(f"systemctl is-enabled {RULE_UPDATES}.timer").stdout.strip() == "disabled"
    for timer in sorted(set(timers) - DEBIAN_TIMERS | {"apt-daily", "apt-daily-upgrade"}):
        assert mail.run(f"systemctl is-enabled {timer}.timer").stdout.strip() == "enabled", timer
        assert mail.run(f"systemctl is-active {timer}.timer").stdout.strip() == "active", timer
        assert not timers[timer].startswith("-"), f"{timer}.timer has no next run: {timers[timer]}"
    for timer in sorted(set(timers) - DEBIAN_TIMERS):
        service = mail.check_output(f"systemctl show -p Unit --value {timer}.timer").strip()
        before = mail.check_output("date '+%Y-%m-%d %H:%M:%S'").strip()
        ran = mail.run(f"systemctl start {service}")
        result = mail.check_output(f"systemctl show -p Result --value {service}").strip()
        logged = mail.run(f"journalctl -u {service} --since '{before}' --no-pager -o cat").stdout
        assert ran.rc == 0 and result == "success", (service, ran.stderr, logged[-2000:])
        # PHP's fatal errors do not always reach the exit status (Roundcube's upkeep).
        assert "Fatal error" not in logged, (service, logged[-2000:])
