"""Testinfra hosts whose commands go through one long-lived `docker exec` per container.

Testinfra's docker backend starts a new `docker exec` for every command: a Docker
client, the daemon, containerd and runc, each time. A scenario's checks run about 900
commands, and make test runs the scenarios side by side on two cores, where that CPU
comes out of every other stage. Here one Python process per container (started by one
`docker exec -i`) runs the commands one after another, as `/bin/sh -c` would, and
answers each with its exit status, stdout and stderr.

A command's result is read when its shell exits, as `docker exec` returns then: a
command that leaves a daemon running in the background does not hold the answer back.
If the server is gone when a command is to be sent (the container was restarted), a new
one is started. If it dies while a command runs, the command's result is unknown: that
is an error, never a silent second run.
"""

import base64
import json
import subprocess
import threading

from testinfra.backend.docker import DockerBackend
from testinfra.host import Host

# Runs in the container, with the container's Python (every host has one for Ansible).
SERVER = r"""
import base64, json, subprocess, sys, tempfile
for line in sys.stdin:
    request = json.loads(line)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        rc = subprocess.run(["/bin/sh", "-c", request["command"]], stdin=subprocess.DEVNULL,
                            stdout=out, stderr=err).returncode
        out.seek(0)
        err.seek(0)
        answer = {"rc": rc, "stdout": base64.b64encode(out.read()).decode(),
                  "stderr": base64.b64encode(err.read()).decode()}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
"""


class ServerGone(RuntimeError):
    """The command server died while a command ran: whether it ran is unknown."""


class ExecServerBackend(DockerBackend):
    """testinfra's docker backend, with one command server per container."""

    def __init__(self, name, *args, launcher=None, **kwargs):
        super().__init__(name, *args, **kwargs)
        user = ["-u", self.user] if self.user is not None else []
        self._launcher = launcher or ["docker", "exec", "-i", *user, self.name, "python3", "-c", SERVER]
        self._server = None
        self._lock = threading.Lock()

    def _start(self):
        self._server = subprocess.Popen(self._launcher, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL)

    def run(self, command, *args, **kwargs):
        cmd = self.get_command(command, *args)
        request = json.dumps({"command": cmd}).encode() + b"\n"
        with self._lock:
            if self._server is None or self._server.poll() is not None:
                self._start()
            try:
                self._server.stdin.write(request)
                self._server.stdin.flush()
                line = self._server.stdout.readline()
            except BrokenPipeError:
                line = b""
            if not line:
                self._server.kill()
                self._server.wait()
                self._server = None
                raise ServerGone(f"{self.name}: the command server ended while running {cmd!r}")
        answer = json.loads(line)
        return self.result(answer["rc"], self.encode(cmd), base64.b64decode(answer["stdout"]),
                           base64.b64decode(answer["stderr"]))

    def close(self):
        with self._lock:
            if self._server is not None:
                self._server.stdin.close()
                self._server.wait(timeout=30)
                self._server = None


_HOSTS = {}


def get_host(name):
    """The container's testinfra Host, one per name (and one command server each)."""
    if name not in _HOSTS:
        _HOSTS[name] = Host(ExecServerBackend(name))
    return _HOSTS[name]


def close_all():
    for host in _HOSTS.values():
        host.backend.close()
    _HOSTS.clear()

