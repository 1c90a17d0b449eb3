"""The host's defences: the firewall and fail2ban seen from outside, kernel settings, service sandboxes.

The client is the site's own user (allowlisted in fail2ban, as an office network
would be); the attacker is a separate host that guesses passwords.
"""

import ipaddress
import json
import re
import time

import pytest
import yaml

from conftest import PROJECT, RUNNER, addresses, lab_value, ports, role_default, run_site, token, wait_for, wait_until

ALICE, BOB = "alice@example.test", "bob@example.test"
# The mail ports, and nginx's 80 and 443: the lab serves client settings and MTA-STS
# (inventory/lab/group_vars/mailservers/web.yml).
PUBLIC = [25, 465, 587, 143, 993, 110, 995, 4190, 80, 443]
# A port nothing of ours uses; the test opens a listener on it on every address.
DECOY = 8025


@pytest.fixture(autouse=True, scope="module")
def scripts(probe, attacker_probe):
    """The probes copy mailprobe.py and portprobe.py to the client and the attacker."""


@pytest.fixture(scope="module")
def listeners(mail):
    """Every TCP port the mail host listens on, on any address."""
    out = mail.check_output("ss -Htln")
    return sorted({int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines()})


def local_open(host, address, port):
    return host.run(f"python3 -c 'import socket; socket.create_connection((\"{address}\", {port}), 2)'").rc == 0


@pytest.fixture
def decoy(mail):
    """A listener on every IPv4 and IPv6 address that the firewall does not open."""
    mail.run(f"systemd-run --unit=decoy-listener python3 -m http.server --bind :: {DECOY}")
    for _ in range(20):
        if local_open(mail, "127.0.0.1", DECOY):
            break
        time.sleep(0.5)
    yield DECOY
    mail.run("systemctl stop decoy-listener.service")


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_only_the_public_mail_ports_answer(client, mail, mx_addresses, listeners, decoy, family):
    # Every port the host listens on, plus one listener bound to all addresses: from
    # the client only the enabled public mail ports open.
    bound = [line.split()[3] for line in mail.check_output("ss -Htln").splitlines()]
    assert f"*:{DECOY}" in bound or f"[::]:{DECOY}" in bound, bound
    seen = ports(client, mx_addresses[family], sorted(set(listeners + [DECOY])), timeout=2)
    answering = sorted(port for port, state in seen.items() if state == "open")
    # SSH (22) is open too, when an sshd listens (the lab has none until the SSH test).
    assert answering == sorted(PUBLIC + ([22] if 22 in listeners else [])), seen
    # Not merely closed: the firewall drops them, while on the host itself they answer.
    assert seen[DECOY] == "timeout", seen
    assert local_open(mail, "::1" if family == "ipv6" else "127.0.0.1", DECOY)


def test_internal_services_listen_on_loopback_or_sockets_only(mail, listeners):
    public = set(PUBLIC) | {22}  # and sshd, where one runs
    for line in mail.check_output("ss -Htln").splitlines():
        local = line.split()[3]
        address, port = local.rsplit(":", 1)
        if int(port) not in public:
            # 127.0.0.11 is Docker's embedded DNS in the lab; loopback all the same.
            assert address.startswith("127.") or address == "[::1]", line


def fail_logins(attacker_probe, mail, address, source, protocol, port, mode, limit, *extra):
    """Wrong passwords from the attacker, one session each, until fail2ban bans it.

    Returns how many sessions it took; the last may be cut off by the ban. Dovecot logs
    the failure, which its jail bans on, before it answers (its failure delay): the
    session the ban cuts then ends at the probe's timeout instead of waiting for the
    ban to expire and go on (which would take more sessions than maxretry).
    """
    for attempt in range(1, limit + 1):
        args = [protocol, port, mode, "--host", address, "--user", ALICE, "--password", "guess-" + token(),
                "--timeout", "20", *extra]
        if protocol == "smtp":
            args += ["--mail-from", ALICE, "--rcpt", BOB]
        answer = attacker_probe(*args)
        if "error" not in answer:
            if protocol == "smtp":
                # 535, or 454 when Dovecot's own penalty delay outlasts Postfix's wait.
                assert answer["auth"][0] in (454, 535), answer
            else:
                assert answer["login"].startswith("refused"), answer
        if wait_until(lambda: jails_banning(mail, source) != "[[]]", 3, step=1):
            return attempt
    return None


