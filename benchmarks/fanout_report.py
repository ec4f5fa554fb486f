"""How benchmarks/fanout.py reports: the CPU that other processes used over a phase, a line per
run, and the markdown table with the ratios of ours against the better of the peers."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

from fanout_peers import versions
from harness.procs import TICKS, busy_seconds, tree

SERVERS = ["ours", "broadcaster", "channels"]
KIB = 1024


def percentile(ordered: list[int], fraction: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6  # ms


def slowest(replies: list[Any], count: int = 3) -> list[tuple[int, float, float]]:
    """The ``count`` messages whose deliveries took longest (by their median): (sequence
    number, median ms, max ms). With few messages (the paced phase: 50 to 1,000 members), the
    p99 of all deliveries is about the median of the slowest one or two of them."""
    by_message: dict[int, list[int]] = {}
    for reply in replies:
        for latency, seq in zip(reply[2], reply[4], strict=True):
            by_message.setdefault(seq, []).append(latency)
    stats = [(seq, statistics.median(found) / 1e6, max(found) / 1e6)
             for seq, found in by_message.items()]  # fmt: skip
    return sorted(stats, key=lambda item: -item[1])[:count]


class CPU:
    """CPU over a window: the seconds that the servers (their process trees), Redis and the
    client processes used, and the % of a core that processes other than this one and its
    descendants (the clients among them) used."""

    def __init__(self, servers: list[int], redis: list[int], clients: list[int] | None = None):
        self.roots = {"servers": servers, "redis": redis, "clients": clients or [],
                      "ours": [os.getpid()]}  # fmt: skip
        self.wall, self.busy, self.start = time.monotonic(), busy_seconds(), self._sample()

    def _sample(self) -> dict[str, float]:
        return {name: sum(info[2] for root in roots for info in tree(root).values()) / TICKS
                for name, roots in self.roots.items()}  # fmt: skip

    def stop(self) -> dict[str, float]:
        wall, end = time.monotonic() - self.wall, self._sample()
        used = {name: end[name] - self.start[name] for name in end}
        others = (busy_seconds() - self.busy) - used["ours"]
        return {"servers": used["servers"], "redis": used["redis"], "clients": used["clients"],
                "others": max(0.0, 100 * others / wall)}  # fmt: skip


async def settle(servers: list[int], limit: float = 60) -> None:
    """Until the servers are idle (under 10% of a core for half a second): what one phase left
    queued (a peer's warm-up messages) is delivered before the next is measured."""
    for _ in range(int(limit * 2)):
        cpu = CPU(servers, [])
        await asyncio.sleep(0.5)
        if cpu.stop()["servers"] < 0.05:
            return


def show(title: str, result: dict[str, Any]) -> None:
    parts = [
        f"{phase} {r['delivered']}/{r['expected']} {r['per_second']:.0f}/s p99 {r['p99']:.1f} ms "
        f"(servers' CPU {r['server_us']:.1f} us per delivery, clients' {r['client_us']:.1f}, "
        f"Redis' {r['redis_s']:.2f} s, "
        f"others' {r['others']:.0f}% of a core; slowest messages, median / max ms: "
        + ", ".join(f"#{seq} {mid:.1f} / {top:.1f}" for seq, mid, top in r["slowest"]) + ")"
        for phase, r in result.items()
        if phase != "memory"
    ]
    memory = result["memory"]
    parts.append(f"{memory['per_member'] / KIB:.1f} KiB per idle member, "
                 f"connected in {memory['connect_seconds']:.1f} s")  # fmt: skip
    print(title + ": " + ", ".join(parts), flush=True)


def median(runs: list[dict[str, Any]], phase: str, key: str) -> float:
    return statistics.median(run[phase][key] for run in runs)


def cpu_list(cpus: set[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


def report(runs: dict[tuple[str, int, str], list[dict[str, Any]]], args: Any) -> None:
    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo
                    if line.startswith("model name")), "?")  # fmt: skip
    print(f"\nCPU: {cpu}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}; "
          f"{args.instances} instances x {args.workers} workers; burst {args.burst} messages; "
          f"median of {args.rounds} round(s)")  # fmt: skip
    servers, clients = args.cpus
    if servers is None:
        print("not pinned: servers, Redis and clients shared every CPU")
    else:
        print(f"pinned: servers and Redis on CPU {cpu_list(servers)}, the clients and the "
              f"publisher on CPU {cpu_list(clients)}")  # fmt: skip
    for line in versions(args.servers, args.ours_label):
        print(f"- {line}")
    print("\n| Redis | members | server | burst: deliveries/s | paced: p50 / p99 / max ms "
          "| server CPU/delivery | delivered | RSS per idle member | others' CPU |")  # fmt: skip
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    verdicts = []
    for (kind, clients, name), results in runs.items():
        phases = [phase for phase in results[0] if phase != "memory"]
        burst = median(results, "burst", "per_second")
        paced = "-"
        if "paced" in phases:
            paced = " / ".join(f"{median(results, 'paced', k):.1f}" for k in ("p50", "p99", "max"))
        delivered = sum(r[phase]["delivered"] for r in results for phase in phases)
        expected = sum(r[phase]["expected"] for r in results for phase in phases)
        memory = statistics.median(r["memory"]["per_member"] for r in results) / KIB
        others = max(r[phase]["others"] for r in results for phase in phases)
        label = name if name == "ours" or kind == "single" else f"{name} (one node)"
        print(f"| {kind} | {clients:,} | {label} | {burst:,.0f} | {paced} "
              f"| {median(results, 'burst', 'server_us'):.1f} us | {delivered:,}/{expected:,} "
              f"| {memory:.1f} KiB | {others:.0f}% |")  # fmt: skip
        peers = [runs[kind, clients, peer] for peer in SERVERS[1:] if (kind, clients, peer) in runs]
        if name == "ours" and peers:
            verdicts.append(verdict(kind, clients, results, peers))
    print("\n(others' CPU: the most, over the phases, that processes outside the benchmark used, "
          "in % of one core)")  # fmt: skip
    if any(kind == "cluster" for kind, _, _ in runs):
        print(
            "(the peers have no Redis Cluster client: on the cluster each of their instances "
            "used one master, whose classic pub/sub reaches every node's subscribers)"
        )
    for line in verdicts:
        print(line)


def verdict(kind: str, clients: int, ours: list[Any], peers: list[list[Any]]) -> str:
    """Ours against the better peer in each measure; the target is 1.5x."""
    ratios = {"burst deliveries/s": median(ours, "burst", "per_second")
              / max(median(peer, "burst", "per_second") for peer in peers)}  # fmt: skip
    if "paced" in ours[0]:
        best = min(median(peer, "paced", "p99") for peer in peers)
        ratios["paced p99 (lower)"] = best / median(ours, "paced", "p99")
    best = min(median(peer, "burst", "server_us") for peer in peers)
    ratios["server CPU per delivery (lower)"] = best / median(ours, "burst", "server_us")
    parts = [f"{what} {ratio:.2f}x{'' if ratio >= 1.5 else ' (MISSED)'}"
             for what, ratio in ratios.items()]  # fmt: skip
    return f"- {kind}, {clients:,} members, ours vs the better peer: " + ", ".join(parts)
