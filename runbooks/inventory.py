"""The Ansible inventory as a pyinfra inventory file, for pyinfra's own command line:

    MAILOPS_INVENTORY=inventory/<site> .venv/bin/pyinfra runbooks/inventory.py \\
        --limit mailservers exec -- postqueue -p

Every Ansible group becomes a pyinfra group of the same name (hosts reached as
runbooks/fleet.py maps them); `all` is pyinfra's own."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from runbooks.fleet import ansible_inventory, group_hosts, pyinfra_target  # noqa: E402


def groups(path):
    """{group: [(pyinfra name, data)]} for every Ansible group that has hosts."""
    listed = ansible_inventory(path)
    hostvars = listed.get("_meta", {}).get("hostvars", {})
    found = {}
    for group in listed:
        if group in ("_meta", "all", "ungrouped") or not group.isidentifier():
            continue
        hosts = []
        for name in group_hosts(listed, group):
            target, data = pyinfra_target(name, hostvars.get(name, {}))
            hosts.append((target, dict(data, mail_name=name)))
        if hosts:
            found[group] = hosts
    return found


globals().update(groups(os.environ.get("MAILOPS_INVENTORY", "inventory/lab")))
