"""`make bench`: the numbers behind the upgrade's claims, each measured in the same run as its baseline.

    python -m bench.run [--only rolling,overhead,inplace,dual,share,backup,simulator] [--rate 300]
                        [--sizes 3,10,30] [--budget-minutes 28] [--reps 3]
    python -m bench.run --table bench/results/<file>.json      # print the table of an earlier run

Writes bench/results/<UTC date and time>.json and prints the table. Logs, journals and run reports
of every scenario stay under .cache/bench/<same stamp>/logs. docs/benchmarks.md describes the method.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from bench.common import RESULTS_DIR, WORK_ROOT, loadavg, machine, write_json
from bench.rolling import KEEPALIVE_CLIENTS, POST_RATE, PROFILES, SLOW_RATE

PLAIN_LABEL = PROFILES["plain"]["label"]

SIMULATOR_RATE, SIMULATOR_P99_MS = 1000.0, 20.0
SECTIONS = ("simulator", "rolling", "inplace", "dual", "overhead", "backup")
IN_PLACE_PATHS = (("3.6.1", "3.7.1"), ("2.8.5", "3.4.2"))
DUAL_CLUSTER_PATHS = (("3.6.1", "3.7.1"),)
CALLBACK = "kongops.upgrade.upgrade_report"
DRAIN_PHASE = "Drain and decommission the X nodes"
DEPLOY_PHASE = "Bring up the Y nodes beside X and smoke-test them"


def _enable_report_callback() -> None:
    """The upgrade_report callback writes each run's task timeline; the bench reads phase times from it."""
    enabled = [c for c in os.environ.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c.strip()]
    if CALLBACK not in enabled:
        os.environ["ANSIBLE_CALLBACKS_ENABLED"] = ",".join(enabled + [CALLBACK])


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes takes node counts separated by commas, such as 3,10,30 (got {text!r})")
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--sizes takes node counts of at least 1 (got {text!r})")
    return sizes


def _sections(text: str) -> list[str]:
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS + ("share",)]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"--only takes some of {', '.join(SECTIONS)} (got {text!r})")
    return ["rolling" if s == "share" else s for s in chosen]


