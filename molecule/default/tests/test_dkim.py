"""DKIM and the DNS records to publish: every hosted domain's submitted mail carries a
signature that an independent verifier (dkimpy) accepts with the key from the zone
file playbooks/dns_records.yml wrote; inbound mail gets an Authentication-Results
header; keys are generated once and kept; a stopped signer defers mail instead of
letting it out unsigned."""

import dkim
import pytest

from conftest import fetch, lab_value, run_site, token, txt, wait_for
from test_mail import ALICE, BOB, CAROL, send25

SELECTORS = lab_value("mailservers", "dkim", "opendkim_selectors")
DOMAINS = lab_value("all", "mail", "mail_domains")
KEY_DIR = "/etc/opendkim/keys"


def dkim_headers(message):
    return [dkim.util.parse_tag_value(value.replace(b"\r\n", b"").replace(b" ", b""))
            for name, value in dkim.rfc822_parse(message)[0] if name.lower() == b"dkim-signature"]


def test_records_of_each_domain(zones, mail, mail_name):
    address = mail.run("hostname -I").stdout.split()[0]
    for domain, zone in zones.items():
        mx = [(r.preference, r.exchange.to_text()) for r in zone.get_rdataset(domain + ".", "MX")]
        assert mx == [(10, mail_name + ".")], (domain, mx)
        assert txt(zones, domain) == b"v=spf1 mx -all"
        assert txt(zones, f"_dmarc.{domain}") == f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}".encode()
        assert txt(zones, f"_smtp._tls.{domain}") == f"v=TLSRPTv1; rua=mailto:postmaster@{domain}".encode()
        srv = {name.to_text(): (r.port, r.target.to_text()) for name, _, r in zone.iterate_rdatas("SRV")}
        assert srv[f"_submissions._tcp.{domain}."] == (465, mail_name + ".")
        assert srv[f"_imaps._tcp.{domain}."] == (993, mail_name + ".")
        for selector in SELECTORS:
            record = txt(zones, f"{selector}._domainkey.{domain}")
            assert record and record.startswith(b"v=DKIM1; k=rsa; p="), (domain, selector, record)
    # The host's A record is in the zone its name is in, and it is the host's address.
    a = zones["example.test"].get_rdataset(mail_name + ".", "A")
    assert [r.address for r in a] == [address]
    assert zones["example.org"].get_rdataset(mail_name + ".", "A") is None


def test_each_published_key_is_the_key_on_the_host(zones, mail):
    for domain in DOMAINS:
        for selector in SELECTORS:
            key = f"{KEY_DIR}/{domain}/{selector}.private"
            on_host = mail.run(f"openssl pkey -in {key} -pubout -outform DER | base64 -w0")
            assert on_host.rc == 0, on_host.stderr
            assert txt(zones, f"{selector}._domainkey.{domain}").endswith(b"p=" + on_host.stdout.strip().encode())


@pytest.mark.parametrize("sender", [ALICE, CAROL], ids=["example.test", "example.org"])
def test_submitted_mail_is_signed_and_verifies_against_the_published_key(probe, passwords, zones, sender):
    tok = token()
    sent = probe("smtp", 587, "--starttls", "--user", sender, "--password", passwords[sender],
                 "--mail-from", sender, "--rcpt", BOB, "--token", tok)
    assert sent["data"][0] == 250, sent
    message = fetch(probe, BOB, passwords[BOB], tok)

    signatures = dkim_headers(message)
    domain = sender.split("@")[1]
    # One signature, by the first selector, of the sender's own domain, From oversigned.
    assert [(s[b"d"], s[b"s"]) for s in signatures] == [(domain.encode(), SELECTORS[0].encode())], signatures
    assert signatures[0][b"h"].lower().split(b":").count(b"from") == 2
    assert dkim.verify(message, dnsfunc=lambda name, timeout=5: txt(zones, name.decode())), message[:2000]
    # A changed body no longer verifies: the check above is a real one.
    assert not dkim.verify(message.replace(tok.encode(), b"tampered"),
                           dnsfunc=lambda name, timeout=5: txt(zones, name.decode()))


