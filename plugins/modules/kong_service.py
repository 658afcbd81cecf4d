# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kong_service
short_description: Start, quit, stop, reload and observe one Kong node, through systemd or the kong CLI
version_added: 0.2.0
description:
  - Manages the Kong node of one host through systemd when the host has Kong's unit (C(kong.service),
    installed by Kong's packages) and systemd runs, else through the C(kong) command line. The
    choice is made per host (O(manager)) and reported in RV(manager) and in the C(kong_service) fact.
  - A graceful stop is Kong's C(kong quit -t <timeout> -w <wait>) on the command line; under systemd
    it is C(systemctl stop), whose C(ExecStop) in Kong's unit sends QUIT (Kong/kong 3.9.3
    C(build/package/kong.service)), with O(unit_stop_timeout) as the unit's C(TimeoutStopSec) drop-in.
  - A node running outside systemd in the unit's prefix (started by hand with C(kong start)) is
    handed over - quit gracefully, then C(systemctl start) - instead of starting a second one.
  - Without O(state) the module only observes (and applies O(enabled) or the unit drop-in).
  - Secrets in O(kong_env) never reach a command line - the C(kong) commands get them through the
    environment; under systemd they are written to an environment file of mode 0600 named by the
    unit's C(EnvironmentFile) drop-in.
author:
  - kongops.upgrade contributors (@kongops)
extends_documentation_fragment:
  - kongops.upgrade.kong_cli
  - kongops.upgrade.kong_admin
  - ansible.builtin.action_common_attributes
  - kongops.upgrade.attributes.actiongroup_kong
