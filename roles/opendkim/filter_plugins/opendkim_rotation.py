"""Which DKIM selector signs each domain, run after run: a key rotation as code.

The first of opendkim_selectors is the one the site wants signing. A domain that has
no signing selector yet (a new host or domain), or whose signing selector was taken out
of the list, signs with it at once. A domain that signs with another selector of the
list is in a rotation: the new selector is "staged" (its key exists, its record is to
be published) and signing moves to it on the first run that finds its record in DNS,
matching its key. The other selectors stay published until the signing selector has
signed for the grace period (mail signed with them may still be in flight or in queues
elsewhere); then they are "retired": left out of the key table, and dns_records.yml
says their records can go.
"""


def opendkim_rotation(state, domains, selectors, checks, now, retire_after):
    """The new state, {domain: {signing, since, staged, retired}}.

    state: the last run's state (the same shape; {} on a host that has none); checks:
    this run's opendkim-testkey results, one per domain in rotation (item: the domain,
    rc 0: the staged selector's record was found and matches its key); now and
    retire_after: seconds.
    """
    wanted = selectors[0]
    published = {check.get("item") for check in checks or [] if check.get("rc") == 0}
    result = {}
    for domain in domains:
        last = (state or {}).get(domain) or {}
        signing, since = last.get("signing"), last.get("since")
        if signing not in selectors or not isinstance(since, int):
            signing, since = wanted, int(now)
        elif signing != wanted and domain in published:
            signing, since = wanted, int(now)
        staged = wanted if signing != wanted else None
        settled = int(now) - since >= retire_after
        retired = [s for s in selectors if s not in (signing, staged) and settled]
        result[domain] = {"signing": signing, "since": since, "staged": staged, "retired": retired}
    return result


def opendkim_in_rotation(state, domains, selectors):
    """The domains whose signing selector is in the list but not the first: the ones
    whose staged record this run checks."""
    return [domain for domain in domains
            if ((state or {}).get(domain) or {}).get("signing") in selectors[1:]]


class FilterModule:
    def filters(self):
        return {"opendkim_rotation": opendkim_rotation, "opendkim_in_rotation": opendkim_in_rotation}
