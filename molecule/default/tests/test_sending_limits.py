"""Sending limits on the submission ports: an account over its limit is answered 4xx
(its client keeps the message), the refusal is alerted, and other accounts keep sending."""

import re
import shlex

from conftest import fetch, lab_value, token, wait_for, wait_until
from test_mail import ALICE, BOB, CAROL
from test_operations import alerts, inbox, run_unit, utc_now, wait_alert

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


def submit(probe, passwords, user, port, tok, rcpt=BOB):
    mode = "--starttls" if port == 587 else "--tls"
    return probe("smtp", port, mode, "--user", user, "--password", passwords[user],
                 "--mail-from", user, "--rcpt", rcpt, "--token", tok)


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
    """And, for what Sieve sends, the mail store's user."""
    socket = mail.file("/var/spool/postfix/ratelimit/policy")
    assert socket.is_socket
    assert (socket.user, socket.group, socket.mode & 0o777) == ("policyd-rate-limit", "postfix", 0o660)
    # Nobody else may even reach it: the folder is closed to other users.
    folder = mail.file("/var/spool/postfix/ratelimit")
    assert folder.mode & 0o007 == 0
    assert mail.run("runuser -u nobody -- test -w /var/spool/postfix/ratelimit/policy").rc != 0
    # What Sieve sends asks through a socket of its own: the mail store's user's only.
    sieve = mail.file("/run/mail-sieve-limit/policy")
    assert sieve.is_socket
    assert (sieve.user, sieve.group, sieve.mode & 0o777) == ("root", "vmail", 0o660)
    assert mail.run("runuser -u nobody -- test -w /run/mail-sieve-limit/policy").rc != 0
    assert mail.run("runuser -u www-data -- test -w /run/mail-sieve-limit/policy").rc != 0


def put_sieve(mail, account, name, script):
    """Store and activate a Sieve script for the account, as ManageSieve would."""
    mail.check_output(f"printf '%s' {shlex.quote(script)} | doveadm sieve put -u {shlex.quote(account)} -a {name}")


def remove_sieve(mail, account, name):
    mail.run(f"doveadm sieve deactivate -u {shlex.quote(account)}; doveadm sieve delete -u {shlex.quote(account)} {name}")


def message_ids(probe, user, password):
    return {entry["message_id"] for entry in inbox(probe, user, password)}


def test_sieve_redirects_share_the_limit_and_above_it_the_message_stays_in_the_inbox(
        probe, passwords, mail, client):
    """A stolen login's other way out: a Sieve redirect turns each message anyone sends
    the account into one this host sends. Carol's redirects count against her limit,
    subaddresses included; above it nothing is forwarded, the message is kept in her
    inbox and the alert names her. Every message is in exactly one of the two inboxes
    within the wait: none held in the queue, none bounced, none lost."""
    recipients, _ = carol_limit()
    local, domain = CAROL.split("@")
    since = utc_now(mail)
    forget_counts(mail, CAROL)
    forget_alert(mail, "sending_limit")
    put_sieve(mail, CAROL, "forward-all", f'redirect "{BOB}";\n')
    try:
        sent = {}
        for number in range(recipients + 3):
            tok = token()
            rcpt = CAROL if number % 2 else f"{local}+list{number}@{domain}"
            reply = probe("smtp", 25, "--starttls", "--mail-from", "someone@outside.example", "--rcpt", rcpt,
                          "--token", tok)
            assert reply["data"][0] == 250, reply
            sent[f"<{tok}@client.example.test>"] = tok

        def where():
            return (message_ids(probe, BOB, passwords[BOB]) & sent.keys(),
                    message_ids(probe, CAROL, passwords[CAROL]) & sent.keys())

        assert wait_until(lambda: set().union(*where()) == sent.keys(), 90), where()
        forwarded, kept = where()
        assert not forwarded & kept, (forwarded, kept)
        assert len(forwarded) == recipients, (forwarded, kept)
        log = mail.check_output("journalctl -q -o cat -t mail-sieve-sendmail --since -5min")
        assert log.count(f"sasl_username={CAROL}") >= 3 and "kept in the inbox" in log, log

        assert run_unit(mail, "mail-monitor.service") == 0
        fired = wait_alert(client, since, "sending_limit", "firing")
        assert fired and CAROL in fired[0]["message"], alerts(client, since)
    finally:
        remove_sieve(mail, CAROL, "forward-all")
        forget_counts(mail, CAROL)


def test_vacation_replies_share_the_limit_and_above_it_are_not_sent(probe, passwords, mail):
    """Each distinct sender gets a vacation reply: an attacker with many forged senders
    gets one message out per message in. Above carol's limit the reply is not sent and
    the message still reaches her; below it the reply leaves with her address."""
    recipients, _ = carol_limit()
    forget_counts(mail, CAROL)
    away = token()
    put_sieve(mail, CAROL, "away", f'require "vacation";\nvacation :days 1 :subject "Away {away}" "Away {away}";\n')
    try:
        for _ in range(recipients):
            assert refusal(submit(probe, passwords, CAROL, 587, token())) is None
        tok = token()
        sent = submit(probe, passwords, ALICE, 587, tok, rcpt=CAROL)
        assert sent["data"][0] == 250, sent
        assert wait_for(probe, CAROL, passwords[CAROL], tok)["found"] == 1
        assert wait_for(probe, ALICE, passwords[ALICE], away, timeout=10)["found"] == 0
        log = mail.check_output("journalctl -q -o cat -t mail-sieve-sendmail --since -5min")
        assert f"from=<{CAROL}>" in log and "not sent" in log, log

        # Positive control: with her counts cleared, the next sender gets the reply.
        forget_counts(mail, CAROL)
        tok = token()
        sent = submit(probe, passwords, BOB, 587, tok, rcpt=CAROL)
        assert sent["data"][0] == 250, sent
        reply = fetch(probe, BOB, passwords[BOB], away)
        assert f"Return-Path: <{CAROL}>".encode() in reply, reply[:400]
    finally:
        remove_sieve(mail, CAROL, "away")
        forget_counts(mail, CAROL)


def test_the_reject_extension_is_off(mail):
    """A refusal Sieve sends after the message was accepted goes to whatever sender the
    message named: backscatter. A script that needs it is refused when stored."""
    script = 'require "reject";\nreject "no";\n'
    put = mail.run(f"printf '%s' {shlex.quote(script)} | doveadm sieve put -u {CAROL} reject-check")
    assert put.rc != 0 and "reject" in (put.stderr + put.stdout), put
    assert mail.run(f"doveadm sieve list -u {CAROL}").stdout.count("reject-check") == 0
