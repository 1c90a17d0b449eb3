"""A DKIM key rotation run as code (docs/dkim-and-dns.md): a new selector put first in
opendkim_selectors gets its keys but does not sign until its record is found in DNS
matching its key (a wrong record keeps the old key signing); once published, the next
run signs with it; after the grace period a run retires the old keys. At each step the
mail of both domains is signed by the selector expected and verifies against the
records the lab's resolver publishes.

OpenDKIM in the lab normally resolves nothing under .test; here its runs point it at the
lab's resolver (lab/playbooks/support.yml wrote the file), as the multi-host scenario
does for good."""

import json
import shlex

import dkim
import dns.exception
import dns.rdatatype
import dns.resolver
import pytest

from conftest import RUNNER, _host, addresses, dns_records, fetch, lab_value, run_site, token, wait_until
from test_dkim import KEY_DIR, SELECTORS, dkim_headers
from test_mail import ALICE, BOB, CAROL

NEW = "mail2027"
ROTATION = [NEW, *SELECTORS]
DOMAINS = lab_value("all", "mail", "mail_domains")
SENDERS = {"example.test": ALICE, "example.org": CAROL}
LAB_RESOLVER = {"opendkim_resolver_configuration": "/etc/mailbundle-lab/libunbound.conf",
                "opendkim_trust_anchor_file": ""}
PUBLISHED = "/etc/unbound/unbound.conf.d/zz-dkim-rotation.conf"


@pytest.fixture(scope="module")
def ns():
    return _host("lab_dns")


@pytest.fixture(scope="module")
def resolver():
    """The lab's resolver, asked from here: what the world would see as published."""
    answer = dns.resolver.Resolver(configure=False)
    answer.nameservers = [addresses(RUNNER.get_hosts("lab_dns")[0])["ipv4"]]
    answer.lifetime = 5
    return answer


def published_txt(resolver, name):
    try:
        return b"".join(b"".join(record.strings) for record in resolver.resolve(name, "TXT"))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers, dns.exception.Timeout):
        return None


def rotate(**values):
    run = run_site("--tags", "opendkim", "-e", json.dumps({**LAB_RESOLVER, **values}))
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return run.stdout


def publish(ns, resolver, entries):
    """Serve TXT records ({name: Rdata}) from the lab's resolver, and wait for them."""
    conf = "server:\n" + "".join(f"  local-data: '{name}. 60 IN TXT {rdata.to_text()}'\n"
                                  for name, rdata in entries.items())
    assert ns.run(f"printf %s {shlex.quote(conf)} > {PUBLISHED} && systemctl restart unbound").rc == 0
    assert wait_until(lambda: all(published_txt(resolver, name) == b"".join(rdata.strings)
                                  for name, rdata in entries.items()), 30, 1), entries


def signed(probe, passwords, resolver, sender, tok=None):
    """Submit a message from sender on 587, read it back; the selector that signed it,
    after checking that it verifies against the published record; and the message."""
    tok = tok or token()
    sent = probe("smtp", 587, "--starttls", "--user", sender, "--password", passwords[sender],
                 "--mail-from", sender, "--rcpt", BOB, "--token", tok)
    assert sent["data"][0] == 250, sent
    message = fetch(probe, BOB, passwords[BOB], tok)
    signatures = dkim_headers(message)
    assert len(signatures) == 1, signatures
    assert verifies(message, resolver), message[:2000]
    return signatures[0][b"s"].decode(), message


def verifies(message, resolver):
    return dkim.verify(message, dnsfunc=lambda name, timeout=5: published_txt(resolver, name.decode()))


def key_table(mail):
    return mail.check_output("grep -v '^#' /etc/opendkim/key.table")


