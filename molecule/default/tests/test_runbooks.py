"""The day-2 runbooks (python -m runbooks, pyinfra's Docker connector) against the
scenario's hosts, read through the same Ansible inventory: the queue summary matches
the queue, holding by sender holds exactly that sender's mail, deleting needs a
confirmation, mailbox usage matches doveadm, and the canary is delivered."""

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from conftest import INVENTORY, PROJECT, queue_entries, token
from test_mail import ALICE

# Mail for the CA host, which has no SMTP server (as in test_operations), stays in the
# deferred queue: a known queue to act on.
SENDER_A = "runbook-a@example.test"
SENDER_B = "runbook-b@example.test"
VENV_BIN = pathlib.Path(sys.executable).parent


def run_tool(*command, stdin=None, **env_extra):
    """A command from the project folder, with the venv's tools (ansible-inventory) on PATH."""
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", **env_extra)
    return subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300,
                          check=False, input=stdin)


def runbook(*args, password=None, stdin=None, inventory=INVENTORY):
    extra = {"MAILOPS_CANARY_PASSWORD": password} if password else {}
    return run_tool(sys.executable, "-m", "runbooks", "-i", inventory, *args, stdin=stdin, **extra)


def runbook_json(*args, **kwargs):
    done = runbook("--json", *args, **kwargs)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def ours(mail):
    return {m["queue_id"]: m for m in queue_entries(mail) if m["sender"] in (SENDER_A, SENDER_B)}


@pytest.fixture(scope="module")
def known_queue(mail):
    for sender, count in ((SENDER_A, 3), (SENDER_B, 2)):
        for _ in range(count):
            mail.check_output(f"printf 'Subject: runbook {token()}\\n\\nqueued\\n' | "
                              f"sendmail -f {sender} nobody@ca.example.test")
    deadline = time.time() + 60
    while time.time() < deadline:
        queued = ours(mail)
        if len(queued) == 5 and all(m["queue_name"] == "deferred" for m in queued.values()):
            break
        time.sleep(1)
    assert len(queued) == 5 and all(m["queue_name"] == "deferred" for m in queued.values()), queued
    yield queued
    left = " ".join(ours(mail))
    if left:
        mail.run(f"printf '%s\\n' {left} | postsuper -d -")


def test_queue_summary_matches_the_queue(mail, mail_name, known_queue):
    summary = runbook_json("queue", "summary")[mail_name]
    truth = queue_entries(mail)
    assert summary["messages"] == len(truth)
    assert summary["deferred"] == sum(m["queue_name"] == "deferred" for m in truth)
    assert summary["hold"] == sum(m["queue_name"] == "hold" for m in truth)
    assert [SENDER_A, 3] in summary["top_senders"] and [SENDER_B, 2] in summary["top_senders"], summary
    assert summary["oldest_seconds"] >= 0


def test_hold_by_sender_holds_exactly_that_senders_mail(mail, mail_name, known_queue):
    of_a = {qid for qid, m in known_queue.items() if m["sender"] == SENDER_A}
    dry = runbook_json("queue", "hold", "--sender", SENDER_A)[mail_name]
    assert set(dry["matched"]) == of_a and not dry["applied"]
    assert all(m["queue_name"] == "deferred" for m in ours(mail).values()), "a dry run changed the queue"

    done = runbook_json("queue", "hold", "--sender", "RUNBOOK-A@*", "--apply")[mail_name]
    assert done["changed"] == 3, done
    queued = ours(mail)
    assert {qid for qid, m in queued.items() if m["queue_name"] == "hold"} == of_a
    assert {qid for qid, m in queued.items() if m["queue_name"] == "deferred"} == set(known_queue) - of_a

    runbook_json("queue", "release", "--sender", SENDER_A, "--apply")
    assert not [m for m in ours(mail).values() if m["queue_name"] == "hold"]


def test_delete_needs_a_confirmation_then_deletes_only_the_match(mail, mail_name, known_queue):
    refused = runbook("queue", "delete", "--recipient", "nobody@*", "--apply", stdin="")
    assert refused.returncode == 2 and "--yes" in refused.stderr, refused
    assert len(ours(mail)) == 5

    done = runbook_json("queue", "delete", "--sender", SENDER_B, "--apply", "--yes")[mail_name]
    assert done["changed"] == 2, done
    assert {m["sender"] for m in ours(mail).values()} == {SENDER_A}


@pytest.mark.parametrize("args, reason", [
    (("queue", "hold", "--sender", "*"), "matches every address"),
    (("queue", "delete", "--recipient", "*@*", "--apply", "--yes"), "matches every address"),
    (("queue", "hold"), "needs --sender or --recipient"),
    (("--limit", "nosuch.example.test", "queue", "summary"), "unknown host nosuch.example.test"),
    (("mailboxes", "resync", "nobody@example.test", "--apply"), "no host has a mailbox"),
    (("mailboxes", "expunge", "--days", "0"), "--days must be 1 or more"),
])
def test_bad_input_is_refused_and_changes_nothing(mail, known_queue, args, reason):
    before = ours(mail)
    done = runbook(*args)
    assert done.returncode == 2 and reason in done.stderr, done
    assert ours(mail) == before


def test_a_wrong_site_is_refused():
    done = runbook("queue", "summary", inventory="inventory/nosuch")
    assert done.returncode == 2 and "inventory/nosuch" in done.stderr, done


def test_mailbox_usage_matches_doveadm(mail, mail_name):
    usage = {row["user"]: row for row in runbook_json("mailboxes", "usage")[mail_name]}
    assert ALICE in usage
    for user, row in usage.items():
        truth = mail.check_output(f"doveadm -f tab quota get -u {user}").splitlines()
        header = [name.lower() for name in truth[0].split("\t")]
        for line in truth[1:]:
            values = dict(zip(header, line.split("\t"), strict=True))
            kind = values["type"].upper()
            if kind == "STORAGE":
                assert row["storage_kib"] == int(values["value"]), (user, row, values)
            elif kind == "MESSAGE":
                assert row["messages"] == int(values["value"]), (user, row, values)


def test_resync_of_one_mailbox(mail_name):
    done = runbook_json("mailboxes", "resync", ALICE, "--apply")
    assert done == {mail_name: {"resynced": True}}


def test_canary_is_delivered_through_submission_and_cleaned_up(mail, mail_name, passwords):
    # The account comes from the inventory (mailops_canary_account: alice in the lab).
    result = runbook_json("canary", password=passwords[ALICE])[mail_name]
    assert result["account"] == ALICE
    assert result["delivered"] and result["seconds"] > 0, result
    assert any(sig.startswith("d=example.test ") for sig in result["dkim_signatures"]), result
    left = mail.check_output(f"doveadm search -u {ALICE} mailbox '*' header X-Mailops-Canary ''")
    assert left == "", "the canary message was left behind"


def test_canary_with_a_wrong_password_reports_the_failure(mail_name):
    done = runbook("--json", "canary", "--account", ALICE, password="wrong-password")
    assert done.returncode == 1, done
    result = json.loads(done.stdout)[mail_name]
    assert not result["delivered"] and "535" in result["error"], result


def test_pyinfras_own_command_line_reads_the_same_inventory(mail):
    done = run_tool(str(VENV_BIN / "pyinfra"), "-y", "runbooks/inventory.py", "--limit", "mailservers",
                    "exec", "--", "postconf", "-h", "myhostname", MAILOPS_INVENTORY=INVENTORY)
    assert done.returncode == 0, done.stdout + done.stderr
    assert mail.check_output("postconf -h myhostname") in done.stdout + done.stderr
