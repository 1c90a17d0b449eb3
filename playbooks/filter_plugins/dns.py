"""Filters for the DNS records playbook."""

import ipaddress


def reverse_pointer(address):
    """The PTR name of an IPv4 or IPv6 address, fully qualified: 4.3.2.1.in-addr.arpa."""
    return ipaddress.ip_address(str(address)).reverse_pointer + "."


def txt_strings(text, size=255):
    """A TXT value as quoted strings of at most `size` characters (RFC 1035 limit)."""
    text = str(text)
    return " ".join(f'"{text[i:i + size]}"' for i in range(0, len(text), size)) or '""'


class FilterModule:  # pylint: disable=too-few-public-methods
    def filters(self):
        return {"reverse_pointer": reverse_pointer, "txt_strings": txt_strings}
