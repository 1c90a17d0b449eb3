"""The filters that give each host its part in a multi-host site (playbooks/filter_plugins/topology.py)."""

import importlib.util
import pathlib

import pytest

SPEC = importlib.util.spec_from_file_location(
    "topology", pathlib.Path(__file__).resolve().parents[2] / "playbooks/filter_plugins/topology.py")
TOPOLOGY = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(TOPOLOGY)

HOSTVARS = {
    "mx.a.test": {"mail_domains": ["a.test", "A2.test"],
                  "mail_accounts": [{"address": "alice@a.test"}],
                  "mail_aliases": [{"address": "postmaster@a.test", "to": ["alice@a.test"]},
                                   {"address": "@a2.test", "to": ["alice@a.test"]}]},
    "mail.example.net": {"mail_domains": ["b.test"],
                         "mail_accounts": [{"address": "Bob@b.test"}],
                         "mail_aliases": []},
    "mx2.b.test": {},
}


def test_peers_get_verified_tls_by_domain_and_by_their_host_name():
    policy = TOPOLOGY.mail_peer_tls_policy(["mx.a.test", "mail.example.net"], HOSTVARS)
    assert policy == {
        "a.test": "secure match=nexthop:dot-nexthop:mx.a.test",
        "a2.test": "secure match=nexthop:dot-nexthop:mx.a.test",
        "b.test": "secure match=nexthop:dot-nexthop:mail.example.net",
    }


def test_no_peers_no_policy():
    assert TOPOLOGY.mail_peer_tls_policy([], HOSTVARS) == {}


def test_backup_relays_only_existing_recipients_to_each_domains_own_primary():
    relay = TOPOLOGY.mail_backup_relay(["mx.a.test", "mail.example.net"], HOSTVARS)
    assert relay["domains"] == ["a.test", "a2.test", "b.test"]
    # Catch-all kept as @domain; addresses lower-cased, as Postfix looks them up.
    assert relay["recipients"] == ["@a2.test", "alice@a.test", "bob@b.test", "postmaster@a.test"]
    assert relay["transport"] == {"a.test": "relay:[mx.a.test]:25", "a2.test": "relay:[mx.a.test]:25",
                                  "b.test": "relay:[mail.example.net]:25"}
    assert relay["tls_policy"] == {"[mx.a.test]:25": "secure match=mx.a.test",
                                   "[mail.example.net]:25": "secure match=mail.example.net"}


@pytest.mark.parametrize("primaries, message", [
    (["mx9.a.test"], "not a host of the inventory"),
    (["mx2.b.test"], "hosts no mail_domains"),
    (["mx.a.test", "mx.a.test"], "hosted by two primaries"),
])
def test_backup_of_a_wrong_primary_is_a_clear_error(primaries, message):
    with pytest.raises(ValueError, match=message):
        TOPOLOGY.mail_backup_relay(primaries, HOSTVARS)


def test_backups_of_a_primary_are_those_standing_in_for_it():
    hostvars = {"backup1.test": {}, "backup2.test": {"mail_backup_mx_for": ["mail.example.net"]},
                "Backup0.test": {"mail_backup_mx_for": ["mx.a.test", "mail.example.net"]}}
    mailservers = ["mx.a.test", "mail.example.net"]
    assert TOPOLOGY.mail_backups_of(list(hostvars), "mx.a.test", hostvars, mailservers) == \
        ["backup0.test", "backup1.test"]
    assert TOPOLOGY.mail_backups_of(list(hostvars), "mail.example.net", hostvars, mailservers) == \
        ["backup0.test", "backup1.test", "backup2.test"]
    assert TOPOLOGY.mail_backups_of([], "mx.a.test", hostvars, mailservers) == []


def test_peer_senders_are_the_addresses_the_inventory_knows_else_the_names():
    hostvars = {
        "mx.a.test": {"ansible_facts": {"default_ipv4": {"address": "192.0.2.10"},
                                        "default_ipv6": {"address": "2001:db8::10"}}},
        "MX.B.test": {"dns_records_ipv4": "198.51.100.7",
                      "ansible_facts": {"default_ipv4": {"address": "10.0.0.7"}}},
        "mx.c.test": {},
    }
    assert TOPOLOGY.mail_peer_senders(["mx.c.test", "MX.B.test", "mx.a.test"], hostvars) == [
        "198.51.100.7", "192.0.2.10", "2001:db8::10", "mx.c.test"]
    assert TOPOLOGY.mail_peer_senders([], hostvars) == []


def test_a_vault_serves_only_the_mail_hosts_that_name_it():
    hostvars = {
        "mx.a.test": {"backup_vault_host": "Vault.lab.test", "backup_vault_client_key": "ssh-ed25519 AAAA a",
                      "backup_restic_password": "secret-a", "backup_keep_daily": 3},
        "mx.b.test": {"backup_vault_host": "other.lab.test", "backup_restic_password": "secret-b"},
        "mx.c.test": {"backup_restic_password": "secret-c"},
        "mx.d.test": {"backup_vault_host": "vault.lab.test", "backup_restic_password": "secret-d"},
    }
    clients = TOPOLOGY.mail_vault_clients(sorted(hostvars), "vault.lab.test", hostvars)
    assert clients == [
        {"name": "mx.a.test", "public_key": "ssh-ed25519 AAAA a", "keep": {"daily": 3, "weekly": None, "monthly": None}},
        # Its key does not exist yet: the vault role stops on the empty key.
        {"name": "mx.d.test", "public_key": "", "keep": {"daily": None, "weekly": None, "monthly": None}},
    ]
    # The passwords apart, for the one task that writes them (no_log).
    assert TOPOLOGY.mail_vault_passwords(sorted(hostvars), "vault.lab.test", hostvars) == {
        "mx.a.test": "secret-a", "mx.d.test": "secret-d"}
