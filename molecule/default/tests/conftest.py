"""Hosts of the scenario, reached through Docker, grouped as in the inventory.

The same checks run under Molecule (its inventory: containers named after their hosts)
and against the lab (make test on Debian 13: scripts/check_lab.sh sets
MOLECULE_INVENTORY_FILE to inventory/lab/hosts.yml, whose hosts name their containers
in ansible_host)."""

import os
import pathlib
import shlex
import subprocess
import sys
import time

import pytest
import testinfra.utils.ansible_runner
import yaml

import hostexec
from tokens import token  # noqa: F401 (the tests take it from here)

PROJECT = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", pathlib.Path(__file__).parents[3]))
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)


# Pebble, the lab's CA, makes a new root and forgets its ACME accounts whenever it
# restarts; the certificate served then chains to a root no client can fetch any more.
RESTARTS_THE_CA = {"test_acme_outage_fails_clearly_and_keeps_the_certificate"}
# The check that restarts the mail host runs just before it: every other check sees the
# host as the converge left it (bans, counters, the journal of this boot).
RESTARTS_THE_MAIL_HOST = {"test_a_restart_with_mail_in_the_queue_delivers_it_and_every_timer_runs"}


def pytest_sessionfinish():
    hostexec.close_all()


def pytest_collection_modifyitems(items):
    """The check that restarts the lab CA runs last, whatever the module order, so every
    other check verifies TLS against the root the served certificate was issued under;
    the one that restarts the mail host just before it."""
    host = [item for item in items if item.originalname in RESTARTS_THE_MAIL_HOST]
    last = [item for item in items if item.originalname in RESTARTS_THE_CA]
    items[:] = [item for item in items if item not in host + last] + host + last


def container(name):
    """The Docker container of an inventory host: its ansible_host where the inventory
    sets one (the lab), else its name (Molecule names containers after their hosts)."""
    return RUNNER.get_variables(name).get("ansible_host", name)


def _host(group):
    names = RUNNER.get_hosts(group)
    assert names, f"no host in group {group}"
    return hostexec.get_host(container(names[0]))


@pytest.fixture(scope="session")
def mail():
    return _host("mailservers")


@pytest.fixture(scope="session")
def client():
    return _host("lab_clients")


@pytest.fixture(scope="session")
def ca():
    return _host("lab_acme_ca")


@pytest.fixture(scope="session")
def mail_name():
    return RUNNER.get_hosts("mailservers")[0]


def run_playbook(playbook, *extra, **env_extra):
    """Run one of the project's playbooks from the controller against the mail hosts."""
    env = dict(os.environ, ANSIBLE_ROLES_PATH=f"{PROJECT / 'roles'}:{PROJECT / 'lab/roles'}", **env_extra)
    env.setdefault("ANSIBLE_PIPELINING", "true")
    return subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", str(pathlib.Path(INVENTORY).parent),
         str(PROJECT / playbook), "--limit", "mailservers", *extra],
        capture_output=True, text=True, env=env, check=False, timeout=900,
    )


def run_site(*extra):
    """Run the real site.yml from the controller against the scenario's mail hosts."""
    return run_playbook("site.yml", *extra)


def lab_value(group, topic, key):
    """A value as the lab inventory sets it (inventory/lab/group_vars/<group>/<topic>.yml)."""
    data = yaml.safe_load((PROJECT / "inventory/lab/group_vars" / group / f"{topic}.yml").read_text())
    return data[key]


def role_default(role, key):
    data = yaml.safe_load((PROJECT / "roles" / role / "defaults/main.yml").read_text())
    return data[key]


@pytest.fixture(scope="session")
def passwords():
    return lab_value("lab_clients", "lab_passwords", "lab_passwords")


@pytest.fixture(scope="session")
def attacker():
    return _host("lab_attackers")


def copy_script(group, script, folder=None):
    """Copy a script of this folder (or of folder) to /root on the group's host (not
    /tmp: Debian 13's systemd mounts a tmpfs there inside the container); returns the
    container's name."""
    name = container(RUNNER.get_hosts(group)[0])
    source = pathlib.Path(folder or pathlib.Path(__file__).parent) / script
    subprocess.run(["docker", "cp", str(source), f"{name}:/root/{script}"], check=True)
    return name


