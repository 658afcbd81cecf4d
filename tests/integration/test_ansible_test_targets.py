"""The collection's `ansible-test integration` targets (tests/integration/targets, one per module), run
by ansible-test itself as a collection's reviewers run them, against real services started here:
PostgreSQL with a bootstrapped Kong database, a simulated Kong node on it (tests/kongsim), an echo
upstream, HAProxy with a two-server backend in front of the node, and cluster certificates.

What the targets need is handed to them the way ansible-test documents it: as variables in
tests/integration/integration_config.yml of the collection tree it runs in (a copy of what the
collection ships, made as tests/tools/sanity.sh makes it, plus the targets).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from tests.integration.ansible_run import REPO, VENV_BIN
from tests.integration.dbcluster import DBA_PASSWORD, PG_PASSWORD, SECRETS, DbCluster
from tests.kongsim.kongsim_testlib import EchoUpstream, gen_cluster_cert, install_kong, simple_config
from tests.services.haproxy import HaproxyServer
from tests.services.ports import free_port

TARGETS = os.path.join(REPO, "tests", "integration", "targets")
VERSION, VERSION_X = "3.9.3", "3.8.1"
# the route-replay target also replays a configuration on 2.8.5 and 3.4.2
VERSIONS = (VERSION, VERSION_X, "2.8.5", "3.4.2")
# the test infrastructure that never ships, as tests/tools/sanity.sh leaves it out; the targets are copied
NOT_SHIPPED = re.compile(
    r"^(tests/(kongsim|sandbox|services|integration|tools|molecule)/|tests/(loadgen\.py|conftest\.py|__init__\.py)$|molecule/|bench/|\.ci/)"
)


def module_names() -> list:
    return sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "plugins", "modules")) if name.endswith(".py") and not name.startswith("_"))


def collection_tree(root: str) -> str:
    """A copy of the checkout's shipped files and the targets under root/ansible_collections/kongops/upgrade."""
    dest = os.path.join(root, "ansible_collections", "kongops", "upgrade")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, listed.decode().split("\0")):
        src = os.path.join(REPO, rel)
        if NOT_SHIPPED.match(rel) or not os.path.lexists(src):
            continue
        os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, rel), follow_symlinks=False)
    shutil.copytree(TARGETS, os.path.join(dest, "tests", "integration", "targets"))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    return dest


@pytest.fixture(scope="module")
def services(postgres, tmp_path_factory):
    base = tmp_path_factory.mktemp("targets")
    bins = {v: install_kong(v, str(base / f"kong-{v}")) for v in VERSIONS}
    echo = EchoUpstream().start()
    cluster = DbCluster(postgres, bins[VERSION], base / "cluster")
    lb = None
    try:
        cluster.seed(services=3, consumers=2, upstreams=1)
        # X's database of the dual-cluster retirement: a copy taken while no node is connected
        retire = f"{cluster.name}_retire"
        postgres.psql(f'CREATE DATABASE "{retire}" TEMPLATE "{cluster.name}" OWNER "{cluster.owner}"')
        fresh = postgres.create_database(f"{cluster.name}_fresh", owner=cluster.owner, password=PG_PASSWORD)["database"]
        echo_conf = base / "echo.yml"
        echo_conf.write_text(simple_config(echo.url, key_auth=False, prometheus=True))
        cluster.cli("config", "db_import", str(echo_conf))
        cluster.node.start()
        for name in ("haproxy", "cp", "other"):
            os.makedirs(base / name)
        lb = HaproxyServer(
            "frontend kong_proxy\n    bind 127.0.0.1:{port:proxy}\n    default_backend kong_it\n"
            "backend kong_it\n    balance roundrobin\n"
            f"    server x1 127.0.0.1:{cluster.node.proxy_port} weight 100\n"
            f"    server y1 127.0.0.1:{cluster.node.proxy_port} weight 100\n",
            base_dir=str(base / "haproxy"),
        ).start()
        cp_cert, cp_key = gen_cluster_cert(str(base / "cp"))
        other_cert, other_key = gen_cluster_cert(str(base / "other"))
        yield {
            # it_admin_url, it_admin_token, it_kong_bin, it_kong_conf, it_pg_host ... it_pg_database
            **{f"it_{name}": value for name, value in cluster.vars().items()},
            "it_status_url": cluster.node.status_url,
            "it_proxy_url": cluster.node.proxy_url,
            "it_lb_url": f"http://127.0.0.1:{lb.ports['proxy']}",
            "it_echo_url": echo.url,
            "it_version": VERSION,
            "it_version_x": VERSION_X,
            "it_kong_bins": bins,
            "it_pg_retire_database": retire,
            "it_pg_fresh_database": fresh,
            "it_pg_admin_user": cluster.dba,
            "it_pg_admin_password": DBA_PASSWORD,
            "it_haproxy_socket": lb.socket,
            "it_haproxy_backend": "kong_it",
            "it_haproxy_state_file": lb.state_file,
            "it_cp_cert": cp_cert,
            "it_cp_key": cp_key,
            "it_other_cert": other_cert,
            "it_other_key": other_key,
            "it_spare_ports": {name: free_port() for name in ("proxy", "admin", "status", "cluster")},
        }
    finally:
        if lb:
            lb.destroy()
        echo.stop()
        cluster.destroy()


def test_every_module_has_a_target():
    assert sorted(os.listdir(TARGETS)) == module_names()
    for name in module_names():
        assert os.path.isfile(os.path.join(TARGETS, name, "tasks", "main.yml")), name
        assert os.path.isfile(os.path.join(TARGETS, name, "aliases")), name


def test_ansible_test_integration_runs_every_target_against_the_real_services(services, tmp_path):
    # KONGOPS_IT_TARGETS="kong_conf lb_weight" runs only those (while writing a target)
    only = os.environ.get("KONGOPS_IT_TARGETS", "").split()
    tree = collection_tree(str(tmp_path / "tree"))
    config = dict(services, it_work_dir=str(tmp_path / "work"))
    with open(os.path.join(tree, "tests", "integration", "integration_config.yml"), "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh)
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_NOCOLOR="1")
    for key in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"):
        env.pop(key, None)
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-test"), "integration", "--local", "--python", "3.11", "--color", "no", "--continue-on-error", *only],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = proc.stdout + proc.stderr
    (tmp_path / "ansible-test.log").write_text(out)
    failures = [ln for ln in out.splitlines() if re.search(r'^TASK \[|fatal:|"assertion"|"msg"|^FATAL|^ERROR', ln)]
    failures = [ln for i, ln in enumerate(failures) if not ln.startswith("TASK [") or (i + 1 < len(failures) and not failures[i + 1].startswith("TASK ["))]
    assert proc.returncode == 0, "\n".join(failures)[-12000:] + f"\n(the whole output: {tmp_path / 'ansible-test.log'})"
    ran = re.findall(r"Running (\S+) integration test role", out)
    assert sorted(ran) == sorted(only or module_names()), out[-3000:]
    for secret in SECRETS:
        assert secret not in out
