"""The proxy smoke check: bounded retries, statuses, Kong's Via header."""

from __future__ import annotations

import pytest
import requests
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_proxy import KongProxyError, check, served_by, smoke


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


class Answer(Resp):
    def __init__(self, status, via="1.1 kong/3.9.3", server=""):
        super().__init__(status, via)
        self.headers["Server"] = server


def test_smoke_is_one_call_the_key_then_without_it_then_the_version():
    s = Session([Resp(503), Answer(200), Answer(401, via="", server="kong/3.9.3")])
    out = smoke("http://n:8000/smoke", headers={"apikey": "k"}, refused=(401,), version="3.9.3", retries=2, session=s, sleep=lambda d: None)
    assert out["status"] == 200 and out["refused_status"] == 401 and out["attempts"] == 3
    # the second request goes without the key
    assert s.calls[1][1]["headers"] == {"apikey": "k"} and s.calls[2][1]["headers"] == {}


def test_smoke_fails_when_the_route_answers_without_a_key():
    s = Session([Answer(200), Answer(200)])
    with pytest.raises(KongProxyError, match=r"without the request headers \(the key\) should be refused with 401: .*HTTP 200") as err:
        smoke("http://n:8000/smoke", headers={"apikey": "k"}, refused=(401,), retries=3, session=s, sleep=lambda d: None)
    # the refusal is asked once: no retry
    assert err.value.status == 200 and len(s.calls) == 2


def test_smoke_names_the_version_that_answered():
    with pytest.raises(KongProxyError, match=r"answered with Via '1.1 kong/3.8.1' and Server '', not Kong 3.9.3"):
        smoke("http://n:8000/smoke", version="3.9.3", session=Session([Answer(200, via="1.1 kong/3.8.1")]))


@pytest.mark.parametrize(
    "via, server, passes",
    [
        ("1.1 kong/3.9.3", "", True),
        ("kong/3.9.3", "", True),  # Kong 2.x and early 3.x: no protocol version in Via
        ("", "nginx", True),  # kong.conf's `headers` hid Via; the proxied answer's Server is the upstream's
        ("", "", True),
        ("1.1 kong/3.8.1", "kong/3.9.3", True),
        ("1.1 kong/3.8.1", "nginx", False),
    ],
)
def test_served_by(via, server, passes):
    assert served_by({"via": via, "server": server}, "3.9.3") is passes
