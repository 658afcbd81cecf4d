# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  upstream_file:
    description:
      - The nginx include file that holds the upstream's C(server) lines. The module owns it and rewrites the
        lines of the servers it changes; it must already exist (template it once with every server).
      - The file holds C(upstream NAME { ... }) blocks, or bare C(server) lines when it is itself included
        inside an C(upstream) block. C(upstream NAME {), every C(server) directive and the closing C(})
        each sit on a line of their own.
      - A server is named by the first word of the comment that ends its line, else by its address. For example
        the line C(server 10.0.0.7:8000 weight=10;) followed by the comment C(y1) names server C(y1).
      - nginx has no weight 0 and no drain state, so both are written as C(down) and the line's comment records
        what nginx cannot express (C(weight=0), C(state=drain)) and the initial weight (C(initial=N)).
      - A C(down) without C(weight=0) in the comment is read as state C(maint). To template a server that starts
        out of rotation but ready for a later O(share), write C(down) and the comment C(NAME weight=0).
      - Required when O(backend=nginx).
    type: path
  upstream_name:
    description:
      - The C(upstream) block of O(upstream_file) to manage.
      - May be omitted when the file holds a single upstream block, or bare C(server) lines.
      - Used when O(backend=nginx).
    type: str
  nginx_bin:
    description:
      - The nginx binary, a name looked up in E(PATH), C(/usr/sbin) and C(/usr/local/sbin), or a path.
      - Used when O(backend=nginx).
    type: str
    default: nginx
  nginx_conf:
    description:
      - The main nginx configuration file, passed as C(-c) to C(nginx -t) and C(nginx -s reload).
      - If not set, nginx's compiled-in default (C(nginx -V) C(--conf-path)) is used.
      - Used when O(backend=nginx).
    type: path
  reload:
    description:
      - Reload nginx gracefully (C(nginx -s reload)) after a change passed C(nginx -t). New workers use the new
        weights at once; old workers finish the requests they hold, then exit.
      - With V(false) the file is written and validated only, and O(wait_drained) has nothing to wait for.
      - Used when O(backend=nginx).
    type: bool
    default: true
"""
