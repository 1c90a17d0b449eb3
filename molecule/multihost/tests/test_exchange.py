"""Two organisations' servers exchange mail through real MX lookups, over verified TLS."""

import time

from conftest import PASSWORDS, host, journal, now, send_as, token, wait_for_message


def test_mail_hosts_resolve_each_other_through_the_published_records():
    """The lab's resolver serves the zones dns_records.yml wrote: A finds B's address there.
    (The delivery below goes through b.test's MX record: b.test itself has no address.)"""
    resolver = host("mx.a.test")
    assert resolver.check_output("getent hosts mx.b.test").split()[1] == "mx.b.test"
    answer = resolver.check_output(
        "python3 -c \"import socket; print(socket.getaddrinfo('mx.b.test', 25)[0][4][0])\"")
    assert answer == host("mx.b.test").check_output("hostname -I").split()[0]


def hops(message, sender, receiver):
    """The message's Received headers for the hop from one host to the other."""
    return [r for r in message.get_all("Received") if f"from {sender}" in r and f"by {receiver}" in r]


def test_a_to_b_arrives_over_verified_tls_and_dkim_verifies(probe):
    tok = token()
    since = now("mx.a.test")
    send_as(probe, "mx.a.test", "alice@a.test", "bob@b.test", tok)
    message = wait_for_message(probe, "mx.b.test", "bob@b.test", tok)

    # B's Received header for the hop from A: TLS, with the protocol recorded.
    hop = hops(message, "mx.a.test", "mx.b.test")
    assert hop, message.get_all("Received")
    assert "ESMTPS" in hop[0] and "using TLSv1.3" in hop[0], hop[0]

    # A checked B's certificate against the CA and B's name before sending.
    log = journal("mx.a.test", "postfix*", since)
    assert "Verified TLS connection established to mx.b.test" in log, log[-3000:]

    # B verified a.test's DKIM signature with the key the lab's DNS serves, A's address
    # against a.test's SPF record, and the two against a.test's DMARC record.
    assert_authenticated(message, "mx.b.test", "a.test")


def assert_authenticated(message, receiver, domain):
    """The receiver's own Authentication-Results: DKIM, SPF and DMARC passed for domain."""
    results = " ".join(r for r in message.get_all("Authentication-Results") or [] if r.startswith(receiver))
    assert "dkim=pass" in results and f"header.d={domain}" in results, results
    assert f"spf=pass smtp.mailfrom={domain}" in results, results
    assert "dmarc=pass" in results and f"header.from={domain}" in results, results


def test_b_to_a_arrives_and_passes_dkim_spf_and_dmarc(probe):
    """The other direction: B's user writes to A's."""
    tok = token()
    send_as(probe, "mx.b.test", "bob@b.test", "alice@a.test", tok)
    message = wait_for_message(probe, "mx.a.test", "alice@a.test", tok)
    hop = hops(message, "mx.b.test", "mx.a.test")
    assert hop and "ESMTPS" in hop[0], message.get_all("Received")
    assert_authenticated(message, "mx.a.test", "b.test")


def test_unverifiable_peer_gets_nothing_until_it_verifies(probe):
    """Without the CA that signed B's certificate, A keeps the mail queued; it never falls
    back to unverified TLS. With the CA back, the same message goes out."""
    a = host("mx.a.test")
    root = "/usr/local/share/ca-certificates/mailbundle-lab-acme-root.crt"
    tok = token()
    a.check_output(f"mv {root} /root/lab-root.crt && update-ca-certificates --fresh >/dev/null && postfix reload")
    try:
        since = now("mx.a.test")
        send_as(probe, "mx.a.test", "alice@a.test", "bob@b.test", tok)
        deadline = time.monotonic() + 60
        while "status=deferred (Server certificate not verified)" not in journal("mx.a.test", "postfix*", since):
            assert time.monotonic() < deadline, journal("mx.a.test", "postfix*", since)[-3000:]
            time.sleep(2)
        assert "bob@b.test" in a.check_output("postqueue -j")
        unsent = probe("imap", "mx.b.test", 993, "--tls", "--user", "bob@b.test", "--password", PASSWORDS["bob@b.test"],
                       "--token", tok)
        assert unsent["found"] == 0, unsent
    finally:
        a.check_output(f"mv /root/lab-root.crt {root} && update-ca-certificates >/dev/null && postfix reload")
    a.check_output("postqueue -f")
    wait_for_message(probe, "mx.b.test", "bob@b.test", tok)


def test_own_domain_as_sender_only_from_a_peer_never_from_outside(probe):
    """B refuses mail on port 25 with b.test as sender from a client that is not one of
    the site's servers; the same sender in mail forwarded by A (an alias of a.test that
    points back to b.test) is taken and delivered."""
    outside = probe("smtp", "mx.b.test", 25, "--starttls", "--mail-from", "bob@b.test",
                    "--rcpt", "bob@b.test", "--no-data")
    assert outside["rcpt"][0][0] == 554, outside
    assert "only taken with a login" in outside["rcpt"][0][1], outside

    tok = token()
    since = now("mx.b.test")
    send_as(probe, "mx.b.test", "bob@b.test", "b-desk@a.test", tok)
    message = wait_for_message(probe, "mx.b.test", "bob@b.test", tok)
    assert hops(message, "mx.a.test", "mx.b.test"), message.get_all("Received")
    # Taken at the first attempt: B refused nothing from A's address.
    a_address = host("mx.a.test").check_output("hostname -I").split()[0]
    refused = [line for line in journal("mx.b.test", "postfix*", since).splitlines()
               if "reject:" in line and f"[{a_address}]" in line]
    assert not refused, refused
