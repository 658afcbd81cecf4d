"""The real services the other suites depend on behave as the suites expect."""

from __future__ import annotations

import http.server
import threading
import urllib.request

import psycopg2
import pytest


def test_postgres_row_written_and_read_back(postgres):
    conn_info = postgres.create_database("kongops_services", owner="svc", password="s3cret")
    conn = psycopg2.connect(host=conn_info["host"], port=conn_info["port"], user="svc", password="s3cret", dbname="kongops_services")
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id int primary key, name text)")
        cur.execute("INSERT INTO t VALUES (1, 'kong')")
    conn.close()
    assert postgres.psql("SELECT name FROM t WHERE id = 1", database="kongops_services") == "kong"


def test_postgres_rejects_wrong_password(postgres):
    postgres.create_database("kongops_auth", owner="svc2", password="right")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(host=postgres.host, port=postgres.port, user="svc2", password="wrong", dbname="kongops_auth")


class _Named(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def named_backends():
    servers = []
    for name in ("alpha", "beta"):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Named)
        srv.name = name
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    yield {s.name: s.server_address[1] for s in servers}
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def test_haproxy_weight_set_and_read_back(haproxy_factory, named_backends):
    lb = haproxy_factory(f"""
frontend fe
    bind 127.0.0.1:{{port:proxy}}
    default_backend kong
backend kong
    balance roundrobin
    server a 127.0.0.1:{named_backends["alpha"]} weight 100
    server b 127.0.0.1:{named_backends["beta"]} weight 100
""")
    assert "Success" not in lb.command("set server kong/b weight 0")
    state = lb.command("show servers state kong")
    rows = [line.split() for line in state.splitlines() if line and not line.startswith("#") and " " in line]
    weights = {row[3]: int(row[7]) for row in rows if len(row) > 7}
    assert weights == {"a": 100, "b": 0}
    seen = {urllib.request.urlopen(f"http://127.0.0.1:{lb.ports['proxy']}/").read().decode() for _i in range(20)}
    assert seen == {"alpha"}


def test_nginx_reload_reaches_new_upstream(nginx_factory, named_backends, tmp_path):
    upstream = tmp_path / "upstream.conf"
    upstream.write_text(f"server 127.0.0.1:{named_backends['alpha']};\n")
    web = nginx_factory(f"""
    upstream kong {{ include {upstream}; }}
    server {{ listen 127.0.0.1:{{port:proxy}}; location / {{ proxy_pass http://kong; }} }}
""")
    url = f"http://127.0.0.1:{web.ports['proxy']}/"
    assert urllib.request.urlopen(url).read() == b"alpha"
    upstream.write_text(f"server 127.0.0.1:{named_backends['beta']};\n")
    web.reload()
    import time

    deadline = time.monotonic() + 10
    while urllib.request.urlopen(url).read() != b"beta":
        assert time.monotonic() < deadline, "nginx still proxies to the old upstream after reload"
        time.sleep(0.1)
