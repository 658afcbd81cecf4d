"""Texts the sandbox writes: HAProxy config, the demo declarative config, the inventory, the start playbook."""

from __future__ import annotations

import yaml

LB_POOL = "kong_proxy"
DEMO_KEY = "demo-key"
DEMO_PATH = "/echo"


def vtuple(version: str) -> tuple:
    return tuple(int(p) for p in version.split(".")[:3])


# HAProxy's retry profiles. "retrying" (the sandbox's default) also retries a request whose server
# closed without answering or did not answer in time, which hides a stop that drops requests in
# flight; "defaults" retries only connection failures ("retry-on conn-failure" is HAProxy's
# default, https://docs.haproxy.org/2.6/configuration.html#4.2-retry-on), with redispatch.
HAPROXY_RETRIES = {
    "retrying": ["    option redispatch", "    retries 3", "    retry-on conn-failure empty-response response-timeout"],
    "defaults": ["    option redispatch", "    retries 3", "    retry-on conn-failure"],
}


def haproxy_config(state: dict) -> str:
    hp = state["haproxy"]
    # /status/ready exists from 3.3 on the status listener; before, /status is the liveness endpoint there.
    check_path = "/status/ready" if vtuple(state["kong_x"]) >= (3, 3, 0) else "/status"
    lines = [
        "global",
        "    master-worker",
        "    log stdout format raw local0 err",
        f"    pidfile {hp['pidfile']}",
        f"    stats socket {hp['socket']} mode 600 level admin expose-fd listeners",
        f"    stats socket ipv4@127.0.0.1:{hp['runtime_port']} level admin",
        "    stats timeout 30s",
        f"    server-state-file {hp['state_file']}",
        "    maxconn 4096",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option http-keep-alive",
        *HAPROXY_RETRIES[hp.get("retries", "retrying")],
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    timeout queue 10s",
        "    timeout http-keep-alive 10s",
        "    load-server-state-from-file global",
        "",
        "frontend kong_front",
        f"    bind 127.0.0.1:{state['lb_port']}",
        f"    default_backend {LB_POOL}",
        "",
        f"backend {LB_POOL}",
        "    balance roundrobin",
        f"    option httpchk GET {check_path}",
        "    http-check expect status 200",
        "    default-server inter 1s fastinter 500ms downinter 1s rise 2 fall 2",
    ]
    for name, node in state["nodes"].items():
        if node["group"] == "kong_x":
            lines.append(f"    server {name} 127.0.0.1:{node['proxy_port']} weight 100 check port {node['status_port']}")
    for name, node in state["nodes"].items():
        if node["group"] in ("kong_y", "lb_only"):
            lines.append(f"    server {name} 127.0.0.1:{node['proxy_port']} weight 0 disabled check port {node['status_port']}")
    return "\n".join(lines) + "\n"


def demo_config(kong_x: str, echo_port: int) -> dict:
    """Service ``echo`` -> the echo upstream, route ``/echo`` with key-auth, consumer ``demo``, prometheus."""
    prometheus = {"name": "prometheus"}
    if vtuple(kong_x) >= (3, 0, 0):
        prometheus["config"] = {"status_code_metrics": True}
    return {
        "_format_version": "3.0" if vtuple(kong_x) >= (3, 0, 0) else "2.1",
        "_transform": True,
        "services": [
            {
                "name": "echo",
                "url": f"http://127.0.0.1:{echo_port}",
                "routes": [{"name": "echo", "paths": [DEMO_PATH], "plugins": [{"name": "key-auth"}]}],
            }
        ],
        "consumers": [{"username": "demo", "keyauth_credentials": [{"key": DEMO_KEY}]}],
        "plugins": [prometheus],
    }


def dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _node_vars(node: dict) -> dict:
    out = {
        "kong_node_prefix": node["prefix"],
        "kong_node_conf_path": node["conf"],
        "kong_node_proxy_listen": f"127.0.0.1:{node['proxy_port']}",
        "kong_node_admin_listen": f"127.0.0.1:{node['admin_port']}",
        "kong_node_status_listen": f"127.0.0.1:{node['status_port']}",
        "kong_admin_url": f"http://127.0.0.1:{node['admin_port']}",
        "kong_status_url": f"http://127.0.0.1:{node['status_port']}",
        "kong_proxy_url": f"http://127.0.0.1:{node['proxy_port']}",
    }
    if node.get("declarative"):
        out["kong_node_declarative_config"] = node["declarative"]
    if node.get("cluster_port"):
        out["kong_node_cluster_listen"] = f"127.0.0.1:{node['cluster_port']}"
    return out


