"""Zero-typing client setup and the MTA-STS policy, from the client host: a client that
knows only an address fetches the settings document (Thunderbird, Outlook, Apple) and
every server it advertises really logs in and sends; the MTA-STS policy is served with
a certificate valid for its name; plain HTTP goes to HTTPS; the DNS records name it all."""

import json

import pytest

from conftest import addresses, copy_script, lab_value, ports, run_site, token, txt, wait_for

DOMAINS = lab_value("all", "mail", "mail_domains")
STS_MODE = lab_value("mailservers", "web", "mail_mta_sts_mode")
ROOT = "/root/acme-root.pem"
ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.org"
# What the lab's firewall opens (no mail_public_tcp_ports in the lab): every one of
# these must be advertised, implicit TLS first.
EXPECTED = [("imap", 993, "SSL"), ("imap", 143, "STARTTLS"), ("pop3", 995, "SSL"), ("pop3", 110, "STARTTLS"),
            ("smtp", 465, "SSL"), ("smtp", 587, "STARTTLS")]


@pytest.fixture(scope="module")
def settings_client(client):
    """Runs tests/clientsetup.py on the client host; returns its JSON answer."""
    copy_script("lab_clients", "clientsetup.py")
    client.check_output(f"curl -fsS https://ca.example.test:15000/roots/0 -o {ROOT}")

    def run(kind, address, password, *extra):
        cmd = (f"python3 /root/clientsetup.py {kind} --address '{address}' --password '{password}'"
               f" --cafile {ROOT} {' '.join(extra)}")
        result = client.run(cmd)
        assert result.rc == 0, result.stderr
        return json.loads(result.stdout)

    return run


def followed(answer, mail_name):
    """Every advertised server is the mail host, logs in, and what was sent was accepted."""
    assert answer["status"] == 200, answer
    assert {server["host"] for server in answer["servers"]} == {mail_name}, answer["servers"]
    for server, result in zip(answer["servers"], answer["results"], strict=True):
        assert result["login"], (server, result)
        assert result.get("refused", {}) == {}, (server, result)
    return [result["token"] for result in answer["results"] if "token" in result]


@pytest.mark.parametrize("kind", ["thunderbird", "wellknown"])
def test_thunderbird_settings_log_in_and_send(settings_client, probe, passwords, mail_name, kind):
    tok = token()
    answer = settings_client(kind, ALICE, passwords[ALICE], "--send-to", BOB, "--token", tok)
    assert "xml" in answer["content_type"], answer
    assert answer["domains"] == ["example.test"]
    assert [(s["type"], s["port"], s["socket"]) for s in answer["servers"]] == EXPECTED
    assert {s["username"] for s in answer["servers"]} == {ALICE}
    sent = followed(answer, mail_name)
    assert len(sent) == 2
    for tok_sent in sent:
        assert wait_for(probe, BOB, passwords[BOB], tok_sent)["found"] == 1, tok_sent


def test_each_domain_has_its_own_document(settings_client, passwords, mail_name):
    # Carol's sending limit is low: her settings are followed to the logins only.
    answer = settings_client("thunderbird", CAROL, passwords[CAROL])
    assert answer["domains"] == ["example.org"]
    followed(answer, mail_name)


def test_outlook_autodiscover_settings_log_in_and_send(settings_client, probe, passwords, mail_name):
    tok = token()
    answer = settings_client("outlook", ALICE, passwords[ALICE], "--send-to", BOB, "--token", tok)
    assert answer["content_type"].startswith("application/xml"), answer
    assert [(s["type"], s["port"], s["socket"]) for s in answer["servers"]] == EXPECTED[:5]
    assert {s["username"] for s in answer["servers"]} == {ALICE}
    sent = followed(answer, mail_name)
    assert len(sent) == 1 and wait_for(probe, BOB, passwords[BOB], sent[0])["found"] == 1


def test_apple_profile_settings_log_in_and_send(settings_client, probe, passwords, mail_name):
    tok = token()
    answer = settings_client("apple", BOB, passwords[BOB], "--send-to", ALICE, "--token", tok)
    assert answer["content_type"].startswith("application/x-apple-aspen-config"), answer
    assert answer["address"] == BOB
    assert [(s["type"], s["port"]) for s in answer["servers"]] == [("imap", 993), ("smtp", 465)]
    sent = followed(answer, mail_name)
    assert len(sent) == 1 and wait_for(probe, ALICE, passwords[ALICE], sent[0])["found"] == 1


def test_wrong_password_does_not_log_in(settings_client):
    answer = settings_client("thunderbird", ALICE, "not-the-password")
    assert answer["status"] == 200
    assert [r["login"] for r in answer["results"]] == [False] * len(EXPECTED), answer["results"]


@pytest.mark.parametrize("kind", ["outlook", "apple"])
def test_addresses_of_other_domains_get_no_settings(settings_client, kind):
    # The answers carry the address; one the host does not serve is refused, and markup
    # in it is not echoed back.
    for address in ("mallory@elsewhere.test", "a<b>@example.test"):
        answer = settings_client(kind, address, "pw", "--via", "example.test")
        assert answer["status"] == 400, answer
        assert "<b>" not in answer["body"]


