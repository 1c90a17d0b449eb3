"""The base system (role common) as the lab inventory asks for it, seen on the hosts."""

import json
import re
import uuid

from conftest import lab_value, role_default, run_site


def test_inventory_value_reaches_the_play(mail):
    # The lab sets a time zone other than the role default; seeing it on the host proves
    # the inventory's group_vars reached the play (Ansible silently skips misplaced ones).
    wanted = lab_value("all", "common", "common_timezone")
    assert wanted != role_default("common", "common_timezone")
    assert mail.file("/etc/timezone").content_string.strip() == wanted
    assert mail.file("/etc/localtime").linked_to == f"/usr/share/zoneinfo/{wanted}"
    offset = mail.check_output("date +%Z")
    assert offset in ("CET", "CEST"), offset


def test_fqdn_resolves_on_the_host(mail, mail_name):
    assert mail.check_output("hostname") == mail_name.split(".")[0]
    assert mail.check_output("hostname -f") == mail_name


def test_client_reaches_mail_host_by_name(client, mail, mail_name):
    address = client.check_output(f"getent hosts {mail_name}").split()[0]
    assert address in mail.check_output("hostname -I").split()


def test_locale_is_generated_and_set(mail):
    wanted = lab_value("all", "common", "common_locale")
    assert mail.file("/etc/default/locale").content_string.strip() == f"LANG={wanted}"
    available = mail.check_output("locale -a").split()
    assert wanted.replace("UTF-8", "utf8") in available


def test_journal_persists_to_disk(mail):
    token = f"journal-probe-{uuid.uuid4().hex}"
    mail.check_output(f"logger -t mailbundle-test {token}")
    # logger hands the line to journald and returns; journald writes it a moment later
    # (seconds on a busy host). Read only the on-disk journal: the entry must be in
    # /var/log/journal, within 30 s.
    found = mail.run(
        "for i in $(seq 30); do journalctl --flush; "
        f"journalctl -D /var/log/journal -t mailbundle-test --grep {token} --no-pager -q && exit 0; "
        "sleep 1; done; exit 1")
    assert found.rc == 0 and token in found.stdout, found.stderr


def test_apt_sources_include_the_security_archive(mail):
    policy = mail.check_output("apt-cache policy")
    release = mail.check_output(". /etc/os-release && echo $VERSION_CODENAME")
    assert f"n={release}-security" in policy
    assert f"n={release}-updates" in policy


def test_unattended_security_upgrades_are_on(mail):
    periodic = mail.check_output("apt-config dump APT::Periodic")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in periodic
    origins = mail.check_output("apt-config dump Unattended-Upgrade::Origins-Pattern")
    assert "-security,label=Debian-Security" in origins
    assert mail.service("apt-daily-upgrade.timer").is_enabled
    # unattended-upgrade itself accepts the configuration and sees the security origin.
    dry = mail.run("unattended-upgrade --dry-run --debug 2>&1 | grep -m1 'Allowed origins are'")
    assert dry.rc == 0 and "Debian-Security" in dry.stdout, dry.stdout


def test_time_sync_is_enabled(mail):
    assert mail.service("systemd-timesyncd").is_enabled


def test_acme_test_ca_answers_the_client(client):
    # The client trusts the CA's listener certificate through the system store.
    directory = json.loads(client.check_output("curl -sS --fail https://ca.example.test:14000/dir"))
    assert directory["newAccount"].startswith("https://ca.example.test:14000/")


def test_invalid_input_fails_before_the_host_changes(mail):
    before = mail.check_output("sha256sum /etc/timezone /etc/hosts /etc/default/locale")
    bad = "Mars/Olympus_Mons"
    run = run_site("-e", f"common_timezone={bad}", "-e", "common_fqdn=mx1.example.test")
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert bad in out
    assert "not in the tz database" in out
    assert "changed=0" in out
    assert mail.check_output("sha256sum /etc/timezone /etc/hosts /etc/default/locale") == before


def test_dry_run_of_the_deployed_host_predicts_no_change_and_fails_nothing(mail, mail_name):
    """The dry run an operator makes before a change ("From the lab to a real server"):
    site.yml --check --diff on the deployed host fails no task, predicts no change and
    leaves /etc as it was. (The dry run of the fresh host is in prepare.yml.)"""
    etc = "find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum"
    before = mail.check_output(etc)
    run = run_site("--check", "--diff")
    out = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)  # the recap's colours
    assert run.returncode == 0, out[-4000:]
    recap = re.search(re.escape(mail_name) + r"\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0\s", out)
    assert recap, out[-4000:]
    changed, task = [], ""
    for line in out.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith("changed:"):
            changed.append(f"{task} {line}")
    assert recap.group(1) == "0", "the dry run predicts changes on a deployed host:\n" + "\n".join(changed)
    assert mail.check_output(etc) == before
