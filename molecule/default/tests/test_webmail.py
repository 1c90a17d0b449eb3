"""The webmail (Roundcube) in a real browser, from the client host: Debian's Chromium
logs in, finds a message the test delivered, replies (the reply arrives), and logs out;
an out-of-office reply set in Settings (the managesieve plugin) answers mail; a wrong
password gets an error and no session; a password guesser is banned; the site
serves Roundcube's pages and nothing of its code or configuration.

Screenshots of each step are copied to .artifacts/webmail-<release>/<run>/ in the
project."""

import json
import os
import subprocess

import pytest
from conftest import PROJECT, copy_script, lab_value, ports, token, wait_for

NAME = lab_value("mailservers", "web", "mail_webmail_name")
URL = f"https://{NAME}/"
ROOT = "/root/acme-root.pem"
SHOTS = "/root/webmail-shots"
ALICE, BOB = "alice@example.test", "bob@example.test"
ARTIFACTS = PROJECT / ".artifacts" / f"webmail-{os.environ.get('MOLECULE_DISTRO', 'trixie')}"


def _runner(host):
    def run(*args):
        result = host.run("python3 /root/webmail.py " + " ".join(f"'{a}'" for a in args))
        assert result.rc == 0, result.stderr[-3000:]
        return json.loads(result.stdout)
    return run


@pytest.fixture(scope="module")
def browser(client):
    """Runs the browser on the client; the lab CA's root is fetched fresh (Pebble makes
    a new one at every start). Each run's screenshots are copied to ARTIFACTS/<label>/,
    whether the run passed or not."""
    name = copy_script("lab_clients", "webmail.py")
    client.check_output(f"curl -fsS https://ca.example.test:15000/roots/0 -o {ROOT}")
    run = _runner(client)

    def browse(label, user, password, *extra):
        shots = f"{SHOTS}/{label}"
        client.run(f"rm -rf {shots}")
        try:
            return run("browser", "--url", URL, "--user", user, "--password", password, "--cafile", ROOT,
                       "--shots", shots, *extra)
        finally:
            (ARTIFACTS / label).mkdir(parents=True, exist_ok=True)
            subprocess.run(["docker", "cp", f"{name}:{shots}/.", str(ARTIFACTS / label)], check=False)
            print(f"screenshots: {ARTIFACTS / label}")

    return browse


def test_browser_logs_in_reads_replies_and_logs_out(browser, client, probe, passwords):
    tok = token()
    sent = probe("smtp", 587, "--starttls", "--user", BOB, "--password", passwords[BOB],
                 "--mail-from", BOB, "--rcpt", ALICE, "--token", tok)
    assert sent["data"][0] == 250, sent
    assert wait_for(probe, ALICE, passwords[ALICE], tok)["found"] == 1

    reply = token()
    answer = browser("reply", ALICE, passwords[ALICE], "--open-token", tok, "--reply-token", reply)

    assert answer["login"], answer
    assert answer["found"] and answer["body_shows_token"], answer
    assert any(BOB in recipient for recipient in answer["reply_to"]), answer
    assert answer["sent"], answer
    assert answer["logged_out"], answer
    # The reply went out through Postfix with Alice's own login and reached Bob.
    arrived = wait_for(probe, BOB, passwords[BOB], reply, 993, "--body", reply)
    assert arrived["found"] == 1, arrived
    assert (ARTIFACTS / "reply" / "message.png").stat().st_size > 10_000


def test_out_of_office_set_in_the_browser_answers_mail(browser, probe, passwords):
    """The managesieve plugin: Alice turns her out-of-office reply on in Settings; Bob's
    next message to her gets it back."""
    away = token()
    try:
        answer = browser("vacation-on", ALICE, passwords[ALICE], "--vacation", away)
        assert answer["login"] and "saved" in answer["vacation_notice"].lower(), answer
        tok = token()
        sent = probe("smtp", 587, "--starttls", "--user", BOB, "--password", passwords[BOB],
                     "--mail-from", BOB, "--rcpt", ALICE, "--token", tok)
        assert sent["data"][0] == 250, sent
        assert wait_for(probe, ALICE, passwords[ALICE], tok)["found"] == 1
        # The reply's subject is "Away <token>".
        assert wait_for(probe, BOB, passwords[BOB], away)["found"] == 1
    finally:
        off = browser("vacation-off", ALICE, passwords[ALICE], "--vacation-off")
    assert "saved" in off["vacation_notice"].lower(), off


def test_wrong_password_shows_an_error_and_opens_no_session(browser, passwords):
    answer = browser("wrong-password", ALICE, "not-" + passwords[ALICE])
    assert not answer["login"], answer
    assert "alert" in answer["error_class"] and "login failed" in answer["error"].lower(), answer
    assert answer["login_form_shown"], answer


def test_password_guessing_in_the_webmail_bans_the_guesser(mail, attacker, attacker_probe, attacker_address,
                                                           mx_addresses, unban):
    # attacker_probe: copies the port prober to the attacker.
    maxretry = lab_value("mailservers", "security", "fail2ban_maxretry")
    copy_script("lab_attackers", "webmail.py")
    # A made-up address: Roundcube's own per-user limit would stop counting a real
    # user's failures (and lock Alice out for a minute).
    answer = _runner(attacker)("guess", "--url", URL, "--user", "admin@example.test", "--family", "4",
                               "--attempts", str(2 * maxretry))
    assert answer["blocked"] and answer["attempts"] <= maxretry + 1, answer
    assert "webmail" in mail.check_output(f"fail2ban-client banned {attacker_address['ipv4']}")
    seen = ports(attacker, mx_addresses["ipv4"], [443, 993], timeout=2)
    assert set(seen.values()) <= {"timeout", "refused"}, seen


@pytest.mark.parametrize("path", ["config/config.inc.php", "plugins/managesieve/config.inc.php",
                                  "program/include/iniset.php", "SQL/sqlite.initial.sql", ".htaccess",
                                  "composer.json", "installer/", "logs/errors.log"])
def test_code_and_configuration_are_not_served(client, path):
    status = client.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' --cacert {ROOT} {URL}{path}")
    assert status == "404", (path, status)


def test_login_page_is_served_with_security_headers(client):
    head = client.check_output(f"curl -fsS -D - -o /dev/null --cacert {ROOT} {URL}").lower()
    assert "strict-transport-security: max-age=" in head
    assert "content-security-policy: default-src 'self'" in head
    assert "x-content-type-options: nosniff" in head
    assert "x-powered-by" not in head
    # Plain HTTP goes to HTTPS.
    status = client.check_output(f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' http://{NAME}/")
    assert status == f"301 {URL}", status