class Bench:
    def __init__(self, args):
        self.args = args
        self.stamp = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
        self.work = os.path.join(WORK_ROOT, self.stamp)
        self.started = time.monotonic()
        self.deadline = self.started + args.budget_minutes * 60
        self.results: dict = {
            "stamp": self.stamp,
            "command": "python -m bench.run " + " ".join(sys.argv[1:]),
            "budget_minutes": args.budget_minutes,
            "work_dir": self.work,
        }

    def out(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f} s] {msg}", flush=True)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> str:
        path = os.path.join(self.args.out, f"{self.stamp}.json")
        self.results["elapsed_seconds"] = round(time.monotonic() - self.started, 1)
        write_json(path, self.results)
        return path

    def run(self) -> int:
        _enable_report_callback()
        # the module runs compile their module_utils as on any host: the test suites' bytecode cache
        # (tests/tools/ansiballz_pyc) would lower every figure by what no fleet's host has
        os.environ.setdefault("KONGOPS_ANSIBALLZ_PYC", "")
        # Ansible's own configuration lookup, not the test suites' tests/ansible.cfg
        os.environ.setdefault("KONGOPS_ANSIBLE_CFG", "")
        # Ansible's default, as most fleets run it (the test suites turn it off): with it on, each read of
        # localhost's variables copies its facts, the run journal among them
        os.environ.setdefault("ANSIBLE_INJECT_FACT_VARS", "true")
        os.makedirs(os.path.join(self.work, "logs"), exist_ok=True)
        self.results["machine"] = machine()
        self.out(
            f"bench: {self.results['machine']['nproc']} CPUs, {self.results['machine']['memory_gib']} GiB, "
            f"load average {self.results['machine']['loadavg_at_start']}; work in {self.work}"
        )
        only = self.args.only
        if "simulator" in only:
            self.simulator()
        if "rolling" in only:
            self.rolling()
        if "inplace" in only:
            self.inplace()
        if "dual" in only:
            self.dual_cluster()
        if "backup" in only:
            self.backup()
        if "overhead" in only:
            self.overhead()
        self.results["machine"]["loadavg_at_end"] = loadavg()
        self.results["table"] = render_table(self.results)
        path = self.save()
        print()
        print(self.results["table"])
        print(f"\nresults: {path}\nlogs: {os.path.join(self.work, 'logs')}")
        return 0

    # ------------------------------------------------------------------ sections
    def simulator(self) -> None:
        from bench.simulator import simulator_throughput

        self.out("6. simulator: single-node throughput and p99")
        # the simulator must keep 1,000 req/s on one core with p99 < 20 ms (well above any load the
        # other sections send), so the open loop runs at that rate or the bench's, whichever is higher
        self.results["simulator"] = simulator_throughput(self.work, seconds=self.args.sim_seconds, rate=max(SIMULATOR_RATE, self.args.rate))
        self.save()

    def rolling(self) -> None:
        from bench.rolling import rolling_under_load

        # realistic first (the row that tells the two playbooks apart), then the plain, retrying row
        for key, profile in (("rolling_realistic", "realistic"), ("rolling", "plain")):
            self.results[key] = {}
            for kind in ("ours", "naive"):
                self.out(f"1. rolling 3 -> 3 under {self.args.rate:.0f} req/s, {profile} load: {kind}")
                self.results[key][kind] = rolling_under_load(
                    self.work, kind, self.args.kong_x, self.args.kong_y, self.args.rate, out=self.out, profile=profile, gate_reads=self.args.gate_reads
                )
                self.save()

    def inplace(self) -> None:
        from bench.inplace import in_place_under_load

        self.results["inplace"] = {}
        for kong_x, kong_y in IN_PLACE_PATHS:
            self.out(f"3. in-place {kong_x} -> {kong_y} under {self.args.inplace_rate:.0f} req/s")
            self.results["inplace"][f"{kong_x}->{kong_y}"] = in_place_under_load(self.work, kong_x, kong_y, self.args.inplace_rate, out=self.out)
            self.save()

    def dual_cluster(self) -> None:
        """The strategy Kong's in-place guide prefers when capacity allows, on the in-place runs' sandbox and load."""
        from bench.inplace import dual_cluster_under_load

        self.results["dual_cluster"] = {}
        for kong_x, kong_y in DUAL_CLUSTER_PATHS:
            self.out(f"3. dual-cluster {kong_x} -> {kong_y} under {self.args.inplace_rate:.0f} req/s")
            self.results["dual_cluster"][f"{kong_x}->{kong_y}"] = dual_cluster_under_load(self.work, kong_x, kong_y, self.args.inplace_rate, out=self.out)
            self.save()

    def backup(self) -> None:
        from bench.backup import BackupBench

        self.out(f"5. backup and restore of {', '.join(map(str, self.args.entities))} entities")
        try:
            self.results["backup"] = BackupBench(os.path.join(self.work, "backup"), sizes=self.args.entities, reps=self.args.reps, out=self.out).run()
        except Exception as exc:  # noqa: BLE001 - recorded, the other sections still count
            self.results["backup"] = {"error": f"{type(exc).__name__}: {str(exc)[:700]}"}
        self.save()

    def overhead(self) -> None:
        """The smallest size with one node per drain batch; every other size in a single drain batch, then with one
        node per batch; smallest first, as long as the time budget allows (estimated from the runs before)."""
        from bench.rolling import overhead

        runs: list[dict] = []
        self.results["overhead"] = {"runs": runs, "skipped": []}
        sizes = sorted(set(self.args.sizes))
        plan = [(sizes[0], 1)] + [(n, serial) for n in sizes[1:] for serial in (n, 1)]
        for nodes, serial in plan:
            estimate = self._estimate(runs, nodes, serial)
            if estimate is not None and estimate > self.remaining():
                reason = (
                    f"{nodes} nodes, drain serial {serial}: estimated {estimate / 60:.1f} min from the runs "
                    f"before, {max(0.0, self.remaining()) / 60:.1f} min left of the "
                    f"{self.args.budget_minutes} min budget"
                )
                self.out(f"2. overhead skipped: {reason}")
                self.results["overhead"]["skipped"].append({"nodes": nodes, "drain_serial": serial, "reason": reason})
                continue
            self.out(f"2. overhead: {nodes} + {nodes} nodes, drain serial {serial}")
            t0 = time.monotonic()
            run = overhead(self.work, nodes, serial, self.args.kong_x, self.args.kong_y, out=self.out, gate_reads=self.args.gate_reads)
            run["total_seconds"] = round(time.monotonic() - t0, 1)
            runs.append(run)
            self.save()

    @staticmethod
    def _estimate(runs: list[dict], nodes: int, serial: int) -> float | None:
        """Seconds a run should take (sandbox up, upgrade, down): a cost per drain batch (from the drain phase of the
        runs so far) plus a cost linear in the node count (fitted to the rest), with 15 % to spare."""
        done = [r for r in runs if r.get("total_seconds") and r.get("rc") == 0]
        if not done:
            return None
        per_batch = [r["phases"].get(DRAIN_PHASE, 0) / r["batches"] for r in done if r["drain_serial"] == 1 and (r.get("phases") or {}).get(DRAIN_PHASE)]
        batch_cost = sum(per_batch) / len(per_batch) if per_batch else 10.0
        points = [(r["nodes"], r["total_seconds"] - batch_cost * r["batches"]) for r in done]
        xs = {n for n, _t in points}
        if len(xs) >= 2:
            mean_n = sum(n for n, _t in points) / len(points)
            mean_t = sum(t for _n, t in points) / len(points)
            slope = sum((n - mean_n) * (t - mean_t) for n, t in points) / sum((n - mean_n) ** 2 for n, _t in points)
            fixed = mean_t - slope * mean_n
        else:
            fixed = 20.0
            slope = (points[0][1] - fixed) / points[0][0]
        return 1.15 * (fixed + slope * nodes + batch_cost * math.ceil(nodes / serial))


