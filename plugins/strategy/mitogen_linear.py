"""Mitogen's linear strategy, named in ansible.cfg (strategy = mitogen_linear).

Mitogen keeps one Python interpreter per host for the whole run, so a task no longer
starts Python and imports Ansible's module code from a zip on the host (about 0.4 s of
every task over the docker connection). An unchanged site.yml on the bench host took
77 s instead of 230 s. This file loads Mitogen's own plugin from wherever pip put the
package, so ansible.cfg names no path inside a virtualenv.

Plays on the control machine itself (`connection: local`: the lab's and Molecule's
container plays) run with Ansible's own linear strategy. Mitogen gains little there,
and it fails on them: an async task's module import never completes (Molecule's
create playbook waits forever), and interpreter discovery ends in "EOF on stream".

Without Mitogen, the run stops here with what to do: install requirements.txt, or
run with ANSIBLE_STRATEGY=linear (Ansible's own strategy; same result, slower).
"""
from __future__ import annotations

__all__ = ["StrategyModule"]

from ansible.plugins.strategy.linear import StrategyModule as LinearStrategyModule

try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import (
        StrategyModule as MitogenStrategyModule,
    )
except ImportError as exc:
    from ansible.errors import AnsibleError

    raise AnsibleError(
        "ansible.cfg runs the plays with Mitogen (strategy = mitogen_linear), which is "
        "not installed for this Ansible: pip install -r requirements.txt, or run with "
        "ANSIBLE_STRATEGY=linear") from exc


class StrategyModule(MitogenStrategyModule):
    """Mitogen for plays on managed hosts, Ansible's linear for `connection: local`."""

    def run(self, iterator, play_context, result=0):
        if iterator._play.connection == "local":
            # Mitogen's run() installs its connection and action wrappers; skip it.
            return LinearStrategyModule.run(self, iterator, play_context)
        return super().run(iterator, play_context, result)
