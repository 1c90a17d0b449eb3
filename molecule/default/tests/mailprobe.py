#!/usr/bin/env python3
"""Protocol sessions run on the client host against the mail host; prints JSON.

Copied to the client by the tests. Each step records the server's answer and the
session stops at the first refusal, so a test can assert exactly where it stopped.
The mail host's certificate is self-signed until the certbot issue: TLS is checked
for protocol version here, not for trust.
"""

import argparse
import base64
import email.message
import email.policy
import email.utils
import hashlib
import imaplib
import json
import os
import poplib
import smtplib
import socket
import ssl
import sys


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def answer(reply):
    code, text = reply
    return [code, text.decode(errors="replace") if isinstance(text, bytes) else str(text)]


class PregreetSMTP(smtplib.SMTP):
    """Talks before the server's greeting, as spam bots do: EHLO right after connecting."""

    def _get_socket(self, host, port, timeout):
        sock = super()._get_socket(host, port, timeout)
        sock.sendall(b"EHLO pregreet.example\r\n")
        return sock


def with_attachment(text, size):
    """The message text with a file of size random bytes attached (MIME, base64), as a
    mail program sends it; returns the message and the file's sha256."""
    head, _, body = text.partition("\r\n\r\n")
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    for line in head.split("\r\n"):
        name, _, value = line.partition(": ")
        message[name] = value
    message.set_content(body.replace("\r\n", "\n"))
    blob = os.urandom(size)
    message.add_attachment(blob, maintype="application", subtype="octet-stream", filename="big.bin")
    return message.as_bytes(), hashlib.sha256(blob).hexdigest()


