"""One part of a role run alone on the converged servers (docs/running-ansible.md):
the part tags of the two roles whose settings depend on the Debian release load those
settings too, so the run works on Debian 13 (A) and 12 (B) and changes nothing."""

import pytest

from conftest import run_playbook


@pytest.mark.parametrize("tags", ["postfix_configure", "dovecot_configure"])
def test_one_part_of_a_role_runs_alone_and_changes_nothing(tags):
    output = []
    changed = run_playbook("site.yml", tags=tags, limit="mx.a.test,mx.b.test", output=output)
    assert changed == {"mx.a.test": [], "mx.b.test": []}, changed
    # The part ran: its tasks are in the run, not skipped by the tag.
    first = {"postfix_configure": "postfix : Configure Postfix", "dovecot_configure": "dovecot : Write the user database"}[tags]
    assert first in output[0], output[0][-3000:]
