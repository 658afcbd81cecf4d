"""Configuration the end-to-end suites seed a sandbox with before an upgrade, through the Admin API."""

from __future__ import annotations

import requests


def seed_services(admin_url: str, count: int) -> None:
    """``count`` services ``svc<i>``, each with a route ``r<i>`` on path ``/r<i>``, created through the
    Admin API at ``admin_url`` (a traditional node or a control plane); fails on the first refusal."""
    with requests.Session() as http:
        for i in range(count):
            svc = http.post(f"{admin_url}/services", json={"name": f"svc{i}", "url": f"http://127.0.0.1:9/{i}"}, timeout=10)
            assert svc.status_code == 201, svc.text
            route = http.post(f"{admin_url}/services/svc{i}/routes", json={"name": f"r{i}", "paths": [f"/r{i}"]}, timeout=10)
            assert route.status_code == 201, route.text
