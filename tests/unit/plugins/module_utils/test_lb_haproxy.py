"""HAProxy runtime client and backend of lb_weight: protocol parsing with a fake command(), and the
socket, error and rollback behaviour against a real HAProxy."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils._haproxy_runtime import (
    HaproxyBackend,
    HaproxyRuntime,
    HaproxyRuntimeError,
    edit_config,
    parse_address,
    predict_admin,
    runtime_steps,
)

STATE_HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
    "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl "
    "srv_check_port srv_check_addr srv_agent_addr srv_agent_port"
)
# Real replies of HAProxy 2.6: c is "disabled" in the config then set ready (admin 4 = CMAINT only),
# d tracks a server in maint (admin 2), e is drained (admin 8), f is in forced maint and DOWN.
SERVERS_STATE = (
    "1\n"
    + STATE_HEADER
    + """
3 kong 1 a 127.0.0.1 2 0 100 100 0 1 0 2 0 0 0 0 - 40613 - 0 0 - - 0
3 kong 3 c 127.0.0.1 2 4 3 10 0 1 0 2 6 0 0 0 - 37915 - 0 0 - - 0
3 kong 4 d 127.0.0.1 0 2 10 10 0 1 0 0 0 0 0 0 - 56939 - 0 0 - - 0
3 kong 5 e 127.0.0.1 2 8 50 100 0 1 0 2 0 0 0 0 - 40614 - 0 0 - - 0
3 kong 6 f 127.0.0.1 0 1 50 50 0 8 2 0 6 0 0 0 - 50309 - 0 0 - - 0

"""
)
STAT_HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,"
    "status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,"
    "type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,"
    "hrsp_4xx,hrsp_5xx\n"
)
STAT = (
    STAT_HEADER
    + """kong,a,0,0,3,5,,120,0,0,,0,,2,1,0,0,no check,100,1,0,,,0,,,1,3,1,,0,,2,0,,0,,,,0,100,0,0,7
kong,c,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/3,3,1,0,,,0,,,1,3,3,,0,,2,0,,0,,,,0,0,0,0,0
kong,d,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT (via kong/c),10,1,0,,,0,,,1,3,4,,0,,2,0,,0,,,,0,0,0,0,0
kong,e,1,1,2,2,,9,0,0,,0,,0,0,0,0,DRAIN,0,1,0,,,0,,,1,3,5,,0,,2,0,,0,,,,0,0,0,0,0
kong,f,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,50,1,0,3,1,0,0,,1,3,6,,0,,2,0,,0,,,,0,0,0,0,0
kong,BACKEND,0,0,3,5,,129,0,0,0,0,,0,0,0,0,UP,150,1,0,,0,0,0,,1,3,0,,0,,1,0,,0,,,,0,0,0,0,0

"""
)


class FakeRuntime(HaproxyRuntime):
    def __init__(self, replies):
        super().__init__("/fake.sock")
        self.replies, self.sent = replies, []

    def command(self, cmd):
        self.sent.append(cmd)
        for prefix, reply in self.replies.items():
            if cmd.startswith(prefix):
                return reply(cmd) if callable(reply) else reply
        raise AssertionError(f"unexpected command {cmd}")


def test_read_maps_admin_flags_and_stat_columns():
    runtime = FakeRuntime({"show servers state kong": SERVERS_STATE, "show stat kong": STAT})
    servers = HaproxyBackend(runtime, "kong").read()
    assert {n: s["state"] for n, s in servers.items()} == {"a": "ready", "c": "ready", "d": "maint", "e": "drain", "f": "maint"}
    assert servers["c"] == {
        "weight": 3,
        "initial_weight": 10,
        "state": "ready",
        "health": "up",
        "status": "UP 1/3",
        "sessions": 0,
        "queued": 0,
        "address": "127.0.0.1:37915",
    }
    assert servers["d"]["status"] == "MAINT (via kong/c)" and servers["d"]["health"] == "down"
    assert (servers["e"]["weight"], servers["e"]["sessions"], servers["e"]["queued"]) == (50, 2, 1)


def test_stats_and_drain_probe():
    runtime = FakeRuntime({"show servers state kong": SERVERS_STATE, "show stat kong": STAT})
    backend = HaproxyBackend(runtime, "kong")
    backend.read()
    assert backend.stats()["a"] == {
        "total_sessions": 120,
        "http_5xx": 7,
        "connection_errors": 2,
        "response_errors": 1,
        "check_failures": 0,
        "response_time_ms": 0,
    }
    assert backend.drain_probe(["a", "c", "e"]) == {"a": "3 sessions, 0 queued", "e": "2 sessions, 1 queued"}


def test_unknown_backend_lists_the_known_ones():
    runtime = FakeRuntime({"show servers state": "Can't find backend.\n\n", "show backend": "# name\nkong\nst\n\n"})
    with pytest.raises(HaproxyRuntimeError, match=r"haproxy_backend: no backend nope .*known backends: kong, st"):
        HaproxyBackend(runtime, "nope").read()


def test_set_maps_haproxy_refusals():
    runtime = FakeRuntime({"set server": "No such server.\n\n"})
    with pytest.raises(HaproxyRuntimeError, match="No such server") as exc:
        runtime.set("kong", "zz", "weight", 1)
    assert exc.value.context() == {"backend": "kong", "server": "zz", "command": "set server kong/zz weight 1", "response": "No such server."}


@pytest.mark.parametrize("admin,state,expected", [(0, "drain", 8), (8, "ready", 0), (8, "maint", 1), (5, "ready", 4), (2, "ready", 2), (1, "drain", 8)])
def test_predict_admin(admin, state, expected):
    assert predict_admin(admin, state) == expected


def test_parse_address():
    assert parse_address("/run/haproxy/admin.sock") == "/run/haproxy/admin.sock"
    assert parse_address("127.0.0.1:9999") == ("127.0.0.1", 9999)
    assert parse_address("lb1.example.com:9999") == ("lb1.example.com", 9999)
    assert parse_address("[::1]:9999") == ("::1", 9999)
    assert parse_address("admin.sock") == "admin.sock"


CONFIG = """global
    stats socket /run/haproxy/admin.sock level admin