def test_a_key_rotation_moves_signing_only_once_the_new_record_resolves(mail, mail_name, ns, resolver, probe,
                                                                        passwords, tmp_path):
    old = SELECTORS[0]

    def rdata(zones, domain, selector):
        return next(iter(zones[domain][1].get_rdataset(f"{selector}._domainkey.{domain}.", dns.rdatatype.TXT)))

    try:
        # 0. The lab's keys published as dns_records.yml prints them: the old key signs.
        base = dns_records(tmp_path / "base")
        current = {f"{s}._domainkey.{d}": rdata(base, d, s) for d in DOMAINS for s in SELECTORS}
        publish(ns, resolver, current)
        assert {d: signed(probe, passwords, resolver, s)[0] for d, s in SENDERS.items()} == dict.fromkeys(DOMAINS, old)

        # 1. The new selector staged: its keys are made, its record is not published yet,
        #    the old key keeps signing and the run says why; dns_records.yml prints it.
        out = rotate(opendkim_selectors=ROTATION)
        for domain in DOMAINS:
            assert mail.file(f"{KEY_DIR}/{domain}/{NEW}.private").exists
            assert f"{domain} keeps signing with {old}: the record of" in out, out[-4000:]
        assert {d: signed(probe, passwords, resolver, s)[0] for d, s in SENDERS.items()} == dict.fromkeys(DOMAINS, old)
        staged = dns_records(tmp_path / "staged")
        for text, _ in staged.values():
            assert f"; {NEW} on {mail_name}: new: publish it" in text, text
            assert f"; {old} on {mail_name}: signs" in text, text

        # 2. example.test's new record published as printed; example.org's under the new
        #    name but with the old key (a copy-and-paste slip): only example.test moves.
        publish(ns, resolver, current | {f"{NEW}._domainkey.example.test": rdata(staged, "example.test", NEW),
                                         f"{NEW}._domainkey.example.org": rdata(staged, "example.org", old)})
        out = rotate(opendkim_selectors=ROTATION)
        assert "example.org keeps signing with" in out and "example.test keeps signing with" not in out, out[-4000:]
        moved = {d: signed(probe, passwords, resolver, s) for d, s in SENDERS.items()}
        assert {d: selector for d, (selector, _) in moved.items()} == {"example.test": NEW, "example.org": old}
        # Within the grace period the old keys stay in the key table.
        assert f"{old}._domainkey.example.test" in key_table(mail)

        # 3. example.org's record mended; a run after the grace period (0 days here)
        #    moves it too and retires every old key: out of the key table, and
        #    dns_records.yml says their records can go.
        publish(ns, resolver, current | {f"{NEW}._domainkey.{d}": rdata(staged, d, NEW) for d in DOMAINS})
        rotate(opendkim_selectors=ROTATION, opendkim_retire_after_days=0)
        assert {d: signed(probe, passwords, resolver, s)[0] for d, s in SENDERS.items()} == dict.fromkeys(DOMAINS, NEW)
        table = key_table(mail)
        assert all(f"{NEW}._domainkey.{d}" in table for d in DOMAINS), table
        assert not any(f"{s}._domainkey" in table for s in SELECTORS), table
        for domain, (text, zone) in dns_records(tmp_path / "retired").items():
            for selector in SELECTORS:
                assert f"; {selector} on {mail_name}: retired, delete this record" in text, text
                assert zone.get_rdataset(f"{selector}._domainkey.{domain}.", dns.rdatatype.TXT) is None
        # Mail signed before the move still verifies while the old record is published.
        assert verifies(moved["example.org"][1], resolver)
    finally:
        # Back to the lab's own settings: its list signs with its first selector at once.
        ns.run(f"rm -f {PUBLISHED} && systemctl restart unbound")
        run = run_site("--tags", "opendkim")
        mail.run("rm -f " + " ".join(f"{KEY_DIR}/{d}/{NEW}.private {KEY_DIR}/{d}/{NEW}.txt" for d in DOMAINS))
    assert run.returncode == 0, run.stdout[-4000:]
    table = key_table(mail)
    assert f"{old}._domainkey.example.test" in table and NEW not in table, table
    state = json.loads(mail.check_output("cat /etc/opendkim/keys/rotation.json"))
    assert {d: entry["signing"] for d, entry in state.items()} == dict.fromkeys(DOMAINS, old)
