#!/usr/bin/python
# ruff: noqa: EXE001
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kong_cluster_tls_check
short_description: Judge whether a hybrid control plane will accept the data planes' cluster certificates
version_added: 0.3.0
description:
  - Reads the cluster certificates of hybrid-mode data planes and of their control plane, and says, before
    any data plane starts, whether the two ends would accept each other on the cluster link.
  - With C(cluster_mtls = shared) the control plane accepts only its own C(cluster_cert), compared by sha256
    digest (Kong/kong 3.9.3 kong/clustering/tls.lua:28-39), and a data plane checks the control plane's
    certificate by the name C(kong_clustering) (kong/clustering/utils.lua:97-99).
  - With C(cluster_mtls = pki) the control plane's cluster listener verifies the data plane's certificate
    against its C(cluster_ca_cert) with C(ssl_verify_client on) and C(ssl_verify_depth 4)
    (kong/templates/nginx_kong.lua:568-576, the same at 3.4.2 and 2.8.5), and the data plane verifies the control
    plane's against its own C(cluster_ca_cert) to C(lua_ssl_verify_depth), by C(cluster_server_name) or
    else the host of C(cluster_control_plane) (kong/clustering/utils.lua:100-105).
  - Refuses a certificate that is expired, not yet valid or expires within O(min_days) days (its CA
    certificates too), a key that is not the certificate's, a certificate the other end would refuse, and a
    control-plane certificate that does not carry the name the data plane checks. Warns when one expires
    within O(warn_days) days.
  - Pure logic over PEM text, nothing is changed and nothing is contacted. Needs the Python
    C(cryptography) library, which ansible-core itself requires on the controller.
