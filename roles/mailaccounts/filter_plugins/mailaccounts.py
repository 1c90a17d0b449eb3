"""Checks on the accounts-as-code data that Jinja alone cannot express clearly."""

import re

HASH_PATTERNS = (
    r"\{SHA512-CRYPT\}\$6\$(rounds=\d+\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}",
    r"\{ARGON2ID\}\$argon2id\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+",
    r"\{BLF-CRYPT\}\$2[aby]\$\d\d\$[./0-9A-Za-z]{53}",
)
ADDRESS = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}$")
QUOTA = re.compile(r"^(0|[1-9][0-9]*[KMGT]?)$")


def mailaccounts_errors(domains, accounts, aliases):
    """Every problem in the account data, each naming the bad value; [] when all is well."""
    errors = []
    domains = list(domains or [])
    for domain in domains:
        if not isinstance(domain, str) or not re.match(r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}$", domain):
            errors.append(f"mail_domains: '{domain}' is not a lower-case domain name")
    for dup in sorted({d for d in domains if domains.count(d) > 1}):
        errors.append(f"mail_domains: '{dup}' is listed twice")

    def hosted(address):
        return address.rsplit("@", 1)[-1] in domains

    seen = {}
    for account in accounts or []:
        address = account.get("address") if isinstance(account, dict) else None
        if not isinstance(address, str) or not ADDRESS.match(address):
            errors.append(f"mail_accounts: '{address}' is not a lower-case mail address")
            continue
        if not hosted(address):
            errors.append(f"mail_accounts: '{address}' is outside the hosted domains {domains}")
        seen.setdefault(address, []).append("mail_accounts")
        secret = account.get("password_hash")
        if not isinstance(secret, str) or not any(re.fullmatch(p, secret) for p in HASH_PATTERNS):
            # Never print the value itself: it may be a plain password.
            errors.append(
                f"mail_accounts: the password_hash of '{address}' is not a {{SHA512-CRYPT}}, {{ARGON2ID}} "
                "or {BLF-CRYPT} hash (a plain password must never be in the inventory; see scripts/mail-password-hash)"
            )
        quota = str(account.get("quota", "0"))
        if not QUOTA.match(quota):
            errors.append(f"mail_accounts: quota '{quota}' of '{address}' is not a size such as 500M, 2G "
                          "or 0 (no limit)")
        unknown = set(account) - {"address", "password_hash", "quota", "sending_limits"}
        if unknown:
            errors.append(f"mail_accounts: '{address}' has unknown keys {sorted(unknown)}")

    graph = {}
    for alias in aliases or []:
        address = alias.get("address") if isinstance(alias, dict) else None
        catchall = isinstance(address, str) and address.startswith("@")
        if not isinstance(address, str) or not (catchall and address[1:] in domains or ADDRESS.match(address)):
            errors.append(f"mail_aliases: '{address}' is not a lower-case mail address or @domain catch-all")
            continue
        if not hosted(address):
            errors.append(f"mail_aliases: '{address}' is outside the hosted domains {domains}")
        seen.setdefault(address, []).append("mail_aliases")
        targets = alias.get("to")
        if not isinstance(targets, list) or not targets:
            errors.append(f"mail_aliases: '{address}' needs a non-empty list 'to'")
            continue
        for target in targets:
            if not isinstance(target, str) or not ADDRESS.match(target):
                errors.append(f"mail_aliases: target '{target}' of '{address}' is not a mail address")
        for sender in alias.get("senders", []):
            if sender not in [a.get("address") for a in accounts or [] if isinstance(a, dict)]:
                errors.append(f"mail_aliases: sender '{sender}' of '{address}' is not an account")
        graph[address] = [t for t in targets if isinstance(t, str)]

    for address, kinds in sorted(seen.items()):
        if len(kinds) > 1:
            errors.append(f"'{address}' is defined {len(kinds)} times ({', '.join(kinds)})")

    mailboxes = {a.get("address") for a in accounts or [] if isinstance(a, dict)}
    for start in sorted(graph):
        path, node = [start], start
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for target in graph.get(node, []):
                if target in mailboxes:
                    continue  # delivery stops at a mailbox
                if target == start:
                    errors.append(f"mail_aliases: alias loop {' -> '.join(path + [target])}")
                    stack = []
                    break
                if target in graph and target not in path:
                    stack.append((target, path + [target]))
    return errors


class FilterModule:
    def filters(self):
        return {"mailaccounts_errors": mailaccounts_errors}
