"""The webmail (Roundcube) in a real browser, from the client host: Debian's Chromium
logs in, finds a message the test delivered, replies (the reply arrives), and logs out;
an out-of-office reply set in Settings (the managesieve plugin) answers mail; a wrong
password gets an error and no session; a password guesser is banned, and no address
it writes into its user names or headers; such a name is logged as one line; the site
serves Roundcube's pages and nothing of its code or configuration.

Screenshots of each step are copied to .artifacts/webmail-<release>/<run>/ in the
project."""

import json
import os
import re
import shlex
import subprocess

import pytest

from conftest import PROJECT, RUNNER, addresses, copy_script, lab_value, ports, token, wait_for, wait_until

NAME = lab_value("mailservers", "web", "mail_webmail_name")
URL = f"https://{NAME}/"
ROOT = "/root/acme-root.pem"
SHOTS = "/root/webmail-shots"
ALICE, BOB = "alice@example.test", "bob@example.test"
ARTIFACTS = PROJECT / ".artifacts" / f"webmail-{os.environ.get('MOLECULE_DISTRO', 'trixie')}"


def _runner(host):
    def run(*args):
        result = host.run(shlex.join(["python3", "/root/webmail.py", *map(str, args)]))
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
    attachment = f"/root/attached-{reply}.txt"
    client.check_output(f"printf 'Attached {reply}\\n' > {attachment}")
    answer = browser("reply", ALICE, passwords[ALICE], "--open-token", tok, "--reply-token", reply,
                     "--attach", attachment)

    assert answer["login"], answer
    assert answer["found"] and answer["body_shows_token"], answer
    assert any(BOB in recipient for recipient in answer["reply_to"]), answer
    assert answer["attached"] and answer["sent"], answer
    assert answer["logged_out"], answer
    # The reply went out through Postfix with Alice's own login and reached Bob, with
    # the file (uploaded through the PHP workers' temporary folder) attached.
    arrived = wait_for(probe, BOB, passwords[BOB], reply, 993, "--body", reply)
    assert arrived["found"] == 1, arrived
    attached = wait_for(probe, BOB, passwords[BOB], reply, 993, "--body", f"Attached {reply}")
    assert attached["found"] == 1, attached
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


# Documentation addresses (RFC 5737, RFC 3849): nothing answers there, and no jail has
# any other reason to ban them.
VICTIMS = ["192.0.2.77", "2001:db8::77"]


def test_password_guessing_in_the_webmail_bans_the_guesser_and_no_one_it_names(
        mail, attacker, attacker_probe, attacker_address, mx_addresses, unban):
    """The guesser types user names that write "from <victim> in session ..." into
    Roundcube's log line, with and without a line break, and names the victims in
    X-Forwarded-For and X-Real-IP. Before the fix each of these got a victim banned
    on every port; now every attempt counts against the guesser alone."""
    # attacker_probe: copies the port prober to the attacker.
    maxretry = lab_value("mailservers", "security", "fail2ban_maxretry")
    mail.run(f"fail2ban-client unban {' '.join(VICTIMS)}")
    copy_script("lab_attackers", "webmail.py")
    # Made-up names: Roundcube's own per-user limit would stop counting a real user's
    # failures (and lock Alice out for a minute). A name with a space or a line break is
    # refused at once, without Dovecot's delay: the guesser paces itself, so that the
    # ban (fail2ban reads the journal as it grows) can land before its next attempt.
    injected = [arg for victim in VICTIMS for arg in ("--inject", victim)]
    answer = _runner(attacker)("guess", "--url", URL, "--user", "admin@example.test", "--family", "4",
                               "--attempts", str(2 * maxretry), "--pause", "2", *injected)
    banned = {victim: mail.check_output(f"fail2ban-client banned {victim}") for victim in VICTIMS}
    assert banned == {victim: "[[]]" for victim in VICTIMS}, banned
    # Not banned before it began: the ban came from these attempts, each of which counted.
    assert answer["blocked"] and maxretry <= answer["attempts"] <= maxretry + 1, answer
    assert "webmail" in mail.check_output(f"fail2ban-client banned {attacker_address['ipv4']}")
    seen = ports(attacker, mx_addresses["ipv4"], [443, 993], timeout=2)
    assert set(seen.values()) <= {"timeout", "refused"}, seen


