"""python -m runbooks [-i INVENTORY] [--limit HOST] [--json] queue|mailboxes|canary ...

Reading is the default; nothing changes without --apply, and deleting mail asks for
a typed confirmation (or --yes)."""

import argparse
import json
import os
import sys

from runbooks import canary as canary_runbook
from runbooks import mailboxes, queue
from runbooks.fleet import Fleet, RunbookError

# Hosts that run Postfix (queue) and hosts that hold mailboxes (mailboxes, canary).
QUEUE_GROUPS = ("mailservers", "backup_mx")
MAILBOX_GROUPS = ("mailservers",)


def parser():
    top = argparse.ArgumentParser(prog="python -m runbooks", description=__doc__.split("\n\n")[0])
    top.add_argument("-i", "--inventory", default=os.environ.get("MAILOPS_INVENTORY", "inventory/lab"),
                     help="Ansible inventory (default: inventory/lab, or $MAILOPS_INVENTORY)")
    top.add_argument("--limit", action="append", metavar="HOST", help="only this host (repeatable)")
    top.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sub = top.add_subparsers(dest="runbook", required=True)

    q = sub.add_parser("queue", help="Postfix's queue on every host").add_subparsers(dest="action", required=True)
    q.add_parser("summary", help="active, deferred and held messages, oldest age, top senders and destinations")
    for action in queue.ACTIONS:
        one = q.add_parser(action, help=f"{action} the messages whose sender or recipient matches")
        one.add_argument("--sender", help="shell-style pattern, e.g. '*@spammer.example'; <> is the empty sender")
        one.add_argument("--recipient", help="shell-style pattern matched against each recipient")
        one.add_argument("--apply", action="store_true", help="do it (default: only list what would change)")
        if queue.ACTIONS[action][1]:
            one.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    m = sub.add_parser("mailboxes", help="mailboxes on every host").add_subparsers(dest="action", required=True)
    m.add_parser("usage", help="usage and quota per mailbox")
    resync = m.add_parser("resync", help="rebuild one mailbox's indexes (doveadm force-resync)")
    resync.add_argument("user")
    resync.add_argument("--apply", action="store_true")
    expunge = m.add_parser("expunge", help="remove mail older than N days from Trash and Junk")
    expunge.add_argument("--days", type=int, required=True)
    expunge.add_argument("--user", help="one mailbox (default: all)")
    expunge.add_argument("--folder", choices=mailboxes.CLEANABLE, action="append")
    expunge.add_argument("--apply", action="store_true")
    expunge.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    c = sub.add_parser("canary", help="send a message through each host's submission port and time its delivery")
    c.add_argument("--account", help="the sending login (default: host variable mailops_canary_account)")
    c.add_argument("--to", help="recipient on the same host (default: the account itself)")
    c.add_argument("--timeout", type=int, default=60)
    return top


def confirm(args, what):
    if getattr(args, "yes", False):
        return
    if not sys.stdin.isatty():
        raise RunbookError(f"{what}: add --yes, or run it at a terminal to confirm")
    answer = input(f"{what}. Type yes to go on: ")
    if answer.strip() != "yes":
        raise RunbookError("not confirmed, nothing changed")


def check_args(args):
    """Refuse bad input before any host is contacted."""
    if args.runbook == "mailboxes" and args.action == "expunge" and args.days < 1:
        raise RunbookError("--days must be 1 or more")
    if args.runbook != "queue" or args.action == "summary":
        return
    if args.sender is None and args.recipient is None:
        raise RunbookError(f"queue {args.action} needs --sender or --recipient")
    queue.check_pattern(args.sender, "sender")
    queue.check_pattern(args.recipient, "recipient")


def run_queue(args, fleet):
    queues = fleet.each(queue.read_queue)
    if args.action == "summary":
        return {name: queue.summary(messages) for name, messages in queues.items()}, print_summary
    chosen = {name: queue.selected(messages, args.sender, args.recipient) for name, messages in queues.items()}
    result = {name: {"matched": [m["queue_id"] for m in msgs], "changed": 0, "applied": args.apply,
                     "messages": [brief(m) for m in msgs]} for name, msgs in chosen.items()}
    total = sum(len(msgs) for msgs in chosen.values())
    if args.apply and total:
        if queue.ACTIONS[args.action][1]:
            hosts = sum(1 for msgs in chosen.values() if msgs)
            confirm(args, f"{args.action} {plural(total, 'message')} on {plural(hosts, 'host')}")
        changed = fleet.each(lambda target: queue.apply(target, args.action, result[target.name]["matched"]))
        for name, count in changed.items():
            result[name]["changed"] = count
    return result, print_selection(args.action)


def brief(message):
    return {"queue_id": message.get("queue_id"), "queue": message.get("queue_name"),
            "sender": message.get("sender") or "<>",
            "recipients": [r.get("address") for r in message.get("recipients", [])]}