author:
  - kongops.upgrade contributors (@kongops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - kongops.upgrade.attributes.info_module
  - kongops.upgrade.attributes.actiongroup_none
options:
  control_plane:
    description:
      - The control plane the data planes connect to.
    type: dict
    required: true
    suboptions:
      name:
        description: Its inventory name, for the messages.
        type: str
        default: the control plane
      mtls:
        description: Its C(cluster_mtls).
        type: str
        choices: [shared, pki]
        default: shared
      cert:
        description: PEM text of its C(cluster_cert) (intermediate CA certificates may follow the certificate).
        type: str
        required: true
      ca_cert:
        description: PEM text of its C(cluster_ca_cert). Required with O(control_plane.mtls=pki).
        type: str
  data_planes:
    description:
      - The data planes to judge, each with the settings it will run with.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Its inventory name, for the messages.
        type: str
        required: true
      mtls:
        description: Its C(cluster_mtls).
        type: str
        choices: [shared, pki]
        default: shared
      cert:
        description: PEM text of its C(cluster_cert) (intermediate CA certificates may follow the certificate).
        type: str
        required: true
      key:
        description:
          - PEM text of its C(cluster_cert_key); when given, it must be the key of O(data_planes[].cert).
            Never returned or logged.
        type: str
      ca_cert:
        description: PEM text of its C(cluster_ca_cert) (pki).
        type: str
      server_name:
        description: Its C(cluster_server_name) (pki); empty means the host of O(data_planes[].control_plane).
        type: str
        default: ''
      control_plane:
        description: Its C(cluster_control_plane), V(host:port).
        type: str
        default: ''
      verify_depth:
        description: Its C(lua_ssl_verify_depth) (Kong's default is 1).
        type: int
        default: 1
  min_days:
    description:
      - Refuse a certificate (or CA certificate) that expires in fewer days than this. V(0) refuses only
        certificates already expired.
    type: int
    default: 14
  warn_days:
    description:
      - Warn about a certificate that expires in fewer days than this (and at least O(min_days)).
    type: int
    default: 30
  fail_on_refusal:
    description:
      - Fail, naming each data plane and the fix, when one would be refused. With V(false) the findings are
        only returned.
    type: bool
    default: true
requirements:
  - cryptography >= 42 (on the host the module runs on)
"""

EXAMPLES = r"""
- name: Read the new data plane's certificate and key on its host
  ansible.builtin.slurp:
    src: "{{ item }}"
  loop: [/etc/kong/cluster.crt, /etc/kong/cluster.key]
  register: dp_files
  no_log: true

- name: Would the control plane accept it?
  kongops.upgrade.kong_cluster_tls_check:
    control_plane:
      name: cp1
      cert: "{{ lookup('ansible.builtin.file', 'files/cluster.crt') }}"
    data_planes:
      - name: "{{ inventory_hostname }}"
        cert: "{{ dp_files.results[0].content | b64decode }}"
        key: "{{ dp_files.results[1].content | b64decode }}"
    min_days: 14
  delegate_to: localhost
"""

RETURN = r"""
data_planes:
  description: The findings per data plane.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The data plane.
      type: str
    refusals:
      description: Why the link would fail, each with its fix. Empty when it would come up.
      type: list
      elements: str
    warnings:
      description: Certificates that expire within O(warn_days) days.
      type: list
      elements: str
    expiries:
      description: Each certificate judged, with its C(not_after) and the days left.
      type: list
      elements: dict
    server_name:
      description: The name the data plane checks the control plane's certificate by.
      type: str
refused:
  description: The data planes that would be refused.
  returned: always
  type: list
  elements: str
  sample: [y1]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kongops.upgrade.plugins.module_utils import _cluster_tls as ctls


def main():
    argument_spec = dict(
        control_plane=dict(
            type="dict",
            required=True,
            options=dict(
                name=dict(type="str", default="the control plane"),
                mtls=dict(type="str", choices=["shared", "pki"], default="shared"),
                cert=dict(type="str", required=True),
                ca_cert=dict(type="str"),
            ),
        ),
        data_planes=dict(
            type="list",
            elements="dict",
            required=True,
            options=dict(
                name=dict(type="str", required=True),
                mtls=dict(type="str", choices=["shared", "pki"], default="shared"),
                cert=dict(type="str", required=True),
                key=dict(type="str", no_log=True),
                ca_cert=dict(type="str"),
                server_name=dict(type="str", default=""),
                control_plane=dict(type="str", default=""),
                verify_depth=dict(type="int", default=1),
            ),
        ),
        min_days=dict(type="int", default=14),
        warn_days=dict(type="int", default=30),
        fail_on_refusal=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    if not ctls.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=ctls.CRYPTOGRAPHY_IMPORT_ERROR)
    if p["min_days"] < 0 or p["warn_days"] < p["min_days"]:
        module.fail_json(
            msg="min_days must be 0 or more and warn_days at least min_days (got min_days=%s, "
            "warn_days=%s): set kong_cluster_cert_min_days and kong_cluster_cert_warn_days so" % (p["min_days"], p["warn_days"])
        )
    cp = p["control_plane"]
    if cp["mtls"] == "pki" and not cp.get("ca_cert"):
        module.fail_json(
            msg="control_plane.ca_cert is required with control_plane.mtls=pki: the control plane "
            "%s verifies data planes against its cluster_ca_cert; set it (kong_node_cluster_ca_cert "
            "or kong_node_conf.cluster_ca_cert of the control plane)" % cp["name"]
        )
    results, refused, warned = [], [], []
    for dp in p["data_planes"]:
        try:
            found = ctls.judge(cp, dp, min_days=p["min_days"], warn_days=p["warn_days"])
        except ctls.ClusterTlsError as exc:
            found = dict(refusals=["%s; fix: point the setting at a PEM file" % exc], warnings=[], expiries=[], server_name="")
        results.append(dict(name=dp["name"], **found))
        if found["refusals"]:
            refused.append(dp["name"])
        for text in found["warnings"]:
            if text not in warned:
                warned.append(text)
                module.warn(text)
    out = dict(changed=False, data_planes=results, refused=refused)
    if refused and p["fail_on_refusal"]:
        lines = ["%s would be refused on the cluster link to %s:" % (", ".join(refused), cp["name"])]
        for row in results:
            for text in row["refusals"]:
                lines.append("%s: %s." % (row["name"], text))
        module.fail_json(msg=" ".join(lines), **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
