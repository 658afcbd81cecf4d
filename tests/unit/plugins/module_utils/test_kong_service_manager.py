"""KongService against a fake host: systemd with Kong's unit, or the kong CLI alone."""

from __future__ import annotations

import os
import stat

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_service import (
    KongService,
    KongServiceError,
    env_file_text,
)


class FakeHost:
    """systemctl and kong as a host answers them; records every argv and environment."""

    def __init__(self, unit_loaded=True, active=False, cli_running=False, enabled="disabled"):
        self.unit_loaded, self.active, self.cli_running, self.enabled = unit_loaded, active, cli_running, enabled
        self.calls = []

    def __call__(self, argv, environ_update=None):
        self.calls.append((list(argv), dict(environ_update or {})))
        if argv[0] == "systemctl":
            verb = argv[1]
            if verb == "show":
                load = "loaded" if self.unit_loaded else "not-found"
                state = "active" if self.active else "inactive"
                return 0, (f"LoadState={load}\nActiveState={state}\nSubState=running\nUnitFileState={self.enabled}\nMainPID={42 if self.active else 0}\n"), ""
            if verb == "start":
                if self.cli_running:
                    return 1, "", "Job for kong.service failed (address already in use)"
                self.active = True
            elif verb == "stop":
                self.active = False
            elif verb == "enable":
                self.enabled = "enabled"
            return 0, "", ""
        sub = argv[1]
        if sub == "health":
            running = self.cli_running or self.active
            return (0, "nginx.......running\n", "") if running else (1, "", "Error: Kong is not running")
        if sub == "start":
            self.cli_running = True
            return 0, "Kong started\n", ""
        if sub in ("quit", "stop"):
            self.cli_running = False
            return 0, "Kong stopped\n", ""
        return 0, "", ""

    def argvs(self, mutating_only=True):
        skip = ("show", "health")
        return [a for a, _env in self.calls if not (mutating_only and a[1] in skip)]


def service(host, tmp_path, booted=True, **kw):
    kw.setdefault("env", {"KONG_PG_PASSWORD": "s3cr#t"})
    return KongService(
        host,
        kong_bin="/usr/local/bin/kong",
        prefix="/usr/local/kong",
        conf="/etc/kong/kong.conf",
        sd_booted=lambda: booted,
        sleep=lambda s: None,
        unit_dir=str(tmp_path / "units"),
        env_file=str(tmp_path / "kong" / "kongops.env"),
        **kw,
    )


def test_auto_picks_systemd_when_the_unit_is_loaded(tmp_path):
    host = FakeHost()
    svc = service(host, tmp_path)
    assert svc.choose() == "systemd"
    assert svc.start(svc.status()) is True
    assert host.argvs() == [["systemctl", "start", "kong.service"]]


def test_auto_picks_cli_without_systemd_and_starts_with_c(tmp_path):
    host = FakeHost()
    svc = service(host, tmp_path, booted=False)
    assert svc.choose() == "cli"
    svc.start(svc.status())
    argv, env = [c for c in host.calls if c[0][1] == "start"][0]
    assert argv == ["/usr/local/bin/kong", "start", "-c", "/etc/kong/kong.conf", "-p", "/usr/local/kong"]
    assert env == {"KONG_PG_PASSWORD": "s3cr#t"}
    assert all("s3cr#t" not in " ".join(a) for a, _env in host.calls)


def test_auto_picks_cli_when_the_unit_is_missing(tmp_path):
    svc = service(FakeHost(unit_loaded=False), tmp_path)
    assert svc.choose() == "cli"


def test_systemd_requested_without_unit_fails_clearly(tmp_path):
    with pytest.raises(KongServiceError, match="manager=systemd but systemd has no unit kong.service"):
        service(FakeHost(unit_loaded=False), tmp_path, manager="systemd").choose()


def test_node_running_outside_systemd_is_handed_over_not_doubled(tmp_path):
    host = FakeHost(cli_running=True)
    svc = service(host, tmp_path)
    svc.choose()
    state = svc.status()
    assert state["running_outside_systemd"] is True
    svc.start(state, quit_timeout=30)
    assert host.argvs() == [["/usr/local/bin/kong", "quit", "-t", "30", "-p", "/usr/local/kong"], ["systemctl", "start", "kong.service"]]
    assert host.active and not host.cli_running


def test_started_is_idempotent(tmp_path):
    host = FakeHost(active=True)
    svc = service(host, tmp_path)
    svc.choose()
    assert svc.start(svc.status()) is False
    assert host.argvs() == []


def test_graceful_quit_cli_passes_kong_t_and_w(tmp_path):
    host = FakeHost(cli_running=True)
    svc = service(host, tmp_path, manager="cli")
    svc.choose()
    assert svc.quit(svc.status(), timeout=25, wait=3) is True
    assert host.argvs() == [["/usr/local/bin/kong", "quit", "-t", "25", "-w", "3", "-p", "/usr/local/kong"]]


def test_graceful_quit_systemd_waits_then_systemctl_stop(tmp_path):
    host = FakeHost(active=True)
    slept = []
    svc = service(host, tmp_path)
    svc.sleep = slept.append
    svc.choose()
    svc.quit(svc.status(), timeout=25, wait=3)
    assert slept == [3]
    assert host.argvs() == [["systemctl", "stop", "kong.service"]]


def test_stop_at_once_under_systemd_sends_term(tmp_path):
    host = FakeHost(active=True)
    svc = service(host, tmp_path)
    svc.choose()
    svc.stop(svc.status())
    assert host.argvs() == [["systemctl", "kill", "--signal=SIGTERM", "kong.service"], ["systemctl", "stop", "kong.service"]]


def test_quit_of_a_stopped_node_changes_nothing(tmp_path):
    host = FakeHost()
    svc = service(host, tmp_path)
    svc.choose()
    assert svc.quit(svc.status()) is False and host.argvs() == []


