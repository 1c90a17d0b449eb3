"""Mailboxes on every host: usage against quota, an index resync, and expunging old
mail from Trash and Junk."""

from shlex import quote

from runbooks.fleet import RunbookError

CLEANABLE = ("Trash", "Junk")


def table(lines):
    """Rows of doveadm's tab format as dicts keyed by its header line (in lower case)."""
    rows = [line.split("\t") for line in lines if line.strip()]
    if not rows:
        return []
    header = [name.strip().lower() for name in rows[0]]
    return [dict(zip(header, row, strict=False)) for row in rows[1:]]


def number(text):
    text = (text or "").strip()
    return int(text) if text.lstrip("-").isdigit() else None


def usage(target):
    """[{user, storage_kib, limit_kib, percent, messages}] of every mailbox of the host."""
    ok, lines, err = target.run("doveadm -f tab quota get -A")
    if not ok:
        raise RunbookError(f"{target.name}: doveadm quota get failed: {err.strip()}")
    users = {}
    for row in table(lines):
        user = row.get("username", "")
        entry = users.setdefault(user, {"user": user, "storage_kib": None, "limit_kib": None,
                                        "percent": None, "messages": None})
        kind = row.get("type", "").upper()
        if kind == "STORAGE":
            entry["storage_kib"] = number(row.get("value"))
            entry["limit_kib"] = number(row.get("limit"))
            entry["percent"] = number(row.get("%"))
        elif kind == "MESSAGE":
            entry["messages"] = number(row.get("value"))
    return sorted(users.values(), key=lambda entry: entry["user"])


def known_user(target, user):
    ok, _, _ = target.run(f"doveadm user {quote(user)} >/dev/null")
    return ok


def resync(target, user):
    ok, _, err = target.run(f"doveadm force-resync -u {quote(user)} '*'")
    if not ok:
        raise RunbookError(f"{target.name}: force-resync of {user} failed: {err.strip()}")


def old_mail_query(folder, days):
    return f"mailbox {quote(folder)} savedbefore {int(days)}d"


def count_old(target, folder, days, user=None):
    """{user: messages in folder saved more than days ago}."""
    who = f"-u {quote(user)}" if user else "-A"
    ok, lines, err = target.run(f"doveadm -f tab search {who} {old_mail_query(folder, days)}")
    if not ok:
        raise RunbookError(f"{target.name}: doveadm search failed: {err.strip()}")
    counts = {}
    for row in table(lines):
        # With -A the first column is the user; with -u there is none.
        counts[row.get("username", user)] = counts.get(row.get("username", user), 0) + 1
    return counts


def expunge_old(target, folder, days, user=None):
    who = f"-u {quote(user)}" if user else "-A"
    ok, _, err = target.run(f"doveadm expunge {who} {old_mail_query(folder, days)}")
    if not ok:
        raise RunbookError(f"{target.name}: doveadm expunge failed: {err.strip()}")

