"""A mail server that must send through its provider's relay host (mail_smarthost).

mx.a.test is given the provider's relay host (the stand-in smtp.provider.test, which
keeps what it accepts instead of passing it on) by an inventory edit: first with a
wrong password, then with the right one; at the end the edit is taken back. The tests
run in order.
"""

import time

import pytest

from conftest import host, journal, now, run_playbook, send_as, token

SERVER = "mx.a.test"
PROVIDER = "smtp.provider.test"
LOGIN, PASSWORD, WRONG = "mx-a-relay", "lab-relay-pw", "not-the-relay-pw"
KEPT = "/var/lib/lab-smarthost/Maildir/new"

# The inventory edit an operator makes (the password would come from the vault).
EDIT = """all:
  children:
    mailservers:
      hosts:
        mx.a.test:
          mail_smarthost:
            host: smtp.provider.test
            port: 587
            username: mx-a-relay
            password: {password}
"""

STATE = {}

# mail_smarthost is read by the postfix role alone (and by the checks every run makes
# first): only it runs (--tags), the rest of site.yml is covered by converge.
TAGS = "postfix"


@pytest.fixture(scope="module", autouse=True)
def taken_back():
    """However the tests end, A sends directly again afterwards (test_third_host needs it)."""
    yield
    if not STATE.get("taken_back"):
        run_playbook("site.yml", limit=SERVER, tags=TAGS)


def edit(tmp_path_factory, password):
    path = tmp_path_factory.mktemp("inventory") / "smarthost.yml"
    path.write_text(EDIT.format(password=password))
    return path


def queue_line(qid, since, timeout=90):
    """A's log line of the delivery attempt of queue ID qid."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in journal(SERVER, "postfix*", since).splitlines()
                 if line.startswith(f"{qid}: to=")]
        if lines:
            return lines[-1]
        assert time.monotonic() < deadline, f"no delivery attempt of {qid} in A's log"
        time.sleep(3)


def kept(tok, timeout=90):
    """The message with this token as the provider kept it, or fails after timeout."""
    provider = host(PROVIDER)
    deadline = time.monotonic() + timeout
    while True:
        found = provider.run(f"grep -rl {tok} {KEPT}")
        if found.rc == 0:
            return provider.file(found.stdout.split()[0]).content_string
        assert time.monotonic() < deadline, f"{tok} never reached the provider"
        time.sleep(3)


def test_the_provider_takes_no_mail_without_its_login(probe):
    """The stand-in is strict, so mail it kept proves that A logged in over TLS."""
    anonymous = probe("smtp", PROVIDER, 587, "--starttls", "--mail-from", "alice@a.test",
                      "--rcpt", "bob@b.test", "--no-data")
    assert anonymous["tls_version"] in ("TLSv1.2", "TLSv1.3"), anonymous
    assert anonymous["mail"][0] == 530, anonymous
    wrong = probe("smtp", PROVIDER, 587, "--starttls", "--user", LOGIN, "--password", WRONG,
                  "--mail-from", "alice@a.test", "--rcpt", "bob@b.test", "--no-data")
    assert wrong["auth"][0] == 535, wrong


def test_a_wrong_password_keeps_the_mail_in_the_queue(tmp_path_factory, probe):
    output = []
    changed = run_playbook("site.yml", edit(tmp_path_factory, WRONG), limit=SERVER, tags=TAGS, output=output)
    assert "postfix : Write the login at the relay host" in changed[SERVER], changed
    assert WRONG not in output[0], "the relay host's password was printed"
    since = now(SERVER)
    tok = token()
    STATE["token"] = tok
    out = send_as(probe, SERVER, "alice@a.test", "bob@b.test", tok)
    qid = STATE["qid"] = out["data"][1].split()[-1]
    line = queue_line(qid, since)
    assert f"relay={PROVIDER}[" in line and "status=deferred" in line, line
    assert "SASL authentication failed" in line and "said: 535" in line, line
    queued = host(SERVER).check_output("postqueue -j")
    assert f'"queue_id": "{qid}"' in queued, queued
    # Nothing went round the relay host, and the provider kept nothing.
    assert host(PROVIDER).run(f"grep -rl {tok} {KEPT}").rc != 0
    assert host("mx.b.test").run(f"grep -rl {tok} /var/mail/vhosts/b.test").rc != 0


def test_the_right_password_delivers_it_through_the_provider(tmp_path_factory):
    output = []
    changed = run_playbook("site.yml", edit(tmp_path_factory, PASSWORD), limit=SERVER, tags=TAGS, output=output)
    assert "postfix : Write the login at the relay host" in changed[SERVER], changed
    assert PASSWORD not in output[0], "the relay host's password was printed"
    since = now(SERVER)
    server = host(SERVER)
    server.check_output(f"postqueue -i {STATE['qid']}")
    message = kept(STATE["token"])
    assert f"X-Lab-Smarthost-Login: {LOGIN}" in message, message[:2000]
    # Signed by A on the way out, as any of its outbound mail.
    assert "DKIM-Signature:" in message and "d=a.test" in message, message[:2000]
    line = queue_line(STATE["qid"], since)
    assert f"relay={PROVIDER}[" in line and ":587," in line and "status=sent" in line, line
    log = journal(SERVER, "postfix*", since)
    assert f"Verified TLS connection established to {PROVIDER}" in log, log[-3000:]
    assert host("mx.b.test").run(f"grep -rl {STATE['token']} /var/mail/vhosts/b.test").rc != 0


def test_the_password_is_readable_by_root_alone():
    server = host(SERVER)
    for path in ("/etc/postfix/sasl_passwd", "/etc/postfix/sasl_passwd.db"):
        f = server.file(path)
        assert (f.user, f.group, f.mode) == ("root", "root", 0o600), (path, f.user, f.group, oct(f.mode))
    assert PASSWORD not in server.check_output("postconf -n")
    assert server.check_output("postconf -h relayhost") == f"[{PROVIDER}]:587"


def test_taking_the_setting_out_sends_directly_again(probe):
    changed = run_playbook("site.yml", limit=SERVER, tags=TAGS)
    STATE["taken_back"] = True
    assert "postfix : Write the login at the relay host" in changed[SERVER], changed
    server = host(SERVER)
    assert server.check_output("postconf -h relayhost") == ""
    assert server.check_output("postmap -s hash:/etc/postfix/sasl_passwd") == ""
    since = now(SERVER)
    tok = token()
    out = send_as(probe, SERVER, "alice@a.test", "bob@b.test", tok)
    line = queue_line(out["data"][1].split()[-1], since)
    assert "relay=mx.b.test[" in line and "status=sent" in line, line
