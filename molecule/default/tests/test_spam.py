"""Spam defence over the wire: SpamAssassin refuses spam on port 25 at SMTP time,
files what it tags into Junk, marks clean mail, tags but never refuses the users' own
submissions, learns from what users move into and out of Junk, and keeps its rules
when the daily update cannot reach its servers."""

import base64
import json
import re
import time

import dkim
import pytest

from conftest import role_default, token, wait_for, wait_until
from test_mail import ALICE, BOB, send25

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
# The lab's own rules (inventory/lab/group_vars/mailservers/spam.yml) put a message
# with the first phrase just below the reject score, and with the second just above it.
JUNK_PHRASE = "mailbundle lab junk phrase"
REJECT_PHRASE = "mailbundle lab reject phrase"
REJECT_SCORE = role_default("spamassassin", "spamassassin_reject_score")


def header_lines(probe, user, password, tok, folder="INBOX"):
    """(name, value) of every header of the delivered message, in order; names in lower
    case, folded values on one line."""
    seen = wait_for(probe, user, password, tok, 993, "--fetch", "--folder", folder)
    assert seen["found"] == 1, (folder, seen)
    parsed = dkim.rfc822_parse(base64.b64decode(seen["raw"][0]))[0]
    return [(name.decode().lower(), " ".join(value.decode().split())) for name, value in parsed]


def headers(probe, user, password, tok, folder):
    return dict(header_lines(probe, user, password, tok, folder))


def test_gtube_on_port_25_is_refused_at_smtp_time(probe, passwords):
    tok = token()
    sent = send25(probe, [ALICE], tok, "--text", GTUBE)
    assert sent["data"][0] == 550, sent
    assert wait_for(probe, ALICE, passwords[ALICE], tok, timeout=5)["found"] == 0
    assert wait_for(probe, ALICE, passwords[ALICE], tok, 993, "--folder", "Junk", timeout=5)["found"] == 0


def spamd_score(mail, tok):
    """The score spamd gave the message whose Message-ID holds tok, from its log."""
    log = mail.check_output("journalctl -t spamd -o short --no-pager -n 2000").splitlines()
    for n, line in enumerate(log):
        if f"processing message <{tok}@" in line:
            child = re.search(r"spamd\[(\d+)\]", line).group(1)
            for later in log[n + 1:]:
                scored = re.search(rf"spamd\[{child}\]: spamd: (?:identified spam|clean message) \(([-0-9.]+)/", later)
                if scored:
                    return float(scored.group(1))
    return None


def test_mail_just_below_the_reject_score_is_delivered_into_junk(probe, passwords, mail):
    tok = token()
    sent = send25(probe, [ALICE], tok, "--text", JUNK_PHRASE)
    assert sent["data"][0] == 250, (sent, "spamd's score:", spamd_score(mail, tok))
    found = headers(probe, ALICE, passwords[ALICE], tok, "Junk")
    assert found["x-spam-flag"] == "YES", found
    assert found["x-spam-status"].startswith("Yes,") and "LAB_JUNK_PHRASE" in found["x-spam-status"], found
    assert wait_for(probe, ALICE, passwords[ALICE], tok, timeout=2)["found"] == 0
    score = spamd_score(mail, tok)
    print(f"scored {score}, reject score {REJECT_SCORE}")
    assert score is not None and REJECT_SCORE - 2 <= score < REJECT_SCORE, score


def test_mail_just_above_the_reject_score_is_refused_at_smtp_time(probe, passwords, mail):
    tok = token()
    sent = send25(probe, [ALICE], tok, "--text", REJECT_PHRASE)
    assert sent["data"][0] == 550, (sent, "spamd's score:", spamd_score(mail, tok))
    score = spamd_score(mail, tok)
    print(f"scored {score}, reject score {REJECT_SCORE}")
    assert score is not None and REJECT_SCORE <= score < REJECT_SCORE + 2, score
    for folder in ("INBOX", "Junk"):
        assert wait_for(probe, ALICE, passwords[ALICE], tok, 993, "--folder", folder, timeout=2)["found"] == 0