def run_mailboxes(args, fleet):
    if args.action == "usage":
        return fleet.each(mailboxes.usage), print_usage
    if args.action == "resync":
        found = fleet.each(lambda target: mailboxes.known_user(target, args.user))
        hosts = [name for name, known in found.items() if known]
        if not hosts:
            raise RunbookError(f"no host has a mailbox {args.user}")
        if args.apply:
            fleet.each(lambda target: target.name in hosts and mailboxes.resync(target, args.user))
        return {name: {"resynced": args.apply} for name in hosts}, print_resync
    folders = args.folder or list(mailboxes.CLEANABLE)

    def old(target):
        return {folder: mailboxes.count_old(target, folder, args.days, args.user) for folder in folders}

    counts = fleet.each(old)
    total = sum(n for per_folder in counts.values() for users in per_folder.values() for n in users.values())
    if args.apply and total:
        confirm(args, f"expunge {total} messages older than {args.days} days from {', '.join(folders)}")
        fleet.each(lambda target: [mailboxes.expunge_old(target, f, args.days, args.user) for f in folders])
    return {name: {"old_messages": per_folder, "expunged": args.apply and total > 0}
            for name, per_folder in counts.items()}, print_expunge(args.days)


def run_canary(args, fleet):
    password = os.environ.get("MAILOPS_CANARY_PASSWORD")
    if not password:
        raise RunbookError("set MAILOPS_CANARY_PASSWORD to the canary account's password")

    def one(target):
        account = args.account or target.hostvars.get("mailops_canary_account")
        if not account:
            return {"delivered": False, "error": "no --account and no mailops_canary_account for this host"}
        try:
            result = canary_runbook.canary(target, account, password, args.to, timeout=args.timeout)
        except (OSError, RunbookError) as err:
            result = {"delivered": False, "error": str(err)}
        return dict(result, account=account)

    return fleet.each(one), print_canary


def print_summary(results):
    print(f"{'host':28} {'active':>6} {'deferred':>8} {'hold':>5} {'oldest':>7}  top senders / destinations")
    for name, s in results.items():
        senders = ", ".join(f"{who} ({n})" for who, n in s["top_senders"]) or "-"
        dests = ", ".join(f"{who} ({n})" for who, n in s["top_destinations"]) or "-"
        print(f"{name:28} {s['active']:>6} {s['deferred']:>8} {s['hold']:>5} {queue.age(s['oldest_seconds']):>7}"
              f"  {senders} / {dests}")


def print_selection(action):
    def show(results):
        for name, r in results.items():
            for m in r["messages"]:
                print(f"{name:28} {m['queue_id']:14} {m['queue']:9} {m['sender']} -> {', '.join(m['recipients'])}")
            verb = f"{action}: {r['changed']} changed" if r["applied"] else f"dry run: would {action}"
            print(f"{name:28} {len(r['matched'])} matched; {verb}")
        if not any(r["applied"] for r in results.values()) and any(r["matched"] for r in results.values()):
            print("nothing changed: add --apply to do it")
    return show


def print_usage(results):
    print(f"{'host':28} {'mailbox':32} {'used KiB':>10} {'quota KiB':>10} {'%':>4} {'messages':>8}")
    for name, rows in results.items():
        for r in rows:
            print(f"{name:28} {r['user']:32} {fmt(r['storage_kib']):>10} {fmt(r['limit_kib']):>10}"
                  f" {fmt(r['percent']):>4} {fmt(r['messages']):>8}")


def print_canary(results):
    for name, r in results.items():
        if r["delivered"]:
            print(f"{name:28} delivered in {r['seconds']}s ({r['account']}); DKIM: "
                  f"{'; '.join(r['dkim_signatures']) or 'none'}")
            for line in r["authentication_results"] or ["none (sent and delivered on this host)"]:
                print(f"{'':28} Authentication-Results: {line}")
        else:
            print(f"{name:28} NOT DELIVERED: {r['error']}")


def print_resync(results):
    for name, r in results.items():
        print(f"{name:28} {'indexes rebuilt' if r['resynced'] else 'dry run: add --apply to rebuild the indexes'}")


def print_expunge(days):
    def show(results):
        for name, r in results.items():
            for folder, users in r["old_messages"].items():
                found = ", ".join(f"{user} {n}" for user, n in users.items()) or "none"
                print(f"{name:28} {folder}: {found} (saved over {days} days ago)")
            if any(r["old_messages"].values()):
                print(f"{name:28} {'expunged' if r['expunged'] else 'dry run: add --apply to expunge them'}")
    return show


def plural(count, word):
    return f"{count} {word}" + ("" if count == 1 else "s")


def fmt(value):
    return "-" if value is None else str(value)


def main(argv=None):
    args = parser().parse_args(argv)
    groups = QUEUE_GROUPS if args.runbook == "queue" else MAILBOX_GROUPS
    try:
        check_args(args)
        with Fleet(args.inventory, groups, args.limit) as fleet:
            handler = {"queue": run_queue, "mailboxes": run_mailboxes, "canary": run_canary}[args.runbook]
            results, show = handler(args, fleet)
    except RunbookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        show(results)
    if args.runbook == "canary" and not all(r["delivered"] for r in results.values()):
        return 1
    return 0