def nginx_upstream(state: dict) -> str:
    """The upstream include file lb_weight owns: X in rotation; Y declared ``down`` at weight 0, as
    lb_weight writes what nginx cannot express (the comment names the server)."""
    lines = [f"upstream {LB_POOL} {{"]
    for name, node in state["nodes"].items():
        if node["group"] == "kong_x":
            lines.append(f"    server 127.0.0.1:{node['proxy_port']} weight=100; # {name}")
    for name, node in state["nodes"].items():
        if node["group"] in ("kong_y", "lb_only"):
            lines.append(f"    server 127.0.0.1:{node['proxy_port']} down; # {name} initial=100 weight=0 state=maint")
    lines += ["    keepalive 32;", "}"]
    return "\n".join(lines) + "\n"


def nginx_config(state: dict, run_as_root: bool = False) -> str:
    """nginx in its own prefix, in the foreground (the sandbox supervises it), proxying to the upstream
    of the include file. nginx has no active health checks: a failed connection is retried on the next
    server (passive), as fleets without NGINX Plus run it."""
    ngx = state["nginx"]
    d = ngx["dir"]
    return (
        "\n".join(
            [
                "user root root;" if run_as_root else "",
                "worker_processes 1;",
                "daemon off;",
                f"pid {ngx['pidfile']};",
                f"error_log {ngx['log']} warn;",
                "events { worker_connections 4096; }",
                "http {",
                "    access_log off;",
                f"    client_body_temp_path {d}/tmp/body;",
                f"    proxy_temp_path {d}/tmp/proxy;",
                f"    fastcgi_temp_path {d}/tmp/fastcgi;",
                f"    uwsgi_temp_path {d}/tmp/uwsgi;",
                f"    scgi_temp_path {d}/tmp/scgi;",
                f"    include {ngx['upstream_file']};",
                "    server {",
                f"        listen 127.0.0.1:{state['lb_port']};",
                "        location / {",
                f"            proxy_pass http://{LB_POOL};",
                "            proxy_http_version 1.1;",
                '            proxy_set_header Connection "";',
                "            proxy_set_header Host $host;",
                "            proxy_connect_timeout 2s;",
                "            proxy_read_timeout 30s;",
                "            proxy_next_upstream error timeout;",
                "        }",
                "    }",
                "}",
            ]
        )
        + "\n"
    )


