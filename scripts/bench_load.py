#!/usr/bin/env python3
"""Load generator of make bench; runs on the lab's client host (Python's standard
library only) and prints one JSON object on stdout.

  smtp: COUNT messages of SIZE bytes over SESSIONS concurrent SMTP sessions, each
        with STARTTLS (and AUTH when BENCH_PASSWORD is set); the time each message
        was accepted (the 250 after DATA) is recorded.
  imap: log in over 993, SELECT a mailbox and FETCH every message's header; the
        time of each step and the number of headers fetched.
"""
import argparse
import imaplib
import itertools
import json
import os
import smtplib
import ssl
import sys
import threading
import time
from email.utils import formatdate

WORDS = ("the quarterly report is attached please review the figures before our "
         "meeting on thursday and send your comments to the team so that we can "
         "agree on the budget for the next project phase").split()


def tls_context():
    # The bench measures throughput; the tests prove the certificates elsewhere.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def message_id(run_id, number, sender):
    return f"<bench.{run_id}.{number}@{sender.split('@')[1]}>"


def message(run_id, number, sender, recipient, size):
    head = (f"From: Bench Sender <{sender}>\r\nTo: <{recipient}>\r\n"
            f"Subject: bench {run_id} message {number}\r\n"
            f"Date: {formatdate(localtime=True)}\r\n"
            f"Message-ID: {message_id(run_id, number, sender)}\r\n"
            f"X-Bench-Run: {run_id}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n")
    lines, line, words = [], [], itertools.cycle(WORDS)
    length = len(head)
    while length < size:
        word = next(words)
        line.append(word)
        if len(line) == 12:
            text = " ".join(line).capitalize() + ".\r\n"
            lines.append(text)
            length += len(text)
            line = []
    return head + "".join(lines)


def smtp_load(args):
    password = os.environ.get("BENCH_PASSWORD")
    numbers = iter(range(args.count))
    lock = threading.Lock()
    accepted, accepted_ids, refused = [], [], []

    def next_number():
        with lock:
            return next(numbers, None)

    def connect():
        client = smtplib.SMTP(args.host, args.port, timeout=120)
        client.ehlo("client.example.test")
        client.starttls(context=tls_context())
        client.ehlo("client.example.test")
        if password:
            client.login(args.sender, password)
        return client

    def session():
        client = None
        while (number := next_number()) is not None:
            recipient = args.recipients[number % len(args.recipients)]
            body = message(args.run_id, number, args.sender, recipient, args.size)
            try:
                client = client or connect()
                client.sendmail(args.sender, [recipient], body)
                with lock:
                    accepted.append(time.time())
                    accepted_ids.append(message_id(args.run_id, number, args.sender))
            except (smtplib.SMTPException, OSError) as error:
                with lock:
                    refused.append(f"message {number}: {error!r}"[:300])
                client = None
        if client:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                pass

    start = time.time()
    threads = [threading.Thread(target=session) for _ in range(args.sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"start": start, "end": time.time(), "sent": args.count,
            "accepted": sorted(accepted), "accepted_ids": sorted(accepted_ids), "refused": refused}


def imap_fetch(args):
    password = os.environ["BENCH_PASSWORD"]
    start = time.time()
    client = imaplib.IMAP4_SSL(args.host, 993, ssl_context=tls_context())
    client.login(args.user, password)
    logged_in = time.time()
    status, data = client.select(args.mailbox, readonly=True)
    if status != "OK":
        raise SystemExit(f"SELECT {args.mailbox}: {data!r}")
    selected = time.time()
    status, data = client.fetch("1:*", "(BODY.PEEK[HEADER])")
    fetched = time.time()
    headers = sum(1 for item in data if isinstance(item, tuple))
    client.logout()
    return {"login": logged_in - start, "select": selected - logged_in,
            "fetch": fetched - selected, "total": fetched - start,
            "headers": headers}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    smtp = sub.add_parser("smtp")
    smtp.add_argument("--host", required=True)
    smtp.add_argument("--port", type=int, required=True)
    smtp.add_argument("--count", type=int, required=True)
    smtp.add_argument("--size", type=int, required=True)
    smtp.add_argument("--sessions", type=int, required=True)
    smtp.add_argument("--run-id", required=True)
    smtp.add_argument("--sender", required=True)
    smtp.add_argument("--recipients", required=True, type=lambda v: v.split(","))
    imap = sub.add_parser("imap")
    imap.add_argument("--host", required=True)
    imap.add_argument("--user", required=True)
    imap.add_argument("--mailbox", required=True)
    args = parser.parse_args()
    result = smtp_load(args) if args.mode == "smtp" else imap_fetch(args)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