def _prober(group, host):
    """Run tests/mailprobe.py on a host of the group; returns its JSON answer as a dict."""
    import json

    for script in ("mailprobe.py", "portprobe.py"):
        copy_script(group, script)

    def run(protocol, port, *args):
        cmd = shlex.join(["python3", "/root/mailprobe.py", protocol, "--port", str(port), *map(str, args)])
        result = host.run(cmd)
        assert result.rc == 0, result.stderr
        return json.loads(result.stdout)

    return run


@pytest.fixture(scope="session")
def probe(client):
    """Mail protocol sessions from the client host."""
    return _prober("lab_clients", client)


@pytest.fixture(scope="session")
def attacker_probe(attacker):
    """Mail protocol sessions from the attacker host."""
    return _prober("lab_attackers", attacker)


def ports(host, address, port_list, timeout=3, source=""):
    """{port: open|refused|timeout} for TCP connections from host (from its address
    source, if given) to address."""
    import json

    result = host.run(f"python3 /root/portprobe.py --timeout {timeout} {'--source ' + source if source else ''} "
                      f"{address} {' '.join(map(str, port_list))}")
    assert result.rc == 0, result.stderr
    return {int(port): state for port, state in json.loads(result.stdout).items()}


def addresses(name):
    """The IPv4 and IPv6 address of an inventory host's container on its network."""
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}"
    out = subprocess.run(["docker", "inspect", "-f", fmt, container(name)], capture_output=True, text=True,
                         check=True)
    ipv4, ipv6 = out.stdout.split()
    return {"ipv4": ipv4, "ipv6": ipv6}


@pytest.fixture(scope="module")
def mx_addresses(mail_name):
    return addresses(mail_name)


@pytest.fixture(scope="module")
def attacker_address():
    return addresses(RUNNER.get_hosts("lab_attackers")[0])


@pytest.fixture
def unban(mail, attacker_address):
    """Lifts any ban of the attacker host after the test."""
    yield
    mail.run(f"fail2ban-client unban {attacker_address['ipv4']} {attacker_address['ipv6']}")


def queue_entries(mail):
    """Every message in the mail host's Postfix queue, as postqueue -j lists it."""
    import json

    return [json.loads(line) for line in mail.check_output("postqueue -j").splitlines() if line.strip()]


def wait_until(check, timeout, step=2):
    """True as soon as check() is, False if it is not within timeout seconds."""
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            return False
        time.sleep(step)
    return True


def wait_for(probe, user, password, tok, port=993, *flags, timeout=60):
    """Poll the mailbox over IMAP until the token's message shows up."""
    deadline = time.time() + timeout
    while True:
        seen = probe("imap", port, "--tls" if port == 993 else "--starttls", *flags,
                     "--user", user, "--password", password, "--token", tok)
        if seen.get("found") or time.time() > deadline:
            return seen
        time.sleep(2)


def fetch(probe, user, password, tok):
    """The token's message as stored, byte for byte, read over IMAP 993."""
    import base64

    seen = wait_for(probe, user, password, tok, 993, "--fetch")
    assert seen["found"] == 1, seen
    return base64.b64decode(seen["raw"][0])


def dns_records(folder):
    """Run dns_records.yml into folder; {domain: (snippet text, its Zone parsed by dnspython)}."""
    import dns.zone

    domains = lab_value("all", "mail", "mail_domains")
    run = run_playbook("playbooks/dns_records.yml", "-e", f"dns_records_dir={folder}")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    found = {path.name.removesuffix(".zone") for path in pathlib.Path(folder).glob("*.zone")}
    assert found == set(domains), found
    texts = {domain: (pathlib.Path(folder) / f"{domain}.zone").read_text() for domain in domains}
    return {domain: (text, dns.zone.from_text(text, origin=domain, relativize=False, check_origin=False))
            for domain, text in texts.items()}


@pytest.fixture(scope="module")
def zones(tmp_path_factory):
    """The zone snippets of dns_records.yml, parsed by dnspython: {domain: Zone}; written
    afresh for each test module."""
    return {domain: zone for domain, (_, zone) in dns_records(tmp_path_factory.mktemp("dns-records")).items()}


def txt(zones, name):
    """The TXT value at a name, strings joined, as dkimpy's DNS function returns it."""
    import dns.rdatatype

    name = name.rstrip(".")
    for domain, zone in zones.items():
        if name == domain or name.endswith("." + domain):
            rdataset = zone.get_rdataset(name + ".", dns.rdatatype.TXT)
            if rdataset:
                return b"".join(next(iter(rdataset)).strings)
    return None
