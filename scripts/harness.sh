#!/usr/bin/env bash
# Everything `make` does: a Python virtualenv, a Docker engine, the base images, then
# the lab or the tests. Each step reuses what is already there and prints its duration.
#
#   scripts/harness.sh test        lint, unit tests, every Molecule scenario
#   scripts/harness.sh test-quick  lint, unit tests, molecule default on Debian 13 (kept), checks matching $K
#   scripts/harness.sh verify      the checks matching $K again, on the kept containers
#   scripts/harness.sh lint        yamllint, ansible-lint and ruff only
#   scripts/harness.sh lab         create the lab containers and deploy site.yml
#   scripts/harness.sh lab-down    remove the lab containers and network
#   scripts/harness.sh bench       deployment, throughput and footprint (scripts/bench.py)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
# Tools (and the ansible-playbook that Molecule and the tests call) come from the venv.
export PATH="$VENV/bin:$PATH"
# Debian releases every scenario runs on; the first is the default.
DISTROS="${MOLECULE_DISTROS:-trixie bookworm}"

STAGES=()
SUITE_START=$SECONDS
# Every stage's output is kept in .artifacts/logs/<command>/ too (one folder per
# command: make test's lab check runs make lab inside it); what a failed stage printed
# about its failure (failed tests, failed tasks) is repeated at the very end.
LOGDIR="${HARNESS_LOGDIR:-$ROOT/.artifacts/logs/${1:-none}}"
mkdir -p "$LOGDIR"
FAILURES="$LOGDIR/failures.txt"
: >"$FAILURES"

log_name() {  # log_name STAGE-NAME: a file name for the stage's log
    printf '%s/%s.log' "$LOGDIR" "$(printf '%s' "$1" | tr -c 'A-Za-z0-9' '-' | tr -s '-' | sed 's/-$//')"
}

note_failure() {  # note_failure STAGE-NAME LOG: keep the lines that say what failed
    {
        printf -- '--- %s (whole log: %s)\n' "$1" "${2#"$ROOT"/}"
        # Colours and Molecule's box off; pytest's FAILED/ERROR summary lines, Ansible's
        # fatal: lines (with the next lines: Molecule wraps them), assertion lines.
        sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^ *│ \{0,1\}//' "$2" \
            | grep -A2 -E '^FAILED [^ ]*::|^ERROR |^(fatal|failed): \[|^E +(assert|AssertionError)' \
            | grep -v '^--$' | cut -c1-240 | tail -n 20 || true
    } >>"$FAILURES"
}

stage() {  # stage NAME COMMAND... : run a step, time it, keep the table for the summary
    local name="$1" start=$SECONDS rc=0
    shift
    printf '\n==> %s\n' "$name"
    local log
    log="$(log_name "$name")"
    # Shown as it comes, and kept; the command runs in this shell, not a subshell. tee's
    # PID is taken before the command runs: a job the command starts would change $!.
    local out tee_pid
    exec {out}> >(tee "$log")
    tee_pid=$!
    "$@" >&"$out" 2>&1 || rc=$?
    exec {out}>&-
    finish_tee "$tee_pid"
    [ $rc -eq 0 ] || note_failure "$name" "$log"
    local took=$((SECONDS - start))
    STAGES+=("$(printf '%-40s %5ss  %s' "$name" "$took" "$([ $rc -eq 0 ] && echo ok || echo FAILED)")")
    printf '<== %s: %ss (%s)\n' "$name" "$took" "$([ $rc -eq 0 ] && echo ok || echo "exit $rc")"
    return $rc
}

finish_tee() {  # finish_tee PID: let a stage's tee write out what is left, then end it
    # tee ends when nothing holds its pipe any more. A process the stage left running
    # (a daemon it started) may hold it for ever: tee gets a few seconds to drain the
    # pipe, then it is stopped, and the stage goes on.
    local i
    for i in $(seq 1 50); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

detach() {  # detach LOG COMMAND...: start a daemon in a session of its own, print its PID
    # Its output goes to LOG and it inherits no other file descriptor (Python's
    # close_fds), so it holds none of our pipes: a stage's tee, make's, CI's.
    python3 - "$@" <<'PY'
import subprocess, sys
with open(sys.argv[1], "ab") as log:
    print(subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log,
                           stderr=subprocess.STDOUT, start_new_session=True,
                           close_fds=True).pid)
PY
}

