# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kong_proxy_check
short_description: Smoke-test a Kong node through its proxy
version_added: 0.2.0
description:
  - Sends C(GET) to a route on the node's proxy until it answers one of the expected statuses,
    bounded by O(retries), and returns the status with the C(Via) and C(Server) headers Kong adds
    (C(kong/<version>)). Over HTTPS it verifies the proxy's certificate with O(ca_path) and can
    present a client certificate.
  - With O(refused_status), the same request is then sent once without O(headers), and an
    authentication plugin on the route must refuse it with one of those statuses (for example
    key-auth's C(401)). With O(version), the answer must name C(kong/<version>) in its C(Via) or
    C(Server) header (an answer without C(Via) passes, as kong.conf's C(headers) can hide it). The
    smoke test of a rolling or in-place upgrade is this one call.
  - The value of O(headers) (for example an API key) is never logged or returned.
author:
  - kongops.upgrade contributors (@kongops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - kongops.upgrade.attributes.info_module
  - kongops.upgrade.attributes.actiongroup_none
options:
  url:
    description: The URL through the node's proxy.
    type: str
    required: true
  headers:
    description: Request headers (for example the key-auth header); not logged.
    type: dict
    default: {}
  status_code:
    description: Statuses that pass.
    type: list
    elements: int
    default: [200]
  refused_status:
    description:
      - Statuses that the request without O(headers) must get, checked once after the request with
        them passed. Empty skips that request.
    type: list
    elements: int
    default: []
  version:
    description:
      - The Kong version the node must name in C(Via) or C(Server) (C(kong/3.9.3)). Empty skips the
        check.
    type: str
    default: ""
  retries:
    description: Further attempts after the first, O(delay) seconds apart (the request with O(headers) only).
    type: int
    default: 0
  delay:
    description: Seconds between attempts.
    type: float
    default: 1
  timeout:
    description: Seconds per request.
    type: int
    default: 10
  validate_certs:
    description: Verify the proxy's TLS certificate.
    type: bool
    default: true
  ca_path:
    description: CA bundle for the proxy's certificate.
    type: path
  client_cert:
    description: Client certificate (PEM) to present.
    type: path
  client_key:
    description: Key of O(client_cert) when in a separate file.
    type: path
requirements:
  - requests
"""

EXAMPLES = r"""
- name: The route answers with a key
  kongops.upgrade.kong_proxy_check:
    url: https://127.0.0.1:8443/smoke
    headers: {apikey: "{{ smoke_key }}"}
    ca_path: /etc/kong/ca.pem
    retries: 5

- name: The route answers with a key, refuses without one, and Kong 3.9.3 answers
  kongops.upgrade.kong_proxy_check:
    url: http://127.0.0.1:8000/smoke
    headers: {apikey: "{{ smoke_key }}"}
    refused_status: [401]
    version: 3.9.3
"""

RETURN = r"""
status:
  description: The status the proxy answered.
  returned: success
  type: int
  sample: 200
refused_status:
  description: The status the request without O(headers) got.
  returned: when O(refused_status) is given and the check passed
  type: int
  sample: 401
attempts:
  description: Requests sent.
  returned: always
  type: int
via:
  description: The C(Via) header (C(1.1 kong/3.9.3) on Kong 3.x).
  returned: success
  type: str
server:
  description: The C(Server) header.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import HAS_REQUESTS, REQUESTS_IMPORT_ERROR
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_proxy import KongProxyError, smoke


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            headers=dict(type="dict", default={}, no_log=True),
            status_code=dict(type="list", elements="int", default=[200]),
            refused_status=dict(type="list", elements="int", default=[]),
            version=dict(type="str", default=""),
            retries=dict(type="int", default=0),
            delay=dict(type="float", default=1),
            timeout=dict(type="int", default=10),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            client_cert=dict(type="path"),
            client_key=dict(type="path", no_log=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"), exception=REQUESTS_IMPORT_ERROR)
    if not p["url"].startswith(("http://", "https://")):
        module.fail_json(msg=f"url: '{p['url']}' is not a URL (expected http:// or https://)")
    if p["retries"] < 0:
        module.fail_json(msg=f"retries must be 0 or more (got {p['retries']})")
    verify = (p["ca_path"] or True) if p["validate_certs"] else False
    cert = (p["client_cert"], p["client_key"]) if p["client_cert"] and p["client_key"] else p["client_cert"]
    try:
        result = smoke(
            p["url"],
            expect=tuple(p["status_code"]),
            headers=p["headers"],
            refused=tuple(p["refused_status"]),
            version=p["version"],
            retries=p["retries"],
            delay=p["delay"],
            timeout=p["timeout"],
            verify=verify,
            cert=cert,
        )
    except KongProxyError as exc:
        module.fail_json(msg=str(exc), status=exc.status, attempts=exc.attempts)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