def inventory(state: dict, repo: str, python: str) -> dict:
    mode = state["mode"]
    local = {"ansible_connection": "local", "ansible_python_interpreter": python}
    kong_mode = {"dbless": "dbless", "traditional": "traditional", "hybrid": "hybrid_dp"}[mode]
    all_vars = {
        "kong_mode": kong_mode,
        "kong_version_current": state["kong_x"],
        "kong_cluster_name": "sandbox",
        "kong_work_dir": state["work_dir"],
        "kong_upgrade_confirm": True,
        "kong_smoke_path": DEMO_PATH,
        "kong_smoke_key": DEMO_KEY,
        "kong_smoke_key_header": "apikey",
        # two seconds of soak per gate: two of HAProxy's health checks (inter 1s) and one poll of the
        # gate (kong_gate_interval_seconds 2); the tests that break a node set a longer soak themselves
        "kong_gate_soak_seconds": 2,
        "kong_drain_gate_soak_seconds": 2,
        "kong_post_upgrade_watch": 2,
        "kong_drain_timeout": 30,
        "kong_lb_pool": LB_POOL,
        "kong_lb_proxy_url": f"http://127.0.0.1:{state['lb_port']}",
        "kong_node_install_method": "prefix",
        "kong_node_install_root": state["install_root"],
        "kong_node_install_command": f"{repo}/tests/kongsim/install.sh {{version}} {{dest}}",
        "kong_node_quit_timeout": 10,
        "kong_node_ready_timeout": 30,
    }
    if state.get("admin_token"):
        # Kong OSS ignores the Kong-Admin-Token header; the collection sends it on every Admin API call
        all_vars["kong_admin_token"] = state["admin_token"]
    if state.get("nginx"):
        all_vars.update({"kong_lb_backend": "nginx", "kong_lb_upstream_file": state["nginx"]["upstream_file"], "kong_lb_nginx_conf": state["nginx"]["config"]})
    else:
        all_vars.update({"kong_lb_backend": "haproxy", "kong_lb_socket": state["haproxy"]["socket"]})
    if state.get("postgres"):
        pg = state["postgres"]
        all_vars.update(
            {
                "kong_node_pg_host": "127.0.0.1",
                "kong_node_pg_port": pg["port"],
                "kong_node_pg_user": pg["user"],
                "kong_node_pg_password": pg["password"],
                "kong_node_pg_database": pg["database"],
                # the DBA role a database-level rollback restores with (the server's superuser here)
                "kong_restore_admin_user": pg.get("admin_user", "postgres"),
                "kong_restore_admin_password": pg.get("admin_password", "postgres"),
            }
        )
    if state.get("cluster_cert"):
        all_vars.update({"kong_node_cluster_cert": state["cluster_cert"], "kong_node_cluster_cert_key": state["cluster_cert_key"]})
    cp = state["nodes"].get("cp")
    if cp:
        all_vars["kong_node_cluster_control_plane"] = f"127.0.0.1:{cp['cluster_port']}"

    groups: dict[str, dict] = {g: {"hosts": {}} for g in ("kong_x", "kong_y", "kong_cp", "kong_db", "kong_lb")}
    for name, node in state["nodes"].items():
        if node["group"] not in groups:
            continue
        host = dict(local, **_node_vars(node))
        if state.get("status_gate_urls") and node["group"] != "kong_cp":
            # the controller runs on the nodes' host: it reaches each status listener where the node does
            host["kong_status_gate_url"] = host["kong_status_url"]
        if node["group"] == "kong_cp":
            host.update(kong_mode="hybrid_cp", kong_node_mode="hybrid_cp")
            if state.get("kong_cp") and state["kong_cp"] != state["kong_x"]:
                host["kong_version_current"] = state["kong_cp"]
        groups[node["group"]]["hosts"][name] = host
    groups["kong_x"]["vars"] = {"kong_node_version": "{{ kong_version_current }}"}
    if state.get("kong_cp"):
        groups["kong_cp"]["vars"] = {"kong_node_version": state["kong_cp"]}
    if mode == "dbless":
        groups["kong_x"]["vars"]["kong_node_declarative_config_src"] = state["demo_config"]
    groups["kong_lb"]["hosts"]["lb"] = dict(local)
    if state.get("postgres"):
        pg = state["postgres"]
        groups["kong_db"]["hosts"]["db"] = dict(
            local, kong_pg_host="127.0.0.1", kong_pg_port=pg["port"], kong_pg_user=pg["user"], kong_pg_password=pg["password"], kong_pg_database=pg["database"]
        )
    for group in groups.values():
        if not group["hosts"]:
            group.pop("hosts")
    return {"all": {"vars": all_vars, "children": groups}}


def inventory_text(state: dict, repo: str, python: str) -> str:
    header = f"# Generated by `python -m tests.sandbox up` ({state['mode']}, Kong {state['kong_x']}); do not edit. Runtime state: " + state["state_dir"] + "\n"
    return header + dump_yaml(inventory(state, repo, python))


START_PLAYBOOK = """---
- name: Start the hybrid control plane
  hosts: kong_cp
  gather_facts: false
  tasks:
    - name: Kong control plane on {{ kong_node_version }}
      ansible.builtin.include_role:
        name: kongops.upgrade.kong_node

- name: Start the Kong X nodes
  hosts: kong_x
  gather_facts: false
  tasks:
    - name: Kong node on {{ kong_version_current }}
      ansible.builtin.include_role:
        name: kongops.upgrade.kong_node
"""