def test_clean_mail_lands_in_the_inbox_marked_as_checked(probe, passwords):
    tok = token()
    sent = send25(probe, [BOB], tok, "--text", "Lunch on Friday?")
    assert sent["data"][0] == 250, sent
    found = headers(probe, BOB, passwords[BOB], tok, "INBOX")
    assert found["x-spam-status"].startswith("No,"), found
    assert "x-spam-flag" not in found, found


def test_spam_headers_forged_by_the_sender_are_replaced(probe, passwords):
    """A sender cannot file its own mail into Junk, nor mark it as checked."""
    tok = token()
    sent = send25(probe, [ALICE], tok, "--header", "X-Spam-Flag: YES",
                  "--header", "X-Spam-Status: Yes, score=99.0 required=5.0")
    assert sent["data"][0] == 250, sent
    lines = header_lines(probe, ALICE, passwords[ALICE], tok)
    flags = [value for name, value in lines if name == "x-spam-flag"]
    statuses = [value for name, value in lines if name == "x-spam-status"]
    assert "YES" not in flags, lines
    assert len(statuses) == 1 and statuses[0].startswith("No,"), statuses


@pytest.mark.parametrize("port, mode", [(587, "--starttls"), (465, "--tls")])
def test_a_users_own_spam_is_tagged_and_delivered_never_refused(probe, passwords, port, mode):
    tok = token()
    sent = probe("smtp", port, mode, "--user", ALICE, "--password", passwords[ALICE],
                 "--mail-from", ALICE, "--rcpt", BOB, "--token", tok, "--text", GTUBE)
    assert sent["data"][0] == 250, sent
    found = headers(probe, BOB, passwords[BOB], tok, "Junk")
    assert found["x-spam-flag"] == "YES" and "GTUBE" in found["x-spam-status"], found


def bayes_counts(mail):
    """(spam, ham) messages SpamAssassin's site-wide Bayes database has learned."""
    dump = mail.run("runuser -u debian-spamd -- env HOME=/var/lib/spamassassin sa-learn --dump magic")
    counts = {"nspam": 0, "nham": 0}
    for line in dump.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[-1] in counts:
            counts[fields[-1]] = int(fields[2])
    return counts["nspam"], counts["nham"]


def move(probe, user, password, tok, source, target):
    moved = probe("imap", 993, "--tls", "--user", user, "--password", password, "--token", tok,
                  "--folder", source, "--move-to", target)
    assert moved["found"] == 1 and moved["moved"] == ["OK"], moved


def wait_counts(mail, expected, timeout=30):
    deadline = time.time() + timeout
    while (counts := bayes_counts(mail)) != expected and time.time() < deadline:
        time.sleep(1)
    return counts


def test_moving_mail_into_and_out_of_junk_trains_bayes(probe, passwords, mail):
    tok = token()
    sent = send25(probe, [BOB], tok, "--text", "Quarterly figures attached, see the numbers below.")
    assert sent["data"][0] == 250, sent
    assert wait_for(probe, BOB, passwords[BOB], tok)["found"] == 1
    spam, ham = bayes_counts(mail)

    # Into Junk: learned as spam.
    move(probe, BOB, passwords[BOB], tok, "INBOX", "Junk")
    assert wait_counts(mail, (spam + 1, ham)) == (spam + 1, ham)
    # Back out of Junk: learned as ham instead (SpamAssassin forgets the spam verdict).
    move(probe, BOB, passwords[BOB], tok, "Junk", "INBOX")
    assert wait_counts(mail, (spam, ham + 1)) == (spam, ham + 1)
    # Junk to Trash is deleting spam, not calling it wanted: nothing learned.
    move(probe, BOB, passwords[BOB], tok, "INBOX", "Junk")
    assert wait_counts(mail, (spam + 1, ham)) == (spam + 1, ham)
    move(probe, BOB, passwords[BOB], tok, "Junk", "Trash")
    time.sleep(3)
    assert bayes_counts(mail) == (spam + 1, ham)