# ---------------------------------------------------------------------- table
def _fmt(value, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:.{digits}f}"
    return f"{value}{unit}"


def real_failures(load: dict) -> int:
    """Failed requests: sent and answered non-2xx or not at all (tests/loadgen.py counts the requests it
    could not send apart, as ``not_sent``)."""
    return int(load.get("failed") or 0)


def not_sent(load: dict) -> int:
    """Requests due while the load generator's backlog was full: the machine could not keep the rate."""
    return int(load.get("not_sent") or 0)


def _reasons(load: dict) -> str:
    reasons = load.get("failures_by_reason") or {}
    return ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])) or "-"


def render_table(res: dict) -> str:
    m = res.get("machine", {})
    lines = [
        f"kongops.upgrade bench {res.get('stamp')} - {m.get('nproc')} CPUs ({m.get('cpu')}), {m.get('memory_gib')} GiB, "
        f"load average {m.get('loadavg_at_start')} at start, {m.get('loadavg_at_end')} at end"
    ]

    rolling = res.get("rolling")
    runs_1 = [(key, res.get(key)) for key in ("rolling_realistic", "rolling") if res.get(key)]
    if runs_1:
        any_run = next(iter(runs_1[0][1].values()))
        lines += [
            "",
            f"1. Failed requests, DB-less rolling upgrade 3 -> 3, Kong {any_run.get('from')} -> {any_run.get('to')}, "
            f"{any_run.get('rate'):.0f} req/s of GETs through HAProxy (fresh sandbox each)",
            f"   {'playbook':<46} {'rc':>3} {'playbook s':>10} {'requests':>9} {'failed':>7} {'not sent':>8} {'p99 ms':>8} {'gap s':>6}  failures",
        ]
        for _key, runs in runs_1:
            first = next(iter(runs.values()))
            lines.append(f"   load: {first.get('profile_label') or PLAIN_LABEL}")
            for kind in ("ours", "naive"):
                r = runs.get(kind)
                if not r:
                    continue
                load = r.get("load") or {}
                # p99 of the GETs alone: the slow requests' 1-3 s would hide the rest
                gets = (r.get("parts") or {}).get("get") or load
                label = "ours: playbooks/rolling_upgrade.yml (beside)" if kind == "ours" else "naive: bench/naive_rolling.yml (in place)"
                lines.append(
                    f"   {label:<46} {_fmt(r.get('rc')):>3} {_fmt(r.get('playbook_seconds')):>10} "
                    f"{_fmt(load.get('total')):>9} {_fmt(real_failures(load) if load else None):>7} "
                    f"{_fmt(not_sent(load) if load else None):>8} "
                    f"{_fmt((gets.get('latency_ms') or {}).get('p99')):>8} "
                    f"{_fmt((r.get('outage') or {}).get('longest_seconds'), digits=2):>6}  {_reasons(load) if load else '-'}"
                )
                parts = r.get("parts") or {}
                if len(parts) > 1:
                    lines.append(
                        "     by load: " + ", ".join(f"{part} {_fmt(p.get('total'))} sent / {_fmt(real_failures(p))} failed" for part, p in parts.items())
                    )
                if r.get("error"):
                    lines.append(f"     FAILED: {r['error'][:300]}")
        lines.append(
            "   failed = requests answered non-2xx, or not at all (connection error, timeout); not sent = requests "
            "due while the load generator's backlog was full (the machine could not keep the rate); gap = longest "
            "time between two GETs answered 2xx; p99 = of the GETs at 300/s; slow = GETs the upstream answers after 1-3 s "
            f"({SLOW_RATE:.0f}/s), post = POSTs with a body ({POST_RATE:.0f}/s), keepalive = "
            f"{KEEPALIVE_CLIENTS} clients each on one connection, 0.1 s between requests"
        )

    if rolling and rolling.get("ours", {}).get("steps"):
        ours = rolling["ours"]
        lines += [
            "",
            f"4. Traffic-share accuracy of ours (same run as 1, plain load): share of Kong {ours.get('to')} while each step soaked",
            f"   {'target %':>8} {'weights %':>9} {'measured %':>10} {'error pts':>9} {'requests':>9} {'seconds':>8}",
        ]
        for s in ours["steps"]:
            lines.append(
                f"   {_fmt(s['target']):>8} {_fmt(s['weights_share']):>9} {_fmt(s['measured']):>10} "
                f"{_fmt(s['error_points']):>9} {_fmt(s['requests']):>9} {_fmt(s['seconds']):>8}"
            )

    over = res.get("overhead")
    if over:
        runs = over.get("runs", [])
        soak = runs[0]["soak_seconds"] if runs else 1
        lines += [
            "",
            f"2. Orchestration overhead of ours, no load, soak {soak} s x (4 steps + 1 gate per drain batch + the watch), "
            f"forks {runs[0].get('forks') if runs else '-'}: wall time minus soaks and drains",
            f"   {'X+Y nodes':>9} {'serial':>6} {'batches':>7} {'wall s':>7} {'soak s':>6} {'overhead s':>10} "
            f"{'per node s':>10} {'per batch s':>11} {'deploy s':>8} {'drain s':>7} {'ansible CPU s':>13}",
        ]
        for r in runs:
            phases = r.get("phases") or {}
            deploy, drain = phases.get(DEPLOY_PHASE), phases.get(DRAIN_PHASE)
            per_batch = round(drain / r["batches"], 2) if drain is not None else None
            lines.append(
                f"   {str(r['nodes']) + '+' + str(r['nodes']):>9} {r['drain_serial']:>6} {r['batches']:>7} "
                f"{_fmt(r.get('wall_seconds')):>7} {_fmt(r.get('configured_soak_seconds')):>6} "
                f"{_fmt(r.get('overhead_seconds')):>10} {_fmt(r.get('overhead_per_node'), digits=2):>10} "
                f"{_fmt(per_batch, digits=2):>11} {_fmt(deploy):>8} {_fmt(drain):>7} "
                f"{_fmt(r.get('controller_cpu_seconds')):>13}"
            )
            if r.get("error"):
                lines.append(f"     FAILED: {r['error'][:300]}")
        fit = overhead_fit(runs)
        if fit:
            lines.append(
                f"   least squares over the runs: overhead = {fit['fixed']:.1f} s + {fit['per_batch']:.2f} s per drain batch + {fit['per_node']:.2f} s per node"
            )
        cpu = [(r["controller_cpu_seconds"], r["nodes"]) for r in runs if r.get("rc") == 0 and r.get("controller_cpu_seconds")]
        if cpu:
            per_node_cpu = sum(c for c, _n in cpu) / sum(2 * n for _c, n in cpu)
            lines.append(
                f"   ansible-playbook's own CPU: {per_node_cpu:.2f} s per Kong node (X or Y) on "
                f"{os.cpu_count()} cores shared with the nodes = at least "
                f"{2 * per_node_cpu / (os.cpu_count() or 1):.2f} s of wall time per X+Y pair before any node starts"
            )
        for skipped in over.get("skipped", []):
            lines.append(f"   skipped: {skipped['reason']}")

    inplace = res.get("inplace")
    if inplace or res.get("dual_cluster"):
        lines += [
            "",
            "3. In-place upgrade downtime under load (traditional, 3 nodes, PostgreSQL): clients vs phases",
            f"   {'path':<15} {'rc':>3} {'clients s':>9} {'gap s':>6} {'journal s':>9} {'stop s':>6} {'migr. s':>7} "
            f"{'start s':>7} {'sum s':>6} {'stop->ready s':>13} {'failed':>7} {'outside gap':>11}",
        ]
        for path, r in (inplace or {}).items():
            ph = r.get("phases") or {}
            load = r.get("load") or {}
            gap = r.get("outage") or {}
            lines.append(
                f"   {path:<15} {_fmt(r.get('rc')):>3} {_fmt(r.get('client_downtime_seconds'), digits=2):>9} "
                f"{_fmt(gap.get('longest_seconds'), digits=2):>6} "
                f"{_fmt(r.get('journal_downtime_seconds'), digits=2):>9} {_fmt(ph.get('stop'), digits=2):>6} "
                f"{_fmt(ph.get('migrations'), digits=2):>7} {_fmt(ph.get('start'), digits=2):>7} "
                f"{_fmt(ph.get('stop_migrations_start'), digits=2):>6} {_fmt(ph.get('first_stop_to_last_ready'), digits=2):>13} "
                f"{_fmt(real_failures(load) if load else None):>7} {_fmt(gap.get('failed_outside')):>11}"
            )
            if r.get("error"):
                lines.append(f"     FAILED: {r['error'][:300]}")
        for path, r in (res.get("dual_cluster") or {}).items():
            load = r.get("load") or {}
            gap = r.get("outage") or {}
            lines.append(
                f"   {'dual ' + path:<15} {_fmt(r.get('rc')):>3} {_fmt(r.get('client_downtime_seconds'), digits=2):>9} "
                f"{_fmt(gap.get('longest_seconds'), digits=2):>6} {'-':>9} {'-':>6} {'-':>7} {'-':>7} {'-':>6} {'-':>13} "
                f"{_fmt(real_failures(load) if load else None):>7} {_fmt(gap.get('failed_outside')):>11}"
            )
            if r.get("error"):
                lines.append(f"     FAILED: {r['error'][:300]}")
        lines.append(
            "   clients = first to last failed request; gap = longest time between two requests answered 2xx "
            "(outside gap = failed requests sent outside it); journal = the playbook's own downtime_seconds; "
            "stop/migr./start = task times from the run's timeline (migr. = up + finish); dual = the dual-cluster "
            "upgrade of the same sandbox under the same load (Y on a clone of X's database, traffic moved through HAProxy)"
        )

    backup = res.get("backup")
    if backup:
        lines += [
            "",
            f"5. Backup and restore, database kind, Kong {backup.get('kong_version')}, median of {backup.get('reps')} "
            f"(ansible-playbook itself: {_fmt(backup.get('ansible_noop_s'), ' s', 2)} for a no-op play)",
            f"   {'entities':>8} {'dump KiB':>8} {'kong_backup s':>13} {'pg_dump -Fc s':>13} {'kong_restore s':>14} {'pg_restore s':>12}",
        ]
        for size, r in (backup.get("sizes") or {}).items():
            med = r["median_s"]
            lines.append(
                f"   {size:>8} {_fmt(round(r['dump_bytes'] / 1024) if r.get('dump_bytes') else None):>8} "
                f"{_fmt(med['kong_backup'], digits=2):>13} {_fmt(med['pg_dump'], digits=2):>13} "
                f"{_fmt(med['kong_restore'], digits=2):>14} {_fmt(med['pg_restore'], digits=2):>12}"
            )
        if backup.get("error"):
            lines.append(f"     FAILED: {backup['error'][:300]}")
        lines.append(
            "   kong_* = ansible-playbook wall time (verified dump + manifest; restore into a new database, verified, "
            "swapped); pg_restore = createdb + pg_restore + dropdb + rename"
        )

    sim = res.get("simulator")
    if sim:
        o, c = sim.get("open_loop") or {}, sim.get("closed_loop") or {}
        lines += [
            "",
            f"6. Simulator, one Kong {sim.get('version')} node pinned to one core, {sim.get('seconds')} s per load",
            f"   open loop at {sim.get('open_loop_target_rate'):.0f} req/s: achieved {_fmt(o.get('achieved_rate'))} req/s, "
            f"errors {_fmt(o.get('errors'), digits=0)}, p50 {_fmt(o.get('p50_ms'))} ms, p99 {_fmt(o.get('p99_ms'))} ms"
            f" - {_sim_verdict(sim)}",
            f"   closed loop, {_fmt(c.get('connections'), digits=0)} connections: {_fmt(c.get('max_rate'))} req/s max, "
            f"p50 {_fmt(c.get('p50_ms'))} ms, p99 {_fmt(c.get('p99_ms'))} ms",
        ]
        if sim.get("error"):
            lines.append(f"     FAILED: {sim['error']}")
    lines += ["", f"elapsed {_fmt(res.get('elapsed_seconds'))} s"]
    return "\n".join(lines)