def test_enable_and_idempotence(tmp_path):
    host = FakeHost()
    svc = service(host, tmp_path)
    svc.choose()
    assert svc.set_enabled(svc.status(), True) is True
    svc.refresh()
    assert svc.set_enabled(svc.status(), True) is False
    assert host.argvs() == [["systemctl", "enable", "kong.service"]]


def test_enable_without_systemd_is_refused(tmp_path):
    svc = service(FakeHost(), tmp_path, booted=False)
    svc.choose()
    with pytest.raises(KongServiceError, match="enabled needs systemd"):
        svc.set_enabled(svc.status(), True)


def test_dropin_and_env_file_0600(tmp_path):
    host = FakeHost()
    svc = service(host, tmp_path)
    svc.choose()
    assert svc.configure_unit(35, use_env_file=True) is True
    env_path = tmp_path / "kong" / "kongops.env"
    assert stat.S_IMODE(os.stat(env_path).st_mode) == 0o600
    assert env_path.read_text().splitlines()[-1] == 'KONG_PG_PASSWORD="s3cr#t"'
    dropin = (tmp_path / "units" / "kong.service.d" / "kongops.conf").read_text()
    assert "TimeoutStopSec=35" in dropin and f"EnvironmentFile={env_path}" in dropin
    assert host.argvs() == [["systemctl", "daemon-reload"]]
    assert svc.configure_unit(35, use_env_file=True) is False
    assert host.argvs() == [["systemctl", "daemon-reload"]]


def test_dropin_check_mode_writes_nothing(tmp_path):
    host = FakeHost()
    svc = service(host, tmp_path, check_mode=True)
    svc.choose()
    assert svc.configure_unit(35, use_env_file=True) is True
    assert not (tmp_path / "units").exists() and not (tmp_path / "kong").exists()
    assert [a for a, _env in host.calls if a[1] == "daemon-reload"] == []
    assert svc.commands == [["systemctl", "daemon-reload"]]


def test_check_mode_start_runs_nothing(tmp_path):
    host = FakeHost()
    svc = service(host, tmp_path, booted=False, check_mode=True)
    svc.choose()
    assert svc.start(svc.status()) is True
    assert host.argvs() == [] and svc.commands[0][1] == "start"


def test_env_file_quotes_and_refuses_newlines():
    assert env_file_text({"A": 'x"$\\y'}).splitlines()[-1] == 'A="x\\"\\$\\\\y"'
    with pytest.raises(KongServiceError, match="newline"):
        env_file_text({"A": "x\ny"})


def test_wait_ready_is_bounded(tmp_path):
    now = [0.0]
    svc = service(FakeHost(), tmp_path, ready_probe=lambda: (False, "GET /status/ready: 503 no configuration"))
    svc.clock = lambda: now[0]
    svc.sleep = lambda s: now.__setitem__(0, now[0] + s)
    with pytest.raises(KongServiceError, match="within 5s: GET /status/ready: 503"):
        svc.wait_ready(5)
    assert now[0] == 5


def test_wait_ready_without_url_uses_kong_health(tmp_path):
    host = FakeHost(cli_running=True)
    svc = service(host, tmp_path, booted=False)
    svc.choose()
    assert svc.wait_ready(5)["ready"] is True


def test_reload_needs_a_running_node(tmp_path):
    svc = service(FakeHost(), tmp_path, booted=False)
    svc.choose()
    with pytest.raises(KongServiceError, match="needs a running node"):
        svc.reload(svc.status())


def test_missing_kong_binary_means_not_running(tmp_path):
    def run(argv, environ_update=None):
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    svc = service(run, tmp_path, booted=False)
    svc.choose()
    assert svc.status()["running"] is False


class RefusingHost(FakeHost):
    """A host whose Kong refuses the declarative file, as kong/cmd/init.lua prints the error."""

    def __call__(self, argv, environ_update=None):
        if argv[0] != "systemctl" and argv[1:3] == ["config", "parse"]:
            self.calls.append((list(argv), dict(environ_update or {})))
            return 1, "", "Error: Failed parsing:\nin 'services': expected an array\n\n  Run with --v (verbose) or --vv (debug) for more details\n"
        return super().__call__(argv, environ_update)


def test_declarative_check_runs_kong_config_parse_with_the_nodes_conf_and_env(tmp_path):
    host = FakeHost(unit_loaded=False)
    svc = service(host, tmp_path)
    svc.check_declarative("/etc/kong/kong.yml")
    argv, env = host.calls[-1]
    assert argv == ["/usr/local/bin/kong", "config", "parse", "/etc/kong/kong.yml", "-c", "/etc/kong/kong.conf"]
    assert env == {"KONG_PG_PASSWORD": "s3cr#t"}
    assert svc.commands == []  # read only: not among the commands that changed something


def test_declarative_check_names_the_file_and_kongs_whole_message(tmp_path):
    host = RefusingHost(unit_loaded=False, cli_running=True)
    svc = service(host, tmp_path)
    with pytest.raises(KongServiceError) as err:
        svc.check_declarative("/etc/kong/kong.yml")
    msg = str(err.value)
    assert "/etc/kong/kong.yml" in msg and "nothing was quit or started" in msg
    assert "Failed parsing: in 'services': expected an array" in msg and "Run with --v" not in msg
    assert host.cli_running and not [argv for argv, _env in host.calls if argv[1] in ("quit", "stop", "start")]


def test_declarative_check_runs_in_check_mode(tmp_path):
    host = RefusingHost(unit_loaded=False)
    svc = service(host, tmp_path, check_mode=True)
    with pytest.raises(KongServiceError):
        svc.check_declarative("/etc/kong/kong.yml")
