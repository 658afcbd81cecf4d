"""The proxy smoke check: bounded retries, statuses, Kong's Via header."""

from __future__ import annotations

import pytest
import requests
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_proxy import KongProxyError, check


class Resp:
    def __init__(self, status, via="1.1 kong/3.9.3"):
        self.status_code, self.headers, self.text = status, {"Via": via}, "body"


class Session:
    def __init__(self, answers):
        self.answers, self.calls = list(answers), []

    def get(self, url, **kw):
        self.calls.append((url, kw))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_retries_until_expected_status():
    s = Session([requests.ConnectionError("refused"), Resp(503), Resp(200)])
    slept = []
    out = check("https://n:8443/smoke", retries=5, session=s, sleep=slept.append, verify="/ca.pem", headers={"apikey": "k"})
    assert out == {"status": 200, "attempts": 3, "via": "1.1 kong/3.9.3", "server": ""}
    assert slept == [1.0, 1.0] and s.calls[0][1]["verify"] == "/ca.pem"


def test_bounded_and_names_the_last_answer():
    s = Session([Resp(500), Resp(500)])
    with pytest.raises(KongProxyError, match=r"did not answer 200 after 2 attempt\(s\): HTTP 500"):
        check("http://n:8000/smoke", retries=1, session=s, sleep=lambda d: None)


def test_expected_401():
    assert check("http://n:8000/smoke", expect=(401,), session=Session([Resp(401)]))["status"] == 401
