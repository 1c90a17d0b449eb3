#!/usr/bin/env bash
# Proves the quick start and is make test's Debian 13 deployment: `make lab` deploys, a
# second `make lab` changes nothing, the lab section's commands work as written, the
# default scenario's checks (molecule/default/tests, every one in tests/checks/
# default-trixie.txt) pass against the lab, the README's path "From the lab to a real
# server" works over SSH on a host beside the lab (its fresh host's dry run included),
# and `make lab-down` removes the lab's containers and network and nothing else. Before
# lab-down, make bench's loads at a small size run on the lab (scripts/bench.py --on-lab): every
# message sent on 25 and 587 must be found in a Maildir and the IMAP fetch must return
# every header. A lab that was already running before this check is left running (with
# the checks' and the loads' messages in it). It may run beside a Molecule scenario
# (make test does): the scenario's containers (label owner=molecule) come and go on
# their own, so only the other containers are compared.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

lab_containers() { docker ps -a --filter label=org.mailbundle.lab=true --format '{{.Names}}' | sort; }
had_lab="$(lab_containers)"
other_containers() {
    docker ps -a --format '{{.Names}} {{.Label "org.mailbundle.lab"}} {{.Label "owner"}}' \
        | awk '$2 != "true" && $NF != "molecule" {print $1}' | sort || true
}
others_before="$(other_containers)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log="$work/log"
# The lab's release (LAB_DISTRO, inventory/lab): its checks' list is default-<release>.
distro="${LAB_DISTRO:-trixie}"

scripts/harness.sh lab >/dev/null
echo "make lab: deployed ($(lab_containers | wc -l) containers)"
scripts/harness.sh lab >"$log" 2>&1 || { cat "$log"; exit 1; }
# The README's command that fetches the lab CA's root, run as written.
ca_root="$(grep -o 'docker exec mailbundle-lab-[a-z]* curl [^`]*/roots/0' README.md | head -1)"
[ -n "$ca_root" ] || { echo "README: the command that fetches the lab CA's root is gone" >&2; exit 1; }
pem="$($ca_root)" || true
grep -q -- "-----BEGIN CERTIFICATE-----" <<<"$pem" || { echo "README's command gave no certificate: $ca_root" >&2; exit 1; }
echo "README's command for the lab CA's root: a certificate"
# The README's command that reads the mail client settings from this machine through
# the published HTTPS port, run as written (the README's text joined across lines).
command -v curl >/dev/null || (source scripts/harness.sh && apt_install curl)
settings="$(tr '\n' ' ' <README.md | grep -o 'curl --resolve autoconfig[^`]*' | head -1)"
[ -n "$settings" ] || { echo "README: the command that reads the client settings is gone" >&2; exit 1; }
xml="$($settings 2>"$work/curl.err")" || true
grep -q "<clientConfig" <<<"$xml" || { cat "$work/curl.err"; echo "README's command gave no client settings: $settings" >&2; exit 1; }
echo "README's command for the client settings from this machine: Thunderbird's XML"
# The README's command that logs in to a lab host, run as written in a pseudo-terminal
# (script(1)); the shell it opens must be the lab host's.
login="$(grep -o 'docker exec -it mailbundle-lab-mx1 bash' README.md | head -1)"
[ -n "$login" ] || { echo "README: the command that logs in to a lab host is gone" >&2; exit 1; }
shell_host="$(printf 'hostname; exit\n' | script -qec "$login" /dev/null \
    | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\r//g' | grep -x 'mx1' || true)"
[ "$shell_host" = mx1 ] || { echo "README's command gave no shell on the lab's mail host: $login" >&2; exit 1; }
echo "README's command for a shell on a lab host: a shell on mx1"
if grep -E 'changed=[1-9]' "$log"; then
    echo "make lab run twice: the second run changed something (above)" >&2
    exit 1
fi
echo "make lab again: $(grep -c 'changed=0' "$log") host recaps, all changed=0"

