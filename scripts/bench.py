#!/usr/bin/env python3
"""make bench: deployment speed, mail throughput and footprint, measured side by side
in one run on containers of its own (inventory/bench), then removed.

  1. deployment  site.yml on a fresh mail host, against plain apt-get installing the
                 same Debian packages in an identical fresh container (the floor);
                 then site.yml again (its wall time and changed tasks, which must be 0)
  2. port 25     MESSAGES messages from the client, full pipeline (postscreen, SPF,
                 milters, SpamAssassin, LMTP), then with the filters off (the ceiling)
  3. port 587    the same with STARTTLS and AUTH, through the submission milters
  4. IMAP        a mailbox of IMAP_MESSAGES messages: login, SELECT and every header,
                 cold (no index, page cache dropped) and warm
  5. footprint   resident memory of the mail services after the load, disk used

Every message sent must be found in a Maildir (by Message-ID: the set accepted is
the set found, none twice) and a second site.yml must change nothing; otherwise the
run fails (exit 1). The table is printed and written to BENCH_OUTPUT (BENCHMARKS.md), the throughput chart beside it.

With --on-lab, steps 2 to 5 run on the lab that `make lab` brought up instead (make
test does this between its two `make lab` runs and `make lab-down`): no deployment
rows, the lab is left running with the bench's messages in its mailboxes.
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import bench_report  # noqa: E402  (beside this file)
from lab_report import LAB, lab_passwords  # noqa: E402

INVENTORY = "inventory/bench"
# The venv's ansible-playbook (make bench runs this script with the venv's Python).
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
LOG_DIR = Path(tempfile.gettempdir()) / "mailbundle-bench"
MX = "mailbundle-bench-mx1"
CLIENT = "mailbundle-bench-client"
FLOOR = "mailbundle-bench-floor"
MX_NAME = "mx1.example.test"
RECIPIENTS = ["alice@example.test", "bob@example.test"]
MAILDIRS = " ".join(f"/var/mail/vhosts/example.test/{address.split('@')[0]}"
                    for address in RECIPIENTS)
# SPF and DMARC of this lab domain pass for the client: the full inbound path.
INBOUND_SENDER = "loadgen@spf-pass.test"
SUBMISSION_USER = "alice@example.test"
IMAP_USER = "bob@example.test"


def systemd_flags(path=ROOT / "lab/systemd-container.yml"):
    """docker run's flags for a systemd container, from the lab's one definition."""
    flags = yaml.safe_load(path.read_text())["lab_systemd_container"]
    return ([arg for cap in flags["capabilities"] for arg in ("--cap-add", cap)]
            + [arg for opt in flags["security_opts"] for arg in ("--security-opt", opt)]
            + [f"--cgroupns={flags['cgroupns_mode']}"]
            + [arg for volume in flags["volumes"] for arg in ("-v", volume)]
            + [arg for mount in flags["tmpfs"] for arg in ("--tmpfs", mount)])


SYSTEMD_FLAGS = systemd_flags()


class BenchError(Exception):
    pass


def log(text):
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


def run(argv, check=True, env=None, quiet=False):
    result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, **(env or {})}, check=False)
    if check and result.returncode != 0:
        raise BenchError(f"{' '.join(argv[:6])}... exited {result.returncode}:\n"
                         f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def sh(container, script, check=True, env=None):
    argv = ["docker", "exec"]
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    return run(argv + [container, "sh", "-c", script], check=check).stdout


def playbook(name, check=True, log_as=None):
    """Runs a playbook on the bench inventory: (wall seconds, recap by host). With
    log_as, its output (profile_tasks' slowest tasks at the end) is kept in LOG_DIR."""
    start = time.time()
    result = run([ANSIBLE_PLAYBOOK, "-i", INVENTORY, name], check=check)
    if log_as:
        LOG_DIR.mkdir(exist_ok=True)
        (LOG_DIR / f"{log_as}.log").write_text(result.stdout)
    return time.time() - start, bench_report.recap(result.stdout)


def mailbox_files():
    """Messages in the recipients' Maildirs, every folder: cheap enough to poll each
    second while a load runs (found_ids() is the exact account, at the end)."""
    out = sh(MX, f"find {MAILDIRS} -type f \\( -path '*/new/*' -o -path '*/cur/*' \\) | wc -l")
    return int(out.strip())


def found_ids(run_id):
    """The Message-ID of each message of this run in the recipients' Maildirs (one per
    file: a message delivered twice is listed twice)."""
    out = sh(MX, f"find {MAILDIRS} -type f \\( -path '*/new/*' -o -path '*/cur/*' \\) "
                 f"-exec grep -hiF -m1 'Message-ID: <bench.{run_id}.' {{}} +", check=False)
    return sorted(line.split(":", 1)[1].strip() for line in out.splitlines() if ":" in line)


def compare_ids(accepted_ids, found):
    """What was accepted and never found, and what was found more than once or never
    accepted: the sets, not the counts."""
    missing = sorted(set(accepted_ids) - set(found))
    duplicated = sorted({mid for mid in found if found.count(mid) > 1})
    unexpected = sorted(set(found) - set(accepted_ids))
    return missing, duplicated, unexpected


def load(name, port, count, size, sessions, sender, password=None):
    """One SMTP load: sends from the client, follows deliveries on the mail host."""
    run_id = uuid.uuid4().hex[:12]
    cpu_before = unit_usage()
    before = mailbox_files()
    samples, done = [], threading.Event()

    def follow():
        while not done.is_set():
            samples.append((time.time(), mailbox_files() - before))
            done.wait(1)

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        argv = (f"python3 /var/tmp/bench_load.py smtp --host {MX_NAME} --port {port} "
                f"--count {count} --size {size} --sessions {sessions} --run-id {run_id} "
                f"--sender {sender} --recipients {','.join(RECIPIENTS)}")
        sent = json.loads(sh(CLIENT, argv, env={"BENCH_PASSWORD": password} if password else None))
        accepted = len(sent["accepted"])
        log(f"{name}: {accepted} of {count} accepted, waiting for delivery")
        last_progress, last_count = time.time(), -1
        while True:
            delivered = samples[-1][1] if samples else 0
            if delivered >= accepted:
                break
            if delivered != last_count:
                last_progress, last_count = time.time(), delivered
            if time.time() - last_progress > 180:
                break
            time.sleep(0.5)
    finally:
        done.set()
        follower.join()
    delivered_at = next((t for t, n in samples if n >= accepted), None)
    ids = found_ids(run_id)
    missing, duplicated, unexpected = compare_ids(sent["accepted_ids"], ids)
    return {"name": name, "port": port, "sent": count, "size": size, "sessions": sessions,
            "run_id": run_id, "start": sent["start"], "accepted_times": sent["accepted"],
            "refused": sent["refused"], "found": len(set(ids)), "missing": missing,
            "duplicated": duplicated, "unexpected": unexpected, "delivered_at": delivered_at,
            "samples": samples, "cpu": bench_report.cpu_spent(cpu_before, unit_usage())}


def filters_off():
    """Port 25 without milters and policy services; returns what to put back."""
    saved = {key: sh(MX, f"postconf -h {key}").strip()
             for key in ("smtpd_milters", "smtpd_recipient_restrictions")}
    run(["docker", "exec", MX, "postconf", "-e", "smtpd_milters=",
         "smtpd_recipient_restrictions=reject_unlisted_recipient"])
    sh(MX, "postfix reload")
    return saved


def filters_back(saved):
    run(["docker", "exec", MX, "postconf", "-e"] + [f"{k}={v}" for k, v in saved.items()])
    sh(MX, "postfix reload")


def imap_mailbox(count):
    """A folder of COUNT messages written straight into bob's Maildir."""
    sh(MX, f"doveadm mailbox delete -u {IMAP_USER} Bench >/dev/null 2>&1; "
           f"doveadm mailbox create -u {IMAP_USER} Bench")
    path = sh(MX, f"doveadm mailbox path -u {IMAP_USER} Bench").strip()
    script = (
        "import os,sys,time\n"
        "path,count=sys.argv[1],int(sys.argv[2])\n"
        "body=('Subject: folder message {0}\\nFrom: <loadgen@spf-pass.test>\\n'\n"
        "      'To: <bob@example.test>\\nMessage-ID: <folder.{0}@spf-pass.test>\\n'\n"
        "      'Date: Mon, 2 Nov 2026 10:00:00 +0100\\n\\n'+'x'*3800+'\\n')\n"
        "now=int(time.time())\n"
        "for i in range(count):\n"
        "    data=body.format(i).encode()\n"
        "    name=f'{now}.M{i}P1.bench,S={len(data)}:2,S'\n"
        "    with open(os.path.join(path,'cur',name),'wb') as f: f.write(data)\n")
    run(["docker", "exec", MX, "python3", "-c", script, path, str(count)])
    sh(MX, f"chown -R vmail:vmail '{path}'")
    return path


def imap_fetch(path, cold):
    dropped = False
    if cold:
        sh(MX, f"rm -f '{path}'/dovecot.index* '{path}'/dovecot-uidlist")
        try:
            subprocess.run(["sync"], check=True)
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            dropped = True
        except OSError:
            pass
    password = lab_passwords()[IMAP_USER]
    result = json.loads(sh(CLIENT, f"python3 /var/tmp/bench_load.py imap --host {MX_NAME} "
                                   f"--user {IMAP_USER} --mailbox Bench",
                           env={"BENCH_PASSWORD": password}))
    result["page_cache_dropped"] = dropped
    return result


# Per systemd unit: proportional resident memory (PSS: a shared page counted once,
# shared among its users) and CPU seconds, the exited children's included (a process's
# cutime and cstime hold those of the children it has waited for).
UNIT_USAGE = """
import json, os, subprocess
tick = os.sysconf("SC_CLK_TCK")
units = {}
for line in subprocess.run(["ps", "-eo", "pid=,unit="], capture_output=True,
                           text=True).stdout.splitlines():
    pid, unit = line.split()
    if unit == "-":
        continue
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            pss = sum(int(l.split()[1]) for l in f if l.startswith("Pss:"))
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = sum(int(v) for v in fields[11:15]) / tick
    except (OSError, ValueError):
        continue
    usage = units.setdefault(unit, {"pss_kib": 0, "cpu_s": 0.0})
    usage["pss_kib"] += pss
    usage["cpu_s"] += cpu
print(json.dumps(units))
"""


def unit_usage():
    return json.loads(run(["docker", "exec", MX, "python3", "-c", UNIT_USAGE]).stdout)


def footprint():
    return {"units": {unit: usage["pss_kib"] for unit, usage in sorted(
                unit_usage().items(), key=lambda item: -item[1]["pss_kib"])},
            "disk_mx": int(sh(MX, "du -sxk / | cut -f1").strip())}


def floor(image, packages):
    """Plain apt-get of the mail host's packages in an identical fresh container."""
    run(["docker", "rm", "-f", FLOOR], check=False)
    run(["docker", "run", "-d", "--name", FLOOR, "--network", "mailbundle-bench"]
        + SYSTEMD_FLAGS + [image])
    try:
        sh(FLOOR, "systemctl is-system-running --wait >/dev/null || true")
        base = set(sh(FLOOR, "dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n'").split("\n"))
        wanted = sorted(bench_report.installed(packages) - bench_report.installed(base))
        disk_base = int(sh(FLOOR, "du -sxk / | cut -f1").strip())
        start = time.time()
        # Postfix first, as the roles do: spamass-milter's postinst needs its user.
        install = "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends"
        sh(FLOOR, f"apt-get update -qq && {install} postfix >/dev/null && "
                  f"{install} {' '.join(wanted)} >/dev/null")
        took = time.time() - start
        disk_floor = int(sh(FLOOR, "du -sxk / | cut -f1").strip())
    finally:
        run(["docker", "rm", "-f", FLOOR], check=False)
    return {"seconds": took, "packages": len(wanted), "disk_base": disk_base,
            "disk_floor": disk_floor}


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    docker = run(["docker", "version", "--format", "{{.Server.Version}}"], check=False).stdout
    commit = run(["git", "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
    # A run of changes not yet committed must not pass for a run of HEAD.
    if commit and run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                       ":!BENCHMARKS.md", ":!benchmarks-throughput.svg"],
                      check=False).stdout.strip():
        commit += " with uncommitted changes"
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem / 1048576, 1),
            "kernel": platform.release(), "docker": docker.strip(), "commit": commit or "?",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def on_lab(messages):
    """Points the loads at the lab's containers (inventory/lab), which must be running.
    The lab keeps the role's sending limit, so the 587 load must stay under it."""
    global MX, CLIENT  # noqa: PLW0603 (the loads' targets, set once before they run)
    groups = yaml.safe_load((LAB / "hosts.yml").read_text())["all"]["children"]
    MX = next(iter(groups["mailservers"]["hosts"].values()))["ansible_host"]
    CLIENT = next(iter(groups["lab_clients"]["hosts"].values()))["ansible_host"]
    limit = min(recipients for recipients, _ in yaml.safe_load(
        (ROOT / "roles/ratelimit/defaults/main.yml").read_text())["ratelimit_limits"])
    if messages >= limit:
        raise BenchError(f"--on-lab: {SUBMISSION_USER} may send to {limit} recipients an hour "
                         f"on the lab (the ratelimit role's default); use --messages below that")
    for container in (MX, CLIENT):
        if run(["docker", "inspect", "-f", "{{.State.Running}}", container],
               check=False).stdout.strip() != "true":
            raise BenchError(f"--on-lab: the lab's {container} is not running (make lab first)")