# Lanes: sequences of stages that run side by side, each lane in a background
# subshell, its stages one after another. A stage's output goes to its log; one line
# says when it starts and ends, and lanes_wait prints each log whole, in the order the
# stages were declared, and records each with the time it took itself.
LANE_DIR=""
LANE_PIDS=()
LANE_JOBS=()
lane() {  # lane [--nice N] JOB...: run the jobs (see job_name, job_run) one after another, in the background
    [ -n "$LANE_DIR" ] || LANE_DIR="$(mktemp -d)"
    local nice=0
    if [ "${1:-}" = --nice ]; then nice="$2"; shift 2; fi
    local first=${#LANE_JOBS[@]}
    LANE_JOBS+=("$@")
    (
        local i job start rc
        # A lane that is not the longest yields the CPU to the one that is (its own
        # processes, not the containers': those run under the Docker engines).
        [ "$nice" -eq 0 ] || renice -n "$nice" -p "$BASHPID" >/dev/null
        for i in $(seq "$first" $((first + $# - 1))); do
            job="${LANE_JOBS[$i]}" start=$SECONDS rc=0
            printf '\n==> %s: started beside the others (output follows when all end)\n' "$(job_name "$job")"
            job_run "$job" >"$LANE_DIR/$i.log" 2>&1 </dev/null || rc=$?
            echo "$rc $((SECONDS - start))" >"$LANE_DIR/$i.result"
            printf '<== %s: %ss (%s)\n' "$(job_name "$job")" "$((SECONDS - start))" \
                "$([ $rc -eq 0 ] && echo ok || echo "exit $rc")"
        done
    ) &
    LANE_PIDS+=($!)
}

lanes_wait() {  # wait for every lane, then print and record each stage
    [ ${#LANE_PIDS[@]} -gt 0 ] || return 0
    local pid i rc took result=0 name log
    for pid in "${LANE_PIDS[@]}"; do wait "$pid" || true; done
    LANE_PIDS=()
    for i in "${!LANE_JOBS[@]}"; do
        name="$(job_name "${LANE_JOBS[$i]}")"
        read -r rc took <"$LANE_DIR/$i.result" 2>/dev/null || { rc=1 took="?"; }
        printf '\n==> %s (ran beside the others)\n' "$name"
        log="$(log_name "$name")"
        mv "$LANE_DIR/$i.log" "$log" 2>/dev/null || : >"$log"
        cat "$log"
        [ "$rc" -eq 0 ] || { note_failure "$name" "$log"; result=1; }
        STAGES+=("$(printf '%-40s %5ss  %s' "$name" "$took" "$([ "$rc" -eq 0 ] && echo ok || echo FAILED)")")
        printf '<== %s: %ss (%s)\n' "$name" "$took" "$([ "$rc" -eq 0 ] && echo ok || echo "exit $rc")"
    done
    LANE_JOBS=()
    rm -rf "$LANE_DIR"
    LANE_DIR=""
    return $result
}

summary_checks() {  # summary_checks TOTAL-SECONDS: the checks per stage, and the time against CI's limit
    if compgen -G "$JUNIT/*.counts" >/dev/null; then
        printf '\n%-40s %5s %7s %7s %8s\n' "checks (lists: tests/checks/)" "run" "passed" "failed" "skipped"
        local counts
        for counts in "$JUNIT"/*.counts; do
            # shellcheck disable=SC2046  # the four counts, one word each
            printf '%-40s %5s %7s %7s %8s\n' "$(basename "$counts" .counts)" $(cat "$counts")
        done
    fi
    printf "\nof CI's limit: %ss of 5400s (%s%%); the budget is 2400s\n" "$1" "$(($1 * 100 / 5400))"
    if [ "$1" -gt 3600 ]; then
        printf "WARNING: %ss is over 3600s, two thirds of CI's 5400s: on a slower machine CI may not finish\n" "$1"
    fi
}

summary() {
    local rc=$?
    lanes_wait || rc=$?
    printf '\n%-40s %6s  %s\n' "stage" "time" "result"
    printf '%s\n' "${STAGES[@]}"
    local total=$((SECONDS - SUITE_START))
    printf '%-40s %5ss  %s\n' "total" "$total" "$([ $rc -eq 0 ] && echo ok || echo FAILED)"
    if [ "${SUITE:-}" = test ]; then
        summary_checks "$total"
    fi
    local passed failed
    passed="$(printf '%s\n' "${STAGES[@]}" | grep -c ' ok$' || true)"
    failed="$(printf '%s\n' "${STAGES[@]}" | grep -c ' FAILED$' || true)"
    printf 'stages: %s passed, %s failed\n' "$passed" "$failed"
    if [ -s "$FAILURES" ]; then
        printf '\nwhat failed:\n'
        cat "$FAILURES"
    fi
    return $rc
}

apt_install() {  # install Debian packages, refreshing the lists once per run
    if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
        echo "missing: $* -- install it (this script installs it only as root on Debian)" >&2
        return 1
    fi
    # make test installs from two stages at once (the virtualenv's and the engines'):
    # one apt-get at a time, the other waits for the lock instead of failing on it.
    if [ -z "${__APT_UPDATED:-}" ]; then
        flock /var/lock/mailbundle-apt apt-get update -qq
        __APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive flock /var/lock/mailbundle-apt \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_venv() {
    local stamp="$VENV/.requirements.sha256" want
    want="$(sha256sum requirements.txt | cut -d' ' -f1)"
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        echo "virtualenv $VENV: up to date, kept"
        return 0
    fi
    python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
    echo "$want" >"$stamp"
    echo "virtualenv $VENV: installed from requirements.txt"
}

ensure_docker() {
    if docker info >/dev/null 2>&1; then
        echo "docker engine: answering, reused"
        return 0
    fi
    command -v dockerd >/dev/null || apt_install docker.io
    command -v docker >/dev/null || apt_install docker-cli
    if [ "$(id -u)" != 0 ]; then
        echo "no Docker engine answers and we are not root: start one, then rerun" >&2
        return 1
    fi
    echo "docker engine: starting dockerd in the background (log: /var/log/dockerd.log)"
    echo "docker engine: dockerd is PID $(detach /var/log/dockerd.log dockerd)"
    local start=$SECONDS
    while [ $((SECONDS - start)) -lt 60 ]; do
        docker info >/dev/null 2>&1 && { echo "docker engine: up after $((SECONDS - start))s"; return 0; }
        sleep 1
    done
    tail -n 20 /var/log/dockerd.log >&2
    echo "docker engine: did not answer within 60s" >&2
    return 1
}

# The second release's Molecule runs go beside the first's on a second Docker engine
# (cmd_test says why). It writes no iptables rules, so the first engine's stay as they
# are; its networks take addresses from a pool of their own, and ensure_second_engine
# lets them through to the mirror (NAT). Its default bridge is one of its own too:
# dockerd started with --bridge=none deletes the host's docker0, the first engine's.
# Its containers run in a control group of their own (--cgroup-parent): under the
# kernel's fair scheduler that group weighs as much as all of the first engine's
# containers together, so the longest lane's hosts are not crowded out by the others'.
SECOND_ENGINE=mailbundle-docker-2
SECOND_DOCKER_HOST="unix:///var/run/$SECOND_ENGINE.sock"
SECOND_POOL="${MAILBUNDLE_SECOND_POOL:-10.213.0.0/16}"
SECOND_BRIDGE=mbdocker2
SECOND_BRIDGE_ADDRESS="${MAILBUNDLE_SECOND_BRIDGE:-10.214.0.1/24}"

second_engine_up() {
    DOCKER_HOST="$SECOND_DOCKER_HOST" docker info >/dev/null 2>&1
}

ensure_second_engine() {
    if [ "$(id -u)" != 0 ]; then
        echo "second docker engine: not root, none started: the releases run one after another"
        return 0
    fi
    if second_engine_up; then
        echo "second docker engine: answering, reused"
    else
        mkdir -p "/var/lib/$SECOND_ENGINE"
        if ! ip link show "$SECOND_BRIDGE" >/dev/null 2>&1; then
            ip link add name "$SECOND_BRIDGE" type bridge
            ip address add "$SECOND_BRIDGE_ADDRESS" dev "$SECOND_BRIDGE"
            ip link set "$SECOND_BRIDGE" up
        fi
        echo "second docker engine: dockerd is PID $(detach "/var/log/$SECOND_ENGINE.log" dockerd \
            --host "$SECOND_DOCKER_HOST" --data-root "/var/lib/$SECOND_ENGINE" \
            --exec-root "/var/run/$SECOND_ENGINE" --pidfile "/var/run/$SECOND_ENGINE.pid" \
            --bridge "$SECOND_BRIDGE" --iptables=false --ip-masq=false \
            --cgroup-parent "/$SECOND_ENGINE" \
            --default-address-pool "base=$SECOND_POOL,size=24") (log: /var/log/$SECOND_ENGINE.log)"
        local start=$SECONDS
        until second_engine_up; do
            if [ $((SECONDS - start)) -ge 60 ]; then
                tail -n 20 "/var/log/$SECOND_ENGINE.log" >&2
                echo "second docker engine: did not answer within 60s" >&2
                return 1
            fi
            sleep 1
        done
        echo "second docker engine: up after $((SECONDS - start))s"
    fi
    # Its containers reach each other (the first engine's FORWARD policy drops what it
    # does not know) and, masqueraded, the package mirror; nothing reaches them unasked.
    sysctl -qw net.ipv4.ip_forward=1
    iptables -C FORWARD -s "$SECOND_POOL" -j ACCEPT 2>/dev/null \
        || iptables -I FORWARD -s "$SECOND_POOL" -j ACCEPT
    iptables -C FORWARD -d "$SECOND_POOL" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT 2>/dev/null \
        || iptables -I FORWARD -d "$SECOND_POOL" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    iptables -t nat -C POSTROUTING -s "$SECOND_POOL" ! -d "$SECOND_POOL" -j MASQUERADE 2>/dev/null \
        || iptables -t nat -A POSTROUTING -s "$SECOND_POOL" ! -d "$SECOND_POOL" -j MASQUERADE
    # The base images, as the first engine has them (same image IDs).
    local image want
    for image in $(docker images --format '{{.Repository}}:{{.Tag}}' debian-systemd); do
        want="$(docker image inspect -f '{{.Id}}' "$image")"
        if [ "$(DOCKER_HOST="$SECOND_DOCKER_HOST" docker image inspect -f '{{.Id}}' "$image" 2>/dev/null)" = "$want" ]; then
            echo "second docker engine: image $image present, kept"
        else
            docker save "$image" | DOCKER_HOST="$SECOND_DOCKER_HOST" docker load -q >/dev/null
            echo "second docker engine: image $image copied from the first engine"
        fi
    done
}

ensure_images() {
    command -v debootstrap >/dev/null || apt_install debootstrap
    scripts/build-images.sh trixie bookworm
}

# Every Python file ruff should read: the *.py files it finds itself (ruff.toml), and the
# programs without the suffix that the roles install and the scripts folder holds, known
# by their first line.
python_programs() {
    local file
    for file in roles/*/files/* lab/roles/*/files/* scripts/*; do
        [ -f "$file" ] && [ "${file%.py}" = "$file" ] && head -1 "$file" | grep -q '^#!.*python' && echo "$file"
    done
    return 0
}

run_lint() {
    local programs
    programs="$(python_programs)"
    # shellcheck disable=SC2086  # one path per word
    "$VENV/bin/yamllint" --strict . && "$VENV/bin/ansible-lint" --strict && "$VENV/bin/ruff" check . $programs \
        && "$VENV/bin/python" scripts/role_docs.py --check
}

# Each stage that runs pytest writes JUnit XML here; scripts/checks.py compares it with
# the stage's list in tests/checks/ and leaves the counts for the summary.
JUNIT="$ROOT/.artifacts/junit"

run_checked() {  # run_checked LIST COMMAND...: run a pytest stage, then compare its checks
    local list="$1" rc=0
    shift
    rm -f "$JUNIT/$list.xml" "$JUNIT/$list.counts"
    "$@" || rc=$?
    "$VENV/bin/python" scripts/checks.py verify "$list" "$JUNIT/$list.xml" || rc=$((rc ? rc : 1))
    return $rc
}

run_unit() {
    run_checked unit "$VENV/bin/pytest" -q -p no:cacheprovider -n auto --junitxml="$JUNIT/unit.xml" tests/unit
}

per_release() {  # per_release SCENARIO: true if its platforms name MOLECULE_DISTRO (run once per release)
    grep -q MOLECULE_DISTRO "molecule/$1/molecule.yml"
}

checks_list() {  # checks_list SCENARIO DISTRO: the list (and results file) of a Molecule run
    if per_release "$1"; then echo "$1-$2"; else echo "$1"; fi
}

run_molecule() {  # run_molecule SCENARIO DISTRO
    # molecule.yml's verifier writes $JUNIT/<list>.xml (MOLECULE_PROJECT_DIRECTORY).
    run_checked "$(checks_list "$1" "$2")" env MOLECULE_DISTRO="$2" "$VENV/bin/molecule" test -s "$1"
}

cmd_test() {
    trap summary EXIT
    SUITE=test
    rm -rf "$JUNIT"
    # The engines and the base images come beside the virtualenv (downloads and disk
    # against CPU; docs/testing.md says what each stage took).
    lane engines
    stage "virtualenv" ensure_venv
    lanes_wait
    # Every deployment side by side, in three lanes (after their converges they mostly
    # wait: on the checks' timers, on the network):
    # 1. the lab check (scripts/check_lab.sh): make lab twice, the default scenario's
    #    checks against the lab, which is the same inventory data on the same release
    #    (Debian 13, LAB_DISTRO): one deployment instead of a Molecule one beside make
    #    lab's; then the real server beside the lab, make bench's loads, lab-down;
    # 2. the scenarios whose platforms name MOLECULE_DISTRO on the other releases
    #    (Debian 12's default scenario), on the second engine (Molecule names
    #    containers after their hosts, and one engine holds one container of a name);
    # 3. the scenarios that fix their hosts' releases themselves (multihost: A on 13,
    #    B on 12), once; then the unit tests and the lint, where the other lanes'
    #    checks mostly wait: the shortest lane, at a lower priority (nice); Debian 12's
    #    containers get a CPU share of their own (ensure_second_engine).
    # Without a second engine, the first lane runs the other releases after the lab.
    local first="${DISTROS%% *}" lab_distro="${LAB_DISTRO:-trixie}" each_release=() fixed=() scenario distro
    for scenario in $(ls molecule); do
        [ -f "molecule/$scenario/molecule.yml" ] || continue
        if per_release "$scenario"; then
            each_release+=("$scenario")
        else
            fixed+=("molecule:$scenario:$first")
        fi
    done
    local lane1=(lab) lane2=() lane3=("${fixed[@]}") second=""
    second_engine_up && second=yes
    for scenario in "${each_release[@]}"; do
        for distro in $DISTROS; do
            # The lab check runs the default scenario's checks on the lab's release.
            [ "$scenario:$distro" != "default:$lab_distro" ] || continue
            if [ "$distro" = "$first" ] || [ -z "$second" ]; then
                lane1+=("molecule:$scenario:$distro")
            else
                lane2+=("molecule:$scenario:$distro:second")
            fi
        done
    done
    lane3+=(unit lint)
    lane "${lane1[@]}"
    [ ${#lane2[@]} -eq 0 ] || lane "${lane2[@]}"
    lane --nice 5 "${lane3[@]}"
    lanes_wait
}

job_name() {  # job_name JOB: the stage's name in the log and the summary
    local scenario distro
    case "$1" in
        engines) echo "docker engines and base images" ;;
        unit) echo "unit tests" ;;
        lint) echo "yamllint + ansible-lint + ruff" ;;
        lab) echo "make lab twice, real server over SSH, default checks (${LAB_DISTRO:-trixie}) on the lab, bench loads, lab-down" ;;
        molecule:*)
            IFS=: read -r _ scenario distro _ <<<"$1"
            if per_release "$scenario"; then
                echo "molecule $scenario ($distro)"
            else
                echo "molecule $scenario (13 and 12)"
            fi ;;
    esac
}

job_run() {  # job_run JOB
    local scenario distro engine
    case "$1" in
        engines) ensure_docker && ensure_images && ensure_second_engine ;;
        unit) run_unit ;;
        lint) run_lint ;;
        lab) scripts/check_lab.sh ;;
        molecule:*)
            IFS=: read -r _ scenario distro engine <<<"$1"
            # Concurrent pytest sessions each get a temporary folder of their own.
            local addopts="--basetemp=$(mktemp -d)/pytest"
            if [ "$engine" = second ]; then
                # Its own engine, its own Molecule state (the same scenario runs on the
                # first engine meanwhile) and its own IPv6 prefix on this host.
                DOCKER_HOST="$SECOND_DOCKER_HOST" PYTEST_ADDOPTS="$addopts" \
                    MOLECULE_EPHEMERAL_DIRECTORY="$HOME/.cache/molecule/mailbundle/$scenario-$distro" \
                    MOLECULE_IPV6_SUBNET="fd42:6d61:696c:4::/64" \
                    run_molecule "$scenario" "$distro"
            else
                PYTEST_ADDOPTS="$addopts" run_molecule "$scenario" "$distro"
            fi ;;
    esac
}

# The loop for working on one part: the containers stay up, so `make verify K=...`
# re-runs checks in seconds; `molecule destroy -s default` removes them. No idempotence
# step and only the checks matching K: CI runs make test, which runs everything.
quick_molecule() {  # quick_molecule ACTION: molecule ACTION -s default on Debian 13
    # pytest reads PYTEST_ADDOPTS (split as a shell would) under Molecule's verifier.
    local addopts="${PYTEST_ADDOPTS:-}"
    [ -z "${K:-}" ] || addopts="$addopts -k $(printf '%q' "$K")"
    MOLECULE_DISTRO=trixie PYTEST_ADDOPTS="$addopts" "$VENV/bin/molecule" "$1" -s default
}

cmd_test_quick() {
    trap summary EXIT
    stage "virtualenv" ensure_venv
    stage "docker engine" ensure_docker
    stage "base images" ensure_images
    stage "yamllint + ansible-lint + ruff" run_lint
    stage "unit tests" run_unit
    stage "molecule default (trixie): converge, kept" quick_molecule converge
    stage "molecule default (trixie): checks matching '${K:-}'" quick_molecule verify
}

cmd_verify() {
    trap summary EXIT
    stage "virtualenv" ensure_venv
    stage "molecule default, kept containers: checks matching '${K:-}'" quick_molecule verify
}

cmd_lint() {
    trap summary EXIT
    stage "virtualenv" ensure_venv
    stage "yamllint + ansible-lint + ruff" run_lint
}

cmd_lab() {
    trap summary EXIT
    stage "virtualenv" ensure_venv
    stage "docker engine" ensure_docker
    stage "base images" ensure_images
    stage "lab containers" "$VENV/bin/ansible-playbook" lab/playbooks/up.yml
    stage "lab CA and client" "$VENV/bin/ansible-playbook" lab/playbooks/support.yml
    stage "site.yml" "$VENV/bin/ansible-playbook" site.yml
    "$VENV/bin/python" scripts/lab_report.py
}

cmd_lab_down() {
    trap summary EXIT
    stage "virtualenv" ensure_venv
    if docker info >/dev/null 2>&1; then
        stage "remove lab" "$VENV/bin/ansible-playbook" lab/playbooks/down.yml
    else
        echo "no Docker engine answers: no lab to remove"
    fi
}

cmd_bench() {
    trap summary EXIT
    stage "virtualenv" ensure_venv
    stage "docker engine" ensure_docker
    stage "base images" ensure_images
    stage "bench" "$VENV/bin/python" scripts/bench.py
}

# Sourced (the unit tests do), it only defines the functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    case "${1:-}" in
        test) cmd_test ;;
        test-quick) cmd_test_quick ;;
        verify) cmd_verify ;;
        lint) cmd_lint ;;
        lab) cmd_lab ;;
        lab-down) cmd_lab_down ;;
        bench) cmd_bench ;;
        *) echo "usage: $0 test|test-quick|verify|lint|lab|lab-down|bench" >&2; exit 2 ;;
    esac
fi
