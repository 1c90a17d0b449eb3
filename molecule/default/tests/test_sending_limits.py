"""Sending limits on the submission ports: an account over its limit is answered 4xx
(its client keeps the message), the refusal is alerted, and other accounts keep sending."""

import re
import shlex

from conftest import lab_value, token, wait_for
from test_mail import ALICE, BOB, CAROL
from test_operations import alerts, run_unit, utc_now, wait_alert

DATABASE = "/var/lib/policyd-rate-limit/db.sqlite3"
STATE = "/var/lib/mail-monitor/state.json"
# Run on the mail host with the database and the account as arguments.
FORGET = ("import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
          "db.execute('DELETE FROM mail_count WHERE id = ?', (sys.argv[2],)); db.commit()")


def carol_limit():
    """Carol's own limit in the lab inventory: [recipients, seconds]."""
    accounts = lab_value("all", "mail", "mail_accounts")
    return next(a for a in accounts if a["address"] == CAROL)["sending_limits"][0]


def forget_counts(mail, account):
    """Start the account from zero, as if its window had passed."""
    mail.run(shlex.join(["python3", "-c", FORGET, DATABASE, account]))


def forget_alert(mail, check):
    """Start the check from a resolved state, as after a window without refusals."""
    mail.run(f"python3 -c \"import json; path = '{STATE}'; state = json.load(open(path)); "
             f"state.pop('{check}', None); json.dump(state, open(path, 'w'))\"")


def submit(probe, passwords, user, port, tok):
    mode = "--starttls" if port == 587 else "--tls"
    return probe("smtp", port, mode, "--user", user, "--password", passwords[user],
                 "--mail-from", user, "--rcpt", BOB, "--token", tok)


def refusal(sent):
    """The first refused reply of a session (RCPT on Debian 12, DATA on 13), or None."""
    replies = [sent.get("mail"), *sent.get("rcpt", []), sent.get("data")]
    return next((reply for reply in replies if reply and reply[0] >= 400), None)


def test_an_account_over_its_limit_is_deferred_and_alerted_while_others_send(probe, passwords, mail, client):
    recipients, seconds = carol_limit()
    assert seconds >= 600, "the lab limit must outlast this test"
    since = utc_now(mail)
    forget_counts(mail, CAROL)
    forget_alert(mail, "sending_limit")
    try:
        for number in range(recipients):
            sent = submit(probe, passwords, CAROL, 587, token())
            assert refusal(sent) is None, (number, sent)
        # Over the limit, on either submission port: 4xx, so the message stays with the
        # client, and nothing of it reaches the recipient.
        over = {}
        for port in (465, 587):
            over[port] = token()
            sent = submit(probe, passwords, CAROL, port, over[port])
            refused = refusal(sent)
            assert refused and 400 <= refused[0] < 500, (port, sent)
            assert "Sending limit" in refused[1], sent
        # Another account is not held by carol's limit.
        tok = token()
        assert refusal(submit(probe, passwords, ALICE, 587, tok)) is None
        assert wait_for(probe, BOB, passwords[BOB], tok)["found"] == 1
        for port, tok in over.items():
            assert wait_for(probe, BOB, passwords[BOB], tok, timeout=3)["found"] == 0, port

        assert run_unit(mail, "mail-monitor.service") == 0
        fired = wait_alert(client, since, "sending_limit", "firing")
        # The window may still hold refusals of an earlier run of this test.
        assert fired and re.search(rf"{re.escape(CAROL)} \(([2-9]|\d\d+) refused\)", fired[0]["message"]), \
            alerts(client, since)
        assert ALICE not in fired[0]["message"]
    finally:
        forget_counts(mail, CAROL)


def test_the_limit_service_answers_only_postfix(mail):
    socket = mail.file("/var/spool/postfix/ratelimit/policy")
    assert socket.is_socket
    assert (socket.user, socket.group, socket.mode & 0o777) == ("policyd-rate-limit", "postfix", 0o660)
    # Nobody else may even reach it: the folder is closed to other users.
    folder = mail.file("/var/spool/postfix/ratelimit")
    assert folder.mode & 0o007 == 0
    assert mail.run("runuser -u nobody -- test -w /var/spool/postfix/ratelimit/policy").rc != 0