def test_rule_update_without_network_keeps_the_rules_and_succeeds(mail):
    # The lab reaches nothing outside; a runtime drop-in also takes the unit's network
    # away, so the update cannot reach any server and no traffic leaves.
    dropin = "/run/systemd/system/spamassassin-maintenance.service.d"
    rules = "find /var/lib/spamassassin /usr/share/spamassassin -name '*.cf' -type f | sort | xargs sha256sum"
    before = mail.check_output(rules)
    since = mail.check_output("date '+%F %T'")
    mail.check_output(f"mkdir -p {dropin} && printf '[Service]\\nRestrictAddressFamilies=AF_UNIX\\n' "
                      f"> {dropin}/offline.conf && systemctl daemon-reload")
    try:
        run = mail.run("systemctl start spamassassin-maintenance.service")
    finally:
        mail.check_output(f"rm -rf {dropin} && systemctl daemon-reload")
    assert run.rc == 0, run.stderr
    logged = mail.check_output(f"journalctl -t mail-sa-update --since '{since}' -o cat --no-pager")
    assert "could not be reached; the rules in use stay" in logged, logged
    assert mail.check_output(rules) == before
    # Nothing left for spamd to trip on at its next start (an empty rule folder made
    # Debian 12's spamd stop with "no rules were found").
    assert mail.run("setpriv --reuid=debian-spamd --regid=debian-spamd --init-groups -- "
                    "env HOME=/var/lib/spamassassin spamassassin --lint").rc == 0
    mail.check_output("systemctl restart spamd")
    assert wait_until(lambda: mail.run("spamc -d 127.0.0.1 -p 783 -K").rc == 0, 60), \
        mail.run("journalctl -u spamd -n 20 --no-pager -o cat").stdout
    # The inbound milter, bound to spamd, went down with it and follows it back once
    # spamd answers (its ExecStartPre waits for that): port 25 takes mail again. The
    # unit is "active" as soon as systemd forks it, before spamass-milter runs (a
    # loaded host's full run caught it in that gap), so the wait is for its port.
    port = role_default("spamassassin", "spamassassin_inbound_port")
    assert wait_until(lambda: mail.run("systemctl is-active mail-spamass-milter@inbound").stdout.strip() == "active"
                      and mail.run(f"ss -Hltn 'sport = :{port}'").stdout.strip() != "", 120), \
        mail.run("journalctl -u mail-spamass-milter@inbound -n 20 --no-pager -o cat").stdout
    # spamd still scores with them.
    gtube = mail.run(f"printf 'Subject: t\\n\\n{GTUBE}\\n' | spamc -d 127.0.0.1 -c")
    assert gtube.rc == 1 and float(gtube.stdout.split("/")[0]) >= 1000, gtube.stdout


def test_only_our_two_milters_run_not_the_packages_own(mail):
    # Debian's spamass-milter package starts an instance of its own on a Unix socket
    # that nothing uses; the role replaces it with the inbound and outbound milters.
    milters = mail.check_output("ps -eo args= | grep '^/usr/sbin/spamass-milter' || true")
    assert len(milters.splitlines()) == 2, milters
    assert "spamass.sock" not in milters, milters
    assert mail.run("systemctl is-active spamass-milter").stdout.strip() == "inactive"
    assert mail.run("systemctl is-enabled spamass-milter").stdout.strip() == "masked"


def first_refusal(session):
    """The first 4xx or 5xx of an SMTP session (greeting to DATA), or None."""
    for step in ("banner", "ehlo", "starttls", "mail"):
        if step in session and session[step][0] >= 400:
            return session[step]
    for reply in session.get("rcpt", []) + ([session["data"]] if "data" in session else []):
        if reply[0] >= 400:
            return reply
    return None