def reachable(attacker, mx_addresses, port=587):
    return all(ports(attacker, mx_addresses[f], [port], timeout=2)[port] == "open" for f in ("ipv4", "ipv6"))


def jails_banning(mail, address):
    """The jails in which fail2ban currently bans the address."""
    return mail.check_output(f"fail2ban-client banned {address}")


def found_by_jail(mail, jail, address):
    """How many failures of the address the jail has counted (fail2ban's log)."""
    return int(mail.check_output(f"grep -cF '[{jail}] Found {address} ' /var/log/fail2ban.log || true"))


def test_password_guessing_on_587_bans_the_attacker_until_the_ban_expires(
        mail, client, attacker, attacker_probe, probe, passwords, mx_addresses, attacker_address, unban):
    assert reachable(attacker, mx_addresses)
    maxretry = lab_value("mailservers", "security", "fail2ban_maxretry")
    postfix_before = found_by_jail(mail, "postfix-sasl", attacker_address["ipv4"])
    fresh = found_by_jail(mail, "dovecot", attacker_address["ipv4"]) == 0
    sessions = fail_logins(attacker_probe, mail, mx_addresses["ipv4"], attacker_address["ipv4"],
                           "smtp", 587, "--starttls", 2 * maxretry)
    # One wrong password per session: banned at the maxretry-th, by the jail that reads
    # Dovecot's password checks (every SMTP AUTH is one); and not before, where the
    # attacker has no failures on record (a rerun within findtime starts with some).
    assert sessions is not None and sessions <= maxretry, f"banned after {sessions} sessions"
    assert sessions == maxretry or not fresh, f"banned after {sessions} sessions, not {maxretry}"
    assert "dovecot" in jails_banning(mail, attacker_address["ipv4"])
    # Postfix's own jail counted the first sessions too. The last one Postfix logs as
    # "Connection lost to authentication server" (and answers 454): Dovecot's penalty for
    # an address that failed before outlasts Postfix's wait, and the stock filter skips
    # that line, a server-side fault. So postfix-sasl alone would not ban this guesser.
    assert found_by_jail(mail, "postfix-sasl", attacker_address["ipv4"]) - postfix_before >= maxretry - 1
    # Refused on every port over IPv4 (the attacker's IPv6 address made no attempt).
    seen = ports(attacker, mx_addresses["ipv4"], PUBLIC, timeout=2)
    assert set(seen.values()) <= {"timeout", "refused"}, seen

    # The site's own client still sends and reads mail meanwhile.
    tok = token()
    sent = probe("smtp", 587, "--starttls", "--user", ALICE, "--password", passwords[ALICE],
                 "--mail-from", ALICE, "--rcpt", BOB, "--token", tok)
    assert sent["data"][0] == 250, sent
    assert wait_for(probe, BOB, passwords[BOB], tok)["found"] == 1

    # The ban ends by itself after fail2ban_bantime (45s in the lab). An address banned
    # before on the same host (a rerun of these checks) is banned for longer:
    # bantime.increment doubles it each time, so allow three bans' worth.
    assert wait_until(lambda: ports(attacker, mx_addresses["ipv4"], [587], timeout=2)[587] == "open", 240)
    assert jails_banning(mail, attacker_address["ipv4"]) == "[[]]"


