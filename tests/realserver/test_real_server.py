"""From the lab to a real server, as the README writes it.

A fresh Debian host (the lab's release) that a provider hands over: OpenSSH, sudo, and a
non-root `admin` whose sudo asks for a password. Ansible reaches it over SSH with the
host key checked (the key is taken from the host itself, as an admin reads it from the
provider's console), through Mitogen and pipelining as ansible.cfg sets them, with the
sudo password from an encrypted vault. Its inventory is `cp -r inventory/example
inventory/production` in a copy of this tree, then edits of only the values the README
tells a user to set. Every command of the README's section "From the lab to a real
server" is read from the README and run as written (`<site>` read as `production`).

Runs while `make lab` is up (scripts/check_lab.sh): the lab's resolver answers the host,
the lab's ACME CA issues its certificate (`certbot_acme_server`, as for a staging CA),
and the lab's client checks it over the wire. The tests run in file order, each on what
the ones before left.
"""

import json
import os
import pathlib
import re
import secrets
import shutil
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROBES = ROOT / "molecule" / "default" / "tests"
LOGS = ROOT / ".artifacts" / "logs" / "realserver"
NAME = "mail.example.net"
DOMAIN = "example.net"
CONTAINER = "mailbundle-lab-realserver"
CLIENT = "mailbundle-lab-client"
SECTION = "## From the lab to a real server"
# Where a command of the README's section starts; everything else quoted there is a value.
COMMAND = re.compile(r"^(cp -r |make lint$|\.venv/bin/|ansible-playbook |ansible-vault (?:encrypt|edit) )")
# The listeners the firewall opens to everyone, and how each starts TLS.
LISTENERS = [(25, "smtp"), (587, "smtp"), (465, None), (143, "imap"), (993, None),
             (110, "pop3"), (995, None), (4190, "sieve")]
RAN = set()

sys.path.insert(0, str(PROBES))
from tokens import token  # noqa: E402


def docker(*args, check=True, **kwargs):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, **kwargs)


def on_host(cmd, check=True):
    """A command on the server as root, outside the SSH path (the provider's console)."""
    return docker("exec", CONTAINER, "bash", "-c", cmd, check=check)


def readme_commands():
    """Every command quoted in the README's section, in the order it gives them."""
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    section = text[start:text.index("\n## ", start + len(SECTION))]
    quoted = re.findall(r"```sh\n(.*?)```", section, re.S)
    quoted = [line for block in quoted for line in block.splitlines()]
    quoted += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", section, flags=re.S))
    return [cmd for cmd in dict.fromkeys(quoted) if COMMAND.match(cmd)]


def recap(output):
    """The PLAY RECAP counters of the server: {'ok': n, 'changed': n, 'failed': n, ...}."""
    lines = [line for line in output.splitlines() if line.startswith(NAME) and "failed=" in line]
    assert lines, f"no recap for {NAME}:\n{output[-3000:]}"
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", lines[-1])}


class Site:
    """The copy of this tree the tests work in, as a user's checkout."""

    def __init__(self, work, home, vault_password_file):
        self.work = work
        self.env = {
            "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            # What --vault-password-file would give, for every command as written.
            "ANSIBLE_VAULT_PASSWORD_FILE": str(vault_password_file),
            "ANSIBLE_FORCE_COLOR": "0",
            # ssh reads ~/.ssh from the passwd entry, not HOME: the user's SSH settings
            # (key, known hosts) come from the config file of this test's home instead.
            "ANSIBLE_SSH_ARGS": f"-F {home / '.ssh' / 'config'}",
        }
        self.inventory = work / "inventory" / "production"
        # The vault's values as written before it is encrypted: no output may show one.
        self.secrets = []

    def run(self, cmd, log, stdin=None, timeout=1800):
        """A shell command in the copy; its output is kept in .artifacts/logs/realserver/."""
        started = time.time()
        # The README's commands, run as a user types them: through a shell.
        result = subprocess.run(cmd, shell=True, cwd=self.work, env=self.env, input=stdin,  # noqa: S602
                                text=True, capture_output=True, timeout=timeout, check=False)
        LOGS.mkdir(parents=True, exist_ok=True)
        (LOGS / f"{log}.log").write_text(f"$ {cmd}\n{result.stdout}\n{result.stderr}\n")
        print(f"{log}: `{cmd}` rc {result.returncode} in {time.time() - started:.0f}s")
        return result

    def readme(self, pattern, log, **kwargs):
        """Run the README's command that matches pattern, as written."""
        found = [cmd for cmd in readme_commands() if re.search(pattern, cmd)]
        assert len(found) == 1, f"README, '{SECTION[3:]}': one command matching {pattern!r}, found {found}"
        RAN.add(found[0])
        return self.run(found[0].replace("<site>", "production"), log, **kwargs)

    def edit(self, relative, old, new):
        """Replace text the example ships with the site's value; the text must be there."""
        path = self.inventory / relative
        text = path.read_text()
        assert old in text, f"inventory/example/{relative} no longer holds {old!r}"
        path.write_text(text.replace(old, new))