def test_spam_filter_down_defers_on_25_lets_users_send_and_recovers(probe, passwords, mail, client,
                                                                   record_testsuite_property):
    """spamd stopped (finding 2 of the never-lose-mail review): port 25 answers 4xx, so
    neither spam nor ham passes unscanned and the sender retries; the users' own mail on
    587 is sent unscanned (outbound scanning only tags); the services alert fires; once
    spamd is back the retried ham is delivered once and the retried spam refused."""
    from test_operations import utc_now, wait_alert

    ham, spam, own = token(), token(), token()
    # The monitor's last word on the services is "all running", so stopping spamd is a
    # change it alerts on, whatever an earlier check left behind.
    assert mail.run("systemctl start mail-monitor.service").rc == 0
    since = utc_now(mail)
    mail.check_output("systemctl stop spamd")
    try:
        assert wait_until(lambda: mail.run("systemctl is-active mail-spamass-milter@inbound").stdout.strip()
                          == "inactive", 30)
        for tok, text in ((ham, "Lunch on Friday?"), (spam, GTUBE)):
            sent = send25(probe, [ALICE], tok, "--text", text)
            refusal = first_refusal(sent)
            assert refusal and 400 <= refusal[0] < 500, sent
        sent = probe("smtp", 587, "--starttls", "--user", BOB, "--password", passwords[BOB],
                     "--mail-from", BOB, "--rcpt", ALICE, "--token", own)
        assert sent["data"][0] == 250, sent
        unscanned = headers(probe, ALICE, passwords[ALICE], own, "INBOX")
        assert "x-spam-status" not in unscanned, unscanned
        assert mail.run("systemctl start mail-monitor.service").rc == 0
        fired = wait_alert(client, since, "services", "firing")
        assert fired and "spamd.service is inactive" in fired[0]["message"], fired
    finally:
        mail.check_output("systemctl start spamd")
        back, logged = time.monotonic(), ""
        came_back = wait_until(lambda: mail.run("systemctl is-active mail-spamass-milter@inbound").stdout.strip()
                               == "active", 120)
        if not came_back:
            logged = mail.run("systemctl status --no-pager spamd mail-spamass-milter@inbound; "
                              "journalctl -n 60 --no-pager -u spamd -u mail-spamass-milter@inbound").stdout
            mail.run("systemctl start mail-spamass-milter@inbound")  # port 25 for the checks after this one
        mail.run("systemctl start mail-monitor.service")  # the services alert resolves
    assert came_back, "the inbound milter did not come back with spamd:\n" + logged[-5000:]
    # The senders retry.
    assert send25(probe, [ALICE], ham, "--text", "Lunch on Friday?")["data"][0] == 250
    assert send25(probe, [ALICE], spam, "--text", GTUBE)["data"][0] == 550
    assert headers(probe, ALICE, passwords[ALICE], ham, "INBOX")["x-spam-status"].startswith("No,")
    took = round(time.monotonic() - back)
    record_testsuite_property("seconds_from_spamd_back_to_retried_delivery", took)  # in the JUnit XML
    print(f"the retried message was delivered {took} s after spamd was started again")
    assert wait_for(probe, ALICE, passwords[ALICE], spam, timeout=2)["found"] == 0
    assert wait_for(probe, ALICE, passwords[ALICE], spam, 993, "--folder", "Junk", timeout=2)["found"] == 0


# The other filters of the mail path, stopped one at a time (the never-lose-mail
# review): (unit, the port whose mail it filters). OpenDKIM verifies mail on 25 (its
# signing on 587 is tested in test_dkim); the sending limits' policy service and the
# From header check judge 587.
STOPPED_FILTERS = [("opendmarc", 25), ("opendkim", 25), ("policyd-rate-limit", 587), ("mail-from-guard", 587)]


