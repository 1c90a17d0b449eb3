"""A malformed inventory value stops the run at validation, naming the value.

The playbook runs in check mode against this machine (local connection): nothing can
change here, and the assertion is that the run fails at the validation step.
"""

import atexit
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks/common.yml"

BAD_VALUES = [
    ("common_fqdn", "mail_server", "is not a fully qualified host name"),
    ("common_fqdn", "mailhost", "is not a fully qualified host name"),
    ("common_timezone", "Europe/Berlin;reboot", "is not a tz database name"),
    ("common_timezone", "Mars/Olympus_Mons", "is not in the tz database"),
    ("common_locale", "en_US.ISO-8859-1", "is not a UTF-8 locale name"),
    ("common_apt_mirror", "ftp://example.org/debian", "is not an http:// or https:// URL"),
    ("common_journal_max_use", "lots", "must be a size"),
    ("common_unattended_upgrades_reboot_time", "25:00", "is not a time of day"),
    ("common_apt_sources_managed", "maybe", "common_apt_sources_managed"),
]


# Facts of this machine, gathered by the first run of each pytest worker and read from
# there by the others: gathering took about a second of CPU in each of some sixty runs.
# No play here caches facts of its own (set_fact cacheable), so nothing else carries over.
FACT_CACHE = tempfile.mkdtemp(prefix="mailbundle-facts-")
atexit.register(shutil.rmtree, FACT_CACHE, ignore_errors=True)

LOCAL = f"          ansible_connection: local\n          ansible_python_interpreter: {sys.executable}\n"


def _run(tmp_path, name, value, playbook=PLAYBOOK, inventory_text=None, extra=()):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(inventory_text or "all:\n  children:\n    mailservers:\n      hosts:\n        mx1.example.test:\n" + LOCAL)
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
        ANSIBLE_BECOME="false",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        # Ansible's own strategy: these short check-mode runs on this machine took 143 s
        # with it against 181 s with Mitogen, whose start-up costs more than it saves.
        ANSIBLE_STRATEGY="linear",
        ANSIBLE_GATHERING="smart",
        ANSIBLE_CACHE_PLUGIN="jsonfile",
        ANSIBLE_CACHE_PLUGIN_CONNECTION=FACT_CACHE,
        ANSIBLE_CACHE_PLUGIN_TIMEOUT="0",
    )
    return subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "--check", "-i", str(inventory), str(playbook), "-e", f"{name}={value}" if name else value,
         "-e", "ansible_become=false", *extra],
        capture_output=True, text=True, env=env, check=False, timeout=300, cwd=ROOT,
    )


@pytest.mark.parametrize(("name", "value", "message"), BAD_VALUES, ids=[f"{n}={v}" for n, v, _ in BAD_VALUES])
def test_bad_common_value_fails_at_validation(tmp_path, name, value, message):
    run = _run(tmp_path, name, value)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert value in out, out
    assert message in out, out
    assert "changed=0" in out, out


def test_good_values_pass_validation(tmp_path):
    # Positive control: the same run with a valid value passes every assertion of the
    # role (only those run: the rest would install packages, here in check mode).
    run = _run(tmp_path, "common_timezone", "Europe/Berlin", extra=("--tags", "common_assert"))
    out = run.stdout + run.stderr
    assert "Assert common_timezone exists in the tz database" in out, out
    assert "Assert the journal limits are systemd sizes and time spans" in out, out
    assert run.returncode == 0, out


def test_plain_password_stops_the_mail_play_before_any_change(tmp_path):
    data = {
        "mail_domains": ["example.test"],
        "mail_accounts": [{"address": "alice@example.test", "password_hash": "Summer2026!", "quota": "1G"}],
        "mail_aliases": [],
    }
    run = _run(tmp_path, None, json.dumps(data), playbook=ROOT / "playbooks/mail.yml")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "the password_hash of 'alice@example.test' is not a {SHA512-CRYPT}" in out, out
    assert "Summer2026!" not in out.replace(json.dumps(data), "")
    assert "Assert the domains, mailboxes and aliases are valid" in out
    assert "changed=0" in out, out


