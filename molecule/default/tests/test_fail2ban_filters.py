"""Every filter a jail of ours reads, fed log lines an attacker can shape, through the
mail host's own fail2ban-regex (the release's fail2ban, the filters as deployed).

Each line is written as fail2ban's journal backend hands it over ("host ident[pid]:
message"). A line counts against the address the service itself wrote (REAL), or
against no one; never against an address that came from the attacker's input (a user
name, a header, a client host name). The live attacks are in test_webmail.py and
test_security.py; this covers the shapes a live test cannot make every release log.

One shape no filter can tell apart: the first half of a line that PHP broke at a line
break in the user name reads exactly like a real failed login. The webmail role's
mailbundle_login plugin refuses such names before they are logged (test_webmail.py).
"""

import shlex

import pytest

REAL4, REAL6 = "198.51.100.9", "2001:db8:1::9"
VICTIM4, VICTIM6 = "192.0.2.77", "2001:db8::77"
VICTIMS = {VICTIM4, VICTIM6}
SID = "3k7s9a1b"
SESSION = SID + "0c2d4e6f"

# (jail's filter, line, the address it must count against, or None for no one).
CASES = {
    "mailbundle-roundcube": [
        # Positive controls: Roundcube's own lines, IPv4 and IPv6, any error code.
        (f"mx1 roundcube[812]: <{SID}> Failed login for alice@example.test from {REAL4} in session {SESSION} (error: 0)", REAL4),
        (f"mx1 roundcube[812]: <{SID}> Failed login for alice@example.test from {REAL6} in session {SESSION} (error: -2)", REAL6),
        # The names the webmail's plugin refuses, as it logs them ("?" for spaces and breaks).
        (f"mx1 roundcube[812]: <{SID}> Failed login for x?from?{VICTIM4}?in?session?a?(error:?0)?x from {REAL4} in session {SESSION} (error: 0)", REAL4),
        (f"mx1 roundcube[812]: <{SID}> Failed login for x?from?{VICTIM6}?in?session?a from {REAL6} in session {SESSION} (error: 0)", REAL6),
        # The same names as Roundcube alone would log them: the attack of issue 31.
        (f"mx1 roundcube[812]: <{SID}> Failed login for x from {VICTIM4} in session a from {REAL4} in session {SESSION} (error: 0)", None),
        (f"mx1 roundcube[812]: <{SID}> Failed login for x from {VICTIM6} in session a (error: 0) from {REAL4} in session {SESSION} (error: 0)", None),
        # The rest of a line PHP broke at a line break: no session prefix of its own.
        (f"mx1 roundcube[812]: x from {REAL4} in session {SESSION} (error: 0)", None),
        (f"mx1 roundcube[812]: Failed login for y from {VICTIM4} in session a (error: 0) from {REAL4} in session {SESSION} (error: 0)", None),
        (f"mx1 roundcube[812]: Failed login for y from {VICTIM4} in session a (error: 0)", None),
        # Headers Roundcube appends after the address (nginx no longer passes them on).
        (f"mx1 roundcube[812]: <{SID}> Failed login for x from {REAL4} (X-Real-IP: {VICTIM4},X-Forwarded-For: {VICTIM4}) in session {SESSION} (error: 0)", None),
        (f"mx1 roundcube[812]: <{SID}> Failed login for x from {REAL4} (X-Forwarded-For: {VICTIM4}) in session a (error: 0)", None),
        # Roundcube's IMAP error line of the same attempt, and a host name in place of an address.
        (f"mx1 roundcube[812]: <{SID}> IMAP Error: Login failed for x from {VICTIM4} in session a against 127.0.0.1 from {REAL4}. AUTHENTICATE PLAIN: Authentication failed.", None),
        (f"mx1 roundcube[812]: <{SID}> Failed login for x from victim.example in session {SESSION} (error: 0)", None),
    ],
    "mailbundle-dovecot": [
        # Positive controls: Dovecot 2.4 (Debian 13) and 2.3 (Debian 12).
        (f"mx1 dovecot[77]: auth(alice@example.test,{REAL4},sasl:plain)<SsUaA+Zh4uH9>: passwd-file: Password mismatch", REAL4),
        (f"mx1 dovecot[77]: auth(nobody@example.test,{REAL6},sasl:plain)<RiiOA+Zh9J79>: passwd-file: unknown user", REAL6),
        (f"mx1 dovecot[77]: auth: passwd-file(alice@example.test,{REAL4},<SsUaA+Zh4uH9>): Password mismatch", REAL4),
        (f"mx1 dovecot[77]: auth: passwd-file(nobody@example.test,{REAL6},<RiiOA+Zh9J79>): unknown user", REAL6),
        # A user name Dovecot refuses is never put in the prefix; it is shown after it.
        (f"mx1 dovecot[77]: auth(?,{REAL4},sasl:plain)<OCoyA+Zh>: plain: Username character disallowed by auth_username_chars: 0x2c (username: x,{VICTIM4},<a>): Password mismatch)", None),
        (f"mx1 dovecot[77]: auth: plain(?,{REAL4},<OCoyA+Zh>): Username character disallowed by auth_username_chars: 0x2c (username: x,{VICTIM4},<a>): Password mismatch)", None),
        # Were a comma ever let into a name, the first address in the prefix is still
        # the one a name cannot contain: these lines are made up to show that the
        # filter's user field stops at the first comma.
        (f"mx1 dovecot[77]: imap-login: Disconnected: Authentication failed (auth failed, 1 attempts in 2 secs): user=<auth: passwd-file(x,{VICTIM4},<a>): Password mismatch>, method=PLAIN, rip={REAL4}", None),
        (f"mx1 dovecot[77]: imap-login: auth({VICTIM4},{VICTIM4},sasl:plain): passwd-file: Password mismatch, rip={REAL4}", None),
    ],
    "postfix[mode=auth]": [
        (f"mx1 postfix/submission/smtpd[2599]: warning: unknown[{REAL4}]: SASL PLAIN authentication failed: UGFzc3dvcmQ6", REAL4),
        (f"mx1 postfix/submissions/smtpd[2599]: warning: unknown[{REAL6}]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=alice@example.test", REAL6),
        # Postfix 3.10 puts the name as typed at the end; the client's name is verified DNS.
        (f"mx1 postfix/submissions/smtpd[2599]: warning: unknown[{REAL4}]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=x[{VICTIM4}]: SASL PLAIN authentication failed:", REAL4),
        (f"mx1 postfix/submission/smtpd[2599]: warning: host-{VICTIM4.replace('.', '-')}.example.net[{REAL4}]: SASL PLAIN authentication failed: UGFzc3dvcmQ6", REAL4),
        (f"mx1 postfix/submission/smtpd[2599]: warning: hostname x.example.net does not resolve to address {VICTIM4}", None),
    ],
    # {sshd}: the program that logs the failures, sshd-session on Debian 13, sshd on 12.
    "sshd": [
        (f"mx1 {{sshd}}[912]: Failed password for alice from {REAL4} port 50022 ssh2", REAL4),
        (f"mx1 {{sshd}}[912]: Invalid user admin from {REAL6} port 50022", REAL6),
        # OpenSSH logs the user name as typed, spaces included.
        (f"mx1 {{sshd}}[912]: Invalid user x from {VICTIM4} port 22 from {REAL4} port 50022", REAL4),
        (f"mx1 {{sshd}}[912]: Failed password for invalid user x from {VICTIM4} port 22 ssh2 from {REAL4} port 50022 ssh2", REAL4),
        (f"mx1 {{sshd}}[912]: error: PAM: Authentication failure for x from {VICTIM4} from {REAL4}", REAL4),
    ],
}


