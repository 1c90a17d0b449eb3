"""The runbooks' own logic, without hosts: how Ansible hosts become pyinfra targets,
which patterns are too broad, what a selection holds, and the queue summary."""

import pytest

from runbooks import canary, mailboxes, queue
from runbooks.fleet import RunbookError, group_hosts, pyinfra_target

QUEUE = [
    {"queue_name": "deferred", "queue_id": "A1", "arrival_time": 1000, "sender": "news@spam.example",
     "recipients": [{"address": "bob@example.test"}, {"address": "eve@Other.example"}]},
    {"queue_name": "hold", "queue_id": "B2", "arrival_time": 1500, "sender": "",
     "recipients": [{"address": "news@spam.example"}]},
    {"queue_name": "active", "queue_id": "C3", "arrival_time": 1900, "sender": "alice@example.test",
     "recipients": [{"address": "carol@other.example"}]},
]


@pytest.mark.parametrize("hostvars, expected", [
    ({"ansible_connection": "community.docker.docker", "ansible_host": "mailbundle-lab-mx1"},
     ("@docker/mailbundle-lab-mx1", {})),
    ({"ansible_connection": "docker"}, ("@docker/mx1.example.test", {})),
    ({"ansible_host": "203.0.113.25", "ansible_user": "admin"},
     ("mx1.example.test", {"ssh_hostname": "203.0.113.25", "ssh_user": "admin", "_sudo": True})),
    ({"ansible_user": "root", "ansible_port": "2222"},
     ("mx1.example.test", {"ssh_hostname": "mx1.example.test", "ssh_user": "root", "ssh_port": 2222})),
])
def test_ansible_hosts_become_pyinfra_targets(hostvars, expected):
    assert pyinfra_target("mx1.example.test", hostvars) == expected


def test_an_unsupported_connection_is_refused():
    with pytest.raises(RunbookError, match="winrm"):
        pyinfra_target("win.example.test", {"ansible_connection": "winrm"})


def test_group_hosts_follow_children_once():
    listed = {"all": {"children": ["mailservers", "backup_mx"]}, "mailservers": {"hosts": ["a", "b"]},
              "backup_mx": {"hosts": ["c", "a"], "children": ["all"]}}
    assert group_hosts(listed, "all") == ["a", "b", "c"]


@pytest.mark.parametrize("pattern", ["*", "*@*", "?*", "*@*.*", "**"])
def test_patterns_that_match_everything_are_refused(pattern):
    with pytest.raises(RunbookError, match="matches every address"):
        queue.check_pattern(pattern, "sender")


@pytest.mark.parametrize("pattern", ["*@spam.example", "news@*", "<>", "alice@example.test"])
def test_narrow_patterns_are_accepted(pattern):
    queue.check_pattern(pattern, "sender")


def test_selection_by_sender_recipient_and_empty_sender():
    assert [m["queue_id"] for m in queue.selected(QUEUE, sender="*@SPAM.example")] == ["A1"]
    assert [m["queue_id"] for m in queue.selected(QUEUE, recipient="*@other.example")] == ["A1", "C3"]
    assert [m["queue_id"] for m in queue.selected(QUEUE, sender="<>")] == ["B2"]
    assert queue.selected(QUEUE, sender="*@spam.example", recipient="carol@*") == []


def test_summary_counts_ages_and_tops():
    summary = queue.summary(QUEUE, now=2000)
    assert (summary["messages"], summary["active"], summary["deferred"], summary["hold"]) == (3, 1, 1, 1)
    assert summary["oldest_seconds"] == 1000
    assert summary["top_destinations"][0] == ("other.example", 2)
    assert ("<>", 1) in summary["top_senders"]
    assert queue.summary([], now=2000)["oldest_seconds"] is None
    assert queue.age(1000) == "16m" and queue.age(None) == "-"


def test_doveadm_tables_and_fetched_headers_are_read():
    rows = mailboxes.table(["Username\tQuota name\tType\tValue\tLimit\t%", "a@x\tUser quota\tSTORAGE\t19\t1024\t1"])
    assert rows == [{"username": "a@x", "quota name": "User quota", "type": "STORAGE", "value": "19",
                     "limit": "1024", "%": "1"}]
    headers = canary.unfold(["hdr:", "DKIM-Signature: v=1; a=rsa-sha256; d=example.test;",
                             "\ts=mail2026; h=From", "Authentication-Results: mx1; dkim=pass"])
    assert headers[0][0] == "dkim-signature" and canary.signer(headers[0][1]) == "d=example.test s=mail2026"
    assert headers[1] == ("authentication-results", "mx1; dkim=pass")
