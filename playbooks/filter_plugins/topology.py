"""Filters that derive each host's part in a multi-host site from the inventory.

Hosts are named by their inventory names, which are also the names in their
certificates (certbot_hostname) and SMTP greetings (postfix_myhostname).
"""


def _domains(hostvars, host):
    return [str(d).lower() for d in hostvars[host].get("mail_domains", [])]


def mail_peer_tls_policy(peers, hostvars):
    """Outbound TLS policy towards the site's own mail hosts: verified, never opportunistic.

    Each peer's domains get "secure": the certificate must chain to a trusted CA and
    name the domain, a subdomain of it (a backup MX named under the domain), or the
    peer's own host name.
    """
    policy = {}
    for host in sorted(peers):
        for domain in _domains(hostvars, host):
            policy[domain] = f"secure match=nexthop:dot-nexthop:{host.lower()}"
    return policy


def mail_backup_relay(primaries, hostvars):
    """What a backup MX needs for the primaries it stands in for.

    domains: every domain the primaries host; recipients: every address that exists
    there (accounts and aliases; "@domain" for a catch-all); transport and tls_policy:
    each domain goes to its own primary by name, over TLS verified against that name.
    """
    relay = {"domains": [], "recipients": [], "transport": {}, "tls_policy": {}}
    for host in primaries:
        if host not in hostvars:
            raise ValueError(f"backup MX: primary {host!r} is not a host of the inventory")
        domains = _domains(hostvars, host)
        if not domains:
            raise ValueError(f"backup MX: primary {host!r} hosts no mail_domains")
        for domain in domains:
            if domain in relay["transport"]:
                raise ValueError(f"backup MX: domain {domain!r} is hosted by two primaries")
            relay["domains"].append(domain)
            relay["transport"][domain] = f"relay:[{host.lower()}]:25"
        relay["tls_policy"][f"[{host.lower()}]:25"] = f"secure match={host.lower()}"
        entries = hostvars[host].get("mail_accounts", []) + hostvars[host].get("mail_aliases", [])
        relay["recipients"].extend(str(entry["address"]).lower() for entry in entries)
    relay["domains"].sort()
    relay["recipients"] = sorted(set(relay["recipients"]))
    return relay


def mail_backups_of(backups, primary, hostvars, mailservers):
    """The backup MX hosts that stand in for the primary (their mail_backup_mx_for, by
    default every host in mailservers), in order: the MX hosts of the primary's domains
    after the primary itself (the MTA-STS policy lists them all)."""
    return [host.lower() for host in sorted(backups)
            if primary in hostvars[host].get("mail_backup_mx_for", mailservers)]


def mail_peer_senders(peers, hostvars):
    """The site's other mail hosts as Postfix's trusted senders: each peer's addresses
    where the inventory knows them (dns_records_ipv4/dns_records_ipv6, else the facts
    of this run, the addresses dns_records.yml publishes), else its name, which the
    postfix role resolves on the host. So a run of the whole site writes the same list
    before and after the peers' records are published."""
    senders = []
    for host in sorted(peers):
        facts = hostvars[host].get("ansible_facts", {})
        known = [hostvars[host].get(f"dns_records_ipv{version}")
                 or facts.get(f"default_ipv{version}", {}).get("address") for version in (4, 6)]
        known = [str(address) for address in known if address]
        senders.extend(known or [host.lower()])
    return senders


def _vault_clients_of(mailservers, vault, hostvars):
    return [host for host in sorted(mailservers)
            if str(hostvars[host].get("backup_vault_host", "")).lower() == vault.lower()]


def mail_vault_clients(mailservers, vault, hostvars):
    """The mail hosts that back up into the vault (their backup_vault_host names it):
    name, the public key their backups log in with (empty until the play that creates
    it ran on them), and the retention they set (None: the vault's default). No
    password: a loop over these may print its items (-v)."""
    return [{"name": host.lower(),
             "public_key": str(hostvars[host].get("backup_vault_client_key", "")),
             "keep": {period: hostvars[host].get(f"backup_keep_{period}") for period in ("daily", "weekly", "monthly")}}
            for host in _vault_clients_of(mailservers, vault, hostvars)]


def mail_vault_passwords(mailservers, vault, hostvars):
    """The repository password of each mail host backing up into the vault, by name:
    the vault's pruning needs them."""
    return {host.lower(): str(hostvars[host].get("backup_restic_password", ""))
            for host in _vault_clients_of(mailservers, vault, hostvars)}


class FilterModule:  # pylint: disable=too-few-public-methods
    def filters(self):
        return {"mail_peer_tls_policy": mail_peer_tls_policy, "mail_backup_relay": mail_backup_relay,
                "mail_backups_of": mail_backups_of, "mail_peer_senders": mail_peer_senders,
                "mail_vault_clients": mail_vault_clients, "mail_vault_passwords": mail_vault_passwords}