def bench(args):
    results = {"machine": machine(), "params": vars(args).copy(), "failures": []}
    image = f"debian-systemd:{os.environ.get('LAB_DISTRO', 'trixie')}"
    results["image"] = image
    if args.loads_only:
        return results
    log("removing what an earlier bench left, creating the bench containers")
    playbook("lab/playbooks/down.yml")
    run(["docker", "rm", "-f", FLOOR], check=False)
    playbook("lab/playbooks/up.yml")
    log("lab support hosts (resolver, ACME CA, client)")
    playbook("lab/playbooks/support.yml")

    log("1. site.yml on the fresh mail host")
    took, recap = playbook("site.yml", log_as="site-fresh")
    results["deploy"] = {"seconds": took, "recap": recap.get(MX_NAME, {})}
    log(f"   {took:.0f} s; again, to see it change nothing")
    took, recap = playbook("site.yml", log_as="site-again")
    results["rerun"] = {"seconds": took, "recap": recap.get(MX_NAME, {})}
    if results["rerun"]["recap"].get("changed", -1) != 0:
        results["failures"].append(f"second site.yml changed something: {recap}")
    disk_mx = int(sh(MX, "du -sxk / | cut -f1").strip())
    packages = set(sh(MX, "dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n'").split("\n"))
    log("   the floor: plain apt-get of the same packages in a fresh container")
    results["floor"] = floor(image, packages)
    results["floor"]["disk_mx_deployed"] = disk_mx

    return results