def test_password_guessing_over_ipv6_bans_the_guessers_prefix_but_never_the_allowlist(
        mail, attacker, attacker_probe, mx_addresses, attacker_address, probe, passwords, unban):
    """A guesser on 993 over IPv6 is banned with its whole prefix (fail2ban_ipv6_ban_prefix,
    /120 in the lab): its neighbour in the prefix is dropped too, an address of the same
    host outside it is not. A ban of a prefix that holds the allowlisted client (the
    Docker network's first /120) drops the attacker's own address there, never the
    client's."""
    prefix = lab_value("mailservers", "security", "fail2ban_ipv6_ban_prefix")
    maxretry = lab_value("mailservers", "security", "fail2ban_maxretry")
    mx6 = mx_addresses["ipv6"]
    network = ipaddress.ip_network(f"{attacker_address['ipv6']}/64", strict=False)
    block = 2 ** (128 - prefix)
    # Two addresses in one prefix far from the lab's hosts, and one in the next prefix.
    guesser, neighbour, outsider = (str(network.network_address + 0xbad * block + offset)
                                    for offset in (1, 2, block + 1))
    extra = " && ".join(f"ip -6 addr add {a}/64 dev eth0 nodad" for a in (guesser, neighbour, outsider))
    attacker.check_output(extra)
    try:
        sessions = fail_logins(attacker_probe, mail, mx6, guesser, "imap", 993, "--tls", 2 * maxretry,
                               "--source", guesser)
        assert sessions == maxretry, f"banned after {sessions} sessions, not {maxretry}"
        assert "dovecot" in jails_banning(mail, guesser)
        for source in (guesser, neighbour):
            seen = ports(attacker, mx6, [993, 25], timeout=2, source=source)
            assert set(seen.values()) <= {"timeout", "refused"}, (source, seen)
        assert ports(attacker, mx6, [993, 25], timeout=2, source=outsider) == {993: "open", 25: "open"}
    finally:
        mail.run(f"fail2ban-client unban {guesser}")
        attacker.run(" ; ".join(f"ip -6 addr del {a}/64 dev eth0" for a in (guesser, neighbour, outsider)))
    assert ports(attacker, mx6, [993], timeout=2) == {993: "open"}

    # The prefix of the attacker's own address holds the client's too.
    client6 = addresses(RUNNER.get_hosts("lab_clients")[0])["ipv6"]
    assert ipaddress.ip_address(client6) in ipaddress.ip_network(f"{attacker_address['ipv6']}/{prefix}", strict=False)
    mail.check_output(f"fail2ban-client set dovecot banip {attacker_address['ipv6']}")
    try:
        assert set(ports(attacker, mx6, [993], timeout=2).values()) <= {"timeout", "refused"}
        session = probe("imap", 993, "--tls", "--host", mx6, "--user", ALICE, "--password", passwords[ALICE])
        assert session["login"] == "OK", session
    finally:
        mail.run(f"fail2ban-client unban {attacker_address['ipv6']}")


