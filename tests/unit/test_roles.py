"""Static rules every role keeps: inputs declared once, documented, and validated."""

import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The production roles and the lab's own (lab/roles): the same rules for both.
ROLES = sorted((p for folder in (ROOT / "roles", ROOT / "lab/roles") for p in folder.iterdir()
                if (p / "tasks/main.yml").exists()), key=lambda p: p.name)


def _yaml(path):
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_argument_spec_matches_defaults(role):
    defaults = _yaml(role / "defaults/main.yml")
    spec = _yaml(role / "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    # A required input has no default: defaults/main.yml shows it commented out.
    required = sorted(name for name, option in spec.items() if option.get("required"))
    assert sorted(defaults) == sorted(set(spec) - set(required)), \
        "defaults/main.yml and meta/argument_specs.yml declare different inputs"
    text = (role / "defaults/main.yml").read_text()
    for name in required:
        assert f"\n# {name}: " in text, f"{name} is required but not shown, commented out, in defaults/main.yml"
    for name, option in spec.items():
        assert option.get("description"), f"{name} has no description"
        if name not in required:
            assert option.get("default") == defaults[name], f"{name}: spec default differs from defaults/main.yml"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_inputs_carry_the_role_prefix(role):
    for name in _yaml(role / "defaults/main.yml"):
        assert name.startswith(f"{role.name}_"), f"{name} does not start with {role.name}_"


def test_no_group_vars_that_ansible_would_ignore():
    # Ansible reads group_vars/ only beside the inventory and beside the playbook that
    # holds the play; one at the top or in playbooks/ would be skipped without a word.
    assert not (ROOT / "group_vars").exists()
    assert not (ROOT / "playbooks/group_vars").exists()
    assert (ROOT / "inventory/lab/group_vars").is_dir()


def test_role_tls_defaults_are_the_site_tls_policy():
    # The policy lives in playbooks/vars/site.yml; each role's own defaults (used
    # only when a role runs on its own) must say the same, so the two cannot drift.
    policy = _yaml(ROOT / "playbooks/vars/site.yml")
    postfix = _yaml(ROOT / "roles/postfix/defaults/main.yml")
    dovecot = _yaml(ROOT / "roles/dovecot/defaults/main.yml")
    web = _yaml(ROOT / "roles/web/defaults/main.yml")
    assert postfix["postfix_tls_ciphers"] == dovecot["dovecot_tls_ciphers"] == web["web_tls_ciphers"] \
        == policy["mail_tls_policy_ciphers"]
    assert postfix["postfix_tls_curves"] == dovecot["dovecot_tls_curves"] == web["web_tls_curves"] \
        == policy["mail_tls_policy_curves"]
    assert postfix["postfix_tls_min_protocol"] == dovecot["dovecot_tls_min_protocol"] == web["web_tls_min_protocol"] \
        == "TLSv1.2"
    assert "mail_tls_min_protocol | default('TLSv1.2')" in policy["mail_tls_policy_min_protocol"]
    assert "mail_tls_smtp_inbound_min_protocol | default('TLSv1.2')" in policy["mail_tls_policy_smtp_inbound_min_protocol"]
    # Nothing weaker than the intermediate profile slips into the list.
    for suite in policy["mail_tls_policy_ciphers"].split(":"):
        assert suite.startswith(("ECDHE-", "DHE-RSA-")) and ("GCM" in suite or "CHACHA20" in suite), suite


ROLES_WITH_RELEASE_VARS = [role for role in ROLES
                           if any("ansible.builtin.include_vars" in task for task in _yaml(role / "tasks/main.yml"))]


@pytest.mark.parametrize("role", ROLES_WITH_RELEASE_VARS, ids=lambda p: p.name)
def test_release_settings_load_for_every_tag_of_the_role(role):
    """A run of one part of a role (--tags postfix_configure) loads the release's settings
    first: the include_vars task carries every tag the role's other tasks carry."""
    tasks = _yaml(role / "tasks/main.yml")
    loads = [task for task in tasks if "ansible.builtin.include_vars" in task]
    used = {tag for task in tasks for tag in task.get("tags", [])}
    for task in loads:
        assert used - set(task.get("tags", [])) == set(), (role.name, sorted(used - set(task.get("tags", []))))
