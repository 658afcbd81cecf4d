"""Stand-in for ansible-test's get-pip bootstrap script on machines that reach only the
package index: bootstrap pip with ensurepip, then let pip install what was asked."""

import ensurepip
import os
import ssl
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
cert = os.environ.get("PIP_CERT") or ssl.get_default_verify_paths().cafile
cmd = [sys.executable, "-m", "pip", "install"] + (["--cert", cert] if cert else []) + args
sys.exit(subprocess.call(cmd))
