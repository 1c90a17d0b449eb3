"""Day-2 runbooks: fleet-wide queue, mailbox and canary actions run with pyinfra over
the Ansible inventory (python -m runbooks --help)."""
