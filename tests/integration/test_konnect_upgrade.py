"""Konnect data planes (kong_mode=konnect_dp) upgraded rolling on the sandbox, under load.

The simulator's hybrid control plane plays Konnect's control plane for the data planes' cluster connection
(pki, as Konnect's data plane installer writes kong.conf); the collection is not given its Admin API (no
kong_cp group). It reads the data planes themselves and the stand-in for the Konnect API
(tests/services/konnect.py), whose data-plane node records come from the data planes' own pings. One X and
one Y data plane, short soaks; the refusal cases of Konnect's records are module-level tests
(tests/integration/test_konnect_module.py)."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
import requests
import yaml

from tests.integration.faults import loose_files
from tests.loadgen import LoadGenerator
from tests.sandbox import procs
from tests.sandbox.core import Sandbox
from tests.services.konnect import KonnectStandIn

X, Y = "3.6.1", "3.7.1"  # Konnect keeps its control plane on the newest version: the CP runs Y
RATE = 100.0
TOKEN = "kpat_" + uuid.uuid4().hex
CP_ID = str(uuid.uuid4())
EMPTY_HASH = "0" * 32


def _get(url: str) -> dict | None:
    try:
        resp = requests.get(url, timeout=3)
    except requests.RequestException:
        return None
    return resp.json() if resp.status_code == 200 else None


def _admin(box: Sandbox, name: str) -> str:
    return f"http://127.0.0.1:{box.state['nodes'][name]['admin_port']}"


def _wait(what: str, check, timeout: float = 60.0):
    deadline = time.time() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.time() < deadline, f"{what}: not seen within {timeout:.0f} s"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def konnect_box(tmp_path_factory):
    """A sandbox with one X and one Y data plane of a control plane on Y, the stand-in for the Konnect API
    fed from that control plane's records of its data planes' pings, and an inventory in konnect_dp mode."""
    tmp = tmp_path_factory.mktemp("konnect")
    box = Sandbox(state_dir=str(tmp / "sb"), lb_port=procs.sandbox_base_port(), out=lambda msg: None)
    box.log_dir = str(tmp)
    box.up(mode="hybrid", kong_x=X, kong_cp=Y, nodes=1)
    konnect = KonnectStandIn(TOKEN, CP_ID, source=_admin(box, "cp")).start()
    x_id = _get(_admin(box, "x1") + "/")["node_id"]
    _wait("Konnect lists x1 with a configuration", lambda: any(r["id"] == x_id and r["config_hash"] not in (None, EMPTY_HASH) for r in konnect.rows()))
    with open(box.inventory) as fh:
        inventory = yaml.safe_load(fh)
    groups, all_vars = inventory["all"]["children"], inventory["all"]["vars"]
    groups.pop("kong_cp")
    all_vars.update(
        {
            "kong_mode": "konnect_dp",
            "kong_konnect_api_url": konnect.url,
            "kong_konnect_token": TOKEN,
            "kong_konnect_control_plane_id": CP_ID,
            "kong_konnect_control_plane_version": Y,
            # pki against the control plane's certificate, as Konnect's installer writes it
            "kong_node_cluster_server_name": "kong_clustering",
            "kong_node_cluster_ca_cert": box.state["cluster_cert"],
            "kong_gate_soak_seconds": 1,
            "kong_post_upgrade_watch": 1,
            "kong_traffic_steps": [50, 100],
        }
    )
    with open(box.inventory, "w") as fh:
        yaml.safe_dump(inventory, fh)
    box.konnect, box.x_id = konnect, x_id
    yield box
    konnect.stop()
    box.down()


def _upgrade(box: Sandbox, *extra: str) -> tuple:
    log = os.path.join(box.log_dir, f"upgrade-{time.time():.0f}.log")
    rc = box.upgrade("rolling", Y, extra_args=list(extra), log_path=log, stream=lambda line: None)
    with open(log) as fh:
        return rc, fh.read()


def test_konnect_settings_refused_naming_the_variable_and_check_mode_changes_nothing(konnect_box):
    box = konnect_box
    conf_before = open(box.state["nodes"]["y1"]["conf"]).read() if os.path.exists(box.state["nodes"]["y1"]["conf"]) else None
    # one run, both mistakes: the refusal names each variable
    rc, log = _upgrade(box, "-e", "kong_konnect_token=", "-e", "kong_konnect_api_url=api.konghq.example")
    assert rc != 0, log[-3000:]
    assert "kong_konnect_token is needed with kong_konnect_control_plane_id" in log, log[-3000:]
    assert "kong_konnect_api_url 'api.konghq.example' is not a URL" in log, log[-3000:]
    # a data plane newer than its Konnect control plane, from Konnect's records of x1's pings: named, refused
    rc, log = _upgrade(box, "-e", "kong_konnect_control_plane_version=3.5.0")
    assert rc != 0, log[-3000:]
    assert "data plane x1 = " in log and f"(id {box.x_id}" in log and "newer than its Konnect control plane on 3.5.0" in log, log[-3000:]
    assert TOKEN not in log
    # check mode plans from the same reads (Konnect's records included) and changes nothing
    rc, log = _upgrade(box, "--check")
    assert rc == 0, log[-3000:]
    assert "lists 1 live data plane(s) on 3.6.1" in log and TOKEN not in log, log[-3000:]
    # nothing changed: Y was never configured, x1 still serves
    after = open(box.state["nodes"]["y1"]["conf"]).read() if os.path.exists(box.state["nodes"]["y1"]["conf"]) else None
    assert after == conf_before
    assert (_get(_admin(box, "x1") + "/") or {}).get("version") == X


def test_a_data_plane_konnect_never_sees_on_the_configuration_stops_the_run_named(konnect_box):
    """Konnect lists the new data plane live but on a configuration hash its control plane no longer expects
    (as for a data plane that never applied the latest push): the run stops in its deploy phase before y1 takes
    traffic, naming y1, its Konnect id and both hashes, and x1 serves throughout."""
    box = konnect_box
    x_hash = _get(_admin(box, "x1") + "/status")["configuration_hash"]
    stale = "5" * 32
    box.konnect.expected = x_hash
    box.konnect.rewrite = lambda row: dict(row, config_hash=stale) if row.get("version") == Y else row
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=RATE, headers={"apikey": "demo-key"}, timeout=5).start()
    try:
        rc, log = _upgrade(box, "-e", "kong_node_ready_timeout=8")
    finally:
        summary = load.stop()
        box.konnect.expected, box.konnect.rewrite = None, None
    assert rc != 0, log[-3000:]
    y_id = (_get(_admin(box, "y1") + "/") or {}).get("node_id")
    failure = [ln for ln in log.splitlines() if "The upgrade stopped in phase deploy: y1 could not be deployed and verified" in ln]
    assert y_id and failure and f"(id {y_id})" in failure[0], log[-4000:]
    assert f"configuration hash {stale} (the node reports {x_hash})" in failure[0], failure[0]
    assert TOKEN not in log
    # y1 never took a request: every one went to x1, none failed
    assert summary.get("not_sent", 0) == 0 and summary["total"] > 0 and summary["failed"] == 0, summary["failures_by_reason"]
    assert {v for s in summary["per_second"] for v in s["versions"]} == {X}, summary["per_second"][-3:]
    assert (_get(_admin(box, "x1") + "/") or {}).get("version") == X


def test_konnect_data_planes_rolling_under_load(konnect_box):
    box = konnect_box
    x_hash = _get(_admin(box, "x1") + "/status")["configuration_hash"]
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=RATE, headers={"apikey": "demo-key"}, timeout=5).start()
    # at -vvv: the secrets sweep of a Konnect run (module arguments and results, set_stats)
    rc, log = _upgrade(box, "-vvv")
    time.sleep(1)
    summary = load.stop()
    assert rc == 0, "\n".join([ln for ln in log.splitlines() if "fatal:" in ln][-5:] + log.splitlines()[-30:])
    assert "ESTABLISH LOCAL CONNECTION" in log and TOKEN not in log
    _files, loose = loose_files(box.work_dir, (TOKEN,))
    assert not loose, loose

    assert summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"
    assert summary["total"] > 0 and summary["failed"] == 0, summary["failures_by_reason"]
    last = [s for s in summary["per_second"] if s["versions"]][-1:]
    assert last and set(last[0]["versions"]) == {Y}, last

    # y1 runs as a Konnect data plane: pki against the cluster's CA, the same configuration x1 served
    conf = open(box.state["nodes"]["y1"]["conf"]).read()
    for line in (
        "role = data_plane",
        "database = off",
        "cluster_mtls = pki",
        "cluster_server_name = kong_clustering",
        f"cluster_ca_cert = {box.state['cluster_cert']}",
    ):
        assert line in conf, conf
    y_node = _get(_admin(box, "y1") + "/")
    assert y_node["version"] == Y
    assert _get(_admin(box, "y1") + "/status")["configuration_hash"] == x_hash
    # Konnect lists y1 on Y with that hash; the collection read the Konnect API with the token
    rows = {r["id"]: r for r in box.konnect.rows()}
    assert rows[y_node["node_id"]]["version"] == Y and rows[y_node["node_id"]]["config_hash"] == x_hash
    assert f"/v2/control-planes/{CP_ID}/nodes" in box.konnect.requests
    folder = os.path.join(box.work_dir, "sandbox")
    journals = [json.load(open(os.path.join(folder, n))) for n in sorted(os.listdir(folder)) if n.startswith("journal") and n.endswith(".json")]
    journal = [j for j in journals if j.get("status") == "done"][-1]
    assert journal["status"] == "done" and journal["mode"] == "konnect_dp"
    # no declarative export of a Konnect data plane: kong.conf only
    assert journal["backup"]["declarative"] == ""
    backups = os.path.join(folder, "backups")
    assert not [n for n in os.listdir(backups) if "declarative" in n], os.listdir(backups)
    manifest = json.load(open(journal["backup"]["manifest"]))
    assert manifest["kinds"] == ["files"]
