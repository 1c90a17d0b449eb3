"""Postfix's queue on every host: a summary, and hold, release, requeue or delete by a
sender or recipient pattern."""

import json
import re
import time
from collections import Counter
from fnmatch import fnmatchcase

from runbooks.fleet import RunbookError

# What postsuper does for each action, and whether it can be undone.
ACTIONS = {
    "hold": ("-h", False),
    "release": ("-H", False),
    "requeue": ("-r", False),
    "delete": ("-d", True),
}
_COUNTED = re.compile(r": (\d+) messages?$")
# Two addresses that share nothing: a pattern that matches both selects everything.
_UNRELATED = ("a1@b2.c3", "x9.y8@z7-w6.example")


def read_queue(target):
    """Every queued message of the host, as postqueue -j writes it."""
    ok, lines, err = target.run("postqueue -j")
    if not ok:
        raise RunbookError(f"{target.name}: postqueue -j failed: {err.strip()}")
    return [json.loads(line) for line in lines if line.strip()]


def check_pattern(pattern, what):
    """A shell-style address pattern (case-insensitive); <> is the empty sender."""
    if pattern is None:
        return
    if not pattern.strip():
        raise RunbookError(f"the {what} pattern is empty")
    if all(address_matches(pattern, address) for address in _UNRELATED):
        raise RunbookError(f"the {what} pattern {pattern!r} matches every address; name a domain or an address")


def address_matches(pattern, address):
    if pattern == "<>":
        return address == ""
    return fnmatchcase(address.lower(), pattern.lower())


def selected(messages, sender=None, recipient=None):
    """The messages whose sender matches and (if given) one of whose recipients matches."""
    chosen = []
    for message in messages:
        if sender is not None and not address_matches(sender, message.get("sender", "")):
            continue
        if recipient is not None and not any(
            address_matches(recipient, rcpt.get("address", "")) for rcpt in message.get("recipients", [])
        ):
            continue
        chosen.append(message)
    return chosen


def summary(messages, now=None, top=5):
    """Counts per queue, the oldest message's age, top senders and destinations."""
    now = time.time() if now is None else now
    queues = Counter(message.get("queue_name", "?") for message in messages)
    senders = Counter(message.get("sender") or "<>" for message in messages)
    domains = Counter(
        rcpt.get("address", "").rpartition("@")[2].lower() or "?"
        for message in messages
        for rcpt in message.get("recipients", [])
    )
    oldest = min((message.get("arrival_time", now) for message in messages), default=None)
    return {
        "messages": len(messages),
        "active": queues.get("active", 0) + queues.get("incoming", 0),
        "deferred": queues.get("deferred", 0),
        "hold": queues.get("hold", 0),
        "oldest_seconds": None if oldest is None else max(0, int(now - oldest)),
        "top_senders": senders.most_common(top),
        "top_destinations": domains.most_common(top),
    }


def apply(target, action, queue_ids):
    """Run postsuper's action on the queue IDs; returns how many it changed."""
    flag, _ = ACTIONS[action]
    if not queue_ids:
        return 0
    ok, _, err = target.run(f"postsuper {flag} -", stdin="".join(f"{qid}\n" for qid in queue_ids))
    if not ok:
        raise RunbookError(f"{target.name}: postsuper {flag} failed: {err.strip()}")
    # postsuper reports on stderr, e.g. "postsuper: Placed on hold: 3 messages".
    return sum(int(found.group(1)) for found in map(_COUNTED.search, err.splitlines()) if found)


def age(seconds):
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