@pytest.mark.parametrize(("unit", "port"), STOPPED_FILTERS, ids=[f"{unit}-{port}" for unit, port in STOPPED_FILTERS])
def test_a_stopped_filter_defers_alerts_and_the_retry_is_delivered(probe, passwords, mail, client, unit, port,
                                                                   record_testsuite_property):
    """The filter stopped: its port answers 4xx (the sender keeps the message and
    retries; nothing passes unfiltered), the services alert fires naming the unit, and
    once the unit is back the sender's retry is delivered, once."""
    from test_operations import utc_now, wait_alert

    def send(tok):
        if port == 25:
            return send25(probe, [ALICE], tok)
        return probe("smtp", 587, "--starttls", "--user", BOB, "--password", passwords[BOB],
                     "--mail-from", BOB, "--rcpt", ALICE, "--token", tok)

    tok = token()
    # The monitor's last word on the services is "all running", so stopping the unit is
    # a change it alerts on, whatever an earlier check left behind.
    assert mail.run("systemctl start mail-monitor.service").rc == 0
    since = utc_now(mail)
    mail.check_output(f"systemctl stop {unit}")
    try:
        refusal = first_refusal(send(tok))
        assert refusal and 400 <= refusal[0] < 500, refusal
        assert mail.run("systemctl start mail-monitor.service").rc == 0
        fired = wait_alert(client, since, "services", "firing")
        assert fired and f"{unit}.service is inactive" in fired[0]["message"], fired
    finally:
        mail.check_output(f"systemctl start {unit}")
        back = time.monotonic()
        mail.run("systemctl start mail-monitor.service")  # the services alert resolves
    # The sender retries (a unit that is active may still be opening its socket).
    retried = []
    assert wait_until(lambda: retried.append(send(tok)) or retried[-1].get("data", [0])[0] == 250, 60), retried
    assert wait_for(probe, ALICE, passwords[ALICE], tok)["found"] == 1
    took = round(time.monotonic() - back)
    record_testsuite_property(f"seconds_from_{unit}_back_to_retried_delivery", took)
    print(f"{unit}: the retried message was delivered {took} s after the unit was started again")


def test_a_broken_spf_policy_service_defers_alerts_and_the_retry_is_delivered(probe, passwords, mail, client,
                                                                              record_testsuite_property):
    """policyd-spf has no unit: Postfix starts one per port-25 session (spawn). When its
    program cannot start (here not executable, as after a broken upgrade), port 25
    answers 4xx at RCPT, the services alert names it (the monitor asks the policy socket
    a request), and once it is repaired the sender's retry is delivered, once."""
    from test_operations import utc_now, wait_alert

    program = "/usr/bin/policyd-spf"
    tok = token()
    assert mail.run("systemctl start mail-monitor.service").rc == 0
    since = utc_now(mail)
    # The running ones (one per open session) are ended too: new sessions start new ones.
    mail.check_output(f"chmod 000 {program} && (pkill -x policyd-spf || true)")
    try:
        sent = send25(probe, [ALICE], tok)
        refusal = first_refusal(sent)
        assert refusal and 400 <= refusal[0] < 500 and "rcpt" in sent and sent["rcpt"][0][0] >= 400, sent
        assert mail.run("systemctl start mail-monitor.service").rc == 0
        fired = wait_alert(client, since, "services", "firing")
        assert fired and "policy service policyd-spf does not answer" in fired[0]["message"], fired
    finally:
        mail.check_output(f"chmod 755 {program}")
        back = time.monotonic()

    def answers():
        status = json.loads(mail.check_output("mail-monitor --status"))
        return "policyd-spf" not in status["checks"]["services"]["message"]

    # Postfix may hold the service back for a while after its failures (master's
    # service throttle, 60 s): the checks after this one need it answering.
    answered = wait_until(answers, 120, step=5)
    mail.run("systemctl start mail-monitor.service")  # the services alert resolves
    assert answered, "policyd-spf did not answer again within 120 s of the repair"
    retried = []
    assert wait_until(lambda: retried.append(send25(probe, [ALICE], tok)) or retried[-1].get("data", [0])[0] == 250,
                      60), retried
    assert wait_for(probe, ALICE, passwords[ALICE], tok)["found"] == 1
    took = round(time.monotonic() - back)
    record_testsuite_property("seconds_from_policyd_spf_repaired_to_retried_delivery", took)
    print(f"policyd-spf: the retried message was delivered {took} s after the repair")
