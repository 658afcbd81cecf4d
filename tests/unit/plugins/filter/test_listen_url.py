from __future__ import annotations

import pytest
from ansible_collections.kongops.upgrade.plugins.filter.kong_conf import ListenUrlError, listen_url


@pytest.mark.parametrize(
    "value, url",
    [
        # Kong's defaults (Kong/kong 3.9.3 kong/templates/kong_defaults.lua lines 29 and 31)
        ("127.0.0.1:8001 reuseport backlog=16384, 127.0.0.1:8444 http2 ssl reuseport backlog=16384", "http://127.0.0.1:8001"),
        ("127.0.0.1:8007 reuseport backlog=16384", "http://127.0.0.1:8007"),
        # the first entry counts; flags stand anywhere in it (listeners.lua parse_option_flags)
        ("0.0.0.0:8444 http2 ssl, 127.0.0.1:8001", "https://127.0.0.1:8444"),
        ("ssl 10.0.0.5:8444", "https://10.0.0.5:8444"),
        ("  *:8001  ", "http://127.0.0.1:8001"),
        ("[::]:8001 ipv6only=on", "http://[::1]:8001"),
        ("[fe80::1]:8444 ssl so_keepalive=30m:10:3", "https://[fe80::1]:8444"),
        ("kong-admin.internal:8001", "http://kong-admin.internal:8001"),
        ("off", ""),
        (" off , 127.0.0.1:8001", ""),
        ("", ""),
    ],
)
def test_listen_url_reads_the_first_entry_as_kong_does(value, url):
    assert listen_url(value) == url


@pytest.mark.parametrize("value", ["8001", "127.0.0.1", "127.0.0.1:8001 sssl", "::1:8001", "127.0.0.1:80a1", "127.0.0.1:8001 127.0.0.1:8002"])
def test_a_value_kong_refuses_names_the_setting(value):
    with pytest.raises(ListenUrlError, match="^kong_node_admin_listen: '.*' is not a listener Kong accepts"):
        listen_url(value, "kong_node_admin_listen")
