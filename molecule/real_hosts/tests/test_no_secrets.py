"""No Admin API token or database password in any log, report or journal: on the hosts (systemd's
journal, Kong's logs, /var/log) and on the controller (the run's work directory)."""
import base64
import io
import os
import tarfile

import testinfra
import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
KONG_HOSTS = RUNNER.get_hosts("kong_cp") + RUNNER.get_hosts("kong_x")
testinfra_hosts = KONG_HOSTS + RUNNER.get_hosts("kong_db") + RUNNER.get_hosts("kong_lb")
_VARS = RUNNER.get_variables(KONG_HOSTS[0])
SECRETS = {"kong_admin_token": _VARS["kong_admin_token"], "kong_node_pg_password": _VARS["kong_node_pg_password"]}
WORK_DIR = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "kongops")


def _grep(host, paths):
    """Files under `paths` that contain a secret, by secret name. The files come to the controller
    (tar + base64) and are searched here: a secret on a command line would itself reach the journal."""
    out = host.check_output("tar -czf - --ignore-failed-read " + " ".join(["%s"] * len(paths)) +
                            " 2>/dev/null | base64 -w0", *paths)
    found = {}
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(out)), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            data = tar.extractfile(member).read()
            for name, value in SECRETS.items():
                if value.encode() in data:
                    found.setdefault(name, []).append(member.name)
    return found


def test_no_secret_in_logs_on_the_host(host):
    paths = [p for p in ("/var/log", "/usr/local/kong/logs", "/var/tmp") if host.file(p).exists]
    assert _grep(host, paths) == {}


def test_no_secret_in_the_journal_of_the_kong_hosts():
    """systemd's journal on every Kong host (only they run systemd)."""
    leaked = {}
    for name in KONG_HOSTS:
        kong_host = testinfra.get_host(f"ansible://{name}?ansible_inventory={os.environ['MOLECULE_INVENTORY_FILE']}")
        journal = kong_host.check_output("journalctl --no-pager -o cat -q")
        assert journal, f"the journal of {name} is empty: nothing was checked"
        hit = [secret for secret, value in SECRETS.items() if value in journal]
        if hit:
            leaked[name] = hit
    assert leaked == {}


def test_no_secret_in_the_runs_journal_reports_or_logs():
    """The work directory on the controller: journal, reports and logs free of secrets; any other
    file that holds one (e.g. a backup of the operator's environment file) readable by its owner only."""
    leaked, open_files = [], []
    for root, _dirs, files in os.walk(WORK_DIR):
        for name in files:
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            hit = [k for k, v in SECRETS.items() if v.encode() in data]
            if not hit:
                continue
            lowered = name.lower()
            if any(word in lowered for word in ("journal", "report", ".log", "lock")):
                leaked.append((path, hit))
            elif os.stat(path).st_mode & 0o077:
                open_files.append((path, oct(os.stat(path).st_mode & 0o777)))
    assert os.path.isdir(WORK_DIR), WORK_DIR
    assert leaked == []
    assert open_files == []
