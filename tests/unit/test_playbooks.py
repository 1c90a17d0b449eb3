"""site.yml is the table of contents: one short play per service, each reading the site's
values and its kind of host's wiring from the same two vars files the preflight checks
the roles with, and no play wiring a role's inputs itself."""

import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
# The vars file of each kind of host: every role input that kind gets from the site.
WIRING = {"mailservers": "vars/mail_servers.yml", "backup_mx": "vars/backup_mx.yml",
          "backup_vaults": "vars/backup_vaults.yml"}


def _yaml(path):
    return yaml.safe_load(path.read_text()) or []


def _imports(path):
    return [entry["ansible.builtin.import_playbook"] for entry in _yaml(path)]


def _plays(path):
    """Every play of a playbook, through its imports."""
    for entry in _yaml(path):
        if "ansible.builtin.import_playbook" in entry:
            yield from _plays(path.parent / entry["ansible.builtin.import_playbook"])
        else:
            yield path, entry


def _role_inputs():
    names = set()
    for spec in [*ROOT.glob("roles/*/meta/argument_specs.yml"), *ROOT.glob("lab/roles/*/meta/argument_specs.yml")]:
        for entry in _yaml(spec)["argument_specs"].values():
            names |= set(entry.get("options", {}))
    return names


def test_site_yml_runs_the_mail_services_mail_yml_runs_in_the_same_order():
    site = [name.removeprefix("playbooks/") for name in _imports(ROOT / "site.yml")]
    mail = _imports(PLAYBOOKS / "mail.yml")
    assert mail[0] == "preflight_mail.yml"
    assert site[:3] == ["preflight.yml", "common.yml", "security.yml"]
    assert site[-1] == "operations.yml"
    assert site[3:-1] == mail[1:]


def test_every_play_is_short_and_wires_no_role_itself():
    plays = list(_plays(ROOT / "site.yml"))
    assert len(plays) > 15
    for path, play in plays:
        where = f"{path.relative_to(ROOT)}: {play['name']}"
        for role in play.get("roles", []):
            assert set(role) <= {"role", "when"}, f"{where}: role {role['role']} is given its inputs in the play"
        assert len(play.get("roles", [])) <= 5, where


def test_every_play_reads_the_site_values_and_the_wiring_of_its_hosts():
    for path, play in _plays(ROOT / "site.yml"):
        files = play.get("vars_files")
        if files is None:
            continue
        where = f"{path.relative_to(ROOT)}: {play['name']}"
        assert files[0] == "vars/site.yml", where
        if len(files) > 1:
            assert files[1:] == [WIRING[play["hosts"]]], where


@pytest.mark.parametrize("wiring", sorted(WIRING.values()))
def test_every_wired_value_is_an_input_of_a_role(wiring):
    # A misspelt name in the wiring would be ignored by every role without a word.
    inputs = _role_inputs()
    names = [name for name in _yaml(PLAYBOOKS / wiring) if not name.startswith("__")]
    assert names, wiring
    assert sorted(set(names) - inputs) == []


def test_the_preflight_checks_the_roles_with_the_files_their_plays_read():
    checked = [(play["hosts"], play["vars_files"]) for _, play in _plays(PLAYBOOKS / "preflight.yml")
               if play["hosts"] in WIRING]
    assert {hosts for hosts, _ in checked} == set(WIRING)
    for hosts, files in checked:
        assert files == ["vars/site.yml", WIRING[hosts]], hosts
