"""The Ansible inventory as pyinfra hosts, and commands run on them in parallel.

Hosts, groups and how to reach them are read from `ansible-inventory --list`, so they
are written once, in the Ansible inventory."""

import json
import shlex
import subprocess
from dataclasses import dataclass

from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all

DOCKER_CONNECTIONS = {"docker", "community.docker.docker"}


class RunbookError(Exception):
    """Bad input or an unreachable host: printed as the reason, exit code 2."""


def ansible_inventory(path):
    """`ansible-inventory -i PATH --list`, parsed."""
    try:
        done = subprocess.run(["ansible-inventory", "-i", path, "--list"],
                              capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise RunbookError("ansible-inventory not found: run from the project's virtualenv") from err
    if done.returncode != 0:
        hint = " (an encrypted vault: set ANSIBLE_VAULT_PASSWORD_FILE)" if "vault" in done.stderr else ""
        raise RunbookError(f"ansible-inventory -i {path} failed: {done.stderr.strip()}{hint}")
    listed = json.loads(done.stdout)
    if not group_hosts(listed, "all"):
        raise RunbookError(f"inventory {path} has no hosts (wrong site?)")
    return listed


def group_hosts(listed, group):
    """Every host of the group, children included, in inventory order."""
    seen, names = set(), []

    def walk(name):
        if name in seen:
            return
        seen.add(name)
        entry = listed.get(name, {})
        for host in entry.get("hosts", []):
            if host not in names:
                names.append(host)
        for child in entry.get("children", []):
            walk(child)

    walk(group)
    return names


def pyinfra_target(name, hostvars):
    """(pyinfra host name, connector data) for an Ansible host and its variables."""
    connection = hostvars.get("ansible_connection", "ssh")
    address = hostvars.get("ansible_host", name)
    if connection in DOCKER_CONNECTIONS:
        return f"@docker/{address}", {}
    if connection == "local":
        return "@local", {}
    if connection not in {"ssh", "smart", "paramiko", "ansible.builtin.ssh"}:
        raise RunbookError(f"{name}: ansible_connection {connection} is not supported by the runbooks")
    data = {"ssh_hostname": address}
    user = hostvars.get("ansible_user")
    if user:
        data["ssh_user"] = user
    if hostvars.get("ansible_port"):
        data["ssh_port"] = int(hostvars["ansible_port"])
    if hostvars.get("ansible_ssh_private_key_file"):
        data["ssh_key"] = hostvars["ansible_ssh_private_key_file"]
    # The playbooks run with become: the runbooks need root on the hosts too.
    if user not in (None, "root"):
        data["_sudo"] = True
    return name, data


@dataclass
class Target:
    """A mail host: its Ansible name, its variables and its connected pyinfra host."""

    name: str
    hostvars: dict
    host: object = None
    sudo: bool = False

    def run(self, command, stdin=None):
        """(ok, stdout lines, stderr text) of a shell command, as root."""
        if stdin is not None:
            command = f"printf '%s' {shlex.quote(stdin)} | {command}"
        extra = {"_sudo": True} if self.sudo else {}
        ok, output = self.host.run_shell_command(command, print_output=False, print_input=False, **extra)
        return ok, output.stdout_lines, output.stderr


class Fleet:
    """The hosts of some groups of an inventory, connected with pyinfra."""

    def __init__(self, inventory_path, groups, limit=None):
        listed = ansible_inventory(inventory_path)
        hostvars = listed.get("_meta", {}).get("hostvars", {})
        names = [host for group in groups for host in group_hosts(listed, group)]
        names = list(dict.fromkeys(names))
        if not names:
            raise RunbookError(f"no host of {', '.join(groups)} in {inventory_path}")
        if limit:
            unknown = sorted(set(limit) - set(names))
            if unknown:
                raise RunbookError(f"unknown host {', '.join(unknown)}; hosts here: {', '.join(names)}")
            names = [name for name in names if name in limit]
        self.targets = [Target(name, hostvars.get(name, {})) for name in names]
        pyinfra_names = []
        for target in self.targets:
            pyinfra_name, data = pyinfra_target(target.name, target.hostvars)
            target.sudo = data.pop("_sudo", False)
            pyinfra_names.append((pyinfra_name, dict(data, mail_name=target.name)))
        self.state = State(Inventory((pyinfra_names, {})), Config())

    def __enter__(self):
        connect_all(self.state)
        by_name = {host.data.get("mail_name"): host for host in self.state.inventory.get_active_hosts()}
        missing = [target.name for target in self.targets if target.name not in by_name]
        if missing:
            raise RunbookError(f"could not connect to {', '.join(missing)}")
        for target in self.targets:
            target.host = by_name[target.name]
        return self

    def __exit__(self, *exc):
        disconnect_all(self.state)

    def each(self, function):
        """{target name: function(target)} with every host in parallel. A host that fails
        stops the runbook with its name and reason (after all hosts have answered)."""

        def guarded(target):
            try:
                return True, function(target)
            except Exception as err:  # noqa: BLE001 - reported below, per host
                return False, err if isinstance(err, RunbookError) else RunbookError(f"{target.name}: {err}")

        jobs = {target.name: self.state.pool.spawn(guarded, target) for target in self.targets}
        results = {name: job.get() for name, job in jobs.items()}
        failed = [result for ok, result in results.values() if not ok]
        if failed:
            raise RunbookError("; ".join(str(err) for err in failed))
        return {name: result for name, (_, result) in results.items()}