def address(container):
    out = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container).stdout
    return out.strip()


@pytest.fixture(scope="module")
def server():
    """A fresh host as a provider hands it over: sshd, sudo, and an admin with a password."""
    image = f"debian-systemd:{os.environ.get('LAB_DISTRO', 'trixie')}"
    docker("rm", "-f", CONTAINER, check=False)
    docker("run", "-d", "--name", CONTAINER, "--hostname", NAME.split(".")[0],
           "--label", "org.mailbundle.lab=true", "--network", "mailbundle-lab", "--network-alias", NAME,
           # The provider's resolver: the lab's (test sender domains, nothing outside).
           "--dns", address("mailbundle-lab-ns"),
           "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--security-opt", "seccomp=unconfined",
           "--security-opt", "apparmor=unconfined", "--cgroupns", "host",
           "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock", image)
    try:
        # systemd's bus comes up a moment after the container starts.
        for _ in range(30):
            boot = docker("exec", CONTAINER, "systemctl", "is-system-running", "--wait", check=False).stdout.strip()
            if boot:
                break
            time.sleep(1)
        assert boot in ("running", "degraded"), boot
        sudo_password = secrets.token_urlsafe(18)
        on_host("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -qq -y"
                " --no-install-recommends openssh-server sudo >/dev/null"
                " && useradd --create-home --shell /bin/bash --groups sudo admin"
                f" && echo 'admin:{sudo_password}' | chpasswd && systemctl is-active ssh")
        yield {"address": address(CONTAINER), "sudo_password": sudo_password}
    finally:
        docker("rm", "-f", CONTAINER, check=False)