def test_an_address_banned_again_and_again_is_banned_from_every_port_for_longer(
        mail, attacker, attacker_probe, mx_addresses, attacker_address, unban):
    """The recidive jail: an address banned fail2ban_recidive_maxretry times within
    fail2ban_recidive_findtime (3 within 15 minutes in the lab), by any jail, is banned
    from every port for fail2ban_recidive_bantime, and stays banned when the jail that
    banned it last lets it go. The earlier bans are put in by hand (fail2ban logs them as
    it logs any ban: yesterday's guessing, sped up); the last comes from guessing on 993.
    An address in the next prefix still reaches every port."""
    recidive = lab_value("mailservers", "security", "fail2ban_recidive_maxretry")
    maxretry = lab_value("mailservers", "security", "fail2ban_maxretry")
    prefix = lab_value("mailservers", "security", "fail2ban_ipv6_ban_prefix")
    mx6 = mx_addresses["ipv6"]
    network = ipaddress.ip_network(f"{attacker_address['ipv6']}/64", strict=False)
    block = 2 ** (128 - prefix)
    repeater, outsider = (str(network.network_address + 0xbee * block + offset) for offset in (1, block + 1))
    attacker.check_output(" && ".join(f"ip -6 addr add {a}/64 dev eth0 nodad" for a in (repeater, outsider)))
    try:
        for _ in range(recidive - 1):
            mail.check_output(f"fail2ban-client set dovecot banip {repeater} && "
                              f"fail2ban-client set dovecot unbanip {repeater}")
        assert "recidive" not in jails_banning(mail, repeater)
        sessions = fail_logins(attacker_probe, mail, mx6, repeater, "imap", 993, "--tls", 2 * maxretry,
                               "--source", repeater)
        assert sessions == maxretry, f"banned after {sessions} sessions, not {maxretry}"
        assert wait_until(lambda: "recidive" in jails_banning(mail, repeater), 20, step=1), (
            jails_banning(mail, repeater))
        # The guessing jail lets it go (its ban ended); the recidive ban holds, on every port.
        mail.check_output(f"fail2ban-client set dovecot unbanip {repeater}")
        assert "dovecot" not in jails_banning(mail, repeater)
        seen = ports(attacker, mx6, PUBLIC, timeout=2, source=repeater)
        assert set(seen.values()) <= {"timeout", "refused"}, seen
        bantime = lab_value("mailservers", "security", "fail2ban_recidive_bantime")
        assert mail.check_output("fail2ban-client get recidive bantime") == str(
            int(bantime[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[bantime[-1]])
        assert set(ports(attacker, mx6, [993, 25], timeout=2, source=outsider).values()) == {"open"}
    finally:
        mail.run(f"fail2ban-client unban {repeater}")
        attacker.run(" ; ".join(f"ip -6 addr del {a}/64 dev eth0" for a in (repeater, outsider)))
    assert ports(attacker, mx6, [993], timeout=2) == {993: "open"}


AUTH_SESSIONS = """
import json, smtplib, ssl, sys
host, user, password, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
answers = []
for _ in range(count):
    with smtplib.SMTP(host, 587, timeout=20) as smtp:
        smtp.starttls(context=context)
        try:
            code, text = smtp.login(user, password)
            answers.append([code, text.decode()])
        except smtplib.SMTPResponseException as err:
            answers.append([err.smtp_code, err.smtp_error.decode()])
print(json.dumps(answers))
"""


def auth_sessions(host, mx, user, password, count):
    """count sessions on 587 from host, each logging in once; each one's AUTH answer."""
    import shlex

    out = host.check_output(f"python3 -c {shlex.quote(AUTH_SESSIONS)} {mx} {user} {shlex.quote(password)} {count}")
    return [(code, str(text)) for code, text in json.loads(out)]


def without_dovecots_penalty(answers):
    """The answers after any leading 454 "Connection lost to authentication server": an
    address that failed logins shortly before (the checks before this one do, on
    purpose) waits out Dovecot's penalty on its next login, longer than Postfix waits."""
    while answers and answers[0][0] == 454 and "Connection lost to authentication server" in answers[0][1]:
        answers = answers[1:]
    assert len(answers) > 1, "every login waited out Dovecot's penalty"
    return answers


def test_logins_beyond_the_auth_rate_get_450_and_the_exempt_client_does_not(
        mail, client, attacker, passwords, mx_addresses, attacker_address, unban):
    """A client address may send postfix_auth_rate_limit AUTH commands (30, the default,
    in the lab too) to 587 in a minute, right password or wrong; one more gets
    450 4.7.1 and no login, and Postfix logs the refusal. Here with a stolen password,
    which fail2ban does not see: every login succeeds until the limit. The lab client
    (postfix_client_limit_exceptions) logs in as often without refusal."""
    limit = role_default("postfix", "postfix_auth_rate_limit")
    answers = without_dovecots_penalty(auth_sessions(attacker, mx_addresses["ipv4"], ALICE, passwords[ALICE],
                                                     limit + 1))
    codes = [code for code, _ in answers]
    # The 587 guessing check's sessions (at most 2 x maxretry), if in the same minute,
    # count too: the refusal may come that much early, never late, and no login
    # succeeds after it.
    early = 2 * lab_value("mailservers", "security", "fail2ban_maxretry")
    refused = codes.index(450) if 450 in codes else None
    assert refused is not None and set(codes[:refused]) <= {235} and refused >= limit - early, answers
    assert set(codes[refused:]) == {450} and "too many AUTH commands" in answers[refused][1], answers
    logged = [line for line in mail.check_output("journalctl -u 'postfix*' -n 300 -o cat --no-pager").splitlines()
              if "AUTH command rate limit exceeded" in line and f"[{attacker_address['ipv4']}]" in line]
    assert logged, "Postfix logged no refusal for the attacker's address"
    assert "dovecot" not in mail.check_output(f"fail2ban-client banned {attacker_address['ipv4']}")

    exempt = auth_sessions(client, "mx1.example.test", ALICE, passwords[ALICE], limit + 1)
    assert {code for code, _ in without_dovecots_penalty(exempt)} == {235}, exempt
    print(f"logins before the refusal: {refused} of {limit}; then {answers[refused]}")


def test_a_broken_ban_action_never_replaces_the_one_in_force(mail):
    """The validate: of the ban action file: one whose include is missing passes
    fail2ban-client --test, so the check also reads its start, ban and unban commands
    as fail2ban does; the action in force passes."""
    check = "/usr/local/sbin/fail2ban-candidate-check action.d/mailbundle-nftables.conf"
    mail.check_output("printf '[INCLUDES]\\nbefore = no-such-action.conf\\n[Definition]\\nactionban = true\\n'"
                      " > /root/broken-action.conf")
    try:
        broken = mail.run(f"{check} /root/broken-action.conf")
        in_force = mail.run(f"{check} /etc/fail2ban/action.d/mailbundle-nftables.conf")
    finally:
        mail.run("rm -f /root/broken-action.conf")
    assert broken.rc == 1 and "gives no nft command as actionstart" in broken.stderr, broken.stderr
    assert in_force.rc == 0, in_force.stderr


def test_the_allowlisted_client_is_never_banned(mail, client, probe, passwords):
    # The allowlist names the client by host name; both its addresses are spared.
    client_address = addresses(RUNNER.get_hosts("lab_clients")[0])
    maxretry = lab_value("mailservers", "security", "fail2ban_maxretry")
    for family in ("ipv4", "ipv6"):
        mx = addresses(RUNNER.get_hosts("mailservers")[0])[family]
        for _ in range(maxretry):
            answer = probe("imap", 993, "--tls", "--host", mx, "--user", ALICE, "--password", "typo")
            assert answer["login"].startswith("refused"), answer
    time.sleep(3)
    for family in ("ipv4", "ipv6"):
        assert jails_banning(mail, client_address[family]) == "[[]]", family
    tok = token()
    sent = probe("smtp", 587, "--starttls", "--user", ALICE, "--password", passwords[ALICE],
                 "--mail-from", ALICE, "--rcpt", BOB, "--token", tok)
    assert sent["data"][0] == 250, sent
    assert wait_for(probe, BOB, passwords[BOB], tok)["found"] == 1


# --- Opt-in SSH hardening -----------------------------------------------------------

def test_ssh_hardening_refuses_to_lock_out_then_allows_keys_only(mail, client):
    mail.run("rm -f /root/.ssh/authorized_keys")
    refused = run_site("--tags", "ssh", "-e", "ssh_hardening_enabled=true")
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0, out
    assert "Refusing to switch SSH password login off: root" in out, out
    assert not mail.file("/etc/ssh/sshd_config.d/10-mailbundle.conf").exists

    # With the operator's key in place, the hardening applies.
    client.run("test -f /root/.ssh/id_ed25519 || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519")
    key = client.check_output("cat /root/.ssh/id_ed25519.pub")
    mail.run(f"install -d -m 700 /root/.ssh && echo '{key}' > /root/.ssh/authorized_keys")
    try:
        applied = run_site("--tags", "ssh", "-e", "ssh_hardening_enabled=true")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        ssh = "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=10 root@mx1.example.test"
        # Over the wire: the key logs in; a password is not even offered.
        assert client.run(f"{ssh} true").rc == 0
        password = client.run(f"{ssh} -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive true")
        assert password.rc != 0
        assert "Permission denied (publickey)" in password.stderr, password.stderr
    finally:
        # Back to the lab's setting (off), which removes the drop-in again.
        reverted = run_site("--tags", "ssh")
        assert reverted.returncode == 0, reverted.stdout + reverted.stderr
    assert not mail.file("/etc/ssh/sshd_config.d/10-mailbundle.conf").exists


# --- Kernel settings ----------------------------------------------------------------

SYSCTL_FILE = "/etc/sysctl.d/60-mailbundle.conf"


def sysctl_file(mail):
    """The settings of the deployed file: {key: (value, optional)}."""
    settings = {}
    for line in mail.file(SYSCTL_FILE).content_string.splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = (part.strip() for part in line.split("=", 1))
            settings[key.lstrip("-")] = (value, key.startswith("-"))
    return settings


def test_kernel_settings_are_in_force_or_named_as_the_hosts(mail):
    settings = sysctl_file(mail)
    hardening = yaml.safe_load((PROJECT / "roles/sysctl/vars/main.yml").read_text())["__sysctl_hardening"]
    assert set(settings) == {s["key"] for s in hardening}

    # The role's run left nothing to set: each setting is in force, or named as held by
    # the host kernel because this host may not write it (the lab host is a container).
    run = mail.run(f"/usr/local/sbin/sysctl-converge {SYSCTL_FILE}")
    assert run.rc == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["set"] == []
    held = {h["key"] for h in report["held"]}
    for key, (value, optional) in settings.items():
        entry = "/proc/sys/" + key.replace(".", "/")
        if key in report["absent"]:
            assert optional and not mail.file(entry).exists
            continue
        now = " ".join(mail.check_output(f"cat {entry}").split())
        if key in held:
            assert now != value and mail.run(f"test -w {entry}").rc != 0, key
        else:
            assert now == value, key


# --- Service sandboxes --------------------------------------------------------------

# The bundle's own services and, for each, the directory it may write to (its state).
SANDBOXED = {
    "mail-backup.service": "/var/lib/mail-backup",
    "mail-backup-check.service": "/var/lib/mail-backup",
    "mail-backup-drill.service": "/var/lib/mail-backup",
    "mail-monitor.service": "/var/lib/mail-monitor",
    "mail-monitor-scheduled.service": "/var/lib/mail-monitor",
    "mail-daily-report.service": "/var/lib/mail-monitor",
}
# systemd-analyze's scale: 10 is no sandbox at all (9.2 before this role set), below 4.5 "OK".
EXPOSURE_MAX = 3.0
PROBE = """set -u
state=$1
{
  touch /etc/.sandbox-probe 2>/dev/null && echo etc=written || echo etc=refused
  touch /var/mail/vhosts/.sandbox-probe 2>/dev/null && echo mail=written || echo mail=refused
  ls /var/mail/vhosts >/dev/null 2>&1 && echo mail_read=yes || echo mail_read=no
  grep -E '^(NoNewPrivs|CapBnd):' /proc/self/status | tr -d ' \\t' | tr : =
} > "$state/.sandbox-probe"
"""


# Our long-running units too, and the daemons whose Debian units the roles sandbox
# with drop-ins (before them: OpenDKIM 9.6 and OpenDMARC 9.2, "UNSAFE";
# policyd-rate-limit 6.9 and spamd 6.2, "MEDIUM").
SCORED = sorted(SANDBOXED) + ["mail-from-guard.service",
                              "mail-spamass-milter@inbound.service", "mail-spamass-milter@outbound.service",
                              "opendkim.service", "opendmarc.service", "policyd-rate-limit.service", "spamd.service"]


@pytest.mark.parametrize("unit", SCORED)
def test_own_services_are_scored_as_sandboxed(mail, unit):
    shown = mail.check_output(f"systemd-analyze security --no-pager {unit}")
    level = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", shown).group(1))
    assert level <= EXPOSURE_MAX, shown


# Capability bits (linux/capability.h): CHOWN 0, DAC_OVERRIDE 1, DAC_READ_SEARCH 2, FOWNER 3,
# FSETID 4.
@pytest.mark.parametrize(("unit", "capabilities"), [("mail-backup.service", 0b11111), ("mail-monitor.service", 0b00110)])
def test_the_sandbox_holds_while_the_service_runs(mail, unit, capabilities):
    """The unit's own sandbox, with a probe in place of its program: it reads the mail
    store but writes only its state, without new privileges or other capabilities."""
    state = SANDBOXED[unit]
    dropin = f"/run/systemd/system/{unit}.d"
    mail.run(f"cat > /run/sandbox-probe.sh <<'EOF'\n{PROBE}EOF")
    mail.run(f"mkdir -p {dropin} && printf '[Service]\\nExecStart=\\nExecStart=/bin/sh /run/sandbox-probe.sh {state}\\n'"
             f" > {dropin}/probe.conf && systemctl daemon-reload")
    try:
        started = mail.run(f"systemctl start {unit}")
        assert started.rc == 0, started.stderr
        found = dict(line.split("=", 1) for line in mail.check_output(f"cat {state}/.sandbox-probe").split())
    finally:
        mail.run(f"rm -rf {dropin} {state}/.sandbox-probe /run/sandbox-probe.sh /etc/.sandbox-probe"
                 " /var/mail/vhosts/.sandbox-probe; systemctl daemon-reload")
    assert found["etc"] == "refused" and found["mail"] == "refused"
    assert found["mail_read"] == "yes"
    assert found["NoNewPrivs"] == "1"
    # What the unit keeps, of what the host grants (a container's own bounding set is
    # smaller: Docker leaves out CAP_DAC_READ_SEARCH).
    granted = int(mail.check_output("awk '/^CapBnd:/ {print $2}' /proc/1/status"), 16)
    assert int(found["CapBnd"], 16) == capabilities & granted


# A message sent over SMTP to the host's own port 25 from the host: what any local
# program can do. Prints the SMTP refusal, or "accepted".
LOOPBACK_SMTP = """
import smtplib, sys
sender, rcpt, from_header, tok = sys.argv[1:5]
body = (f"From: <{from_header}>\\r\\nTo: <{rcpt}>\\r\\nSubject: probe {tok}\\r\\n"
        f"Message-ID: <{tok}@mx1.example.test>\\r\\n\\r\\nToken {tok}\\r\\n")
try:
    conn = smtplib.SMTP("127.0.0.1", 25, local_hostname="mx1.example.test", timeout=60)
    conn.sendmail(sender, [rcpt], body)
    conn.quit()
    print("accepted")
except smtplib.SMTPRecipientsRefused as err:
    code, text = list(err.recipients.values())[0]
    print(code, text.decode())
except smtplib.SMTPResponseException as err:
    print(err.smtp_code, err.smtp_error.decode())
"""


def test_local_users_send_only_if_allowed_and_loopback_on_25_is_outside(mail, probe, passwords):
    """Finding 4 of the security review: code running as www-data (a webmail compromise;
    the webmail's workers now run as mailbundle-webmail) could send through sendmail or
    through 127.0.0.1:25, skipping the login and the sending limits, with mail for our
    domains DKIM-signed. Now sendmail is refused to both users,
    and on 25 from loopback it is an outsider: no relay, none of our domains as sender,
    and a forged From: is judged by DMARC and never signed. root's sendmail (alerts,
    reports) still delivers, signed."""
    import shlex

    from test_spam import header_lines

    def as_webmail(command, user="mailbundle-webmail"):
        return mail.run(f"runuser -u {user} -- {command}")

    def loopback(sender, rcpt, from_header, tok):
        return as_webmail(f"python3 -c {shlex.quote(LOOPBACK_SMTP)} {sender} {rcpt} {from_header} {tok}").stdout.strip()

    for user in ("mailbundle-webmail", "www-data"):
        refused = as_webmail(f"sh -c 'printf \"Subject: x\\n\\nx\\n\" | /usr/sbin/sendmail {BOB}'", user)
        assert refused.rc != 0 and "is not allowed to submit mail" in refused.stderr, (user, refused.stderr)
    relay = loopback("someone@outside.example", "someone@elsewhere.example", "someone@outside.example", token())
    assert relay.startswith("554") and "Relay access denied" in relay, relay
    ours = loopback(ALICE, BOB, ALICE, token())
    assert ours.startswith("554") and "only taken with a login" in ours, ours
    forged = token()
    assert loopback("someone@outside.example", BOB, ALICE, forged) == "accepted"
    lines = header_lines(probe, BOB, passwords[BOB], forged)
    assert not [value for name, value in lines if name == "dkim-signature"], lines
    results = " ".join(value for name, value in lines if name == "authentication-results")
    assert "dkim=none" in results and "dmarc=" in results and "header.from=example.test" in results, results

    # Positive control: root's own mail, as mail-monitor and the daily report send it.
    own = token()
    sent = mail.run(f"printf 'From: <postmaster@example.test>\\nTo: <{BOB}>\\nSubject: probe {own}\\n"
                    f"Message-ID: <{own}@mx1.example.test>\\n\\nToken {own}\\n'"
                    f" | /usr/sbin/sendmail -f postmaster@example.test {BOB}")
    assert sent.rc == 0, sent.stderr
    lines = header_lines(probe, BOB, passwords[BOB], own)
    signatures = [value for name, value in lines if name == "dkim-signature"]
    assert signatures and "d=example.test" in signatures[0], lines


def test_sieve_redirect_still_leaves_through_the_local_submission(mail, probe, passwords):
    """Positive control of the sendmail restriction: a user's Sieve redirect (Dovecot
    hands it to sendmail) is delivered."""
    tok = token()
    mail.check_output(f"printf 'redirect \"{BOB}\";\\n' > /var/tmp/redirect.sieve && "
                      f"doveadm sieve put -u {ALICE} -a redirect-check < /var/tmp/redirect.sieve")
    try:
        sent = probe("smtp", 25, "--starttls", "--mail-from", "someone@outside.example", "--rcpt", ALICE,
                     "--token", tok)
        assert sent["data"][0] == 250, sent
        assert wait_for(probe, BOB, passwords[BOB], tok)["found"] == 1
    finally:
        mail.check_output(f"doveadm sieve deactivate -u {ALICE} && doveadm sieve delete -u {ALICE} redirect-check")