def _sim_verdict(sim: dict) -> str:
    """Whether the open loop met the simulator's bar: the target rate achieved (within 2 %), no error, p99 under 20 ms."""
    o = sim.get("open_loop") or {}
    rate, p99, errors = o.get("achieved_rate"), o.get("p99_ms"), o.get("errors")
    if rate is None or p99 is None:
        return "not measured"
    ok = rate >= 0.98 * sim["open_loop_target_rate"] and not errors and p99 < SIMULATOR_P99_MS
    return f"{'meets' if ok else 'MISSES'} >= {SIMULATOR_RATE:.0f} req/s with p99 < {SIMULATOR_P99_MS:.0f} ms"


def overhead_fit(runs: list[dict]) -> dict | None:
    """overhead ~ fixed + a * batches + b * nodes, least squares over the successful runs (needs 3 distinct shapes)."""
    rows = [
        (1.0, float(r["batches"]), float(r["nodes"]), float(r["overhead_seconds"])) for r in runs if r.get("rc") == 0 and r.get("overhead_seconds") is not None
    ]
    if len({(b, n) for _c, b, n, _y in rows}) < 3:
        return None
    # normal equations of a 3x3 system, solved with Cramer's rule
    ata = [[sum(r[i] * r[j] for r in rows) for j in range(3)] for i in range(3)]
    aty = [sum(r[i] * r[3] for r in rows) for i in range(3)]

    def det(m):
        return (
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        )

    d = det(ata)
    if math.isclose(d, 0.0, abs_tol=1e-9):
        return None
    sol = []
    for k in range(3):
        mk = [[aty[i] if j == k else ata[i][j] for j in range(3)] for i in range(3)]
        sol.append(det(mk) / d)
    return {"fixed": sol[0], "per_batch": sol[1], "per_node": sol[2]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", type=_sections, default=list(SECTIONS), help=f"sections to run, separated by commas: {', '.join(SECTIONS)} (share runs with rolling)"
    )
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second of the rolling runs (default 300)")
    parser.add_argument("--inplace-rate", type=float, default=300.0, help="requests per second of the in-place runs (default 300)")
    parser.add_argument("--sizes", type=_sizes, default=[3, 10, 30], help="fleet sizes of the overhead runs (default 3,10,30)")
    parser.add_argument("--entities", type=_sizes, default=[1000, 10000], help="backup sizes (default 1000,10000)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each backup/restore timing (default 3)")
    parser.add_argument("--sim-seconds", type=float, default=5.0, help="seconds of each simulator load (default 5)")
    parser.add_argument(
        "--gate-reads",
        choices=("controller", "node"),
        default="controller",
        help="how ours reads the Y nodes at a gate: from the controller at kong_status_gate_url (default), or one kong_node_info run per node on its host",
    )
    parser.add_argument("--kong-x", default="3.8.1", help="version X of the rolling runs (default 3.8.1)")
    parser.add_argument("--kong-y", default="3.9.3", help="version Y of the rolling runs (default 3.9.3)")
    parser.add_argument("--budget-minutes", type=float, default=26.0, help="overhead runs that would end after this many minutes are skipped (default 26)")
    parser.add_argument("--out", default=RESULTS_DIR, help="directory of the results JSON (default bench/results)")
    parser.add_argument("--table", metavar="RESULTS_JSON", help="print the table of an earlier run and exit")
    args = parser.parse_args(argv)
    if args.table:
        try:
            with open(args.table) as fh:
                print(render_table(json.load(fh)))
        except (OSError, ValueError) as exc:
            parser.error(f"--table: cannot read {args.table}: {exc}")
        return 0
    if args.rate < 300:
        parser.error("--rate must be at least 300 requests per second (the issue's steady load)")
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    try:
        return Bench(args).run()
    except KeyboardInterrupt:
        print(
            "bench: interrupted; the sandboxes of the interrupted scenario may still run: "
            "see .cache/bench/<stamp>/ and stop them with `python -m tests.sandbox down` and KONGOPS_SANDBOX_DIR",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