def test_mta_sts_policy_served_over_verified_https(client, settings_client):
    for domain in DOMAINS:
        name = f"mta-sts.{domain}"
        out = client.run(f"curl -sS -D /root/sts-headers --cacert {ROOT} https://{name}/.well-known/mta-sts.txt")
        assert out.rc == 0, out.stderr
        headers = client.check_output("cat /root/sts-headers").lower()
        assert "content-type: text/plain" in headers, headers
        lines = out.stdout.split("\r\n")
        assert lines[:2] == ["version: STSv1", f"mode: {STS_MODE}"], out.stdout
        assert "mx: mx1.example.test" in lines and "max_age: 604800" in lines, out.stdout
        # The certificate is checked against the name: a name it does not hold fails.
        verified = client.run(f"echo | openssl s_client -connect {name}:443 -servername {name}"
                              f" -CAfile {ROOT} -verify_return_error -verify_hostname {name} 2>&1")
        assert "Verify return code: 0 (ok)" in verified.stdout, verified.stdout[-1500:]
        other = client.run(f"echo | openssl s_client -connect {name}:443 -servername {name}"
                           f" -CAfile {ROOT} -verify_return_error -verify_hostname mta-sts.elsewhere.test 2>&1")
        assert "Verify return code: 0 (ok)" not in other.stdout


def test_plain_http_redirects_to_https(client):
    for url in ("http://autoconfig.example.test/mail/config-v1.1.xml",
                "http://mta-sts.example.org/.well-known/mta-sts.txt"):
        out = client.check_output(f"curl -sS -o /dev/null -w '%{{http_code}} %{{redirect_url}}' {url}")
        assert out == "301 " + url.replace("http://", "https://"), out


def test_dns_records_name_the_web_names_and_the_policy(zones, mail):
    for domain in DOMAINS:
        zone = zones[domain]
        for label in ("autoconfig", "autodiscover", "mta-sts"):
            cname = zone.get_rdataset(f"{label}.{domain}.", "CNAME")
            assert [r.target.to_text() for r in cname] == ["mx1.example.test."], (domain, label)
        served = mail.check_output(f"sha256sum /var/www/mail-mta-sts/{domain}/mta-sts.txt")[:20]
        assert txt(zones, f"_mta-sts.{domain}") == f"v=STSv1; id={served}".encode()
    # The webmail's name, under the domain it belongs to.
    webmail = lab_value("mailservers", "web", "mail_webmail_name")
    cname = zones["example.test"].get_rdataset(f"{webmail}.", "CNAME")
    assert cname is not None and [r.target.to_text() for r in cname] == ["mx1.example.test."], webmail


def certificate_names(mail):
    return mail.check_output("openssl x509 -in /etc/letsencrypt/live/mail/cert.pem -noout -ext subjectAltName")


def test_turning_the_webmail_then_everything_off_frees_port_80_and_closes_443(client, probe, mail, mail_name, settings_client, passwords):
    # probe: copies the port prober to the client. Only the roles concerned run.
    address = addresses(mail_name)["ipv4"]
    assert ports(client, address, [443])[443] == "open"
    php_fpm = "php{}-fpm".format(mail.check_output("php -r 'echo PHP_MAJOR_VERSION . \".\" . PHP_MINOR_VERSION;'"))
    webmail = lab_value("mailservers", "web", "mail_webmail_name")
    # The webmail alone first: its name answers 404, its PHP workers stop, nginx goes on
    # serving the client settings.
    only = run_site("--tags", "webmail", "-e", "mail_webmail=false")
    assert only.returncode == 0, only.stdout[-3000:]
    status = client.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' --cacert {ROOT} https://{webmail}/")
    assert status == "404", status
    assert mail.run(f"systemctl is-active {php_fpm}").stdout.strip() == "inactive"
    assert settings_client("thunderbird", ALICE, passwords[ALICE])["status"] == 200
    off = run_site("--tags", "web,certbot,firewall,webmail", "-e", "mail_autoconfig=false", "-e", "mail_mta_sts_mode=off",
                   "-e", "mail_webmail=false")
    try:
        assert off.returncode == 0, off.stdout[-3000:]
        assert mail.run("systemctl is-active nginx").stdout.strip() == "inactive"
        assert mail.run("systemctl is-enabled nginx").stdout.strip() == "disabled"
        # The webmail's PHP workers stop too; its database stays.
        assert mail.run(f"systemctl is-active {php_fpm}").stdout.strip() == "inactive"
        assert mail.run(f"systemctl is-enabled {php_fpm}").stdout.strip() == "disabled"
        assert not mail.file("/etc/nginx/sites-enabled/mail-webmail.conf").exists
        assert mail.file("/var/lib/mailbundle-webmail/roundcube.sqlite").exists
        names = certificate_names(mail)
        assert "mail.example.test" in names and "autoconfig.example.test" not in names, names
        # The certificate was got with certbot's own listener on 80, as renewals will be.
        renewal = mail.file("/etc/letsencrypt/renewal/mail.conf").content_string
        assert "authenticator = standalone" in renewal, renewal
        assert ports(client, address, [443])[443] != "open"
    finally:
        on = run_site("--tags", "web,certbot,firewall,autoconfig,webmail")
    assert on.returncode == 0, on.stdout[-3000:]
    assert mail.run("systemctl is-active nginx").stdout.strip() == "active"
    assert mail.run(f"systemctl is-active {php_fpm}").stdout.strip() == "active"
    page = client.check_output(f"curl -sS --cacert {ROOT} https://{webmail}/")
    assert 'id="rcmloginuser"' in page
    assert "autoconfig.example.test" in certificate_names(mail)
    assert "authenticator = webroot" in mail.file("/etc/letsencrypt/renewal/mail.conf").content_string
    answer = settings_client("thunderbird", ALICE, passwords[ALICE])
    assert answer["status"] == 200 and all(r["login"] for r in answer["results"]), answer
