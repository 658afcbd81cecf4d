"""Command line of the local sandbox (the Makefile's sandbox-up, sandbox-down, upgrade-* and demo targets)."""

from __future__ import annotations

import argparse
import sys

from tests.sandbox.core import LBS, MODES, PLAYBOOKS, Sandbox, SandboxError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox", description="Local Kong sandbox: simulated Kong nodes behind a real HAProxy or nginx.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the sandbox and write tests/sandbox/inventory.yml")
    up.add_argument("--mode", choices=MODES, default="dbless")
    up.add_argument("--kong-x", default="3.8.1", help="Kong version X the nodes run (default 3.8.1)")
    up.add_argument("--kong-cp", help="hybrid: the control plane's version (default: X), e.g. Y to roll the DPs only")
    up.add_argument("--lb", choices=LBS, default="haproxy", help="load balancer in front of the proxies (default haproxy)")
    sub.add_parser("down", help="stop everything the sandbox started and remove its runtime state")
    sub.add_parser("status", help="show what runs where")
    upgrade = sub.add_parser("upgrade", help="run an upgrade playbook against the sandbox inventory")
    upgrade.add_argument("--strategy", choices=sorted(PLAYBOOKS), default="rolling")
    upgrade.add_argument("--kong-y", default="3.9.3", help="target Kong version Y (default 3.9.3)")
    upgrade.add_argument("playbook_args", nargs=argparse.REMAINDER, help="further ansible-playbook arguments after --, e.g. -- --check -v")
    demo = sub.add_parser(
        "demo",
        help="sandbox up (DB-less), rolling upgrade X -> Y under load, report",
        description="Exit status: 0 no failed request at the full rate, 1 failed requests, 3 the machine could not send the full rate, other: the playbook's.",
    )
    demo.add_argument("--kong-x", default="3.8.1")
    demo.add_argument("--kong-y", default="3.9.3")
    demo.add_argument("--rate", type=float, default=200.0, help="requests per second through the LB (default 200)")
    args = parser.parse_args(argv)

    sandbox = Sandbox()
    try:
        if args.command == "up":
            sandbox.up(args.mode, args.kong_x, args.kong_cp, lb=args.lb)
        elif args.command == "down":
            sandbox.down()
        elif args.command == "status":
            return 0 if sandbox.status() else 1
        elif args.command == "upgrade":
            extra = [a for a in args.playbook_args if a != "--"]
            return sandbox.upgrade(args.strategy, args.kong_y, extra_args=extra)
        elif args.command == "demo":
            from tests.sandbox.demo import run_demo

            if args.rate < 200:
                parser.error("--rate must be at least 200 requests per second for the demo")
            return run_demo(args.kong_x, args.kong_y, rate=args.rate, sandbox=sandbox)
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sandbox: interrupted; `make sandbox-down` stops what runs", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
