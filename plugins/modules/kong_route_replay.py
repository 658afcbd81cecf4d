# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kong_route_replay
short_description: Replay requests built from every route on Kong X and Kong Y and compare the matched routes
version_added: 0.3.0
description:
  - Builds a sample of requests from every route of a declarative configuration (each path with the
    first host, each host with the first path, the first method, every header the route requires; a
    regex path gives one string per top-level alternative, and a near miss with a foreign segment in
    front of it), starts two scratch DB-less Kong processes on this host, one with the binary of
    version X (O(x)) and one with the binary of version Y (O(y)), each in a temporary directory on a
    free loopback port, sends every request to both, and compares which route matched and the status.
  - The scratch processes hold the configuration's services, routes, upstreams, targets, certificates,
    CA certificates, SNIs and vaults; the configuration's plugins, consumers and credentials are left
    out, so no credential is loaded, sent or returned. One global C(request-termination) plugin with
    C(echo) and C(trigger) answers every request that carries the O(trigger) header with the route and
    service the router matched (Kong/kong C(kong/plugins/request-termination/handler.lua) lines 26-61 at
    2.8.5, 26-62 at 3.4.2).
  - Both processes are stopped (C(kong stop -p)) and their directories removed whatever happened,
    also when a process did not start.
  - Nothing of the cluster is contacted. The result says which requests matched differently
    (RV(mismatches)) and whether a version refused the configuration (RV(refused)); the module itself
    fails only when the replay cannot run.
  - Routes no plain HTTP request reaches (C(https), C(grpc) or stream protocols only) are listed in
    RV(unreplayed) and not replayed.
