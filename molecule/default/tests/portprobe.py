#!/usr/bin/env python3
"""Which TCP ports of a host answer from here; prints JSON {port: state}.

Copied to the client and attacker hosts by the tests. A state is "open" (the
handshake completed), "refused" (a reset or an ICMP reject) or "timeout" (dropped).
"""

import argparse
import concurrent.futures
import json
import socket


def state(address, family, port, timeout, source=""):
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        if source:
            sock.bind((source, 0))
        try:
            sock.connect((address, port))
        except TimeoutError:
            return "timeout"
        except OSError:
            return "refused"
        return "open"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("address", help="an IPv4 or IPv6 address")
    parser.add_argument("ports", type=int, nargs="+")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--source", default="", help="connect from this address of the host")
    args = parser.parse_args()
    family = socket.AF_INET6 if ":" in args.address else socket.AF_INET
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        states = pool.map(lambda p: state(args.address, family, p, args.timeout, args.source), args.ports)
        print(json.dumps(dict(zip(map(str, args.ports), states, strict=True))))


if __name__ == "__main__":
    main()