@pytest.fixture(scope="module")
def site(server, tmp_path_factory):
    """The user's side: a checkout, an SSH key the admin accepts, the host key known."""
    work = tmp_path_factory.mktemp("checkout")
    shutil.copytree(ROOT, work, dirs_exist_ok=True, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", ".git", ".artifacts", "__pycache__", ".lab",
                                                  "production"))
    (work / ".venv").symlink_to(ROOT / ".venv")
    home = tmp_path_factory.mktemp("home")
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / "id_ed25519")], check=True)
    key = (ssh / "id_ed25519.pub").read_text().strip()
    on_host(f"install -d -m 700 -o admin -g admin ~admin/.ssh && echo '{key}' > ~admin/.ssh/authorized_keys"
            " && chown admin:admin ~admin/.ssh/authorized_keys && chmod 600 ~admin/.ssh/authorized_keys")
    host_key = on_host("cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
    (ssh / "known_hosts").write_text(f"{server['address']} {' '.join(host_key)}\n")
    (ssh / "config").write_text(f"Host *\n  IdentityFile {ssh / 'id_ed25519'}\n  IdentitiesOnly yes\n"
                                f"  UserKnownHostsFile {ssh / 'known_hosts'}\n  StrictHostKeyChecking yes\n")
    vault_password_file = home / "vault-password"
    vault_password_file.write_text(secrets.token_urlsafe(24) + "\n")
    vault_password_file.chmod(0o600)
    return Site(work, home, vault_password_file)


def ssh(site, server, *args, **kwargs):
    return subprocess.run(["ssh", "-F", site.env["ANSIBLE_SSH_ARGS"].split()[1], "-o", "BatchMode=yes",
                           f"admin@{server['address']}", *args],
                          env=site.env, capture_output=True, text=True, timeout=60, check=False, **kwargs)


@pytest.fixture(scope="module")
def mailbox_password():
    return secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
def admin_address(site, server):
    """The address the server sees SSH come from (SSH_CLIENT), as the firewall's guard does."""
    out = ssh(site, server, "echo $SSH_CLIENT")
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[0]


@pytest.fixture(scope="module")
def client():
    for script in ("mailprobe.py", "portprobe.py"):
        docker("cp", str(PROBES / script), f"{CLIENT}:/root/{script}")
    root = docker("exec", CLIENT, "curl", "-fsS", "https://ca.example.test:15000/roots/0").stdout
    assert "BEGIN CERTIFICATE" in root
    docker("exec", "-i", CLIENT, "tee", "/root/acme-root.pem", input=root)

    def probe(protocol, port, *args):
        out = docker("exec", CLIENT, "python3", "/root/mailprobe.py", protocol, "--host", NAME,
                     "--port", str(port), *args, timeout=120)
        return json.loads(out.stdout)

    return probe


# --- The inventory, made the README's way ----------------------------------------------

def test_the_inventory_is_the_example_with_only_the_readme_values_set(site, server, admin_address,
                                                                       mailbox_password):
    assert site.readme(r"^cp -r inventory/example ", "copy").returncode == 0
    shipped = {p.relative_to(site.inventory) for p in site.inventory.rglob("*") if p.is_file()}
    # Step 2: the host's name and where SSH reaches it; sudo's password from the vault.
    site.edit("hosts.yml", "mail.example.com:", f"{NAME}:")
    site.edit("hosts.yml", "203.0.113.25", server["address"])
    site.edit("hosts.yml", '# ansible_become_password: "{{ vault_become_password }}"',
              'ansible_become_password: "{{ vault_become_password }}"')
    (site.inventory / "host_vars" / "mail.example.com").rename(site.inventory / "host_vars" / NAME)
    # The site's domain, its mailbox and postmaster.
    for topic in ("group_vars/all/mail.yml", "group_vars/mailservers/tls.yml"):
        site.edit(topic, "example.com", DOMAIN)
    # Step 3: a staging CA first (the lab's; its root is not in the system's store).
    ca_root = (ROOT / "inventory" / "lab" / ".lab" / "acme-ca.pem").read_text()
    site.edit("group_vars/mailservers/tls.yml",
              "# certbot_acme_server: https://acme-staging-v02.api.letsencrypt.org/directory",
              "certbot_acme_server: https://ca.example.test:14000/dir\ncertbot_acme_ca_certificates:\n  - |\n"
              + "".join(f"    {line}\n" for line in ca_root.strip().splitlines()))
    # Step 4: the backups' place (here on the host: the lab has no backup host) and alerts.
    site.edit("group_vars/mailservers/operations.yml", "sftp:backup@backup.example.com:/srv/restic/mail",
              "/var/backups/restic-mail")
    site.edit("group_vars/mailservers/operations.yml", "# monitoring_webhook_url: https://hooks.example.net/services/XXXX",
              "monitoring_webhook_url: http://client.example.test:8080/alerts")
    # Step 5: SSH only from where the admin is; the office never banned.
    site.edit("group_vars/mailservers/security.yml", "  - 198.51.100.0/24\n  - 2001:db8:100::/48",
              f"  - {admin_address}/32")
    site.edit("group_vars/mailservers/security.yml", "fail2ban_allowlist:\n  - 198.51.100.0/24",
              f"fail2ban_allowlist:\n  - {address(CLIENT)}/32")
    # The secrets, then the vault encrypted as the example's vault.yml says.
    hashed = site.run(".venv/bin/python scripts/mail-password-hash", "hash-alice", stdin=mailbox_password + "\n")
    assert hashed.returncode == 0, hashed.stderr
    vault = site.inventory / "group_vars" / "all" / "vault.yml"
    encrypt = re.search(r"^#\s+(ansible-vault encrypt \S+)$", vault.read_text(), re.M)
    assert encrypt, "inventory/example/group_vars/all/vault.yml no longer says how to encrypt it"
    site.secrets = [hashed.stdout.strip(), secrets.token_urlsafe(32), server["sudo_password"]]
    vault.write_text(vault.read_text() + "\n".join([
        f"vault_mail_hash_alice: {json.dumps(hashed.stdout)}",
        f"vault_backup_restic_password: {site.secrets[1]}",
        f"vault_become_password: {site.secrets[2]}", ""]))
    assert site.run(encrypt.group(1), "encrypt-vault").returncode == 0
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")
    # No file added or removed: the copy is the example, edited.
    now = {p.relative_to(site.inventory) for p in site.inventory.rglob("*") if p.is_file()}
    renamed = {pathlib.Path("host_vars/mail.example.com/common.yml"): pathlib.Path(f"host_vars/{NAME}/common.yml")}
    assert now == {renamed.get(p, p) for p in shipped}


def test_make_lint_passes_on_the_copy(site):
    out = site.readme(r"^make lint$", "lint")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def test_sudo_asks_the_admin_for_a_password(site, server):
    """The vault's password is what lets the runs become root, not a NOPASSWD rule."""
    out = ssh(site, server, "sudo -n true")
    assert out.returncode != 0 and "password" in out.stderr, out


def test_the_dry_run_on_the_fresh_host_fails_nothing_shows_no_secret_and_installs_nothing(site):
    # make test's only fresh-host dry run on the lab's release (Debian 13): the default
    # scenario's prepare.yml makes the same assertions on Debian 12's fresh host.
    packages = "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n'"
    before = on_host(packages).stdout
    out = site.readme(r"site\.yml --check --diff$", "dry-run")
    counts = recap(out.stdout)
    print(next(line for line in out.stdout.splitlines() if line.startswith(NAME) and "failed=" in line))
    assert out.returncode == 0 and counts["failed"] == 0 and counts["unreachable"] == 0, out.stdout[-4000:]
    # The roles that need a package not yet installed say so, Postfix's first.
    assert re.search(r"Dry run. not all of postfix, .* are installed yet", out.stdout), out.stdout[-4000:]
    assert len(site.secrets) == 3 and all(site.secrets)
    shown = [number for number, secret in enumerate(site.secrets) if secret in out.stdout + out.stderr]
    assert not shown, f"the dry run showed the vault's values number {shown}"
    assert on_host(packages).stdout == before, "the dry run changed the host's packages"


def test_a_run_that_would_lock_the_admin_out_stops_before_changing_anything(site):
    cmd = ".venv/bin/ansible-playbook -i inventory/production site.yml -e '{\"firewall_ssh_sources\": [\"192.0.2.0/24\"]}'"
    out = site.run(cmd, "lockout")
    assert out.returncode != 0
    assert "This run connects from" in out.stdout, out.stdout[-3000:]
    assert recap(out.stdout)["changed"] == 0, out.stdout[-3000:]
    for package in ("nftables", "postfix"):
        status = on_host(f"dpkg-query -W -f '${{Status}}' {package}", check=False).stdout
        assert status != "install ok installed", f"{package} installed by a run that should have stopped"


def test_the_run_deploys_over_ssh_with_sudo(site):
    out = site.readme(r"site\.yml$", "run")
    counts = recap(out.stdout)
    assert out.returncode == 0 and counts["failed"] == 0, out.stdout[-6000:]
    assert counts["changed"] > 0


def test_a_second_run_changes_nothing(site):
    out = site.run(".venv/bin/ansible-playbook -i inventory/production site.yml", "rerun")
    counts = recap(out.stdout)
    changed = re.findall(r"^changed: \[.*$", out.stdout, re.M)
    assert out.returncode == 0 and counts["changed"] == 0, "\n".join(changed) or out.stdout[-4000:]


def test_dns_records_prints_what_to_publish(site):
    out = site.readme(r"^\.venv/bin/ansible-playbook -i inventory/production playbooks/dns_records\.yml$", "dns-records")
    assert out.returncode == 0, out.stdout[-3000:]
    for record in (f"$ORIGIN {DOMAIN}.", f"@ IN MX 10 {NAME}.", f"{NAME}. IN A ", "@ IN TXT \\\"v=spf1 ",
                   "mail2026._domainkey IN TXT", "_dmarc IN TXT"):
        assert record in out.stdout, f"{record} missing from dns_records.yml's output:\n{out.stdout[-3000:]}"
    # The DKIM record holds the public half of the key the host signs with.
    public = on_host(f"openssl pkey -pubout -in /etc/opendkim/keys/{DOMAIN}/mail2026.private").stdout
    public = "".join(line for line in public.splitlines() if not line.startswith("-----"))
    assert public and public in re.sub(r"[\\\"\s]", "", out.stdout)


# --- Over the wire, from the lab's client -----------------------------------------------

def test_every_mail_port_answers_and_ssh_is_closed_to_others(client):
    out = docker("exec", CLIENT, "python3", "/root/portprobe.py", address(CONTAINER),
                 *[str(port) for port, _ in LISTENERS], "22").stdout
    states = {int(port): state for port, state in json.loads(out).items()}
    assert all(states[port] == "open" for port, _ in LISTENERS), states
    assert states[22] != "open", states


@pytest.mark.parametrize("port, starttls", LISTENERS, ids=[str(p) for p, _ in LISTENERS])
def test_the_acme_certificate_and_only_tls_1_2_and_1_3(client, port, starttls):
    def s_client(*args):
        start = f"-starttls {starttls}" if starttls else ""
        return docker("exec", CLIENT, "bash", "-c",
                      f"echo | timeout 20 openssl s_client -connect {NAME}:{port} -servername {NAME} {start}"
                      f" {' '.join(args)} 2>&1", check=False).stdout

    out = s_client("-CAfile /root/acme-root.pem -verify_return_error", f"-verify_hostname {NAME}")
    assert "Verify return code: 0 (ok)" in out, out[-1500:]
    for version, accepted in (("tls1_3", True), ("tls1_2", True), ("tls1_1", False)):
        out = s_client(f"-{version}", "-cipher 'DEFAULT:@SECLEVEL=0'" if not accepted else "")
        done = "Cipher is (NONE)" not in out and ("New, TLSv1" in out or "Protocol  : TLSv1" in out)
        assert done == accepted, f"{version} on {port}:\n{out[-1500:]}"


def wait_for(client, password, tok, port=993, timeout=90):
    mode = "--tls" if port in (993, 995) else "--starttls"
    protocol = "pop3" if port in (110, 995) else "imap"
    deadline = time.time() + timeout
    while True:
        seen = client(protocol, port, mode, "--user", f"alice@{DOMAIN}", f"--password={password}", "--token", tok)
        if seen.get("found") or time.time() > deadline:
            return seen
        time.sleep(2)


def test_mail_from_outside_on_25_is_delivered_and_read_over_imap_and_pop3(client, mailbox_password):
    tok = token()
    sent = client("smtp", 25, "--starttls", "--mail-from", "sender@spf-pass.test", "--rcpt", f"alice@{DOMAIN}",
                  "--token", tok)
    assert sent["data"][0] == 250, sent
    assert wait_for(client, mailbox_password, tok)["found"] == 1
    assert wait_for(client, mailbox_password, tok, port=995)["found"] == 1


@pytest.mark.parametrize("port, mode", [(587, "--starttls"), (465, "--tls")], ids=["587", "465"])
def test_a_logged_in_user_sends_on_submission(client, mailbox_password, port, mode):
    tok = token()
    sent = client("smtp", port, mode, "--user", f"alice@{DOMAIN}", f"--password={mailbox_password}",
                  "--mail-from", f"alice@{DOMAIN}", "--rcpt", f"alice@{DOMAIN}", "--token", tok)
    assert sent.get("auth", [0])[0] == 235 and sent["data"][0] == 250, sent
    assert wait_for(client, mailbox_password, tok, port=143)["found"] == 1


def test_relaying_for_outsiders_and_unauthenticated_submission_are_refused(client):
    relay = client("smtp", 25, "--starttls", "--mail-from", "sender@spf-pass.test", "--rcpt", "someone@elsewhere.test",
                   "--no-data")
    assert relay["rcpt"][0][0] in (454, 554), relay
    anonymous = client("smtp", 587, "--starttls", "--mail-from", "sender@spf-pass.test",
                       "--rcpt", "someone@elsewhere.test", "--no-data")
    refused = anonymous.get("mail", [0])[0] >= 500 or all(code >= 500 for code, _ in anonymous.get("rcpt", []))
    assert refused, anonymous


# --- SSH hardening over real SSH ----------------------------------------------------------

def test_ssh_hardening_keeps_the_admins_session_and_new_logins(site, server):
    before = ssh(site, server, "-o", "PubkeyAuthentication=no", "true")
    assert "password" in before.stderr, before.stderr
    session = subprocess.Popen(["ssh", "-F", site.env["ANSIBLE_SSH_ARGS"].split()[1], "-o", "BatchMode=yes",
                                f"admin@{server['address']}", "cat"], env=site.env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        session.stdin.write("before\n")
        session.stdin.flush()
        assert session.stdout.readline() == "before\n"
        out = site.run(".venv/bin/ansible-playbook -i inventory/production site.yml --tags ssh"
                       " -e ssh_hardening_enabled=true", "ssh-hardening")
        assert out.returncode == 0 and recap(out.stdout)["changed"] > 0, out.stdout[-4000:]
        session.stdin.write("after\n")
        session.stdin.flush()
        assert session.stdout.readline() == "after\n", "the admin's open session ended"
    finally:
        session.kill()
    assert ssh(site, server, "true").returncode == 0, "a new login with the admin's key failed"
    after = ssh(site, server, "-o", "PubkeyAuthentication=no", "true")
    assert after.returncode != 0 and "password" not in after.stderr.split("Permission denied")[-1], after.stderr


# --- The README's other commands: add a user, run one part, the records again -----------

def test_adding_a_user_as_the_readme_says(site, client, mailbox_password):
    bob_password = secrets.token_urlsafe(16)
    out = site.readme(r"mail-password-hash \| .*encrypt_string", "hash-bob", stdin=bob_password + "\n")
    assert out.returncode == 0 and out.stdout.startswith("vault_mail_hash_bob: !vault"), out.stderr
    (site.inventory / "group_vars" / "all" / "vault_users.yml").write_text(out.stdout + "\n")
    entry = re.search(r"`(\{address: bob@example\.com, [^`]*\})`", (ROOT / "README.md").read_text())
    assert entry, "README: the mail_accounts entry of 'Add a user' is gone"
    site.edit("group_vars/all/mail.yml", "mail_aliases:",
              f"  - {entry.group(1).replace('example.com', DOMAIN)}\n\nmail_aliases:")
    run = site.run(".venv/bin/ansible-playbook -i inventory/production site.yml", "add-user")
    assert run.returncode == 0 and recap(run.stdout)["failed"] == 0, run.stdout[-4000:]
    tok = token()
    sent = client("smtp", 587, "--starttls", "--user", f"alice@{DOMAIN}", f"--password={mailbox_password}",
                  "--mail-from", f"alice@{DOMAIN}", "--rcpt", f"bob@{DOMAIN}", "--token", tok)
    assert sent["data"][0] == 250, sent
    deadline = time.time() + 90
    while True:
        seen = client("imap", 993, "--tls", "--user", f"bob@{DOMAIN}", f"--password={bob_password}", "--token", tok)
        if seen.get("found") or time.time() > deadline:
            break
        time.sleep(2)
    assert seen.get("found") == 1, seen


def test_running_one_part_changes_nothing_on_a_deployed_host(site):
    out = site.readme(r"site\.yml --tags postfix$", "one-part")
    assert out.returncode == 0 and recap(out.stdout)["changed"] == 0, out.stdout[-4000:]


def test_the_records_after_adding_a_domain(site):
    out = site.readme(r"^ansible-playbook -i inventory/<site> playbooks/dns_records\.yml$", "dns-records-again")
    assert out.returncode == 0 and "_dmarc IN TXT" in out.stdout, out.stdout[-3000:]


def test_every_command_of_the_section_ran():
    assert set(readme_commands()) - RAN == set(), "README commands no test ran"