ACCOUNTS = {
    "mail_domains": ["example.test"],
    "mail_accounts": [{"address": "alice@example.test", "quota": "1G",
                       "password_hash": "{SHA512-CRYPT}$6$8w/.IU0ayAm3zXJb$e5EGOXrBEdgImMBfj6usjg9wJ5sQCPZOe7sTSNENNDOPPwAYzC"
                                        "./tXUbew2LKbxWl0OiYQScCjmax4azl.Y8D0"}],
    "mail_aliases": [],
}

BAD_CERTBOT = [
    ({"certbot_extra_names": ["mail_server.example.test"]}, "'mail_server.example.test' is not a lowercase DNS name"),
    ({"certbot_acme_server": "http://acme.example.test/dir"}, "'http://acme.example.test/dir' must be the https://"),
    ({"certbot_challenge": "dns"}, "dns (with certbot_dns_plugin and certbot_dns_credentials set)"),
    ({"certbot_key_type": "rsa", "certbot_rsa_key_size": 1024}, "rsa (2048, 3072 or 4096 bits, here '1024')"),
]


@pytest.mark.parametrize(("values", "message"), BAD_CERTBOT, ids=[next(iter(v)) for v, _ in BAD_CERTBOT])
def test_bad_certbot_value_fails_before_any_request(tmp_path, values, message):
    run = _run(tmp_path, None, json.dumps({**ACCOUNTS, **values}), playbook=ROOT / "playbooks/mail.yml")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert message in out, out
    assert "Request the certificate from the ACME server" not in out, out
    # Stopped before any role of the play, not only before certbot's: the accounts'
    # check ran once, among the early checks; the play's roles (mailaccounts first)
    # never started.
    assert out.count("TASK [mailaccounts : Find what is wrong with the accounts]") == 1, out
    assert "changed=0" in out, out


OPERATIONS_BASE = {
    "mail_domains": ["example.test"],
    "backup_restic_repository": "/var/backups/restic-mail",
    "backup_restic_password": "a-long-enough-password",
}

