"""Certificates and TLS policy over the wire, from the client host: the ACME certificate
on every listener, protocol versions, a third-party scanner, renewal without restart, and
an ACME outage that changes nothing. The tests that reconfigure or renew run last."""

import json
import time

import pytest

from conftest import lab_value, run_site, token, wait_for

HOST = "mx1.example.test"
EXTRA_NAME = "mail.example.test"
# 443: nginx, for the web names (client settings, MTA-STS) the lab serves.
LISTENERS = [(25, "smtp"), (587, "smtp"), (465, None), (143, "imap"), (993, None),
             (110, "pop3"), (995, None), (4190, "sieve"), (443, None)]
IDS = [str(p) for p, _ in LISTENERS]
ROOT = "/root/acme-root.pem"


def s_client(client, port, starttls, *args, host=HOST):
    starttls_arg = f" -starttls {starttls}" if starttls else ""
    cmd = (f"echo | timeout 20 openssl s_client -connect {host}:{port} -servername {HOST}"
           f"{starttls_arg} {' '.join(args)} 2>&1")
    return client.run(cmd).stdout


def served_fingerprint(client, port, starttls):
    starttls_arg = f" -starttls {starttls}" if starttls else ""
    out = client.run(f"echo | timeout 20 openssl s_client -connect {HOST}:{port} -servername {HOST}{starttls_arg}"
                     " 2>/dev/null | openssl x509 -noout -fingerprint -sha256").stdout
    return out.strip().split("=", 1)[-1]


def all_fingerprints(client):
    return {port: served_fingerprint(client, port, starttls) for port, starttls in LISTENERS}


def disk_fingerprint(mail):
    out = mail.check_output("openssl x509 -in /etc/letsencrypt/live/mail/cert.pem -noout -fingerprint -sha256")
    return out.strip().split("=", 1)[-1]


@pytest.fixture(scope="module")
def acme_root(client):
    """The issuing root of the lab CA, fetched fresh: Pebble makes a new one at every start."""
    client.check_output(f"curl -fsS https://ca.example.test:15000/roots/0 -o {ROOT}")
    return ROOT


# --- The certificate: from the ACME CA, trusted, the same everywhere -----------------

@pytest.mark.parametrize("port, starttls", LISTENERS, ids=IDS)
def test_certificate_verifies_against_the_acme_ca(client, acme_root, port, starttls):
    for name in (HOST, EXTRA_NAME):
        out = s_client(client, port, starttls, f"-CAfile {acme_root} -verify_return_error -verify_hostname {name}")
        assert "Verify return code: 0 (ok)" in out, f"{name} on {port}:\n{out[-1500:]}"
    # The same check fails for a name the certificate does not hold: it can fail.
    out = s_client(client, port, starttls, f"-CAfile {acme_root} -verify_return_error -verify_hostname other.example.test")
    assert "Verify return code: 0 (ok)" not in out


def test_same_certificate_on_every_listener(client, mail):
    prints = all_fingerprints(client)
    assert len(set(prints.values())) == 1, prints
    assert set(prints.values()) == {disk_fingerprint(mail)}


# --- Protocol versions: 1.2 and 1.3 only ---------------------------------------------

def handshake(client, port, starttls, version, host=HOST):
    """openssl s_client from the client host; True when the handshake completed."""
    # OpenSSL 3 refuses TLS 1.0/1.1 on its own: lower the client's security level so
    # that a refusal is the server's doing.
    cipher = "-cipher 'DEFAULT:@SECLEVEL=0'" if version in ("tls1", "tls1_1") else ""
    out = s_client(client, port, starttls, f"-{version}", cipher, host=host)
    return "Cipher is (NONE)" not in out and ("New, TLSv1" in out or "Protocol  : TLSv1" in out), out


@pytest.fixture(scope="module")
def legacy_capable_client(client):
    """Positive control: the client's OpenSSL, as the tests call it, completes TLS 1.0
    and 1.1 handshakes with a server that allows them (a local s_server)."""
    client.run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost"
               " -keyout /root/legacy.key -out /root/legacy.pem 2>/dev/null")
    client.run("setsid nohup timeout 120 openssl s_server -accept 4433 -cert /root/legacy.pem -key /root/legacy.key"
               " -cipher 'DEFAULT:@SECLEVEL=0' -www </dev/null >/dev/null 2>&1 &")
    time.sleep(1)
    for version in ("tls1", "tls1_1"):
        out = client.run(f"echo | timeout 10 openssl s_client -connect 127.0.0.1:4433 -{version}"
                         " -cipher 'DEFAULT:@SECLEVEL=0' 2>&1").stdout
        assert "Cipher is (NONE)" not in out and "Protocol  : TLSv1" in out, f"control {version}:\n{out[-800:]}"
    return True


