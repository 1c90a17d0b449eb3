"""SPF and DMARC on port 25, against sender domains the lab's resolver serves
(inventory/lab/group_vars/lab_dns/labdns.yml): a failed SPF check is recorded, a
domain that asks for rejection gets it, one that asks for quarantine lands in Junk,
and forged Authentication-Results headers change nothing and are removed."""

import pytest

from conftest import token, wait_for
from test_mail import ALICE, CAROL
from test_spam import header_lines

SPF_FAIL = "news@spf-fail.test"
DMARC_REJECT = "news@dmarc-reject.test"
DMARC_QUARANTINE = "news@dmarc-quarantine.test"
SPF_PASS = "news@spf-pass.test"


def send_from(probe, sender, tok, *extra):
    return probe("smtp", 25, "--starttls", "--mail-from", sender, "--rcpt", ALICE, "--token", tok, *extra)


def values(lines, name):
    return [value for key, value in lines if key == name]


def test_failed_spf_without_dmarc_is_delivered_and_recorded(probe, passwords, mail_name):
    tok = token()
    sent = send_from(probe, SPF_FAIL, tok)
    assert sent["data"][0] == 250, sent
    lines = header_lines(probe, ALICE, passwords[ALICE], tok)
    spf = values(lines, "received-spf")
    assert spf and spf[0].startswith("Fail"), lines
    assert "spf-fail.test" in spf[0], spf
    results = " ".join(v for v in values(lines, "authentication-results") if v.startswith(mail_name))
    assert "spf=fail" in results and "dmarc=none" in results, results


def test_dmarc_reject_policy_refuses_the_message_at_smtp_time(probe, passwords):
    tok = token()
    sent = send_from(probe, DMARC_REJECT, tok)
    assert sent["data"][0] == 550, sent
    assert "DMARC" in sent["data"][1], sent
    assert wait_for(probe, ALICE, passwords[ALICE], tok, timeout=5)["found"] == 0


@pytest.mark.parametrize("forgery", [
    ["--from-header", f"<{DMARC_REJECT}>, <someone@outside.example>"],
    ["--header", "From: <someone@outside.example>", "--from-header", f"<{DMARC_REJECT}>"],
], ids=["two-addresses", "two-fields"])
def test_a_second_from_address_does_not_get_past_dmarc(probe, passwords, forgery):
    """A domain that asks for rejection, named in From: beside the sender's own address,
    or in a second From: field after the sender's own: with OpenDMARC's
    RejectMultiValueFrom and RequiredHeaders off, both were delivered (tried on Debian
    12). Refused at the end of DATA, and not in the mailbox."""
    tok = token()
    sent = probe("smtp", 25, "--starttls", "--mail-from", "someone@outside.example", "--rcpt", ALICE,
                 "--token", tok, *forgery)
    assert 500 <= sent["data"][0] < 600, sent
    assert wait_for(probe, ALICE, passwords[ALICE], tok, timeout=5)["found"] == 0


def forged_pass(authserv_id, domain):
    return (f"Authentication-Results: {authserv_id}; dkim=pass header.d={domain}; "
            f"spf=pass smtp.mailfrom={domain}; dmarc=pass header.from={domain}")


@pytest.mark.parametrize("copies", [1, 3])
def test_forged_authentication_results_headers_do_not_pass_dmarc(probe, passwords, mail_name, copies):
    # OpenDKIM deletes these by position; unpatched, it deletes the wrong ones after the
    # first (CVE-2022-48521, trusteddomainproject/OpenDKIM#148), so several copies are
    # the real attack. Debian 13 and 12 carry the fix; this proves it stays that way.
    tok = token()
    forged = forged_pass(mail_name, "dmarc-reject.test")
    sent = send_from(probe, DMARC_REJECT, tok, *["--header", forged] * copies)
    assert sent["data"][0] == 550, sent
    assert wait_for(probe, ALICE, passwords[ALICE], tok, timeout=5)["found"] == 0


def test_forged_authentication_results_never_reach_the_mailbox(probe, passwords, mail_name):
    tok = token()
    forged = forged_pass(mail_name.upper(), "dmarc-quarantine.test")
    sent = send_from(probe, DMARC_QUARANTINE, tok, "--header", forged, "--header", forged)
    assert sent["data"][0] == 250, sent
    lines = header_lines(probe, ALICE, passwords[ALICE], tok, "Junk")
    ours = [v for v in values(lines, "authentication-results") if v.lower().startswith(mail_name)]
    assert len(ours) == 3 and not any("=pass" in v for v in ours), ours


def test_dmarc_quarantine_policy_files_the_message_into_junk(probe, passwords, mail_name):
    tok = token()
    sent = send_from(probe, DMARC_QUARANTINE, tok)
    assert sent["data"][0] == 250, sent
    lines = header_lines(probe, ALICE, passwords[ALICE], tok, "Junk")
    results = " ".join(v for v in values(lines, "authentication-results") if v.startswith(mail_name))
    assert "dmarc=fail (p=quarantine" in results, results
    assert wait_for(probe, ALICE, passwords[ALICE], tok, timeout=3)["found"] == 0


def test_the_domains_own_sender_passes_spf_and_dmarc(probe, passwords, mail_name):
    tok = token()
    sent = send_from(probe, SPF_PASS, tok)
    assert sent["data"][0] == 250, sent
    lines = header_lines(probe, ALICE, passwords[ALICE], tok)
    assert values(lines, "received-spf")[0].startswith("Pass"), lines
    results = " ".join(v for v in values(lines, "authentication-results") if v.startswith(mail_name))
    assert "spf=pass" in results and "dmarc=pass" in results, results


@pytest.mark.parametrize("sender", [ALICE, "ALICE@Example.TEST", CAROL, "nobody@example.test"],
                         ids=["user", "upper-case", "second-domain", "no-such-user"])
def test_our_own_domains_as_sender_from_outside_are_refused_at_rcpt(probe, passwords, sender):
    """Finding 3 of the never-lose-mail review: mail on port 25 from a client that has
    not logged in, with one of our domains as envelope sender, is refused at RCPT,
    whatever that domain's SPF record says (the lab publishes none for them); our users
    send on 587 or 465, and mail from outside in general still arrives."""
    tok = token()
    sent = send_from(probe, sender, tok)
    assert sent["rcpt"][0][0] == 554, sent
    assert "only taken with a login, on port 587 or 465" in sent["rcpt"][0][1], sent
    assert "data" not in sent, sent
    other = token()
    assert send_from(probe, "someone@outside.example", other)["data"][0] == 250
    assert wait_for(probe, ALICE, passwords[ALICE], other)["found"] == 1
    assert wait_for(probe, ALICE, passwords[ALICE], tok, timeout=2)["found"] == 0
