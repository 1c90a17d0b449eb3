"""A canary message through each host's submission port: sent with STARTTLS and the
canary account's login, found in the mailbox with doveadm, timed, then removed."""

import io
import json
import secrets
from shlex import quote

from runbooks.fleet import RunbookError

# Runs on the mail host with its own python3. Loopback on purpose: this proves the
# submission service, the filters and delivery; certificates have their own checks.
SENDER = r'''
import json, smtplib, ssl, sys, time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
cfg = json.load(open(sys.argv[1]))
msg = EmailMessage()
msg["From"] = cfg["account"]
msg["To"] = cfg["to"]
msg["Subject"] = "canary " + cfg["token"]
msg["Date"] = formatdate(localtime=True)
msg["Message-ID"] = make_msgid(domain=cfg["account"].rpartition("@")[2])
msg["X-Mailops-Canary"] = cfg["token"]
msg.set_content("Canary message of the runbooks; it removes itself once found.\n")
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
start = time.time()
with smtplib.SMTP("127.0.0.1", cfg["port"], timeout=30) as smtp:
    smtp.starttls(context=context)
    smtp.login(cfg["account"], cfg["password"])
    smtp.send_message(msg)
print(json.dumps({"sent_at": start}))
'''


def canary(target, account, password, to=None, port=587, timeout=60):
    """{delivered, seconds, authentication_results, dkim_signatures} for one host."""
    token = secrets.token_hex(8)
    to = to or account
    config = json.dumps({"account": account, "password": password, "to": to, "port": port, "token": token})
    # Not /tmp: Debian 13 mounts a tmpfs there, which Docker's file copy cannot see.
    ok, lines, err = target.run("mktemp -d /var/tmp/mailops-canary.XXXXXXXX")
    if not ok:
        raise RunbookError(f"{target.name}: mktemp failed: {err.strip()}")
    folder = lines[0].strip()
    try:
        target.run(f"chmod 700 {quote(folder)}")
        for name, text in (("canary.json", config), ("canary.py", SENDER)):
            if not target.host.put_file(io.BytesIO(text.encode()), f"{folder}/{name}", print_output=False):
                raise RunbookError(f"{target.name}: could not copy the canary files")
        ok, lines, err = target.run(f"python3 {quote(folder)}/canary.py {quote(folder)}/canary.json")
        if not ok:
            last = err.strip().splitlines()[-1] if err.strip() else "no output"
            return {"delivered": False, "error": f"sending failed: {last}"}
        sent_at = json.loads(lines[-1])["sent_at"]
    finally:
        target.run(f"rm -rf {quote(folder)}")
    query = f"mailbox '*' header X-Mailops-Canary {token}"
    # Polled on the host itself, so the latency is the host's own clock.
    wait = (f"end=$(( $(date +%s) + {int(timeout)} )); "
            f"while [ $(date +%s) -lt $end ]; do "
            f"if [ -n \"$(doveadm search -u {quote(to)} {query})\" ]; then date +%s.%N; exit 0; fi; "
            f"sleep 0.2; done; exit 1")
    ok, lines, _ = target.run(wait)
    if not ok:
        return {"delivered": False, "error": f"not in {to}'s mailbox after {timeout}s"}
    seconds = round(float(lines[-1]) - sent_at, 2)
    ok, lines, _ = target.run(f"doveadm fetch -u {quote(to)} hdr {query}")
    headers = unfold(lines)
    target.run(f"doveadm expunge -u {quote(to)} {query}")
    return {
        "delivered": True,
        "seconds": seconds,
        "authentication_results": [v for k, v in headers if k == "authentication-results"],
        "dkim_signatures": [signer(v) for k, v in headers if k == "dkim-signature"],
    }


def unfold(lines):
    """(name in lower case, value) of the header lines doveadm fetch printed."""
    headers = []
    for line in lines:
        if line.startswith("hdr:"):
            line = line[4:]
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
    return headers


def signer(value):
    """d= and s= of a DKIM-Signature value."""
    tags = dict(part.strip().split("=", 1) for part in value.split(";") if "=" in part)
    return f"d={tags.get('d', '?')} s={tags.get('s', '?')}"