@pytest.mark.parametrize("port, starttls", LISTENERS, ids=IDS)
def test_only_tls_1_2_and_1_3(client, legacy_capable_client, port, starttls):
    for version in ("tls1_2", "tls1_3"):
        ok, out = handshake(client, port, starttls, version)
        assert ok, f"{version} refused on {port}:\n{out[-1500:]}"
    for version in ("tls1", "tls1_1"):
        ok, out = handshake(client, port, starttls, version)
        assert not ok, f"{version} accepted on {port}:\n{out[-1500:]}"


# --- A scanner nobody here wrote ---------------------------------------------------

# Findings of MEDIUM or higher that are accepted, each for a reason docs/certificates-and-tls.md repeats.
ACCEPTED = {
    # Pebble, the lab's CA, writes neither a CRL nor an OCSP address into certificates;
    # Let's Encrypt's certificates carry a CRL address.
    "cert_revocation",
}


def accepted(finding, report):
    if finding["id"] in ACCEPTED:
        return True
    # testssl caps the grade of every STARTTLS service at T (RFC 8314 prefers implicit
    # TLS); port 25 must offer STARTTLS and 587 is the standard submission port. Any
    # other cap reason is not accepted.
    if finding["id"] == "overall_grade" and finding["finding"] == "T":
        reasons = [f["finding"] for f in report if f["id"].startswith("grade_cap_reason")]
        return len(reasons) == 1 and "STARTTLS is prone to MITM downgrade attacks" in reasons[0]
    return False