def smtp(args):
    out = {}
    cls = smtplib.SMTP_SSL if args.tls else PregreetSMTP if args.pregreet else smtplib.SMTP
    kwargs = {"context": tls_context()} if args.tls else {}
    conn = cls(local_hostname="client.example.test", timeout=args.timeout or 60, **kwargs)
    # Connecting separately keeps the banner; smtplib takes the TLS server name from
    # _host, which only the constructor sets, so set it here too.
    conn._host = args.host  # pylint: disable=protected-access
    # Raw commands may carry UTF-8 (an address with a non-ASCII local part).
    conn.command_encoding = "utf-8"
    out["banner"] = answer(conn.connect(args.host, args.port))
    try:
        if args.cmd:
            # Raw commands, in order, before any EHLO unless one is among them.
            out["replies"] = [answer(conn.docmd(cmd)) for cmd in args.cmd]
            return out
        out["ehlo"] = answer(conn.ehlo())
        out["features"] = sorted(conn.esmtp_features)
        out["auth_offered"] = conn.has_extn("auth")
        if args.tls:
            out["tls_version"] = conn.sock.version()
        if args.starttls:
            try:
                out["starttls"] = answer(conn.starttls(context=tls_context()))
            except smtplib.SMTPResponseException as err:
                out["starttls"] = [err.smtp_code, err.smtp_error.decode(errors="replace")]
                return out
            out["tls_version"] = conn.sock.version()
            out["ehlo_tls"] = answer(conn.ehlo())
            out["auth_offered"] = conn.has_extn("auth")
        if args.user:
            try:
                # One mechanism (PLAIN) per session, as a mail program or a guesser's tool
                # does: smtplib's login() tries the next one after a refusal, in the same
                # session, and a ban landing between the two left the session hanging.
                if not conn.has_extn("auth"):
                    raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
                conn.user, conn.password = args.user, args.password
                out["auth"] = answer(conn.auth("PLAIN", conn.auth_plain))
            except smtplib.SMTPAuthenticationError as err:
                out["auth"] = [err.smtp_code, err.smtp_error.decode(errors="replace")]
                return out
            except smtplib.SMTPNotSupportedError as err:
                out["auth"] = [0, str(err)]
                return out
        out["mail"] = answer(conn.docmd(f"MAIL FROM:<{args.mail_from}>" + (f" SIZE={args.size}" if args.size else "")))
        if out["mail"][0] >= 400:
            return out
        out["rcpt"] = [answer(conn.docmd(f"RCPT TO:<{rcpt}>")) for rcpt in args.rcpt]
        if not any(code < 300 for code, _ in out["rcpt"]) or args.no_data:
            return out
        body = "".join(f"{header}\r\n" for header in args.header)
        # Date and Message-ID as every real mail program writes them, so that spam scores
        # in the tests come from what a test sends on purpose.
        body += (f"Date: {email.utils.formatdate()}\r\n"
                 f"From: {args.from_header or f'<{args.mail_from}>'}\r\nTo: <{args.rcpt[0]}>\r\nSubject: probe {args.token}\r\n"
                f"Message-ID: <{args.token}@client.example.test>\r\n\r\nToken {args.token}\r\n")
        if args.text:
            body += args.text + "\r\n"
        if args.size:
            body += ("x" * 76 + "\r\n") * (args.size // 78 + 1)
        data = body.encode()
        if args.attach:
            data, out["attachment_sha256"] = with_attachment(body, args.attach)
            out["message_bytes"] = len(data)
        try:
            out["data"] = answer(conn.data(data))
        except smtplib.SMTPDataError as err:  # refused at DATA itself, before the message
            out["data"] = answer((err.smtp_code, err.smtp_error))
    finally:
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            pass
    return out


def imap(args):
    out = {}
    if args.tls:
        conn = imaplib.IMAP4_SSL(args.host, args.port, ssl_context=tls_context(), timeout=args.timeout or 30)
        out["tls_version"] = conn.sock.version()
    else:
        conn = imaplib.IMAP4(args.host, args.port, timeout=args.timeout or 30)
    out["capabilities_before_login"] = sorted(conn.capabilities)
    if args.starttls:
        conn.starttls(ssl_context=tls_context())
        out["tls_version"] = conn.sock.version()
        out["capabilities_after_starttls"] = sorted(conn.capabilities)
    try:
        out["login"] = conn.login(args.user, args.password)[0]
    except imaplib.IMAP4.error as err:
        out["login"] = f"refused: {err}"
        return out
    out["folders"] = [line.decode() for line in conn.list()[1]]
    conn.select(args.folder, readonly=not (args.store_flag or args.move_to))
    if args.body:
        found = conn.search(None, "BODY", f'"{args.body}"')[1][0].split()
    else:
        found = conn.search(None, "SUBJECT", f'"{args.token}"')[1][0].split() if args.token else []
    out["found"] = len(found)
    if args.attachments:
        # The sha256 of each attachment of each of the token's messages, as stored.
        out["attachment_sha256"] = []
        for num in found:
            raw = conn.fetch(num, "(BODY.PEEK[])")[1][0][1]
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            out["attachment_sha256"] += [hashlib.sha256(part.get_content()).hexdigest()
                                         for part in parsed.iter_attachments()]
    if args.fetch:
        # The messages as stored, byte for byte (base64), for signature checks.
        out["raw"] = [base64.b64encode(conn.fetch(num, "(BODY.PEEK[])")[1][0][1]).decode() for num in found]
    if args.move_to:
        # As a mail program moves a message to another folder (RFC 6851 MOVE).
        out["moved"] = [conn._simple_command("MOVE", num, args.move_to)[0] for num in found]  # pylint: disable=protected-access
    if args.store_flag:
        for num in found:
            conn.store(num, "+FLAGS", f"({' '.join(args.store_flag)})")
    if args.list:
        # Every message of the INBOX: its Message-ID and its flags.
        out["messages"] = []
        count = int(conn.select("INBOX", readonly=True)[1][0])
        if count:
            typ, data = conn.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            for item in data:
                if isinstance(item, tuple):
                    flags = sorted(f.decode() for f in imaplib.ParseFlags(item[0]))
                    header = item[1].decode(errors="replace").strip()
                    out["messages"].append({"message_id": header.partition(":")[2].strip(), "flags": flags})
    conn.logout()
    return out


def pop3(args):
    out = {}
    if args.tls:
        conn = poplib.POP3_SSL(args.host, args.port, context=tls_context(), timeout=args.timeout or 30)
        out["tls_version"] = conn.sock.version()
    else:
        conn = poplib.POP3(args.host, args.port, timeout=args.timeout or 30)
    if args.starttls:
        conn.stls(context=tls_context())
        out["tls_version"] = conn.sock.version()
    try:
        conn.user(args.user)
        out["login"] = conn.pass_(args.password).decode()
    except poplib.error_proto as err:
        out["login"] = f"refused: {err}"
        return out
    count = len(conn.list()[1])
    out["found"] = sum(
        1 for i in range(1, count + 1) if args.token and args.token.encode() in b"\n".join(conn.retr(i)[1])
    )
    conn.quit()
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("protocol", choices=["smtp", "imap", "pop3"])
    parser.add_argument("--host", default="mx1.example.test")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", action="store_true", help="implicit TLS")
    parser.add_argument("--starttls", action="store_true")
    parser.add_argument("--timeout", type=float, default=0, help="seconds a reply may take (default: 60 SMTP, 30 IMAP/POP3)")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--mail-from", default="someone@outside.example")
    parser.add_argument("--rcpt", action="append", default=[])
    parser.add_argument("--token", default="")
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--no-data", action="store_true")
    parser.add_argument("--attach", type=int, default=0, help="smtp: attach a file of this many random bytes")
    parser.add_argument("--attachments", action="store_true", help="IMAP: the sha256 of the token's messages' attachments")
    parser.add_argument("--text", default="", help="smtp: a line added to the body")
    parser.add_argument("--header", action="append", default=[], help="smtp: a header line put first")
    parser.add_argument("--from-header", default="", help="smtp: the From field's value (default: <MAIL FROM>)")
    parser.add_argument("--folder", default="INBOX", help="IMAP: the folder searched")
    parser.add_argument("--move-to", default="", help="IMAP: move the token's messages to this folder")
    parser.add_argument("--pregreet", action="store_true", help="smtp: send EHLO before the greeting")
    parser.add_argument("--cmd", action="append", default=[], help="raw SMTP command (smtp only)")
    parser.add_argument("--store-flag", action="append", default=[], help="IMAP: add this flag to the token's messages")
    parser.add_argument("--list", action="store_true", help="IMAP: list the INBOX's Message-IDs and flags")
    parser.add_argument("--fetch", action="store_true", help="IMAP: return the token's messages as stored (base64)")
    parser.add_argument("--body", default="", help="IMAP: search the bodies for this text instead of the token")
    parser.add_argument("--source", default="", help="connect from this address of the host")
    args = parser.parse_args()
    if args.source:
        # smtplib, imaplib and poplib all connect through socket.create_connection.
        connect = socket.create_connection
        socket.create_connection = (lambda address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None:
                                    connect(address, timeout, (args.source, 0)))
    try:
        result = {"smtp": smtp, "imap": imap, "pop3": pop3}[args.protocol](args)
    except (OSError, smtplib.SMTPException, imaplib.IMAP4.error, poplib.error_proto) as err:
        result = {"error": f"{type(err).__name__}: {err}"}
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
