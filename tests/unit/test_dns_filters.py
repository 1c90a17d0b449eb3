"""The filters of playbooks/dns_records.yml."""

import importlib.util
import pathlib

import dns.rdata
import dns.rdataclass
import dns.rdatatype

SPEC = importlib.util.spec_from_file_location(
    "dns_filters", pathlib.Path(__file__).resolve().parents[2] / "playbooks/filter_plugins/dns.py")
FILTERS = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(FILTERS)


def test_reverse_pointer_of_ipv4_and_ipv6():
    assert FILTERS.reverse_pointer("192.0.2.25") == "25.2.0.192.in-addr.arpa."
    assert FILTERS.reverse_pointer("2001:db8::1") == (
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.")


def test_a_long_txt_value_is_split_into_strings_a_dns_server_accepts():
    value = "v=DKIM1; k=rsa; p=" + "A" * 392
    text = FILTERS.txt_strings(value)
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, text)
    assert all(len(part) <= 255 for part in rdata.strings)
    assert b"".join(rdata.strings).decode() == value
    assert len(rdata.strings) == 2


def test_a_short_txt_value_is_one_string():
    assert FILTERS.txt_strings("v=spf1 mx -all") == '"v=spf1 mx -all"'