def test_testssl_finds_nothing_medium_or_worse(client, acme_root):
    """testssl.sh (Debian's package) against one STARTTLS and one implicit-TLS port, run
    side by side; every finding of severity MEDIUM, HIGH or CRITICAL fails the test.
    The HTTPS site is scanned by the webmail's name, so its headers (the most permissive:
    Roundcube runs scripts) are checked too."""
    targets = {"587": "-t smtp", "993": "", "443": ""}
    names = {"443": lab_value("mailservers", "web", "mail_webmail_name")}
    # socat lets testssl try STARTTLS command injection too.
    client.check_output("command -v socat")
    cmds = [f"testssl --quiet --color 0 --warnings batch --add-ca {acme_root}"
            f" --jsonfile /root/testssl-{port}.json {flag} {names.get(port, HOST)}:{port} >/root/testssl-{port}.txt 2>&1 &"
            for port, flag in targets.items()]
    client.run("rm -f /root/testssl-*.json; " + " ".join(cmds) + " wait")
    for port in targets:
        report = json.loads(client.check_output(f"cat /root/testssl-{port}.json"))
        ids = {f["id"] for f in report}
        assert {"TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "cert_chain_of_trust", "overall_grade"} <= ids, \
            f"scan of {port} looks incomplete: {sorted(ids)}"
        bad = [f for f in report if f["severity"] in ("MEDIUM", "HIGH", "CRITICAL") and not accepted(f, report)]
        assert not bad, f"port {port}: " + "\n".join(f"{f['severity']} {f['id']}: {f['finding']}" for f in bad)


# --- Port 25's floor is a variable -------------------------------------------------

# Only the roles concerned run (--tags): the rest of site.yml is covered by converge.
def test_port_25_floor_can_admit_legacy_senders_only_there(client, legacy_capable_client):
    lowered = run_site("--tags", "postfix", "-e", "mail_tls_smtp_inbound_min_protocol=TLSv1")
    try:
        assert lowered.returncode == 0, lowered.stdout[-4000:]
        ok, out = handshake(client, 25, "smtp", "tls1")
        assert ok, f"TLS 1.0 refused on 25 with the floor at TLSv1:\n{out[-1500:]}"
        for port, starttls in [(587, "smtp"), (465, None), (993, None)]:
            ok, out = handshake(client, port, starttls, "tls1")
            assert not ok, f"TLS 1.0 accepted on {port}:\n{out[-1500:]}"
    finally:
        restored = run_site("--tags", "postfix")
    assert restored.returncode == 0, restored.stdout[-4000:]
    ok, out = handshake(client, 25, "smtp", "tls1")
    assert not ok, f"TLS 1.0 still accepted on 25 after restoring the default:\n{out[-1500:]}"


# --- The deploy hook compares what is served with what is on disk --------------------

def test_deploy_hook_reports_a_listener_serving_another_certificate(mail):
    fake = "/root/not-served"
    mail.check_output(f"mkdir -p {fake} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
                      f" -days 1 -subj /CN={HOST} -keyout {fake}/privkey.pem -out {fake}/cert.pem 2>/dev/null"
                      f" && cp {fake}/cert.pem {fake}/fullchain.pem")
    since = mail.check_output("date '+%Y-%m-%d %H:%M:%S'")
    wrong = mail.run(f"/usr/local/sbin/mail-tls-deploy --probe-only {fake}")
    assert wrong.rc == 1, wrong.stdout + wrong.stderr
    logged = mail.check_output(f"journalctl -t mail-tls-deploy -p err --since '{since}' --no-pager")
    assert "port 993 serves" in logged and "not the certificate" in logged, logged
    right = mail.run("/usr/local/sbin/mail-tls-deploy --probe-only /etc/letsencrypt/live/mail")
    assert right.rc == 0, right.stdout + right.stderr


# --- Renewal takes effect on every listener, without a restart -----------------------

def main_pids(mail):
    # On Debian 12 systemd knows no main PID for Postfix (0 for both postfix units), so
    # the master's own PID file is the proof, on 13 too; Dovecot's unit has its main PID.
    pids = {"postfix master": mail.check_output("cat /var/spool/postfix/pid/master.pid").strip(),
            "dovecot": mail.check_output("systemctl show -p MainPID --value dovecot")}
    assert pids["dovecot"] != "0", pids
    assert mail.run(f"test \"$(cat /proc/{pids['postfix master']}/comm)\" = master").rc == 0, pids
    return pids


def test_forced_renewal_is_served_everywhere_without_restart(client, mail, probe, passwords):
    before = all_fingerprints(client)
    pids = main_pids(mail)
    since = mail.check_output("date '+%Y-%m-%d %H:%M:%S'")
    renew = mail.run("certbot renew --force-renewal --cert-name mail --no-random-sleep-on-renew")
    assert renew.rc == 0, renew.stdout + renew.stderr
    new = disk_fingerprint(mail)
    assert new not in before.values()
    after = all_fingerprints(client)
    assert set(after.values()) == {new}, after
    assert main_pids(mail) == pids, "a mail service was restarted, not reloaded"
    logged = mail.check_output(f"journalctl -t mail-tls-deploy --since '{since}' --no-pager")
    assert logged.count(f"serves the certificate {new}") == len(LISTENERS), logged
    # Mail still flows over the renewed certificate.
    tok = token()
    alice, bob = "alice@example.test", "bob@example.test"
    sent = probe("smtp", 587, "--starttls", "--user", alice, "--password", passwords[alice],
                 "--mail-from", alice, "--rcpt", bob, "--token", tok)
    assert sent["data"][0] == 250, sent
    assert wait_for(probe, bob, passwords[bob], tok)["found"] == 1, "renewed: the message did not arrive"


# --- The ACME server refuses, or is down: the run fails clearly, nothing changes ------

def failure_message(result, names):
    """The role's failure message for these names, from a run that must have failed."""
    assert result.returncode != 0
    # Ansible prints the failure on stderr or stdout, depending on its display settings.
    out = result.stdout + result.stderr
    key = f"Could not get a certificate for {', '.join(names)}"
    assert key in out, out[-3000:]
    return out[out.index(key):]


def test_acme_refusal_fails_clearly_and_keeps_the_certificate(client, mail):
    served = all_fingerprints(client)
    # A name that does not resolve to this host: the CA cannot validate it.
    refused = run_site("--tags", "certbot", "-e", json.dumps({"certbot_extra_names": [EXTRA_NAME, "nowhere.example.test"]}))
    message = failure_message(refused, [HOST, EXTRA_NAME, "nowhere.example.test"])
    assert "Domain: nowhere.example.test" in message and "keep serving their current certificate" in message, message
    assert all_fingerprints(client) == served


def test_acme_outage_fails_clearly_and_keeps_the_certificate(client, mail, ca):
    served = all_fingerprints(client)
    ca.check_output("systemctl stop pebble")
    try:
        added = run_site("--tags", "certbot", "-e", json.dumps({"certbot_extra_names": [EXTRA_NAME, "smtp.example.test"]}))
        message = failure_message(added, [HOST, EXTRA_NAME, "smtp.example.test"])
        assert "https://ca.example.test:14000/dir" in message and "Connection refused" in message, message
        assert "keep serving their current certificate" in message, message
        assert mail.file("/etc/letsencrypt/live/mail/cert.pem").exists
        assert all_fingerprints(client) == served

        # A first certificate with no way to get one: refused, unless the inventory
        # allows a self-signed stand-in, which then never replaces a served certificate.
        first = run_site("--tags", "certbot", "-e", "certbot_cert_name=fresh")
        failure_message(first, [HOST, EXTRA_NAME])
        allowed = run_site("--tags", "certbot", "-e", "certbot_cert_name=fresh", "-e", "certbot_selfsigned_fallback=true")
        assert allowed.returncode == 0, allowed.stdout[-3000:]
        assert all_fingerprints(client) == served
    finally:
        ca.check_output("systemctl start pebble")
        restored = run_site("--tags", "certbot")
    assert restored.returncode == 0, restored.stdout[-3000:]
