#!/usr/bin/env python3
"""A mail client that knows only an address and a password; runs on the client host.

It fetches the settings document the way one kind of client does, then follows every
server it advertises: logs in to each incoming server (IMAP or POP3) and to each
outgoing one, and sends a message through the latter when told to. TLS is verified
against the lab's CA and the advertised host name. Prints JSON.

  clientsetup.py thunderbird|wellknown|outlook|apple --address A --password P
                 --cafile F [--send-to B --token T] [--via DOMAIN]
"""

import argparse
import email.utils
import imaplib
import json
import plistlib
import poplib
import smtplib
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

OUTLOOK_NS = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


def fetch(url, cafile, data=None):
    if not url.startswith("https://"):
        raise ValueError(f"not an https URL: {url}")
    context = ssl.create_default_context(cafile=cafile)
    request = urllib.request.Request(url, data=data,  # noqa: S310 (https only, above)
                                     headers={"Content-Type": "text/xml"} if data else {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=20) as answer:  # noqa: S310 (https only, above)
            return answer.status, answer.headers.get("Content-Type", ""), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def thunderbird(document, address):
    root = ET.fromstring(document)
    provider = root.find("emailProvider")
    servers = []
    for kind in ("incomingServer", "outgoingServer"):
        for server in provider.findall(kind):
            servers.append({"type": server.get("type"), "host": server.findtext("hostname"),
                            "port": int(server.findtext("port")), "socket": server.findtext("socketType"),
                            "username": server.findtext("username").replace("%EMAILADDRESS%", address)})
    return {"domains": [d.text for d in provider.findall("domain")], "servers": servers}


def outlook(document):
    servers = []
    for protocol in ET.fromstring(document).iter(OUTLOOK_NS + "Protocol"):
        encryption = protocol.findtext(OUTLOOK_NS + "Encryption")
        servers.append({"type": protocol.findtext(OUTLOOK_NS + "Type").lower(),
                        "host": protocol.findtext(OUTLOOK_NS + "Server"),
                        "port": int(protocol.findtext(OUTLOOK_NS + "Port")),
                        "socket": "STARTTLS" if encryption == "TLS" else "SSL",
                        "username": protocol.findtext(OUTLOOK_NS + "LoginName")})
    return {"servers": servers}


def apple(document):
    account = plistlib.loads(document)["PayloadContent"][0]
    # A device uses implicit TLS on the well-known implicit ports and STARTTLS elsewhere.
    implicit = {993, 995, 465}
    incoming_port = account["IncomingMailServerPortNumber"]
    outgoing_port = account["OutgoingMailServerPortNumber"]
    return {"address": account["EmailAddress"], "servers": [
        {"type": "imap" if account["EmailAccountType"] == "EmailTypeIMAP" else "pop3",
         "host": account["IncomingMailServerHostName"], "port": incoming_port,
         "socket": "SSL" if incoming_port in implicit else "STARTTLS",
         "username": account["IncomingMailServerUsername"]},
        {"type": "smtp", "host": account["OutgoingMailServerHostName"], "port": outgoing_port,
         "socket": "SSL" if outgoing_port in implicit else "STARTTLS",
         "username": account["OutgoingMailServerUsername"]},
    ]}


def use(server, password, context, args, number):
    """Log in to one advertised server (and send through an outgoing one); the result."""
    host, port, ssl_on = server["host"], server["port"], server["socket"] == "SSL"
    try:
        if server["type"] == "imap":
            client = imaplib.IMAP4_SSL(host, port, ssl_context=context) if ssl_on else imaplib.IMAP4(host, port)
            if not ssl_on:
                client.starttls(ssl_context=context)
            client.login(server["username"], password)
            status, _ = client.select("INBOX", readonly=True)
            client.logout()
            return {"login": True, "select": status}
        if server["type"] == "pop3":
            client = poplib.POP3_SSL(host, port, context=context) if ssl_on else poplib.POP3(host, port)
            if not ssl_on:
                client.stls(context=context)
            client.user(server["username"])
            client.pass_(password)
            count, _ = client.stat()
            client.quit()
            return {"login": True, "messages": count}
        client = smtplib.SMTP_SSL(host, port, context=context) if ssl_on else smtplib.SMTP(host, port)
        client.ehlo("client.example.test")
        if not ssl_on:
            client.starttls(context=context)
            client.ehlo("client.example.test")
        client.login(server["username"], password)
        result = {"login": True}
        if args.send_to:
            tok = f"{args.token}-{number}"
            message = (f"From: <{args.address}>\r\nTo: <{args.send_to}>\r\nSubject: settings {tok}\r\n"
                       f"Date: {email.utils.formatdate()}\r\nMessage-ID: {email.utils.make_msgid()}\r\n\r\n"
                       f"Sent through {host}:{port} as the settings said. {tok}\r\n")
            result["refused"] = client.sendmail(args.address, [args.send_to], message)
            result["token"] = tok
        client.quit()
        return result
    except (OSError, imaplib.IMAP4.error, poplib.error_proto, smtplib.SMTPException) as error:
        return {"login": False, "error": f"{type(error).__name__}: {error}"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["thunderbird", "wellknown", "outlook", "apple"])
    parser.add_argument("--address", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--send-to")
    parser.add_argument("--token", default="")
    parser.add_argument("--via", help="ask this domain's names instead of the address's")
    args = parser.parse_args()
    domain = args.via or args.address.split("@")[1]
    quoted = urllib.parse.quote(args.address)
    if args.kind == "thunderbird":
        url = f"https://autoconfig.{domain}/mail/config-v1.1.xml?emailaddress={quoted}"
        status, kind, body = fetch(url, args.cafile)
    elif args.kind == "wellknown":
        url = f"https://autoconfig.{domain}/.well-known/autoconfig/mail/config-v1.1.xml"
        status, kind, body = fetch(url, args.cafile)
    elif args.kind == "outlook":
        url = f"https://autodiscover.{domain}/autodiscover/autodiscover.xml"
        request = ('<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/'
                   'exchange/autodiscover/outlook/requestschema/2006"><Request>'
                   f'<EMailAddress>{args.address}</EMailAddress><AcceptableResponseSchema>http://schemas.'
                   'microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>'
                   '</Request></Autodiscover>')
        status, kind, body = fetch(url, args.cafile, request.encode())
    else:
        url = f"https://autoconfig.{domain}/apple/mail.mobileconfig?emailaddress={quoted}"
        status, kind, body = fetch(url, args.cafile)
    out = {"url": url, "status": status, "content_type": kind}
    if status != 200:
        out["body"] = body.decode(errors="replace")[:500]
        print(json.dumps(out))
        return 0
    parsed = (thunderbird(body, args.address) if args.kind in ("thunderbird", "wellknown")
              else outlook(body) if args.kind == "outlook" else apple(body))
    out.update(parsed)
    context = ssl.create_default_context(cafile=args.cafile)
    out["results"] = [use(server, args.password, context, args, number)
                      for number, server in enumerate(out["servers"])]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
