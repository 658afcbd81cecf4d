"""A small stand-in for the Konnect API: the data-plane node records of one control plane.

It answers what the collection reads, as Konnect documents it (Konnect API v2, Control Planes
Configuration, https://developer.konghq.com/api/konnect/control-planes-config/v2/ operations
list-dataplane-nodes and get-expected-config-hash):

- ``GET /v2/control-planes/{controlPlaneId}/nodes`` -> ``{"items": [{id, version, hostname, last_ping, type,
  created_at, updated_at, config_hash, compatibility_status}], "page": {"total", "next"}}``, paged with
  ``page[size]`` and ``page[after]``;
- ``GET /v2/control-planes/{controlPlaneId}/expected-config-hash`` -> ``{expected_hash, created_at, updated_at}``;
- 401 without ``Authorization: Bearer <token>`` (the token it was started with); 404 for another control
  plane id.

Rows come from the data planes' own pings: with ``source`` (the Admin API of the simulator's hybrid control
plane, which plays Konnect's control plane for the data planes' cluster connection) each read maps that
control plane's ``GET /clustering/data-planes`` rows (last_seen is the last ping) onto node records. A test
can add rows (``extra``), change fields of a row by id (``patch``) or of any row through a function
(``rewrite``: row -> row) and set the expected hash (``expected``).
The values of ``type`` and ``compatibility_status.state`` are UNCONFIRMED (the documented schema names the
fields but gives no values).

    python -m tests.services.konnect --port 18000 --token T --control-plane-id <uuid> --source http://127.0.0.1:8001
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import requests

NODE_TYPE = "kong-proxy"  # UNCONFIRMED value


class KonnectStandIn:
    def __init__(self, token: str, control_plane_id: str, source: str | None = None, port: int = 0):
        self.token, self.cp_id, self.source = token, control_plane_id, source
        self.extra: list = []
        self.patch: dict = {}
        self.rewrite = None
        self.expected: str | None = None
        self.requests: list = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ rows
    def _from_source(self) -> list:
        if not self.source:
            return []
        rows, url = [], self.source.rstrip("/") + "/clustering/data-planes?size=1000"
        while url:
            body = requests.get(url, timeout=3).json()
            rows += body.get("data") or []
            nxt = body.get("next")
            url = (self.source.rstrip("/") + nxt) if nxt and not nxt.startswith("http") else nxt
        return [
            {
                "id": r.get("id"),
                "version": r.get("version"),
                "hostname": r.get("hostname"),
                "last_ping": r.get("last_seen"),
                "type": NODE_TYPE,
                "created_at": r.get("updated_at") or r.get("last_seen"),
                "updated_at": r.get("updated_at") or r.get("last_seen"),
                "config_hash": r.get("config_hash"),
                "compatibility_status": {"state": "COMPATIBILITY_STATE_FULLY_COMPATIBLE", "issues": []},
            }
            for r in rows
        ]

    def rows(self) -> list:
        with self._lock:
            extra, patch, rewrite = list(self.extra), dict(self.patch), self.rewrite
        rows = [dict(r, **patch.get(r.get("id"), {})) for r in self._from_source() + extra]
        return [rewrite(r) for r in rows] if rewrite else rows

    def expected_hash(self) -> str | None:
        """The set hash, else the hash of the row that pinged last (the control plane's latest push)."""
        if self.expected:
            return self.expected
        rows = [r for r in self.rows() if r.get("config_hash")]
        return max(rows, key=lambda r: r.get("last_ping") or 0)["config_hash"] if rows else None

    # ------------------------------------------------------------------ HTTP
    def _handler(self):
        box = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):  # quiet
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 (http.server's name)
                url = urlparse(self.path)
                box.requests.append(url.path)
                if self.headers.get("Authorization") != f"Bearer {box.token}":
                    return self._send(401, {"status": 401, "title": "Unauthorized", "detail": "Invalid token"})
                parts = url.path.strip("/").split("/")
                if len(parts) < 4 or parts[:2] != ["v2", "control-planes"] or parts[2] != box.cp_id:
                    return self._send(404, {"status": 404, "title": "Not Found"})
                if parts[3:] == ["expected-config-hash"]:
                    found = box.expected_hash()
                    if not found:
                        return self._send(404, {"status": 404, "title": "Not Found"})
                    return self._send(200, {"expected_hash": found, "created_at": 0, "updated_at": 0})
                if parts[3:] != ["nodes"]:
                    return self._send(404, {"status": 404, "title": "Not Found"})
                query = parse_qs(url.query)
                size = int((query.get("page[size]") or ["100"])[0] or 100)
                after = (query.get("page[after]") or [""])[0]
                start = int(base64.urlsafe_b64decode(after.encode()).decode()) if after else 0
                rows = box.rows()
                page = rows[start : start + size]
                nxt = None
                if start + size < len(rows):
                    cursor = base64.urlsafe_b64encode(str(start + size).encode()).decode()
                    nxt = f"/v2/control-planes/{box.cp_id}/nodes?page[size]={size}&page[after]={cursor}"
                return self._send(200, {"items": page, "page": {"total": len(rows), "next": nxt}})

        return Handler

    def start(self) -> "KonnectStandIn":
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", required=True)
    parser.add_argument("--control-plane-id", required=True)
    parser.add_argument("--source")
    args = parser.parse_args()
    box = KonnectStandIn(args.token, args.control_plane_id, args.source, args.port)
    print(box.url, flush=True)
    box.server.serve_forever()


if __name__ == "__main__":
    main()
