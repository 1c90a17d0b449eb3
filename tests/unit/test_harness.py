"""scripts/harness.sh, sourced: a stage ends when its command does, and a daemon the
harness starts holds none of its pipes (CI of stop 27 hung for 90 minutes on both)."""
import os
import pathlib
import signal
import subprocess
import time

import pytest

HARNESS = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "harness.sh"


def harness(script, logdir, timeout):
    """Run SCRIPT in bash with the harness's functions defined; its output, or a
    failure naming the hang."""
    try:
        done = subprocess.run(
            ["bash", "-c", f'source "{HARNESS}"\n{script}'],
            env={**os.environ, "HARNESS_LOGDIR": str(logdir)},
            capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"still running after {timeout}s: {hung.stdout!r}")
    assert done.returncode == 0, done.stderr
    return done.stdout


def stop(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def test_a_stage_ends_when_its_command_does_even_if_a_child_it_left_holds_the_pipe(tmp_path):
    # A child holding the stage's stdout for five minutes: the stage must not wait it out.
    # The stage neither waits for it nor stops it: it is not the harness's to stop.
    out = harness("""
        leaves_a_child() { echo before; sleep 300 & CHILD=$!; echo "child $CHILD"; echo after; }
        stage "leaves a child" leaves_a_child
        echo "stage returned"
        if kill -0 "$CHILD"; then echo "child still running"; else echo "child gone"; fi
    """, tmp_path, timeout=60)
    child = int(out.split("child ")[1].split()[0])
    stop(child)
    assert "stage returned" in out
    assert "child still running" in out
    assert "<== leaves a child:" in out
    log = (tmp_path / "leaves-a-child.log").read_text()
    assert "before" in log and "after" in log


def test_a_failed_stage_still_reports_its_failure(tmp_path):
    out = harness("""
        fails() { echo 'fatal: [mx1]: FAILED! => {"msg": "no"}'; return 3; }
        stage "fails" fails || echo "rc $?"
        cat "$FAILURES"
    """, tmp_path, timeout=60)
    assert "rc 3" in out
    assert "<== fails:" in out and "(exit 3)" in out
    assert 'fatal: [mx1]: FAILED! => {"msg": "no"}' in out


def test_a_detached_daemon_holds_only_its_log_and_dev_null(tmp_path):
    # Started from inside a stage, as ensure_docker starts dockerd.
    log = tmp_path / "daemon.log"
    out = harness(f"""
        start() {{ echo "pid $(detach "{log}" sh -c 'echo daemon up; exec sleep 300')"; }}
        stage "start a daemon" start
    """, tmp_path, timeout=60)
    pid = int(out.split("pid ")[1].split()[0])
    try:
        fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        assert fds == {0: "/dev/null", 1: str(log), 2: str(log)}
        assert os.getsid(pid) == pid, "not in a session of its own"
    finally:
        stop(pid)
    for _ in range(50):  # the daemon writes when it gets to it
        if "daemon up" in log.read_text():
            break
        time.sleep(0.1)
    assert "daemon up" in log.read_text()
