"""From runs to tables: one summary per server and scenario, a markdown table per scenario, and
the table of the performance targets (issue 7) with a verdict line. Pure functions: no I/O."""

from __future__ import annotations

import statistics
from typing import Any

BASELINE = "published"
OURS = {"messaging": "ours-messaging", "ASGI": "ours-asgi"}
# Paired req/s ratio over the published uvicorn that ours must reach, per scenario.
TARGETS = {"hello-ka": 1.5, "stream": 2.0, "echo": 1.3, "hello-close": 1.1, "ws": 1.3}

NOISY_CPU_PCT = 10.0  # CPU% used by other processes beyond which the verdict warns
Summary = dict[str, Any]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(runs: list[dict[str, Any]], base_runs: list[dict[str, Any]]) -> Summary:
    """Medians over the rounds of one server, and its ratios to the baseline's runs.

    A run is a dict with rps, p50_ms, p99_ms, requests, server_cpu_s, client_cpu_pct,
    peak_rss_mib, idle_worker_mib, errors and round; or with `error` when it failed.
    """
    ok = [r for r in runs if "rps" in r]
    failures = [r for r in runs if "rps" not in r]
    if not ok:
        error = failures[0].get("error", "no run") if failures else "no run"
        return {"error": error, "failed": len(failures)}
    rps = [r["rps"] for r in ok]
    summary: Summary = {
        "rounds": len(ok),
        "failed": len(failures),
        "rps_median": statistics.median(rps), "rps_min": min(rps), "rps_max": max(rps),
        "p50_ms": _median([r["p50_ms"] for r in ok]),
        "p99_ms": _median([r["p99_ms"] for r in ok]),
        "cpu_us": _median([1e6 * r["server_cpu_s"] / r["requests"] for r in ok if r["requests"]]),
        "client_cpu_pct": _median([r["client_cpu_pct"] for r in ok]),
        "other_cpu_pct": _median([r["other_cpu_pct"] for r in ok if "other_cpu_pct" in r]),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in ok),
        "idle_worker_mib": _median([r["idle_worker_mib"] for r in ok]),
        "errors": sum(r["errors"] for r in ok),
    }  # fmt: skip
    if failures:
        summary["first_error"] = failures[0].get("error", "")
    base_ok = {r["round"]: r["rps"] for r in base_runs if "rps" in r}
    if base_ok:
        summary["ratio"] = summary["rps_median"] / statistics.median(base_ok.values())
        paired = [r["rps"] / base_ok[r["round"]] for r in ok if r["round"] in base_ok]
        summary["paired"] = _median(paired)
    return summary


def fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def scenario_table(title: str, unit: str, summaries: dict[str, Summary]) -> str:
    """Markdown table of one scenario; failures follow it with the tail of the server's log."""
    out = [
        f"### {title}", "",
        f"| server | {unit} | min-max | p50 ms | p99 ms | CPU us/req | client CPU% | other CPU% "
        f"| peak RSS MiB | idle worker MiB | vs {BASELINE} | paired | errors |",
        "|---|" + "---:|" * 12,
    ]  # fmt: skip
    notes = []
    for name, s in summaries.items():
        if "error" in s:
            out.append(f"| {name} | FAILED |" + " |" * 11)
            notes.append(f"{name} FAILED:\n" + _indent(s["error"]))
            continue
        failed = f" ({s['failed']} runs FAILED)" if s["failed"] else ""
        out.append(
            f"| {name} | {fmt(s['rps_median'])} | {fmt(s['rps_min'])}-{fmt(s['rps_max'])} "
            f"| {fmt(s['p50_ms'], 2)} | {fmt(s['p99_ms'], 2)} | {fmt(s['cpu_us'], 1)} "
            f"| {fmt(s['client_cpu_pct'])} | {fmt(s['other_cpu_pct'])} "
            f"| {fmt(s['peak_rss_mib'], 1)} | {fmt(s['idle_worker_mib'], 1)} "
            f"| {fmt(s.get('ratio'), 2, 'x')} | {fmt(s.get('paired'), 2, 'x')} "
            f"| {s['errors']}{failed} |"
        )
        if s["failed"] and "first_error" in s:
            notes.append(f"{name} (some runs) FAILED:\n" + _indent(s["first_error"]))
    return "\n".join([*out, "", *notes]).rstrip() + "\n"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def target_rows(results: dict[str, dict[str, Summary]]) -> list[tuple[str, str, str, str, str]]:
    """(check, messaging, ASGI, target, result) for each target of the scenarios that ran."""
    rows = []
    for scen, goal in TARGETS.items():
        if scen not in results:
            continue
        sums = results[scen]
        ratios = {i: sums.get(n, {}).get("paired") for i, n in OURS.items()}
        rows.append(_row(f"{scen} paired req/s ratio", ratios, goal, higher=True, unit="x"))
        base_p99 = sums.get(BASELINE, {}).get("p99_ms")
        p99s = {i: sums.get(n, {}).get("p99_ms") for i, n in OURS.items()}
        rows.append(_row(f"{scen} p99 ms", p99s, base_p99, higher=False, unit=" ms"))
    idle = {
        name: _median([s[name]["idle_worker_mib"] for s in results.values()
                       if "idle_worker_mib" in s.get(name, {})])
        for name in (BASELINE, *OURS.values())
    }  # fmt: skip
    if results:
        ours = {i: idle[n] for i, n in OURS.items()}
        rows.append(_row("idle RSS of one worker", ours, idle[BASELINE], higher=False, unit=" MiB"))
    return rows


def _row(check: str, values: dict[str, float | None], goal: float | None, *, higher: bool,
         unit: str) -> tuple[str, str, str, str, str]:  # fmt: skip
    digits = 1 if unit == " MiB" else 2
    shown = {i: "n/a" if v is None else fmt(v, digits, unit) for i, v in values.items()}
    missed = [
        i for i, v in values.items()
        if v is None or goal is None or (v < goal if higher else v > goal)
    ]  # fmt: skip
    target = "n/a" if goal is None else f"{'>=' if higher else '<='} {fmt(goal, digits, unit)}"
    result = "pass" if not missed else "FAIL" + ("" if len(missed) == 2 else f" ({missed[0]})")
    return check, shown["messaging"], shown["ASGI"], target, result


def verdict(rows: list[tuple[str, str, str, str, str]], other_cpu: float | None = None) -> str:
    """One line: every check met, or which were missed; warns when the machine was busy."""
    missed = [f"{row[0]}{row[4][4:]}" for row in rows if row[4] != "pass"]
    if not rows:
        line = "**Verdict: no target was measured**"
    elif not missed:
        line = f"**Verdict: every target met ({len(rows)}/{len(rows)} checks pass)**"
    else:
        line = f"**Verdict: {len(missed)} of {len(rows)} checks missed: {'; '.join(missed)}**"
    if other_cpu is not None and other_cpu > NOISY_CPU_PCT:
        line += (f"\n\nWARNING: other processes used {other_cpu:.0f}% CPU (median) during "
                 "the measured windows: the numbers are noisy; run again on a quiet "
                 "machine.")  # fmt: skip
    return line


def targets_table(results: dict[str, dict[str, Summary]]) -> str:
    rows = target_rows(results)
    others = [s["other_cpu_pct"] for sums in results.values() for s in sums.values()
              if s.get("other_cpu_pct") is not None]  # fmt: skip
    out = [
        "### Targets (issue 7): ours vs the published uvicorn in the same run", "",
        "| check | messaging | ASGI | target | result |", "|---|---:|---:|---|---|",
    ]  # fmt: skip
    out += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join([*out, "", verdict(rows, _median(others))]) + "\n"
