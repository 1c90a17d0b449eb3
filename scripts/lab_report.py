#!/usr/bin/env python3
"""After `make lab`: what answers where on 127.0.0.1, and how to get into the hosts."""

import pathlib
import socket
import ssl

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAB = ROOT / "inventory/lab"
IMPLICIT_TLS = {465, 993, 995, 443}
SERVICES = {25: "SMTP (MX)", 465: "submissions", 587: "submission", 143: "IMAP",
            993: "IMAPS", 110: "POP3", 995: "POP3S", 4190: "ManageSieve", 443: "HTTPS"}
# HTTPS speaks only when asked: the Thunderbird document of the first lab domain.
HTTP_REQUEST = b"HEAD /mail/config-v1.1.xml HTTP/1.0\r\nHost: autoconfig.example.test\r\n\r\n"


def probe(port, container_port):
    """First line the service sends (after a TLS handshake on implicit-TLS ports)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as raw:
            sock = raw
            if container_port in IMPLICIT_TLS:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                sock = ctx.wrap_socket(raw)
            sock.settimeout(3)
            if container_port == 443:
                sock.sendall(HTTP_REQUEST)
            line = sock.recv(200).decode(errors="replace").splitlines()
            if line:
                prefix = f"{sock.version()} " if container_port in IMPLICIT_TLS else ""
                return f"answers: {prefix}{line[0][:60]}"
    except (OSError, ssl.SSLError):
        pass
    return "nothing listening yet"


def lab_passwords():
    """The lab mailboxes' throw-away passwords, by address (make bench logs in with them)."""
    return yaml.safe_load((LAB / "group_vars/lab_clients/lab_passwords.yml").read_text())["lab_passwords"]


def main():
    hosts = yaml.safe_load((LAB / "hosts.yml").read_text())["all"]["children"]
    ports = yaml.safe_load((LAB / "group_vars/mailservers/lab.yml").read_text())["lab_published_ports"]
    mail_host, mail = next(iter(hosts["mailservers"]["hosts"].items()))
    print(f"\nThe lab is up. Mail host {mail_host} (container {mail['ansible_host']}):")
    for spec in ports:
        _, host_port, container_port = spec.split(":")
        service = SERVICES.get(int(container_port), "")
        answer = probe(int(host_port), int(container_port))
        print(f"  127.0.0.1:{host_port:<6} -> {container_port:<5} {service:<12} {answer}")
    passwords = lab_passwords()
    print("\nMailboxes (lab-only throw-away passwords):")
    for address, password in passwords.items():
        print(f"  {address:<24} {password}")
    print("\nA mail program: IMAP 127.0.0.1:10993 (SSL/TLS) or 10143 (STARTTLS), SMTP 127.0.0.1:10587")
    print("(STARTTLS) or 10465 (SSL/TLS), user name = the full address. The certificate is for")
    print("mx1.example.test, from the lab's Pebble CA; its root (new at every Pebble start) is at")
    print("  docker exec mailbundle-lab-client curl -fsS https://ca.example.test:15000/roots/0")
    print("Trust that root, or accept the certificate, for the lab only.")
    print("\nThe webmail: add '127.0.0.1 webmail.example.test' to /etc/hosts, then open")
    print("  https://webmail.example.test:10443/   (log in with a mailbox above)")
    print("\nA shell on a lab host:")
    for group in hosts.values():
        for name, values in group["hosts"].items():
            if values:  # a host listed again in a second group has no values there
                print(f"  docker exec -it {values['ansible_host']} bash    # {name}")
    print("\nRemove the lab with: make lab-down")


if __name__ == "__main__":
    main()