backend other
    server a 10.0.0.9:80 weight 5
backend kong
    default-server check
    server a 10.0.0.1:8000 weight 100 check  # the first
    server b 10.0.0.2:8000 disabled
    server c 10.0.0.3:8000 weight 7 enabled
listen stats
    bind :8404
"""


def test_edit_config_touches_only_the_backend_lines():
    desired = {"a": {"weight": 9, "state": "ready"}, "b": {"weight": 1, "state": "ready"}, "c": {"weight": 0, "state": "maint"}}
    new, missing = edit_config(CONFIG, "kong", desired, {"a": 100, "b": 1, "c": 7})
    assert missing == []
    assert "    server a 10.0.0.1:8000 weight 9 check  # the first\n" in new
    assert "    server b 10.0.0.2:8000\n" in new
    assert "    server c 10.0.0.3:8000 weight 0 disabled\n" in new
    assert "    server a 10.0.0.9:80 weight 5\n" in new, "the same server name in another backend is untouched"
    unchanged, _m = edit_config(CONFIG, "kong", {"a": {"weight": 100, "state": "ready"}}, {"a": 100})
    assert unchanged == CONFIG
    added, _m = edit_config(CONFIG, "kong", {"b": {"weight": 3, "state": "ready"}}, {"b": 1})
    assert "    server b 10.0.0.2:8000 weight 3\n" in added
    _new, missing = edit_config(CONFIG, "kong", {"zz": {"weight": 1, "state": "ready"}}, {})
    assert missing == ["zz"]


# Real HAProxy from here on.

LB_CONFIG = """
global
    stats socket {dir}/user.sock mode 666 level user
frontend fe
    bind 127.0.0.1:{port:proxy}
    default_backend kong
backend kong
    balance roundrobin
    server x1 127.0.0.1:{port:x1} weight 100
    server x2 127.0.0.1:{port:x2} weight 100
backend st
    balance static-rr
    server s1 127.0.0.1:{port:s1} weight 10
    server s2 127.0.0.1:{port:s2}
