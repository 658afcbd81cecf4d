#!/usr/bin/env python3
"""HTTP echo upstream for the Kong services of the molecule scenarios.

    echo_upstream.py --port 18099 [--host 0.0.0.0]

Every request gets 200 and a JSON echo of its method, path and headers.
"""
import argparse

from aiohttp import web


async def echo(request):
    await request.read()
    return web.json_response({"method": request.method, "path": request.path, "headers": dict(request.headers)})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
