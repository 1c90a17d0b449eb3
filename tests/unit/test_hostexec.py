"""The checks' command server (molecule/default/tests/hostexec.py), run on this machine
in place of a container: what testinfra's own docker backend would answer, and no
silent second run of a command when the server dies under it."""

import pathlib
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "molecule/default/tests"))
import hostexec  # noqa: E402


@pytest.fixture
def backend():
    local = hostexec.ExecServerBackend("local", launcher=[sys.executable, "-c", hostexec.SERVER])
    yield local
    local.close()


def test_answers_as_sh_would_with_status_and_both_streams(backend):
    done = backend.run("printf 'out\\n'; printf 'err' >&2; exit 3")
    assert (done.rc, done.stdout, done.stderr) == (3, "out\n", "err")
    quoted = backend.run("echo %s %s", "it's; $(not run)", "x")
    assert quoted.stdout == "it's; $(not run) x\n"
    raw = backend.run("printf '\\377\\000\\n'")
    assert raw.stdout_bytes == b"\xff\x00\n"


def test_one_server_runs_every_command_and_keeps_no_state_between_them(backend):
    first = backend.run("echo $PPID; cd /; X=1")
    second = backend.run("echo $PPID; pwd; echo ${X:-unset}")
    server = first.stdout.split()[0]
    assert second.stdout.split() == [server, second.stdout.split()[1], "unset"]


def test_a_daemon_left_in_the_background_does_not_hold_the_answer(backend):
    start = time.monotonic()
    done = backend.run("sleep 30 & echo started")
    assert done.stdout == "started\n"
    assert time.monotonic() - start < 20
    backend.run("kill " + backend.run("pgrep -f '^sleep 30$' | head -1").stdout.strip())


def test_a_server_gone_between_commands_is_started_again(backend):
    server = backend.run("echo $PPID").stdout.strip()
    backend._server.kill()
    backend._server.wait()
    again = backend.run("echo $PPID")
    assert again.rc == 0 and again.stdout.strip() != server


def test_a_server_dying_under_a_command_is_an_error_and_the_command_is_not_rerun(backend, tmp_path):
    marker = tmp_path / "runs"
    with pytest.raises(hostexec.ServerGone, match="ended while running"):
        backend.run(f"echo run >> {marker}; kill -9 $PPID; sleep 5")
    assert marker.read_text() == "run\n"
    assert backend.run("echo back").stdout == "back\n"
