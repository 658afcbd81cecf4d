"""A throw-away PostgreSQL 15 server (Debian's postgresql-15) on a free loopback port.

Run as a library (pytest fixture ``postgres``) or from the shell::

    python tests/services/postgres.py start DIR [PORT]   # prints "host port"
    python tests/services/postgres.py stop DIR

The server runs as an unprivileged user when started by root, keeps its data and
socket in DIR, accepts password (scram-sha-256) logins on 127.0.0.1 and trusted
logins on its private UNIX socket. With ``tls=True`` (shell: ``start DIR PORT --tls``) it serves
TLS with a certificate for 127.0.0.1 signed by its own CA (``ca_path``) and refuses TCP logins
without TLS (``hostssl`` lines only); ``require_tls=False`` keeps plain-text logins open beside TLS.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.services._apt import ensure_binary  # noqa: E402
from tests.services.ports import free_port  # noqa: E402

PG_BIN = "/usr/lib/postgresql/15/bin"
SUPERUSER = "postgres"
# distinctive, so that a leak of it can be told from the role name
SUPERUSER_PASSWORD = "dba-Hx3-secret-72e1"


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
    return ["runuser", "-u", "postgres", "--"]


class PostgresServer:
    def __init__(self, base_dir: str | None = None, port: int | None = None, tls: bool = False, require_tls: bool = True):
        ensure_binary(os.path.join(PG_BIN, "postgres"), "postgresql-15")
        self.base_dir = base_dir or tempfile.mkdtemp(prefix="kongops-pg-")
        self.data_dir = os.path.join(self.base_dir, "data")
        self.socket_dir = self.base_dir
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.superuser = SUPERUSER
        self.superuser_password = SUPERUSER_PASSWORD
        self._as = _run_as()
        self.tls = tls
        self.require_tls = require_tls
        self.ca_path = os.path.join(self.base_dir, "ca.pem") if tls else None

    @property
    def ca_file(self) -> str | None:
        """The CA that signed the server's certificate (the trusted certificate for clients)."""
        return self.ca_path

    def _make_certificates(self) -> None:
        """A CA and a server certificate for 127.0.0.1 (subjectAltName IP), so that libpq's
        verify-full accepts it; the key is the server user's, mode 0600, as PostgreSQL demands."""
        d = self.base_dir
        ssl = ["openssl"]
        subprocess.run(
            ssl
            + [
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=kongops test CA",
                "-keyout",
                os.path.join(d, "ca.key"),
                "-out",
                self.ca_path,
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ssl
            + [
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                os.path.join(d, "server.key"),
                "-out",
                os.path.join(d, "server.csr"),
            ],
            check=True,
            capture_output=True,
        )
        ext = os.path.join(d, "san.ext")
        with open(ext, "w") as fh:
            fh.write("subjectAltName = IP:127.0.0.1\n")
        subprocess.run(
            ssl
            + [
                "x509",
                "-req",
                "-in",
                os.path.join(d, "server.csr"),
                "-CA",
                self.ca_path,
                "-CAkey",
                os.path.join(d, "ca.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                ext,
                "-out",
                os.path.join(d, "server.crt"),
            ],
            check=True,
            capture_output=True,
        )
        os.chmod(os.path.join(d, "server.key"), 0o600)
        for name in ("server.key", "server.crt"):
            self._chown(os.path.join(d, name))
        os.chmod(self.ca_path, 0o644)

    def _enable_tls(self) -> None:
        if not os.path.exists(os.path.join(self.base_dir, "server.crt")):
            self._make_certificates()
        with open(os.path.join(self.data_dir, "postgresql.auto.conf"), "a") as fh:
            fh.write(f"ssl = on\nssl_cert_file = '{os.path.join(self.base_dir, 'server.crt')}'\nssl_key_file = '{os.path.join(self.base_dir, 'server.key')}'\n")
        if not self.require_tls:
            return
        hba = os.path.join(self.data_dir, "pg_hba.conf")
        with open(hba) as fh:
            lines = fh.read().splitlines()
        with open(hba, "w") as fh:
            fh.write("\n".join("hostssl" + ln[4:] if ln.startswith("host ") else ln for ln in lines) + "\n")

    def _chown(self, path: str) -> None:
        if self._as:
            shutil.chown(path, "postgres", "postgres")

    def _make_traversable(self) -> None:
        """The server runs as another user: it must be able to reach its directory (pytest's
        temporary directories are private to root)."""
        path = os.path.dirname(os.path.abspath(self.base_dir))
        while path not in ("/", ""):
            mode = os.stat(path).st_mode
            if not mode & 0o001:
                os.chmod(path, (mode & 0o7777) | 0o001)
            path = os.path.dirname(path)

    def start(self) -> "PostgresServer":
        os.makedirs(self.base_dir, exist_ok=True)
        os.chmod(self.base_dir, 0o755)
        if self._as:
            self._make_traversable()
        self._chown(self.base_dir)
        if not os.path.exists(os.path.join(self.data_dir, "PG_VERSION")):
            pwfile = os.path.join(self.base_dir, ".pw")
            with open(pwfile, "w") as fh:
                fh.write(SUPERUSER_PASSWORD + "\n")
            self._chown(pwfile)
            subprocess.run(
                self._as
                + [
                    os.path.join(PG_BIN, "initdb"),
                    "-D",
                    self.data_dir,
                    "-U",
                    SUPERUSER,
                    "--pwfile",
                    pwfile,
                    "-A",
                    "scram-sha-256",
                    "--auth-local",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale",
                    "C.UTF-8",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            os.unlink(pwfile)
            with open(os.path.join(self.data_dir, "postgresql.auto.conf"), "a") as fh:
                fh.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\nshared_buffers = 64MB\n")
            if self.tls:
                self._enable_tls()
        with open(os.path.join(self.base_dir, "port"), "w") as fh:
            fh.write(str(self.port))
        opts = f"-h {self.host} -p {self.port} -k {self.socket_dir}"
        subprocess.run(
            self._as
            + [os.path.join(PG_BIN, "pg_ctl"), "-D", self.data_dir, "-l", os.path.join(self.base_dir, "server.log"), "-o", opts, "-w", "-t", "60", "start"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return self

    def stop(self) -> None:
        subprocess.run(
            self._as + [os.path.join(PG_BIN, "pg_ctl"), "-D", self.data_dir, "-m", "fast", "-w", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres", check: bool = True) -> str:
        """Run SQL as the superuser over the private socket; tuples only, '|' separated."""
        proc = subprocess.run(
            ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", self.socket_dir, "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql],
            capture_output=True,
            text=True,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"psql failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout.strip()

    def create_database(self, name: str, owner: str = "kong", password: str = "kong") -> dict:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{owner}'")
        if not exists:
            self.psql(f"CREATE ROLE \"{owner}\" LOGIN PASSWORD '{password}'")
        else:
            self.psql(f"ALTER ROLE \"{owner}\" LOGIN PASSWORD '{password}'")
        self.psql(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        return dict(host=self.host, port=self.port, user=owner, password=password, database=name)

    def dsn(self, database: str, user: str | None = None, password: str | None = None) -> str:
        user = user or SUPERUSER
        password = password if password is not None else (SUPERUSER_PASSWORD if user == SUPERUSER else "")
        return f"host={self.host} port={self.port} dbname={database} user={user} password={password}"


def _main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    base = os.path.abspath(argv[1])
    if argv[0] == "start":
        tls = "--tls" in argv
        argv = [a for a in argv if a != "--tls"]
        port = int(argv[2]) if len(argv) > 2 else None
        if port is None and os.path.exists(os.path.join(base, "port")):
            with open(os.path.join(base, "port")) as fh:
                port = int(fh.read())
        server = PostgresServer(base, port, tls=tls).start()
        print(server.host, server.port)
    else:
        with open(os.path.join(base, "port")) as fh:
            PostgresServer(base, int(fh.read())).stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