# A fixed single-core Perl workload of the kind spamd's rules are (regular expressions
# over lines of text), timed on the mail host: the best of five rounds, in seconds. It
# tells a faster machine from a cheaper stack when runs of different days are compared.
YARDSTICK = r"""
use Time::HiRes qw(time);
my $text = join(" ", map { "Word$_ lorem ipsum dolor sit amet, consectetur." } 1 .. 100);
my $best;
for my $round (1 .. 5) {
    my ($start, $n) = (time, 0);
    for (1 .. 8000) { $n++ while $text =~ /\b(?:ipsum|free|money|amet)\w*\b/gi }
    my $took = time - $start;
    $best = $took if !defined $best || $took < $best;
}
printf "%.3f\n", $best;
"""


def yardstick():
    return float(run(["docker", "exec", MX, "perl", "-e", YARDSTICK]).stdout.strip())


def bench_mail(args, results):
    """Steps 2 to 5, on the bench containers as they are."""
    results["machine"]["yardstick"] = yardstick()
    run(["docker", "cp", str(ROOT / "scripts/bench_load.py"), f"{CLIENT}:/var/tmp/bench_load.py"])
    size, count, sessions = args.size, args.messages, args.sessions
    log(f"2. port 25, full pipeline: {count} messages of {size} bytes, {sessions} sessions")
    results["loads"] = [load("port 25, full pipeline", 25, count, size, sessions, INBOUND_SENDER)]
    log("   port 25 with the milters and policy services off (the ceiling)")
    saved = filters_off()
    try:
        results["loads"].append(load("port 25, filters off", 25, count, size, sessions,
                                     INBOUND_SENDER))
    finally:
        filters_back(saved)
    log("3. port 587, STARTTLS and AUTH")
    results["loads"].append(load("port 587, STARTTLS + AUTH", 587, count, size, sessions,
                                 SUBMISSION_USER,
                                 lab_passwords()[SUBMISSION_USER]))
    for item in results["loads"]:
        if item["refused"] or item["missing"] or item["duplicated"] or item["unexpected"] \
                or item["found"] != item["sent"]:
            results["failures"].append(
                f"{item['name']}: sent {item['sent']}, accepted {len(item['accepted_times'])}, "
                f"found {item['found']}; missing {item['missing'][:3]}, found twice "
                f"{item['duplicated'][:3]}, found but not accepted {item['unexpected'][:3]}; "
                f"refused: {item['refused'][:3]}")

    log(f"4. IMAP: a folder of {args.imap_messages} messages")
    path = imap_mailbox(args.imap_messages)
    results["imap"] = {"messages": args.imap_messages, "cold": imap_fetch(path, cold=True),
                       "warm": imap_fetch(path, cold=False)}
    for kind in ("cold", "warm"):
        if results["imap"][kind]["headers"] != args.imap_messages:
            results["failures"].append(f"IMAP {kind}: {results['imap'][kind]['headers']} "
                                       f"headers of {args.imap_messages}")
    log("5. footprint")
    results["footprint"] = footprint()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    parser.add_argument("--messages", type=int, default=int(env("BENCH_MESSAGES", 2000)))
    parser.add_argument("--size", type=int, default=int(env("BENCH_SIZE", 4096)))
    parser.add_argument("--sessions", type=int, default=int(env("BENCH_SESSIONS", 10)))
    parser.add_argument("--imap-messages", type=int,
                        default=int(env("BENCH_IMAP_MESSAGES", 10000)))
    parser.add_argument("--output", default=env("BENCH_OUTPUT", "BENCHMARKS.md"))
    parser.add_argument("--keep", action="store_true", default=bool(env("BENCH_KEEP")),
                        help="leave the bench containers running")
    parser.add_argument("--loads-only", action="store_true",
                        help="on containers kept by --keep: steps 2 to 5 only (for tuning "
                             "the running services; the table then has no deployment rows)")
    parser.add_argument("--on-lab", action="store_true", default=bool(env("BENCH_ON_LAB")),
                        help="steps 2 to 5 on the running lab (make lab) instead; the lab "
                             "is left running, the bench's messages in its mailboxes")
    args = parser.parse_args()
    if min(args.messages, args.size, args.sessions, args.imap_messages) < 1:
        parser.error("every count and size must be at least 1")
    args.loads_only = args.loads_only or args.on_lab
    start = time.time()
    results = None
    try:
        if args.on_lab:
            on_lab(args.messages)
        results = bench(args)
        bench_mail(args, results)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    finally:
        if not (args.keep or args.loads_only):
            log("removing the bench containers")
            playbook("lab/playbooks/down.yml", check=False)
    results["wall_seconds"] = time.time() - start
    table = bench_report.table(results)
    print("\n" + table)
    output = ROOT / args.output
    bench_report.write(output, results, table)
    LOG_DIR.mkdir(exist_ok=True)
    (LOG_DIR / "results.json").write_text(json.dumps(results, indent=1))
    log(f"written: {output} and {output.with_name('benchmarks-throughput.svg')}; "
        f"every figure and the site.yml runs' output: {LOG_DIR}")
    for failure in results["failures"]:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