author:
  - kongops.upgrade contributors (@kongops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - kongops.upgrade.attributes.actiongroup_none
attributes:
  check_mode:
    support: full
    details: Builds and returns the sample of requests; starts no Kong process.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  src:
    description:
      - The declarative configuration to replay (YAML or JSON, any C(_format_version) the two versions
        read), for example the declarative file of the run's verified backup.
    type: path
    required: true
  x:
    description: The version the nodes run now and its C(kong) binary on this host.
    type: dict
    required: true
    suboptions:
      version:
        description: Kong version of O(x.kong_bin), for example C(2.8.5).
        type: str
        required: true
      kong_bin:
        description: Path of the C(kong) binary of that version.
        type: path
        required: true
      conf:
        description:
          - Further kong.conf properties of the scratch process (for example C(router_flavor)). The
            database, prefix, listeners and plugins are set by the module.
        type: dict
        default: {}
  y:
    description: The version to upgrade to and its C(kong) binary on this host.
    type: dict
    required: true
    suboptions:
      version:
        description: Kong version of O(y.kong_bin), for example C(3.4.2).
        type: str
        required: true
      kong_bin:
        description: Path of the C(kong) binary of that version.
        type: path
        required: true
      conf:
        description: Further kong.conf properties of the scratch process, as O(x.conf).
        type: dict
        default: {}
  trigger:
    description: The header the echo plugin answers to (a header name).
    type: str
    default: X-Kong-Route-Replay
  work_dir:
    description: Directory the scratch directories are created in (default the system's temporary directory).
    type: path
  near_misses:
    description: Also send, for every regex path, its sample with a foreign segment in front.
    type: bool
    default: true
  max_requests:
    description: At most this many requests are sent to each version.
    type: int
    default: 2000
  start_timeout:
    description: Seconds each scratch process has to start and answer.
    type: int
    default: 60
  request_timeout:
    description: Seconds per request.
    type: int
    default: 5
requirements:
  - PyYAML
notes:
  - Both binaries must run on this host; the processes listen on 127.0.0.1 only and write no log outside
    their temporary directory.
"""

EXAMPLES = r"""
- name: Replay the routes of the backup on Kong 2.8.5 and Kong 3.4.2
  kongops.upgrade.kong_route_replay:
    src: /var/backups/kong/20260101t000000z/declarative.yml
    x:
      version: 2.8.5
      kong_bin: /opt/kong/2.8.5/bin/kong
    y:
      version: 3.4.2
      kong_bin: /opt/kong/3.4.2/bin/kong
  register: replay

- name: Stop on a route that matches differently
  ansible.builtin.assert:
    that: replay.passed
    fail_msg: "{{ replay.mismatches | map(attribute='message') | join('; ') }}"
"""

RETURN = r"""
passed:
  description: Every request matched the same route with the same status on both versions, and both loaded the configuration.
  returned: success
  type: bool
  sample: false
routes:
  description: Routes in the configuration.
  returned: always
  type: int
  sample: 12
requests:
  description: Requests built (and, outside check mode, sent to each version).
  returned: always
  type: int
  sample: 30
mismatches:
  description: The requests that matched differently, each naming the route it was built from and the request.
  returned: success
  type: list
  elements: dict
  contains:
    route:
      description: Name (or id) of the route the request was built from.
      type: str
    request:
      description: C(method), C(path), C(host) and C(headers) of the request.
      type: dict
    near_miss:
      description: The request is a regex path's near miss (a foreign segment in front of its sample).
      type: bool
    x:
      description: C(status), matched C(route) and C(service) (C(id), C(name)) on version X.
      type: dict
    y:
      description: The same on version Y.
      type: dict
    message:
      description: One sentence naming the request, the route and both answers.
      type: str
  sample:
    - route: users
      request: {method: GET, path: /kong-route-replay/api/v2}
      near_miss: true
      x: {status: 404, route: null, service: null}
      y: {status: 503, route: {id: 0a1b..., name: users}, service: {id: 9c8d..., name: users}}
      message: "GET /kong-route-replay/api/v2 (built from route 'users'): no route (HTTP 404) on 2.8.5, route 'users' (HTTP 503) on 3.4.2"
refused:
  description: The versions that did not start with the configuration, with Kong's error.
  returned: success
  type: list
  elements: dict
  sample: [{version: 3.4.2, side: y, error: "declarative config is invalid: ..."}]
unreplayed:
  description: Routes not replayed, with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{route: grpc-only, reason: "protocols grpc (no http)"}]
sample:
  description: The first requests built (up to 20), as sent.
  returned: always
  type: list
  elements: dict
summary:
  description: One line of the outcome.
  returned: always
  type: str
  sample: "30 request(s) from 12 route(s): 1 matched differently on 2.8.5 and 3.4.2"
cleanup:
  description: Problems met while stopping the scratch processes or removing their directories (empty when none).
  returned: success
  type: list
  elements: str
"""

import json
import os
import re
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kongops.upgrade.plugins.module_utils._backup_common import BackupError
from ansible_collections.kongops.upgrade.plugins.module_utils._backup_declarative import HAS_YAML, YAML_IMPORT_ERROR, parse_declarative
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_cli import kong_error_line
from ansible_collections.kongops.upgrade.plugins.module_utils._route_replay import (
    DEFAULT_TRIGGER,
    RouteReplayError,
    ScratchKong,
    build_requests,
    compare,
    iter_routes,
    scratch_config,
    send,
)

_SIDE = dict(version=dict(type="str", required=True), kong_bin=dict(type="path", required=True), conf=dict(type="dict", default={}))
_HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"


def replay(module, p, doc, requests, result):
    """Start both scratch processes, send every request to each, compare; always stop and remove both."""
    x, y = p["x"], p["y"]
    text = json.dumps(scratch_config(doc, p["trigger"]), indent=1)
    sides = {}
    cleanup = []
    try:
        for side, spec in (("x", x), ("y", y)):
            kong = ScratchKong(module.run_command, spec["kong_bin"], spec["version"], p["work_dir"], side, spec["conf"])
            sides[side] = kong
            kong.write(text)
        for side, kong in sides.items():
            try:
                kong.start(p["trigger"], p["start_timeout"])
            except RouteReplayError as exc:
                if exc.rc is None:
                    raise
                result["refused"].append({"side": side, "version": kong.version, "error": kong_error_line(exc.stderr) or str(exc)})
        if not result["refused"]:
            answers = {side: [send(kong.port, req, p["trigger"], p["request_timeout"]) for req in requests] for side, kong in sides.items()}
            result["mismatches"] = compare(requests, answers["x"], answers["y"], x["version"], y["version"])
    finally:
        for kong in sides.values():
            try:
                cleanup += kong.stop()
            except OSError as exc:
                cleanup.append(f"could not stop Kong {kong.version}: {exc}")
    result["cleanup"] = cleanup


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True),
            x=dict(type="dict", required=True, options=_SIDE),
            y=dict(type="dict", required=True, options=_SIDE),
            trigger=dict(type="str", default=DEFAULT_TRIGGER),
            work_dir=dict(type="path"),
            near_misses=dict(type="bool", default=True),
            max_requests=dict(type="int", default=2000),
            start_timeout=dict(type="int", default=60),
            request_timeout=dict(type="int", default=5),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=YAML_IMPORT_ERROR)
    if not re.match(_HEADER_NAME, p["trigger"] or ""):
        module.fail_json(msg=f"trigger: '{p['trigger']}' is not a header name; give letters, digits and dashes (default {DEFAULT_TRIGGER}).")
    for key in ("max_requests", "start_timeout", "request_timeout"):
        if p[key] < 1:
            module.fail_json(msg=f"{key}: {p[key]} must be at least 1.")
    for side in ("x", "y"):
        if not module.check_mode:
            if not os.access(p[side]["kong_bin"], os.X_OK):
                module.fail_json(
                    msg=f"{side}.kong_bin: {p[side]['kong_bin']} is not an executable on this host; "
                    f"give the kong binary of {p[side]['version']} (a versioned prefix install)."
                )
    try:
        with open(p["src"], encoding="utf-8") as fh:
            doc = parse_declarative(fh.read(), origin=p["src"])
    except (OSError, UnicodeDecodeError) as exc:
        module.fail_json(msg=f"src: cannot read {p['src']}: {exc}")
    except BackupError as exc:
        module.fail_json(msg=f"src: {exc}")
    requests, skipped = build_requests(doc, p["near_misses"], p["max_requests"])
    routes = len(list(iter_routes(doc)))
    result = dict(
        changed=False,
        routes=routes,
        requests=len(requests),
        unreplayed=skipped,
        sample=[{k: r[k] for k in ("route", "method", "host", "path", "headers", "near_miss") if r.get(k)} for r in requests[:20]],
        mismatches=[],
        refused=[],
        cleanup=[],
    )
    versions = f"{p['x']['version']} and {p['y']['version']}"
    if module.check_mode:
        result["summary"] = f"check mode: {len(requests)} request(s) from {routes} route(s) would be replayed on {versions}; no Kong was started"
        module.exit_json(**result)
    try:
        replay(module, p, doc, requests, result)
    except RouteReplayError as exc:
        module.fail_json(
            msg=f"the route replay could not run: {exc}",
            cmd=exc.cmd,
            rc=exc.rc,
            stderr=(exc.stderr or "")[-2000:],
            **{k: result[k] for k in ("routes", "requests")},
        )
    except Exception as exc:  # noqa: BLE001 - last resort: stopped and removed in replay()'s finally
        module.fail_json(msg=f"the route replay failed: {exc}", exception=traceback.format_exc())
    result["passed"] = not result["mismatches"] and not result["refused"]
    if result["refused"]:
        result["summary"] = "; ".join(f"Kong {r['version']} refused the configuration: {r['error']}" for r in result["refused"])
    else:
        result["summary"] = f"{len(requests)} request(s) from {routes} route(s): {len(result['mismatches'])} matched differently on {versions}"
    module.exit_json(**result)


if __name__ == "__main__":
    main()