"""


@pytest.fixture
def lb(haproxy_factory, tmp_path):
    return haproxy_factory(LB_CONFIG.replace("{dir}", str(tmp_path)))


def weights_of(lb, backend="kong"):
    rows = [ln.split() for ln in lb.command(f"show servers state {backend}").splitlines()[2:] if ln.strip()]
    return {r[3]: (int(r[7]), int(r[6])) for r in rows}


def test_unix_and_tcp_sockets_read_the_same(lb):
    over_unix = HaproxyBackend(HaproxyRuntime(lb.socket), "kong").read()
    over_tcp = HaproxyBackend(HaproxyRuntime(f"127.0.0.1:{lb.runtime_port}"), "kong").read()
    assert over_unix == over_tcp
    assert over_tcp["x1"]["weight"] == 100 and over_tcp["x1"]["status"] == "no check"


def test_missing_socket_names_the_parameter(tmp_path):
    with pytest.raises(HaproxyRuntimeError, match="socket .*/nope.sock does not exist") as exc:
        HaproxyRuntime(str(tmp_path / "nope.sock")).command("show info")
    assert exc.value.param == "socket"


def test_stale_socket_file_is_refused(tmp_path):
    path = str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(path)
        with pytest.raises(HaproxyRuntimeError, match="refused the connection"):
            HaproxyRuntime(path).command("show info")


def test_silent_socket_times_out(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    try:
        with pytest.raises(HaproxyRuntimeError, match=r"did not answer 'show info' within timeout=0.3s"):
            HaproxyRuntime(f"127.0.0.1:{server.getsockname()[1]}", timeout=0.3).command("show info")
    finally:
        for conn, _addr in accepted:
            conn.close()
        server.close()


def test_user_level_socket_reads_but_may_not_write(lb, tmp_path):
    runtime = HaproxyRuntime(os.path.join(str(tmp_path), "user.sock"))
    assert HaproxyBackend(runtime, "kong").read()["x1"]["weight"] == 100
    with pytest.raises(HaproxyRuntimeError, match="needs 'level admin'"):
        runtime.set("kong", "x1", "weight", 1)
    assert weights_of(lb) == {"x1": (100, 0), "x2": (100, 0)}


def test_failed_step_rolls_back_what_was_applied(lb):
    """s2 is made ready (what adds capacity goes first), then static-rr refuses s1's weight 5 (it takes
    only 0 % and 100 %): s2 goes back to maintenance."""
    lb.command("set server st/s2 state maint")
    backend = HaproxyBackend(HaproxyRuntime(lb.socket), "st")
    current = backend.read()
    desired = {"s1": {"weight": 5, "state": "ready"}, "s2": {"weight": 1, "state": "ready"}}
    with pytest.raises(HaproxyRuntimeError, match="static LB algorithm"):
        backend.apply(current, desired, [])
    assert weights_of(lb, "st") == {"s1": (10, 0), "s2": (1, 1)}


def _serving(servers: dict) -> set:
    return {n for n, s in servers.items() if s["state"] == "ready" and s["weight"] > 0}


def test_runtime_steps_never_leave_fewer_servers_serving_than_before_and_after():
    """HAProxy applies each runtime command at once: after every command of a change the servers that
    take new requests include all that did before it or all that do after it. Every combination of
    weight (0, 50, 100) and state on three servers, from every such start."""
    import itertools

    options = [{"weight": w, "state": st} for w in (0, 50, 100) for st in ("ready", "drain", "maint")]
    names = ("x1", "y1", "y2")
    for before in itertools.product(options, repeat=3):
        current = dict(zip(names, before))
        for after in itertools.product(options, repeat=3):
            desired = dict(zip(names, after))
            now = {n: dict(s) for n, s in current.items()}
            for name, what, value, previous in runtime_steps(current, desired):
                assert now[name][what] == previous
                now[name][what] = value
                serving = _serving(now)
                assert serving >= _serving(current) or serving >= _serving(desired), (current, desired, now)
            assert now == desired


def test_shift_to_y_raises_y_before_x_goes_to_zero():
    """The step that moves all traffic to Y: Y's weights go up before X's go down (the other order left
    HAProxy without a server between the two commands, and a request in that instant got its 503)."""
    runtime = FakeRuntime({"set server": ""})
    backend = HaproxyBackend(runtime, "kong")
    current = {n: {"weight": w, "state": "ready"} for n, w in (("x1", 100), ("x2", 100), ("y1", 0), ("y2", 0))}
    desired = {n: {"weight": w, "state": "ready"} for n, w in (("x1", 0), ("x2", 0), ("y1", 100), ("y2", 100))}
    backend.apply(current, desired, [])
    assert runtime.sent == [
        "set server kong/y1 weight 100",
        "set server kong/y2 weight 100",
        "set server kong/x1 weight 0",
        "set server kong/x2 weight 0",
    ]


def test_a_server_taken_out_shows_its_new_weight_in_show_stat(lb):
    """The weight goes down while the server is still ready, then the server goes to maintenance: HAProxy
    recomputes no effective weight for a server in maintenance, so the other order left `show stat` (and
    the stats page) showing x2 at weight 100 after the change."""
    backend = HaproxyBackend(HaproxyRuntime(lb.socket), "kong")
    backend.apply(backend.read(), {"x1": {"weight": 100, "state": "ready"}, "x2": {"weight": 0, "state": "maint"}}, [])
    x2 = HaproxyRuntime(lb.socket).stats("kong")["x2"]
    assert (x2["status"], x2["weight"]) == ("MAINT", "0"), x2
    assert weights_of(lb) == {"x1": (100, 0), "x2": (0, 1)}