def test_submitted_mail_leaves_without_the_senders_address_and_helo(probe, passwords, zones, client, mail_name):
    """Submission privacy (postfix_submission_hide_client, on by default): the Received
    header Postfix writes for the logged-in client names neither the client's HELO
    name nor any of its addresses; the server's own trace stays, and DKIM verifies."""
    tok = token()
    sent = probe("smtp", 587, "--starttls", "--user", ALICE, "--password", passwords[ALICE],
                 "--mail-from", ALICE, "--rcpt", BOB, "--token", tok)
    assert sent["data"][0] == 250, sent
    message = fetch(probe, BOB, passwords[BOB], tok)
    received = [value.decode(errors="replace") for name, value in dkim.rfc822_parse(message)[0]
                if name.lower() == b"received"]
    own = [r for r in received if f"by {mail_name} (Postfix) with ESMTPSA id" in r]
    assert len(own) == 1 and f"for <{BOB}>" in own[0], received
    addresses = client.check_output("hostname -I").split()
    assert addresses, "the client host has no address"
    for private in ["client.example.test", *addresses]:
        assert not any(private in r for r in received), (private, received)
    assert dkim.verify(message, dnsfunc=lambda name, timeout=5: txt(zones, name.decode())), message[:2000]


def test_inbound_mail_gets_an_authentication_results_header(probe, passwords, mail_name):
    tok = token()
    sent = send25(probe, [ALICE], tok)
    assert sent["data"][0] == 250, sent
    message = fetch(probe, ALICE, passwords[ALICE], tok)
    results = [value for name, value in dkim.rfc822_parse(message)[0] if name.lower() == b"authentication-results"]
    assert any(v.strip().startswith(f"{mail_name};".encode()) and b"dkim=none" in v for v in results), results
    # Mail from outside is verified, never signed with our keys.
    assert dkim_headers(message) == []


def test_keys_are_private_to_the_signer_and_kept_by_a_new_run(mail):
    keys = [f"{KEY_DIR}/{d}/{s}.private" for d in DOMAINS for s in SELECTORS]
    before = mail.run(f"sha256sum {' '.join(keys)}")
    assert before.rc == 0, before.stderr
    for key in keys:
        stat = mail.file(key)
        assert (stat.user, stat.group, stat.mode) == ("opendkim", "opendkim", 0o600), key
    run = run_site("--tags", "opendkim")
    assert run.returncode == 0, run.stdout[-3000:]
    assert mail.run(f"sha256sum {' '.join(keys)}").stdout == before.stdout


def test_a_stopped_signer_defers_submissions_instead_of_sending_them_unsigned(probe, passwords, mail):
    tok = token()
    assert mail.run("systemctl stop opendkim").rc == 0
    try:
        sent = probe("smtp", 587, "--starttls", "--user", ALICE, "--password", passwords[ALICE],
                     "--mail-from", ALICE, "--rcpt", BOB, "--token", tok)
    finally:
        assert mail.run("systemctl start opendkim").rc == 0
    # 4xx: the sender keeps the message and tries again; nothing left unsigned.
    # (Postfix refuses from the first command after EHLO: STARTTLS, here.)
    replies = [sent.get("starttls"), sent.get("mail"), *sent.get("rcpt", []), sent.get("data")]
    refusal = next((reply for reply in replies if reply and reply[0] >= 400), None)
    assert refusal and 400 <= refusal[0] < 500, sent
    tok2 = token()
    again = probe("smtp", 587, "--starttls", "--user", ALICE, "--password", passwords[ALICE],
                  "--mail-from", ALICE, "--rcpt", BOB, "--token", tok2)
    assert again["data"][0] == 250, again
    assert wait_for(probe, BOB, passwords[BOB], tok2)["found"] == 1
    assert wait_for(probe, BOB, passwords[BOB], tok, timeout=5)["found"] == 0
