"""Mitogen's linear strategy, named in ansible.cfg (strategy = mitogen_linear).

Mitogen keeps one Python interpreter per host for the whole run, so a task no longer
starts Python and imports Ansible's module code from a zip on the host (about 0.4 s of
every task over the docker connection). An unchanged site.yml on the bench host took
77 s instead of 230 s. This file only loads Mitogen's own plugin from wherever pip put
the package, so ansible.cfg names no path inside a virtualenv.

Without Mitogen, the run stops here with what to do: install requirements.txt, or
run with ANSIBLE_STRATEGY=linear (Ansible's own strategy; same result, slower).
"""
from __future__ import annotations

__all__ = ["StrategyModule"]

try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule
except ImportError as exc:
    from ansible.errors import AnsibleError

    raise AnsibleError(
        "ansible.cfg runs the plays with Mitogen (strategy = mitogen_linear), which is "
        "not installed for this Ansible: pip install -r requirements.txt, or run with "
        "ANSIBLE_STRATEGY=linear") from exc