attributes:
  check_mode:
    support: full
    details: Reports the commands it would run in RV(commands) and runs none of them.
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  kong_prefix:
    description: The node's prefix directory (C(-p)); Kong's packages use C(/usr/local/kong).
    type: path
    default: /usr/local/kong
  state:
    description:
      - C(started) runs the node (and waits until it is ready); C(stopped) stops it (gracefully with
        O(graceful)); C(restarted) stops it gracefully and starts it; C(reloaded) reloads its
        configuration. Unset, the module only observes.
    type: str
    choices: [started, stopped, restarted, reloaded]
  graceful:
    description: With C(stopped), quit gracefully (in-flight requests finish); C(false) stops at once.
    type: bool
    default: true
  enabled:
    description:
      - Start the unit at boot (systemd only). With O(manager=auto) on a host without the unit it
        does nothing (RV(enabled) is null); with O(manager=cli) it is refused.
    type: bool
  version:
    description:
      - The version the node must run. With O(state=started), a node that runs another version (its
        Admin API, O(admin_url), says which) is quit gracefully and started again, so a new package
        or install directory takes effect; a node whose Admin API does not answer is left as it is.
    type: str
    version_added: 0.1.0
  manager:
    description:
      - C(auto) uses systemd when it runs and has O(unit) loaded, else the C(kong) CLI;
        C(systemd) fails when the unit is missing; C(cli) never uses systemd.
    type: str
    default: auto
    choices: [auto, systemd, cli]
  unit:
    description: The systemd unit of the node.
    type: str
    default: kong.service
  quit_timeout:
    description: Seconds in-flight requests get before the node is stopped forcefully (Kong's C(kong quit -t)).
    type: int
    default: 10
  quit_wait:
    description: Seconds to wait before the graceful shutdown starts (Kong's C(kong quit -w)).
    type: int
    default: 0
  unit_stop_timeout:
    description:
      - Write a drop-in C(<unit>.d/kongops.conf) with C(TimeoutStopSec) set to this (systemd only);
        unset, no timeout is written.
    type: int
  unit_env_file:
    description: The environment file (mode 0600) written from O(kong_env) under systemd.
    type: path
    default: /etc/kong/kongops.env
  ready_url:
    description:
      - URL that answers 200 when the node is ready (C(/status/ready) of the status listener from
        Kong 3.3, else the Admin API's C(/status)). Unset, readiness is C(kong health).
      - Uses O(admin_token), O(ca_path), O(validate_certs), O(client_cert) and O(client_key).
    type: str
  ready_timeout:
    description: Seconds to wait for readiness after a start, restart or reload; C(0) does not wait.
    type: int
    default: 60
  declarative_config:
    description:
      - DB-less nodes, with O(state=started) or O(state=restarted) - the declarative configuration file the node
        loads. C(kong config parse) of it with O(kong_conf) must pass before anything is quit or started (Kong/kong
        3.9.3 kong/cmd/config.lua); a file Kong refuses fails the module with Kong's error and leaves the node as
        it was. Read only, so it also runs in check mode (the file must exist then).
    type: path
"""

EXAMPLES = r"""
- name: Quit Kong gracefully, whichever way the host runs it
  kongops.upgrade.kong_service:
    state: stopped
    kong_bin: /usr/local/bin/kong
    kong_prefix: /usr/local/kong
    quit_timeout: 30
    unit_stop_timeout: 35

- name: Start Kong 3.9.3 at boot and now (a node still on another version is restarted), wait until ready
  kongops.upgrade.kong_service:
    state: started
    version: 3.9.3
    admin_url: https://127.0.0.1:8444
    enabled: true
    kong_conf: /etc/kong/kong.conf
    kong_env:
      KONG_PG_PASSWORD: "{{ vault_pg_password }}"
    ready_url: https://127.0.0.1:8100/status/ready
    ca_path: /etc/kong/ca.pem
"""

RETURN = r"""
manager:
  description: How the node is managed on this host.
  returned: always
  type: str
  sample: systemd
running:
  description: Whether the node runs after the module.
  returned: success
  type: bool
running_outside_systemd:
  description: Whether a node ran in the prefix without the unit knowing (before the module acted).
  returned: success
  type: bool
handed_over:
  description: Whether such a node was quit and started again under systemd.
  returned: success
  type: bool
enabled:
  description: The unit's C(UnitFileState) (systemd), else null.
  returned: success
  type: str
version:
  description: Version the running node reports on O(admin_url) (empty when not running or unreachable).
  returned: success
  type: str
replaced_version:
  description: With O(version), the other version the node ran before the module restarted it.
  returned: when the module restarted a node of another version
  type: str
  sample: 3.8.1
declarative_checked:
  description: Whether O(declarative_config) was parsed by Kong (and passed) before the module acted.
  returned: success
  type: bool
ready:
  description: Whether the node answered ready (null when not waited for).
  returned: success
  type: bool
commands:
  description: The commands run (or, in check mode, that would run), as argv lists without secrets.
  returned: success
  type: list
  elements: list
ansible_facts:
  description: C(kong_service) with RV(manager), RV(running), RV(enabled) and RV(version).
  returned: success
  type: dict
"""

import copy

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    HAS_REQUESTS,
    KONG_ADMIN_ARG_SPEC,
    REQUESTS_IMPORT_ERROR,
    KongAdminClient,
    KongAdminError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_cli import KONG_CLI_ARG_SPEC
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_service import (
    KongService,
    KongServiceError,
)


def argument_spec() -> dict:
    spec = copy.deepcopy(KONG_ADMIN_ARG_SPEC)
    spec.update(copy.deepcopy(KONG_CLI_ARG_SPEC))
    spec["kong_prefix"]["default"] = "/usr/local/kong"
    spec.update(
        state=dict(type="str", choices=["started", "stopped", "restarted", "reloaded"]),
        graceful=dict(type="bool", default=True),
        enabled=dict(type="bool"),
        version=dict(type="str"),
        manager=dict(type="str", default="auto", choices=["auto", "systemd", "cli"]),
        unit=dict(type="str", default="kong.service"),
        quit_timeout=dict(type="int", default=10),
        quit_wait=dict(type="int", default=0),
        unit_stop_timeout=dict(type="int"),
        unit_env_file=dict(type="path", default="/etc/kong/kongops.env"),
        ready_url=dict(type="str"),
        ready_timeout=dict(type="int", default=60),
        declarative_config=dict(type="path"),
    )
    return spec


def client(p, url):
    params = dict(p)
    params["admin_url"] = url
    return KongAdminClient.from_params(params)


def ready_probe(p):
    if not p["ready_url"]:
        return None
    api = client(p, p["ready_url"])

    def probe():
        try:
            resp = api.raw("GET", "")
        except KongAdminError as exc:
            return False, str(exc)
        if resp.status_code == 200:
            return True, f"GET {p['ready_url']}: 200"
        try:
            message = resp.json().get("message", "")
        except ValueError:
            message = resp.text[:200]
        return False, f"GET {p['ready_url']}: {resp.status_code} {message}".strip()

    return probe


def running_version(p) -> str:
    if not p["admin_url"]:
        return ""
    try:
        return str(client(p, p["admin_url"]).node().get("version", ""))
    except KongAdminError:
        return ""


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    if (p["ready_url"] or p["admin_url"]) and not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"), exception=REQUESTS_IMPORT_ERROR)
    for name in ("admin_url", "ready_url"):
        if p[name] and not p[name].startswith(("http://", "https://")):
            module.fail_json(msg=f"{name}: '{p[name]}' is not a URL (expected http:// or https://)")
    for name in ("quit_timeout", "quit_wait", "ready_timeout"):
        if p[name] < 0:
            module.fail_json(msg=f"{name} must be 0 or more (got {p[name]})")
    if p["state"] in ("started", "restarted", "reloaded") and not p["kong_conf"]:
        module.fail_json(msg=f"state={p['state']} needs kong_conf (the node's kong.conf, passed as -c)")

    def run(argv, environ_update=None):
        # a missing systemctl or kong raises OSError here, which the service maps to "not found"
        return module.run_command(argv, environ_update=environ_update, handle_exceptions=False)

    svc = KongService(
        run,
        kong_bin=p["kong_bin"],
        prefix=p["kong_prefix"],
        conf=p["kong_conf"],
        env=p["kong_env"],
        unit=p["unit"],
        manager=p["manager"],
        ready_probe=ready_probe(p),
        check_mode=module.check_mode,
        env_file=p["unit_env_file"],
    )
    result = dict(changed=False, manager=None, handed_over=False, ready=None, declarative_checked=False)
    try:
        manager = svc.choose()
        result["manager"] = manager
        if p["declarative_config"] and p["state"] in ("started", "restarted"):
            svc.check_declarative(p["declarative_config"])
            result["declarative_checked"] = True
        if manager == "systemd" and p["kong_conf"] and p["kong_conf"] != "/etc/kong/kong.conf":
            module.warn(
                f"Kong's unit prepares its prefix from /etc/kong/kong.conf (ExecStartPre=kong prepare "
                f"without -c), not from kong_conf {p['kong_conf']}: keep the node's settings there"
            )
        before = svc.status()
        changed = svc.configure_unit(p["unit_stop_timeout"], use_env_file=True)
        if p["enabled"] is not None and (manager == "systemd" or p["manager"] == "cli"):
            changed |= svc.set_enabled(before, p["enabled"])
        state = p["state"]
        acted = False
        seen_version = None  # GET / read before acting: still true when nothing acted
        if state == "started" and before["running"] and p["version"]:
            running = seen_version = running_version(p)
            # Kong Enterprise 2.x reports e.g. 2.8.4.1-enterprise-edition: the suffix names no other version
            if running and running.split("-", maxsplit=1)[0] != p["version"].split("-", maxsplit=1)[0]:
                result["replaced_version"] = running
                state = "restarted"
        if state == "started":
            acted = svc.start(before, p["quit_timeout"])
            result["handed_over"] = before["running_outside_systemd"]
        elif state == "restarted":
            svc.quit(before, p["quit_timeout"], p["quit_wait"])
            svc.start(dict(before, running=False, active=False, running_outside_systemd=False))
            acted = True
        elif state == "reloaded":
            acted = svc.reload(before)
        elif state == "stopped":
            acted = svc.quit(before, p["quit_timeout"], p["quit_wait"]) if p["graceful"] else svc.stop(before)
        changed |= acted
        if not module.check_mode:
            svc.refresh()
            after = svc.status()
        else:
            running = {"started": True, "restarted": True, "reloaded": before["running"], "stopped": False}.get(state, before["running"])
            after = dict(before, running=running)
            if p["enabled"] is not None and manager == "systemd":
                after["enabled"] = "enabled" if p["enabled"] else "disabled"
        if state in ("started", "restarted", "reloaded") and p["ready_timeout"] > 0 and not module.check_mode:
            result["ready"] = svc.wait_ready(p["ready_timeout"])["ready"]
            after = svc.status() if not after["running"] else after
    except KongServiceError as exc:
        module.fail_json(msg=str(exc), commands=svc.commands, **{k: v for k, v in result.items() if k != "changed"}, **exc.context())
    if not after["running"] or module.check_mode:
        version = ""
    else:
        version = seen_version if seen_version and not acted else running_version(p)
    result.update(
        changed=changed,
        running=after["running"],
        enabled=after["enabled"],
        running_outside_systemd=before["running_outside_systemd"],
        version=version,
        commands=svc.commands,
    )
    result["ansible_facts"] = dict(kong_service=dict(manager=manager, running=after["running"], enabled=after["enabled"], version=version))
    if module._diff:
        keys = ("running", "enabled")
        result["diff"] = dict(before={k: before[k] for k in keys}, after={k: after[k] for k in keys})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
