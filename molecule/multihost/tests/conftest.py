"""Hosts of the multi-host scenario, reached through Docker, and the helpers its tests share."""

import base64
import email
import email.policy
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time

import pytest

# The default scenario's helpers: the probe, and hosts reached through one docker exec.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "default/tests"))
import hostexec  # noqa: E402
from tokens import token  # noqa: E402,F401 (the tests take it from here)

PROJECT = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", pathlib.Path(__file__).parents[3]))
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
PROBE = PROJECT / "molecule/default/tests/mailprobe.py"
PASSWORDS = {"alice@a.test": "lab-alice-pw", "bob@b.test": "lab-bob-pw"}


def host(name):
    return hostexec.get_host(name)


def pytest_sessionfinish():
    hostexec.close_all()


@pytest.fixture(scope="session")
def client():
    name = "client.lab.test"
    subprocess.run(["docker", "cp", str(PROBE), f"{name}:/root/mailprobe.py"], check=True)
    return host(name)


@pytest.fixture(scope="session")
def probe(client):
    """mailprobe.py sessions from the client host; returns its JSON answer."""

    def run(protocol, server, port, *args):
        cmd = shlex.join(["python3", "/root/mailprobe.py", protocol, "--host", server, "--port", str(port),
                          *map(str, args)])
        result = client.run(cmd)
        assert result.rc == 0, result.stderr
        return json.loads(result.stdout)

    return run


def send_as(probe, server, user, rcpt, tok):
    """Submit a message on port 587 with STARTTLS and AUTH, as a mail program does."""
    out = probe("smtp", server, 587, "--starttls", "--user", user, "--password", PASSWORDS[user],
                "--mail-from", user, "--rcpt", rcpt, "--token", tok)
    assert out.get("data", [0])[0] == 250, out
    return out


def wait_for_message(probe, server, user, tok, timeout=120, folder="INBOX"):
    """The message with this token in the user's folder over IMAPS, parsed; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        out = probe("imap", server, 993, "--tls", "--user", user, "--password", PASSWORDS[user],
                    "--token", tok, "--folder", folder, "--fetch")
        if out.get("raw"):
            return email.message_from_bytes(base64.b64decode(out["raw"][0]), policy=email.policy.default)
        assert time.monotonic() < deadline, f"{tok} did not arrive for {user} on {server}: {out}"
        time.sleep(3)


def journal(server, unit, since):
    """A unit's journal on a host since a time (as `date +%s` gave it there)."""
    return host(server).check_output(f"journalctl -q -o cat -u {unit} --since @{since}")


def now(server):
    return host(server).check_output("date +%s")


def run_playbook(playbook, *inventories, limit=None, tags=None, output=None):
    """Run a project playbook with the scenario's inventory (and more inventory files),
    on the hosts of limit and with the tags of tags if given.

    Returns {host: [names of the tasks that changed it]}, every host of the run listed.
    A task delegated to the controller (a file written there) counts for the host it ran
    for, as Ansible's own recap counts it. A list given as output gets the run's whole
    output appended.
    """
    env = dict(os.environ, ANSIBLE_ROLES_PATH=f"{PROJECT / 'roles'}:{PROJECT / 'lab/roles'}", ANSIBLE_PIPELINING="true",
               ANSIBLE_STRATEGY_PLUGINS=str(PROJECT / "plugins/strategy"), ANSIBLE_STRATEGY="mitogen_linear",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    command = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", str(pathlib.Path(INVENTORY).parent)]
    for inventory in inventories:
        command += ["-i", str(inventory)]
    if limit:
        command += ["--limit", limit]
    if tags:
        command += ["--tags", tags]
    result = subprocess.run([*command, str(PROJECT / playbook)], capture_output=True, text=True, env=env,
                            check=False, timeout=1800)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    if output is not None:
        output.append(result.stdout + result.stderr)
    # The JSON document starts on a line of its own; the task timer (profile_tasks)
    # prints around it.
    start = 0 if result.stdout.startswith("{\n") else result.stdout.index("\n{\n") + 1
    document = json.JSONDecoder().raw_decode(result.stdout[start:])[0]
    changed = {name: [] for name in document["stats"]}
    for play in document["plays"]:
        for task in play["tasks"]:
            for name, outcome in task["hosts"].items():
                if outcome.get("changed"):
                    changed[name].append(task["task"]["name"])
    for name, stats in document["stats"].items():
        assert stats["failures"] == 0 and stats["unreachable"] == 0, (name, stats)
    return changed