# The default scenario's checks, against the lab instead of a Molecule deployment of
# the same inventory data on the same release (make test runs the scenario itself on
# Debian 12): its client gets the webmail test's browser as prepare.yml gives it, then
# the checks run as Molecule's verifier runs them (molecule.yml), with the lab's
# inventory; conftest.py takes each host's container from its ansible_host.
# A failure here fails the check at its end, after the real server's checks have run
# too, so one run reports both.
failed=0
.venv/bin/ansible-playbook molecule/default/browser.yml >"$log" 2>&1 || { cat "$log"; exit 1; }
echo "the lab's client: the webmail test's browser installed"
rc=0
MOLECULE_INVENTORY_FILE="$PWD/inventory/lab/hosts.yml" MOLECULE_PROJECT_DIRECTORY="$PWD" MOLECULE_DISTRO="$distro" \
    .venv/bin/pytest -v -p no:cacheprovider --durations 10 --basetemp="$work/pytest-default" \
    --junitxml=".artifacts/junit/default-$distro.xml" molecule/default/tests >"$log" 2>&1 || rc=$?
.venv/bin/python scripts/checks.py verify "default-$distro" ".artifacts/junit/default-$distro.xml" >>"$log" || rc=1
cat "$log"
[ "$rc" -eq 0 ] || failed=1

# "From the lab to a real server", as the README writes it (tests/realserver): a fresh
# host beside the lab, reached over SSH as an admin whose sudo asks for a password, its
# inventory copied from inventory/example; the README's commands of that section run
# as written, then the checks over the wire from the lab's client. It runs after the
# default checks: its fresh host's first restart of OpenDMARC, then of OpenDKIM, failed
# in two runs where it ran beside the other lanes' converges (docs/testing.md).
rc=0
.venv/bin/pytest -p no:cacheprovider -v -s --basetemp="$work/pytest-realserver" \
    --junitxml=.artifacts/junit/realserver.xml tests/realserver >"$log" 2>&1 || rc=$?
.venv/bin/python scripts/checks.py verify realserver .artifacts/junit/realserver.xml >>"$log" || rc=1
grep -E '(PASSED|FAILED|ERROR)$|rc [0-9]+ in [0-9]+s$|^checks of' "$log" || true
[ "$rc" -eq 0 ] || { tail -n 150 "$log"; failed=1; }

# make bench's loads at a small size (make bench itself sends 2,000 per load, on
# containers of its own); its figures go to a file of their own, not BENCHMARKS.md.
# The checks above sent mail as alice, the loads' sender, within the hour: her count
# starts from zero, as after her window (the sending-limit check does the same).
docker exec mailbundle-lab-mx1 python3 -c "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); \
db.execute('DELETE FROM mail_count WHERE id = ?', (sys.argv[2],)); db.commit()" \
    /var/lib/policyd-rate-limit/db.sqlite3 alice@example.test
BENCH_ON_LAB=1 BENCH_MESSAGES=150 BENCH_IMAP_MESSAGES=1000 BENCH_OUTPUT="$work/BENCHMARKS.md" \
    .venv/bin/python scripts/bench.py >"$log" 2>&1 || { cat "$log"; exit 1; }
grep -E '^\| (port|IMAP)' "$log" || true
echo "make bench's loads on the lab: every message found, every IMAP header fetched"

if [ -n "$had_lab" ]; then
    echo "a lab was running before this check: left running, lab-down not exercised"
    exit "$failed"
fi
scripts/harness.sh lab-down >/dev/null
if [ -n "$(lab_containers)" ] || docker network inspect mailbundle-lab >/dev/null 2>&1; then
    echo "make lab-down left lab containers or the lab network behind" >&2
    exit 1
fi
others_after="$(other_containers)"
[ "$others_before" = "$others_after" ] || { echo "make lab-down touched other containers" >&2; exit 1; }
echo "make lab-down: lab containers and network gone, other containers untouched"
[ "$failed" -eq 0 ] || { echo "the real server's checks or the default checks failed (above)" >&2; exit 1; }
