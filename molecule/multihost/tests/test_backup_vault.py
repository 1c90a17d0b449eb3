"""B's backups go into an append-only vault: the mail host adds snapshots and restores
from them, but cannot delete one, even with the repository's password and its own
login; the vault prunes them itself, and a snapshot dated ahead stops the pruning.

Snapshots are compared by id, as sets, on the vault's side of the repository."""

import datetime
import json
import shlex

import pytest

from conftest import host, send_as, token, wait_for_message

MAIL = "mx.b.test"
VAULT = "vault.lab.test"
REPOSITORY = f"/srv/mail-backup/repos/{MAIL}"
PRUNE = f"mail-vault-prune@{MAIL}.service"


def on_mail_host(*args):
    """restic on the mail host with everything its backups have: the repository, its
    password, and the SSH login the vault locks to append-only."""
    return host(MAIL).run("set -a; . /etc/mail-backup/restic.env; set +a; "
                          + shlex.join(["restic", "-o", "rclone.program=/etc/mail-backup/vault-ssh", *args]))


def on_vault(*args):
    """restic on the vault, as the vault's user, on the repository's folder itself."""
    return host(VAULT).run(f'P="$(cat /etc/mail-backup-vault/{MAIL}.password)"; '
                           'runuser -u mailbackup -- env RESTIC_PASSWORD="$P" '
                           + shlex.join(["restic", "--no-cache", "-r", REPOSITORY, *args]))


def snapshots():
    """{id: time} of every snapshot in the repository, read on the vault."""
    listed = on_vault("--no-lock", "snapshots", "--json")
    assert listed.rc == 0, listed.stderr
    return {snap["id"]: snap["time"] for snap in json.loads(listed.stdout or "[]") or []}


def add_dated_snapshot(when):
    """A snapshot the mail host adds with a date of its choosing (append-only allows it)."""
    before = set(snapshots())
    added = on_mail_host("backup", "--tag", "mailbundle", "--host", MAIL, "--time",
                         when.strftime("%Y-%m-%d %H:%M:%S"), "/etc/hostname")
    assert added.rc == 0, added.stderr
    (new,) = set(snapshots()) - before
    return new


def forget_on_vault(ids):
    if ids:
        cleaned = on_vault("forget", "--prune", *ids)
        assert cleaned.rc == 0, cleaned.stderr


@pytest.fixture(scope="module")
def backed_up(probe):
    """A message for bob, then a backup of B into the vault; the new snapshot's id."""
    tok = token()
    send_as(probe, "mx.a.test", "alice@a.test", "bob@b.test", tok)
    wait_for_message(probe, MAIL, "bob@b.test", tok)
    before = set(snapshots())
    backup = host(MAIL).run("mail-backup backup")
    assert backup.rc == 0, backup.stdout + backup.stderr
    (snapshot,) = set(snapshots()) - before
    return snapshot


def test_the_backup_lands_on_the_vault_and_the_drill_restores_from_it(backed_up):
    # Nothing of the repository on the mail host itself.
    assert host(MAIL).run("test -e /var/backups/restic-mail").rc != 0
    assert backed_up in snapshots()
    drill = host(MAIL).run("mail-backup drill")
    assert drill.rc == 0, drill.stdout + drill.stderr
    status = json.loads(host(MAIL).check_output("cat /var/lib/mail-backup/drill.json"))
    assert status["result"] == "ok" and status["snapshot"] == backed_up, status


def test_the_mail_host_cannot_delete_a_snapshot_with_everything_it_has(backed_up):
    before = snapshots()
    forget = on_mail_host("forget", "--prune", backed_up)
    assert forget.rc != 0, forget.stdout
    # Its key runs rclone serving the repository, whatever command the login asks for.
    key = ["ssh", "-F", "none", "-i", "/etc/mail-backup/vault_ed25519", "-o", "BatchMode=yes",
           "-o", "UserKnownHostsFile=/etc/mail-backup/vault_known_hosts", f"mailbackup@{VAULT}"]
    # (It answers in rclone's protocol, not text: count the lines a shell would print.)
    host(MAIL).run(shlex.join([*key, f"rm -rf {REPOSITORY}; id"]) + " </dev/null >/tmp/vault-login.out 2>&1")
    assert host(MAIL).run("grep -ac 'uid=' /tmp/vault-login.out").stdout.strip() == "0"
    assert snapshots() == before
    check = on_vault("--no-lock", "check")
    assert check.rc == 0, check.stdout + check.stderr


def test_the_vault_prunes_with_the_mail_host_s_own_retention():
    # B keeps no monthly snapshots (its host_vars); the rest are the defaults.
    settings = json.loads(host(VAULT).check_output(f"cat /etc/mail-backup-vault/{MAIL}.json"))
    assert settings == {"repository": REPOSITORY, "keep": {"daily": 7, "weekly": 5, "monthly": 0}}, settings


def test_the_vault_prunes_what_the_mail_host_cannot(backed_up):
    old = add_dated_snapshot(datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=800))
    before = snapshots()
    assert old in before and backed_up in before
    pruned = host(VAULT).run(f"systemctl start {PRUNE}")
    assert pruned.rc == 0, host(VAULT).run(f"journalctl -u {PRUNE} -n 20 --no-pager").stdout
    after = snapshots()
    assert old not in after and backed_up in after
    assert set(after) <= set(before)
    # Besides the old one, only what the policy drops: an earlier snapshot of a day
    # that keeps a later one (restic forget --keep-within-daily).
    for snap in set(before) - set(after) - {old}:
        assert any(kept[:10] == before[snap][:10] and kept > before[snap] for kept in after.values()), snap


def test_a_snapshot_dated_ahead_stops_the_pruning_before_anything_is_forgotten(backed_up):
    ahead = add_dated_snapshot(datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=5 * 365))
    old = add_dated_snapshot(datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=800))
    try:
        before = snapshots()
        pruned = host(VAULT).run(f"systemctl start {PRUNE}")
        assert pruned.rc != 0
        log = host(VAULT).run(f"journalctl -u {PRUNE} -n 20 --no-pager").stdout
        assert f"{ahead[:8]}" in log and "Nothing was forgotten" in log, log
        assert snapshots() == before
    finally:
        forget_on_vault([snap for snap in (ahead, old) if snap in snapshots()])
        host(VAULT).run(f"systemctl reset-failed {PRUNE}")
    assert backed_up in snapshots()