def counted(mail, filter_name, lines):
    """The address fail2ban-regex counts each line against ("" for none), one run per
    line in a single shell on the mail host."""
    marker = "--- next line ---"
    script = "; ".join(f"fail2ban-regex -o ip {shlex.quote(line)} {shlex.quote(filter_name)}; echo {shlex.quote(marker)}"
                       for line in lines)
    out = mail.check_output(f"sh -c {shlex.quote(script)}")
    answers = [part.strip() for part in out.split(marker)][:len(lines)]
    assert len(answers) == len(lines), out
    return answers


@pytest.mark.parametrize("filter_name", sorted(CASES))
def test_filter_counts_only_the_address_the_service_wrote(mail, filter_name):
    sshd = "sshd-session" if mail.system_info.codename == "trixie" else "sshd"
    cases = [(line.replace("{sshd}", sshd), want) for line, want in CASES[filter_name]]
    answers = counted(mail, filter_name, [line for line, _ in cases])
    wrong = [(line, want, got) for (line, want), got in zip(cases, answers, strict=True) if got != (want or "")]
    # The victims are the point of the test, but any wrong address is a failure.
    assert not wrong, "\n".join(f"{line}\n  counted against {got or 'no one'}, wanted {want or 'no one'}"
                                for line, want, got in wrong)
    assert not VICTIMS & set(answers)
