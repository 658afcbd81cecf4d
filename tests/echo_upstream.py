"""An HTTP echo upstream for simulated Kong nodes: every request gets 200 and a JSON echo.

    python -m tests.echo_upstream --port 18099 [--host 127.0.0.1] [--pidfile FILE]

The body echoes the method, path, query, headers and body size of the request, so a test can
see what Kong forwarded (for example the ``Via`` Kong sends upstream from 3.8).
"""
from __future__ import annotations

import argparse
import os
import sys

from aiohttp import web


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({
        "method": request.method,
        "path": request.path,
        "query": request.query_string,
        "headers": dict(request.headers),
        "body_bytes": len(body),
    })


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _echo)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.echo_upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pidfile", help="write the process id here")
    args = parser.parse_args(argv)
    if args.pidfile:
        with open(args.pidfile, "w") as fh:
            fh.write(f"{os.getpid()}\n")
    web.run_app(make_app(), host=args.host, port=args.port, access_log=None, print=None,
                handle_signals=True, keepalive_timeout=75)
    return 0


if __name__ == "__main__":
    sys.exit(main())