BAD_OPERATIONS = [
    ("backup_vault_host", "vault.example.test", "Set one of backup_restic_repository"),
    ("backup_restic_password", "short", "backup_restic_password must be set from Ansible Vault"),
    ("backup_restic_repository", "/srv/my backups", "('/srv/my backups', a restic repository"),
    ("backup_keep_daily", 0, "backup_keep_daily '0'"),
    ("backup_paths", ["var/mail"], "backup path 'var/mail' must be an absolute path"),
    ("backup_check_read_data_subset", "half", "backup_check_read_data_subset ('half')"),
    ("monitoring_webhook_url", "ftp://hooks.example.net/x", "monitoring_webhook_url ('ftp://hooks.example.net/x')"),
    ("monitoring_disk_used_max_percent", 150, "disk 150% (1 to 100)"),
    ("monitoring_disk_paths", ["var/mail"], "monitoring_disk_paths must be a list of absolute paths"),
    ("monitoring_disk_path", "/var/mail", "(monitoring_disk_path, one path, was renamed to it)"),
    ("monitoring_checks", ["queue", "weather"], "monitoring_checks has unknown checks: weather"),
    ("monitoring_security_updates_grace_hours", "1d", "monitoring_security_updates_grace_hours ('1d') must be a"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD_OPERATIONS, ids=[n for n, _, _ in BAD_OPERATIONS])
def test_bad_operations_value_fails_before_any_change(tmp_path, name, value, message):
    data = dict(OPERATIONS_BASE, **{name: value})
    run = _run(tmp_path, None, json.dumps(data), playbook=ROOT / "playbooks/operations.yml")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert message in out, out
    assert "changed=0" in out, out


HASH = ACCOUNTS["mail_accounts"][0]["password_hash"]


def _account(address, **extra):
    return {"address": address, "quota": "1G", "password_hash": HASH, **extra}


# A malformed inventory, value by value: the site's playbook stops at validation, names
# the value, and has changed nothing (check mode on this machine, changed=0).
MALFORMED_INVENTORIES = [
    ("bad domain", "mail.yml", {"mail_domains": ["example..test"]}, "'example..test'"),
    ("address outside the hosted domains", "mail.yml",
     {"mail_accounts": [_account("alice@elsewhere.example")]}, "'alice@elsewhere.example' is outside the hosted domains"),
    ("plain password", "mail.yml", {"mail_accounts": [_account("alice@example.test", password_hash="hunter2")]},
     "the password_hash of 'alice@example.test' is not a {SHA512-CRYPT}"),
    ("duplicate account", "mail.yml", {"mail_accounts": [_account("alice@example.test")] * 2},
     "'alice@example.test' is defined 2 times"),
    ("alias loop", "mail.yml", {"mail_aliases": [{"address": "a@example.test", "to": ["b@example.test"]},
                                                 {"address": "b@example.test", "to": ["a@example.test"]}]},
     "alias loop a@example.test -> b@example.test -> a@example.test"),
    ("bad quota", "mail.yml", {"mail_accounts": [_account("alice@example.test", quota="lots")]},
     "quota 'lots' of 'alice@example.test'"),
    ("unknown TLS floor", "mail.yml", {"mail_tls_min_protocol": "TLSv1.1"}, "mail_tls_min_protocol 'TLSv1.1' must be"),
    ("port out of range", "security.yml", {"mail_public_tcp_ports": [25, 70000]}, "firewall port '70000'"),
    ("bad admin network", "security.yml", {"firewall_admin_networks": ["10.0.0.0/33"]}, "firewall network '10.0.0.0/33'"),
    ("whole internet for SSH", "security.yml", {"firewall_ssh_sources": ["0.0.0.0/0"]}, "firewall network '0.0.0.0/0'"),
    # Networks are compared as networks: other spellings of the whole internet, half of it,
    # and the whole IPv4 internet written as IPv6.
    ("whole internet spelt 0::/0 for admins", "security.yml", {"firewall_admin_networks": ["0::/0"]},
     "firewall network '0::/0'"),
    ("half the internet in the allowlist", "security.yml", {"fail2ban_allowlist": ["0.0.0.0/1"]},
     "fail2ban_allowlist entry '0.0.0.0/1'"),
    ("IPv4 internet as IPv6 in mynetworks", "mail.yml", {"postfix_mynetworks": ["[::ffff:0.0.0.0]/96"]},
     "postfix_mynetworks entry '[::ffff:0.0.0.0]/96'"),
    ("host address with /0 as trusted sender", "mail.yml", {"postfix_trusted_senders": ["192.0.2.1/0"]},
     "postfix_trusted_senders entry '192.0.2.1/0'"),
    ("whole internet exempt from the AUTH rate", "mail.yml", {"postfix_client_limit_exceptions": ["::/0"]},
     "postfix_client_limit_exceptions entry '::/0'"),
    ("bad recidive ban time", "security.yml", {"fail2ban_recidive_bantime": "forever"},
     "fail2ban_recidive_bantime 'forever'"),
    ("bad ban time", "security.yml", {"fail2ban_bantime": "forever"}, "fail2ban_bantime 'forever'"),
    ("IPv6 ban prefix wider than a /32", "security.yml", {"fail2ban_ipv6_ban_prefix": 16},
     "fail2ban_ipv6_ban_prefix '16' must be a prefix length from 32 to 128"),
    ("bad allowlist entry", "security.yml", {"fail2ban_allowlist": ["office!"]}, "fail2ban_allowlist entry 'office!'"),
    ("bad DKIM selector", "mail.yml", {"opendkim_selectors": ["Mail_2026"]},
     "opendkim_selectors ['Mail_2026'] must be one or more distinct DNS labels"),
    ("no DKIM selector", "mail.yml", {"opendkim_selectors": []}, "opendkim_selectors [] must be"),
    ("DKIM grace period below 0", "mail.yml", {"opendkim_retire_after_days": -1},
     "opendkim_retire_after_days (-1) a number of days, 0 or more"),
    ("reject score below the tag score", "mail.yml", {"spamassassin_reject_score": 4},
     "spamassassin_tag_score (5.0) must be above 0 and below spamassassin_reject_score (4)"),
    ("more spare spamd workers than workers", "mail.yml", {"spamassassin_spare_children": 4},
     "spamassassin_spare_children (4) 1 to spamassassin_max_children"),
    ("sending limit not a pair", "mail.yml", {"mail_accounts": [_account("alice@example.test", sending_limits=[[100]])]},
     "sending_limits of 'alice@example.test': [100] is not [recipients, seconds]"),
    ("negative default sending limit", "mail.yml", {"ratelimit_limits": [[200, -3600]]},
     "ratelimit_limits: [200, -3600] is not [recipients, seconds]"),
    ("bad kernel setting", "security.yml", {"sysctl_settings": {"net/ipv4/ip_forward": 1}},
     "sysctl_settings: 'net/ipv4/ip_forward: 1' is not a kernel setting"),
    ("unknown MTA-STS mode", "mail.yml", {"mail_mta_sts_mode": "enforcing"}, "MTA-STS: the mode 'enforcing' must be"),
    ("MTA-STS policy cached for a minute", "mail.yml", {"mail_mta_sts_mode": "testing", "mail_mta_sts_max_age": 60},
     "max_age (60) between 86400"),
    ("client settings with no submission port open", "mail.yml",
     {"mail_autoconfig": True, "mail_public_tcp_ports": [25, 993]}, "leave clients without IMAP/POP3"),
    ("webmail name that is not a DNS name", "mail.yml", {"mail_webmail": True, "mail_webmail_name": "Web Mail"},
     "webmail_server_name 'Web Mail' must be a lowercase DNS name"),
    ("webmail upload limit of 0", "mail.yml", {"mail_webmail": True, "webmail_upload_max_mb": 0},
     "upload limit (0 MB)"),
]


@pytest.mark.parametrize(("playbook", "values", "message"), [row[1:] for row in MALFORMED_INVENTORIES],
                         ids=[row[0] for row in MALFORMED_INVENTORIES])
def test_a_malformed_inventory_fails_before_any_change(tmp_path, playbook, values, message):
    run = _run(tmp_path, None, json.dumps({**ACCOUNTS, **values}), playbook=ROOT / "playbooks" / playbook)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert message in out, out
    assert "changed=0" in out, out


def test_an_ssh_source_list_without_the_operators_address_is_refused(tmp_path, monkeypatch):
    # As if this run came in over SSH from 203.0.113.9 (the local connection passes the
    # environment on): the firewall would lock it out, so the run stops unchanged.
    monkeypatch.setenv("SSH_CLIENT", "203.0.113.9 50022 22")
    values = {**ACCOUNTS, "firewall_ssh_sources": ["198.51.100.0/24", "2001:db8::/32"]}
    run = _run(tmp_path, None, json.dumps(values), playbook=ROOT / "playbooks/security.yml")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "This run connects from 203.0.113.9, which is in neither" in out, out
    assert "changed=0" in out, out

    # Positive control: with its network listed, the same run passes the check (only the
    # firewall's checks run: past them, check mode here would only try to install).
    monkeypatch.setenv("SSH_CLIENT", "198.51.100.7 50022 22")
    run = _run(tmp_path, None, json.dumps(values), playbook=ROOT / "playbooks/security.yml",
               extra=("--tags", "firewall_assert"))
    out = run.stdout + run.stderr
    assert "Assert the address this run connects from may still use SSH" in out, out
    assert "which is in neither" not in out, out
    assert run.returncode == 0, out


BAD_BACKUP_MX = [
    ("unknown primary", {"mail_backup_mx_for": ["mx9.example.test"]}, [],
     "primary 'mx9.example.test' is not a host of the inventory"),
    ("bad queue lifetime", {"mail_backup_mx_queue_lifetime": "forever"}, [],
     "postfix_queue_lifetime 'forever' must be"),
    ("also a mail store", {}, ["mailservers"], "is in both mailservers and backup_mx"),
    ("a smarthost", {"mail_smarthost": {"host": "smtp.example.net"}}, [], "has mail_smarthost, which only mail servers"),
]


@pytest.mark.parametrize(("values", "extra_groups", "message"), [row[1:] for row in BAD_BACKUP_MX],
                         ids=[row[0] for row in BAD_BACKUP_MX])
def test_a_bad_backup_mx_fails_before_any_change(tmp_path, values, extra_groups, message):
    """mail.yml (check mode, this machine) stops at its checks, before certbot runs on the host."""
    inventory = ("all:\n  children:\n    mailservers:\n      hosts:\n        mx1.example.test:\n" + LOCAL
                 + "".join(f"        mx2.example.test:\n{LOCAL}" for _ in extra_groups)
                 + "    backup_mx:\n      hosts:\n        mx2.example.test:\n" + LOCAL)
    run = _run(tmp_path, None, json.dumps({**ACCOUNTS, **values}), playbook=ROOT / "playbooks/mail.yml",
               inventory_text=inventory, extra=("--limit", "mx2.example.test"))
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert message in out, out
    assert "changed=0" in out, out
    assert "TASK [certbot" not in out, out


VAULT_INVENTORY = ("all:\n  children:\n    mailservers:\n      hosts:\n        mx1.example.test:\n" + LOCAL
                   + "    backup_vaults:\n      hosts:\n        vault1.example.test:\n" + LOCAL)
VAULT_BASE = {**OPERATIONS_BASE, "backup_restic_repository": "", "backup_vault_host": "vault1.example.test"}
BAD_VAULTS = [
    ("not a vault of the inventory", {"backup_vault_host": "vault9.example.test"}, (),
     "backup_vault_host 'vault9.example.test' is not a host of the inventory's backup_vaults group"),
    ("a wrong type on the vault", {"backup_vault_prune": "maybe"}, (),
     "backup_vault : Check every input's type and choices against the role's argument spec"),
    ("a bad schedule on the vault", {"backup_vault_prune_schedule": "nightly"}, (),
     "backup_vault_prune_schedule 'nightly' is not a systemd OnCalendar expression"),
    # A run that does not include the mail host knows no key for it: writing the keys
    # file would lock the mail host out, so the role stops first.
    ("a run limited to the vault", {}, ("--limit", "vault1.example.test", "--tags", "backup_vault_clients"),
     "The SSH key of mx1.example.test's backups is not known to this run"),
]


@pytest.mark.parametrize(("values", "extra", "message"), [row[1:] for row in BAD_VAULTS],
                         ids=[row[0] for row in BAD_VAULTS])
def test_a_bad_backup_vault_setting_stops_before_any_change(tmp_path, values, extra, message):
    """operations.yml (check mode, this machine) stops before a key is made or the vault changes."""
    run = _run(tmp_path, None, json.dumps({**ACCOUNTS, **VAULT_BASE, **values}),
               playbook=ROOT / "playbooks/operations.yml", inventory_text=VAULT_INVENTORY, extra=extra)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert message in out, out
    assert "changed=0" in out and "changed=1" not in out, out
    assert "TASK [backup : Create the key the backups log in to the vault with]" not in out, out


BAD_SMARTHOST = [
    ("implicit TLS port", {"host": "smtp.example.net", "port": 465, "username": "mx1", "password": "s3cret-relay-pw"},
     "Postfix does not speak implicit TLS on 465"),
    ("misspelt key", {"host": "smtp.example.net", "user": "mx1", "password": "s3cret-relay-pw"},
     "it has ['host', 'user', 'password']"),
    ("password without login", {"host": "smtp.example.net", "password": "s3cret-relay-pw"}, "go together"),
    ("password with a trailing space", {"host": "smtp.example.net", "username": "mx1", "password": "s3cret-relay-pw "},
     "go together"),
    ("not a host name", {"host": "smtp example.net"}, "The relay host 'smtp example.net'"),
    ("unverifiable TLS level", {"host": "smtp.example.net", "tls": "may"}, "the TLS level secure or encrypt"),
    ("no host", {"username": "mx1", "password": "s3cret-relay-pw"}, "mail_smarthost must be a mapping with host"),
]


@pytest.mark.parametrize(("smarthost", "message"), [row[1:] for row in BAD_SMARTHOST], ids=[row[0] for row in BAD_SMARTHOST])
def test_a_bad_smarthost_fails_before_any_change_without_showing_the_password(tmp_path, smarthost, message):
    run = _run(tmp_path, None, json.dumps({**ACCOUNTS, "mail_smarthost": smarthost}), playbook=ROOT / "playbooks/mail.yml")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert message in out, out
    assert "changed=0" in out, out
    assert "TASK [certbot" not in out, out
    assert "s3cret-relay-pw" not in out, out


def test_a_bad_value_stops_a_run_limited_by_tags_before_any_role(tmp_path):
    # With --tags, the checks included before the roles must still run, and first: here
    # the opendkim role would run before postfix's own copy of the check.
    smarthost = {"host": "smtp example.net"}
    run = _run(tmp_path, None, json.dumps({**ACCOUNTS, "mail_smarthost": smarthost}), playbook=ROOT / "playbooks/mail.yml",
               extra=("--tags", "opendkim,postfix"))
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "TASK [postfix : Assert the relay host is a host name and its port speaks STARTTLS]" in out, out
    assert "The relay host 'smtp example.net'" in out, out
    assert "TASK [opendkim : Install the OpenDKIM milter" not in out, out
    assert "changed=0" in out, out


def test_a_good_smarthost_passes_validation(tmp_path):
    # Positive control: a complete setting gets past both smarthost checks.
    smarthost = {"host": "smtp.example.net", "port": 587, "username": "mx1@example.test", "password": "s3cret relay:pw"}
    # Only the checks run (the play's own and the postfix role's): past them, check mode
    # on this machine would only try to install packages (half a minute of CPU).
    run = _run(tmp_path, None, json.dumps({**ACCOUNTS, "mail_smarthost": smarthost}), playbook=ROOT / "playbooks/mail.yml",
               extra=("--tags", "postfix_assert"))
    out = run.stdout + run.stderr
    assert "Assert the smarthost setting names a host and only known keys" in out, out
    assert "Assert the login at the relay host is complete and fits its table" in out, out
    assert run.returncode == 0, out
    assert "s3cret relay:pw" not in out, out


# Positive control for the networks compared as networks: a /8 and a /16, host
# addresses, names and loopback get past every check that reads them.
WIDEST_NETWORKS = {
    "firewall_admin_networks": ["10.0.0.0/8", "2001::/16", "2001:db8::/32", "192.0.2.7"],
    "fail2ban_allowlist": ["10.0.0.0/8", "2001::/16", "192.0.2.7", "2001:db8::7", "office.example.org"],
    "postfix_mynetworks": ["127.0.0.0/8", "[::1]/128", "[2001::]/16"],
    "postfix_trusted_senders": ["10.0.0.0/8", "2001::/16", "mx.example.org"],
    "postfix_client_limit_exceptions": ["192.0.2.0/24", "2001:db8::7", "office.example.org"],
}


@pytest.mark.parametrize(("playbook", "tags", "checks"), [
    ("security.yml", "firewall_assert,fail2ban_assert",
     ["Assert the SSH sources and admin networks are CIDR networks", "Assert the allowlist holds addresses or networks"]),
    ("mail.yml", "postfix_assert",
     ["Assert mynetworks holds only the networks of trusted hosts",
      "Assert each listed client is a DNS name or a network, never the whole internet",
      "postfix_trusted_senders: mx.example.org", "postfix_client_limit_exceptions: office.example.org"]),
], ids=["security", "mail"])
def test_networks_at_the_widest_allowed_pass_validation(tmp_path, playbook, tags, checks):
    run = _run(tmp_path, None, json.dumps({**ACCOUNTS, **WIDEST_NETWORKS}), playbook=ROOT / "playbooks" / playbook,
               extra=("--tags", tags))
    out = run.stdout + run.stderr
    for check in checks:
        assert check in out, out
    assert run.returncode == 0, out


def _apt_sources(tmp_path, monkeypatch, lines):
    """Point APT (and the runs below) at sources holding `lines`, not this machine's."""
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text("".join(line + "\n" for line in lines))
    (apt / "apt.conf").write_text(f'Dir::Etc::sourcelist "{apt}/sources.list";\nDir::Etc::sourceparts "{apt}/sources.list.d";\n')
    monkeypatch.setenv("APT_CONFIG", str(apt / "apt.conf"))


def _codename():
    return dict(line.split("=", 1) for line in pathlib.Path("/etc/os-release").read_text().splitlines() if "=" in line)["VERSION_CODENAME"]


def test_empty_mirror_settings_keep_the_mirror_the_host_already_names(tmp_path, monkeypatch):
    # The bundle names no mirror of its own: the host's sources give it, and Debian's
    # layout gives the security archive beside it. (An unreachable address: nothing is
    # fetched, only chosen.)
    _apt_sources(tmp_path, monkeypatch, [f"deb http://127.0.0.1:9/debian/ {_codename()} main"])
    run = _run(tmp_path, None, "{}", extra=("--tags", "common_apt_mirror", "-v"))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert '"__common_apt_mirror": "http://127.0.0.1:9/debian"' in out, out
    assert '"__common_apt_security_mirror": "http://127.0.0.1:9/debian-security"' in out, out


def test_a_security_archive_the_host_names_is_kept_too(tmp_path, monkeypatch):
    _apt_sources(tmp_path, monkeypatch, [f"deb http://127.0.0.1:9/debian {_codename()} main",
                                         f"deb http://127.0.0.2:9/sec {_codename()}-security main"])
    run = _run(tmp_path, None, "{}", extra=("--tags", "common_apt_mirror", "-v"))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert '"__common_apt_security_mirror": "http://127.0.0.2:9/sec"' in out, out


def test_a_host_whose_sources_name_no_archive_needs_a_mirror_setting(tmp_path, monkeypatch):
    _apt_sources(tmp_path, monkeypatch, ["# nothing here"])
    run = _run(tmp_path, None, "{}", extra=("--tags", "common_apt_mirror"))
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "name no http(s) archive" in out and "set common_apt_mirror" in out, out
    # Given one, the run needs nothing from the host's sources.
    run = _run(tmp_path, None, json.dumps({"common_apt_mirror": "https://mirror.example.net/debian"}),
               extra=("--tags", "common_apt_mirror", "-v"))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert '"__common_apt_security_mirror": "https://mirror.example.net/debian-security"' in out, out


# A value of the wrong type for one input of each role, given where a site gives it (the
# inventory, here -e): the playbook's early checks stop at the role's argument spec,
# naming the input, before any role runs (check mode on this machine, changed=0). The
# wrong value is the last of each row; the inputs are ones the roles' own friendlier
# checks do not read (those run first). The sending limits' inputs all have such a
# check, which must stop the run the same way.
SPEC_CHECK = "Check every input's type and choices against the role's argument spec"
WRONG_TYPES = [
    ("firewall", "security.yml", {"firewall_acme_http_enabled": "maybe"}, SPEC_CHECK),
    ("fail2ban", "security.yml", {"fail2ban_recidive": "maybe"}, SPEC_CHECK),
    ("ssh", "security.yml", {"ssh_password_authentication": "maybe"}, SPEC_CHECK),
    ("sysctl", "security.yml", {"sysctl_hardening_enabled": "maybe"}, SPEC_CHECK),
    ("postfix", "mail.yml", {"postfix_spf_reject": "maybe"}, SPEC_CHECK),
    ("opendkim", "mail.yml", {"opendkim_internal_hosts": {"10.0.0.0/8": True}}, SPEC_CHECK),
    ("opendmarc", "mail.yml", {"opendmarc_reject_failures": "maybe"}, SPEC_CHECK),
    ("ratelimit", "mail.yml", {"ratelimit_limits": {"recipients": 100}}, "Check the sending limits and the reply"),
    ("spamassassin", "mail.yml", {"spamassassin_network_checks": "maybe"}, SPEC_CHECK),
    ("autoconfig", "mail.yml", {"mail_autoconfig": True, "autoconfig_clients": "maybe"}, SPEC_CHECK),
    ("webmail", "mail.yml", {"mail_webmail": True, "webmail_imap_port": "imaps"}, SPEC_CHECK),
    ("certbot", "mail.yml", {"certbot_selfsigned_fallback": "maybe"}, SPEC_CHECK),
    ("dovecot", "mail.yml", {"dovecot_spam_to_junk": "maybe"}, SPEC_CHECK),
    ("web", "mail.yml", {"mail_autoconfig": True, "web_hsts_max_age": "a year"}, SPEC_CHECK),
    ("backup", "operations.yml", {**OPERATIONS_BASE, "backup_restic_init": "maybe"}, SPEC_CHECK),
    ("monitoring", "operations.yml", {**OPERATIONS_BASE, "monitoring_prometheus_enabled": "maybe"}, SPEC_CHECK),
]


@pytest.mark.parametrize(("role", "playbook", "values", "check"), WRONG_TYPES, ids=[row[0] for row in WRONG_TYPES])
def test_a_wrong_type_stops_the_early_checks_before_any_role_runs(tmp_path, role, playbook, values, check):
    run = _run(tmp_path, None, json.dumps({**ACCOUNTS, **values}), playbook=ROOT / "playbooks" / playbook)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    tasks = re.findall(r"TASK \[([^\]]+)\]", out)
    assert tasks[-1] == f"{role} : {check}", tasks
    wrong = list(values)[-1]
    assert wrong in out.split(f"TASK [{role} : {check}]")[-1], out
    assert "changed=0" in out, out


SITE_PREFLIGHT = [
    ("dovecot", {"dovecot_spam_to_junk": "maybe"}, SPEC_CHECK),
    ("webmail", {"mail_webmail": True, "webmail_imap_port": "imaps"}, SPEC_CHECK),
    ("monitoring", {**OPERATIONS_BASE, "monitoring_prometheus_enabled": "maybe"}, SPEC_CHECK),
    ("mailaccounts", {"mail_accounts": [{"address": "alice@example.test", "password_hash": "hunter2hunter2"}]},
     "Assert the domains, mailboxes and aliases are valid"),
    ("common", {"common_timezone": "Mars/Olympus_Mons"}, "Assert common_timezone exists in the tz database"),
]


@pytest.mark.parametrize(("role", "values", "check"), SITE_PREFLIGHT, ids=[row[0] for row in SITE_PREFLIGHT])
def test_site_yml_stops_a_bad_value_in_its_preflight_before_any_host_changes(tmp_path, role, values, check):
    # The roles that run last (the mail store, the webmail, monitoring), the accounts and
    # the base system: a bad value is refused by the preflight's plays, which change
    # nothing, before any play that does has started.
    run = _run(tmp_path, None, json.dumps({**ACCOUNTS, **values}), playbook=ROOT / "site.yml")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    tasks = re.findall(r"TASK \[([^\]]+)\]", out)
    assert tasks[-1] == f"{role} : {check}", tasks
    plays = [play for play in re.findall(r"PLAY \[([^\]]+)\]", out)]
    assert plays and all(play.startswith("Check the ") for play in plays), plays
    assert "changed=0" in out, out