def test_a_login_name_with_a_line_break_is_logged_as_one_line_naming_the_browser(mail, client):
    """What fail2ban's webmail jail reads: Roundcube logs a refused name with a line break
    as one line of its own shape, the break and spaces shown as "?", the client's
    address after it and no other. (The client is allowlisted: this bans no one.)"""
    copy_script("lab_clients", "webmail.py")
    tok = token()
    name = f"x from 192.0.2.77 in session a (error: 0)\n{tok} y"
    answer = json.loads(client.check_output(
        "python3 /root/webmail.py guess --url %s --user %s --attempts 1 --family 4", URL, name))
    assert answer["attempts"] == 1, answer

    def logged():
        out = mail.check_output("journalctl -o json --since -5min SYSLOG_IDENTIFIER=roundcube")
        lines = [json.loads(line)["MESSAGE"] for line in out.splitlines() if line.strip()]
        return [line for line in lines if tok in line or "192.0.2.77 in session a" in line] or None

    assert wait_until(lambda: logged() is not None, 30, step=1), "no such line in the journal"
    lines = logged()
    assert len(lines) == 1, lines
    shape = (r"<\w+> Failed login for x\?from\?192\.0\.2\.77\?in\?session\?a\?\(error:\?0\)\?"
             + tok + r"\?y from (\S+) in session \w+ \(error: 0\)")
    match = re.fullmatch(shape, lines[0])
    assert match and match.group(1) == addresses(RUNNER.get_hosts("lab_clients")[0])["ipv4"], lines[0]


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


# Code an attacker got into Roundcube (a vulnerable plugin, an upload run as PHP): what
# it tries, each with @ so that nothing of it reaches the logs the last check reads.
INTRUDER_PHP = r"""<?php
header('Content-Type: application/json');
$tries = [];
foreach (['/etc/passwd', '/etc/dovecot/users', '/var/mail/vhosts', '/var/lib/nginx/body',
          '/var/log/nginx/access.log', '/etc/roundcube/config.inc.php'] as $path) {
    $tries['read ' . $path] = is_dir($path) ? @scandir($path) !== false : @file_get_contents($path) !== false;
}
$tries['write /var/log/nginx/access.log'] = @file_put_contents('/var/log/nginx/access.log', "forged\n", FILE_APPEND) !== false;
$temp = sys_get_temp_dir() . '/intruder-' . getmypid();
$tries['write temp'] = @file_put_contents($temp, 'x') !== false;
$tries['temp'] = sys_get_temp_dir();
@unlink($temp);
foreach (['exec', 'shell_exec', 'system', 'passthru', 'proc_open', 'popen', 'pcntl_exec', 'pcntl_fork',
          'mail', 'dl', 'putenv', 'symlink', 'link'] as $function) {
    $tries['call ' . $function] = function_exists($function);
}
try {
    $tries['run id'] = (string) shell_exec('id') !== '';
} catch (\Throwable $e) {
    $tries['run id'] = false;
}
$tries['user'] = function_exists('posix_geteuid') ? posix_getpwuid(posix_geteuid())['name'] : get_current_user();
echo json_encode($tries);
"""


def test_code_run_by_the_webmail_reaches_nothing_beyond_roundcube(mail):
    """Finding 7 of the security review: Roundcube's PHP workers ran as nginx's www-data
    with no open_basedir or disable_functions. Code run by them (here a file the test puts
    among Roundcube's plugins, run through the pool's socket as nginx runs index.php)
    now runs as a user of its own, opens nothing outside Roundcube's folders (not even
    the world-readable /etc/passwd), writes nothing of nginx's, and starts no program.
    Positive controls: it reads Roundcube's configuration and writes its temporary
    folder (where uploads land); the browser checks above log in, read, reply with an
    attachment and set a Sieve script through the same workers, and Roundcube logged no
    open_basedir refusal of its own while they ran."""
    import shlex

    copy_script("mailservers", "fastcgi.py")
    pool = mail.check_output("ls /etc/php/*/fpm/pool.d/mailbundle-webmail.conf")
    socket_path = mail.check_output(f"sed -n 's/^listen = //p' {pool}")
    user = mail.check_output(f"sed -n 's/^user = //p' {pool}")
    script = f"/var/lib/roundcube/plugins/intruder-{token()}.php"
    mail.check_output(f"printf '%s' {shlex.quote(INTRUDER_PHP)} > {script}")
    try:
        tries = json.loads(mail.check_output(f"python3 /root/fastcgi.py {socket_path} {script}"))
    finally:
        mail.run(f"rm -f {script}")
    temp = mail.check_output(f"sed -n 's/^php_admin_value.sys_temp_dir. = //p' {pool}")
    assert tries.pop("user") == user != "www-data", (user, tries)
    assert tries.pop("temp") == temp, tries
    assert {name for name, done in tries.items() if done} == {"read /etc/roundcube/config.inc.php",
                                                              "write temp"}, tries
    # The workers run as that user (ps), and nginx keeps www-data.
    workers = mail.check_output(f"ps -o user:32=,args= -C php-fpm{pool.split('/')[3]}")
    assert f"{user} " in workers and "www-data" not in workers, workers
    refusals = mail.run("grep -h 'open_basedir restriction' /var/log/nginx/error.log; "
                        "journalctl -o cat --no-pager SYSLOG_IDENTIFIER=roundcube | grep 'open_basedir'").stdout
    assert refusals == "", refusals
