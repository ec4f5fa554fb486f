"""From runs to tables: one summary per server and scenario, a markdown table per scenario, and
the tables of the performance targets (issue 16 for HTTP/1.1 and WebSockets, issue 12 for HTTP/2,
issue 13 for static files) with a verdict line. Pure functions: no I/O."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

# The published uvicorn runs in two configurations: its HTTP/1.1 parser is httptools or zttp.
PUBLISHED_HTTPTOOLS, PUBLISHED_ZTTP = "published-httptools", "published-zttp"
PUBLISHED = (PUBLISHED_HTTPTOOLS, PUBLISHED_ZTTP)
OURS = {"messaging": "ours-messaging", "ASGI": "ours-asgi"}
# Issue 16: paired req/s ratio that ours must reach over the faster published configuration of
# the scenario (faster_published()), on both interfaces.
TARGETS = {"ws": 1.5, "hello-ka": 2.0, "stream": 3.0, "echo": 2.0, "hello-close": 2.3}
# Where the issue judges by the servers' CPU per request rather than req/s: with `Connection:
# close` wrk, on its one core, saturates first ("at least granian (server CPU per request where
# wrk saturates)"); there the paired ratio is the reference's CPU per request over ours.
BY_CPU = ("hello-close",)
GRANIAN_GOAL = 1.0  # and ahead of granian in each of those scenarios, when granian ran
MASTER_MIB, WORKER_MIB = 15.0, 22.0  # idle RSS at most: the master process, one worker
# HTTP/2 (issue 12): paired req/s ratio that ours must reach over each reference, per scenario.
H2_REFS = {PUBLISHED_ZTTP: "the published uvicorn with zttp", "hypercorn": "hypercorn",
           "granian": "granian"}  # fmt: skip
H2_GOALS = {PUBLISHED_ZTTP: 1.5, "hypercorn": 5.0}  # in every HTTP/2 scenario, on both interfaces
H2_AIMS = {"granian": 1.0}  # aimed at, shown, not judged by the verdict
H2_SCENARIOS = ("h2-hello", "h2-download", "h2-upload")
# Columns a scenario table shows when some server's summary has them: key, header, digits.
EXTRA_COLUMNS = [("mib_s", "MiB/s", 0), ("cpu_us_mib", "CPU us/MiB", 1),
                 ("conn_kib", "KiB per idle h2 conn", 1)]  # fmt: skip
# Static files (issue 13): paired ratio (req/s, so bytes/s) that ours must reach over each.
FILE_SCENARIOS = ("file-1m", "file-64m")
FILE_REFS = {PUBLISHED_HTTPTOOLS: "the published uvicorn", "granian": "granian"}
FILE_GOALS = {PUBLISHED_HTTPTOOLS: 3.0, "granian": 1.0}

NOISY_CPU_PCT = 10.0  # CPU% used by other processes beyond which the verdict warns
Summary = dict[str, Any]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _rps(run: dict[str, Any]) -> float | None:
    return run.get("rps")


def _per_cpu_second(run: dict[str, Any]) -> float | None:
    """Requests per second of the server's CPU: the inverse of its CPU per request."""
    cpu = run.get("server_cpu_s")
    return run["requests"] / cpu if "rps" in run and run.get("requests") and cpu else None


def _paired(ok: list[dict[str, Any]], ref_runs: list[dict[str, Any]],
            measure: Callable[[dict[str, Any]], float | None] = _rps) -> float | None:  # fmt: skip
    """The median over rounds of ``measure`` (req/s; or requests per CPU second, which makes it
    the reference's CPU per request over ours) / the reference's in the same round."""
    ref = {r["round"]: value for r in ref_runs if (value := measure(r))}
    return _median([value / ref[r["round"]] for r in ok
                    if r["round"] in ref and (value := measure(r)) is not None])  # fmt: skip


def faster_published(medians: dict[str, float | None]) -> str | None:
    """Of the published configurations, the one with the higher median req/s (over its own
    successful rounds of one scenario; ``medians`` maps a server to it, None when it failed or
    did not run); httptools on a tie; None when neither has a figure."""
    ran = {name: rps for name in PUBLISHED if (rps := medians.get(name)) is not None}
    return max(ran, key=ran.__getitem__) if ran else None  # max() keeps the first of a tie


def baseline(kind: str, runs: dict[str, list[dict[str, Any]]]) -> str | None:
    """The published configuration a scenario's "vs published" and "paired" columns are paired
    with: over HTTP/2 the one that serves it (zttp, `--http2`), for static files httptools (as
    issue 13's targets were set), else (HTTP/1.1, WebSockets: issue 16) the faster of the two in
    this scenario (faster_published()); None when it did not run."""
    if kind == "h2":
        return PUBLISHED_ZTTP if PUBLISHED_ZTTP in runs else None
    if kind == "file":
        return PUBLISHED_HTTPTOOLS if PUBLISHED_HTTPTOOLS in runs else None
    return faster_published({name: _median([r["rps"] for r in runs.get(name, []) if "rps" in r])
                             for name in PUBLISHED})  # fmt: skip


def summarize(runs: list[dict[str, Any]], base_runs: list[dict[str, Any]],
              refs: dict[str, list[dict[str, Any]]] | None = None) -> Summary:  # fmt: skip
    """Medians over the rounds of one server, and its ratios to the baseline's runs (and its
    paired ratios to each of `refs`' runs, in "paired_to").

    A run is a dict with rps, p50_ms, p99_ms, requests, server_cpu_s, client_cpu_pct,
    peak_rss_mib, idle_worker_mib, idle_master_mib, errors and round (HTTP/2 runs may add
    mib_s, and conn_kib or conn_error); or with `error` when it failed.
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
        "idle_master_mib": _median([r["idle_master_mib"] for r in ok if "idle_master_mib" in r]),
        "errors": sum(r["errors"] for r in ok),
    }  # fmt: skip
    if failures:
        summary["first_error"] = failures[0].get("error", "")
    for key, _, _ in EXTRA_COLUMNS:
        if any(key in r for r in ok):
            summary[key] = _median([r[key] for r in ok if key in r])
    if any("conn_error" in r for r in ok):
        summary["conn_error"] = next(r["conn_error"] for r in ok if "conn_error" in r)
    summary["paired_to"] = {name: _paired(ok, ref) for name, ref in (refs or {}).items()}
    summary["cpu_paired_to"] = {name: _paired(ok, ref, _per_cpu_second)
                                for name, ref in (refs or {}).items()}  # fmt: skip
    base_ok = {r["round"]: r["rps"] for r in base_runs if "rps" in r}
    if base_ok:
        summary["ratio"] = summary["rps_median"] / statistics.median(base_ok.values())
        summary["paired"] = _paired(ok, base_runs)
    return summary


def fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def scenario_table(title: str, unit: str, summaries: dict[str, Summary],
                   base: str | None = None) -> str:  # fmt: skip
    """Markdown table of one scenario, its "vs published" columns paired with `base` (said
    under it); failures follow it with the tail of the server's log."""
    extra = [c for c in EXTRA_COLUMNS if any(c[0] in s for s in summaries.values())]
    heads = "".join(f" {head} |" for _, head, _ in extra)
    width = 12 + len(extra)
    out = [
        f"### {title}", "",
        f"| server | {unit} | min-max | p50 ms | p99 ms | CPU us/req | client CPU% | other CPU% "
        f"| peak RSS MiB | idle worker MiB |{heads} vs published | paired | errors |",
        "|---|" + "---:|" * width,
    ]  # fmt: skip
    notes = []
    for name, s in summaries.items():
        if "error" in s:
            out.append(f"| {name} | FAILED |" + " |" * (width - 1))
            notes.append(f"{name} FAILED:\n" + _indent(s["error"]))
            continue
        failed = f" ({s['failed']} runs FAILED)" if s["failed"] else ""
        cells = "".join(f" {fmt(s.get(key), digits)} |" for key, _, digits in extra)
        out.append(
            f"| {name} | {fmt(s['rps_median'])} | {fmt(s['rps_min'])}-{fmt(s['rps_max'])} "
            f"| {fmt(s['p50_ms'], 2)} | {fmt(s['p99_ms'], 2)} | {fmt(s['cpu_us'], 1)} "
            f"| {fmt(s['client_cpu_pct'])} | {fmt(s['other_cpu_pct'])} "
            f"| {fmt(s['peak_rss_mib'], 1)} | {fmt(s['idle_worker_mib'], 1)} |{cells}"
            f" {fmt(s.get('ratio'), 2, 'x')} | {fmt(s.get('paired'), 2, 'x')} "
            f"| {s['errors']}{failed} |"
        )
        if s["failed"] and "first_error" in s:
            notes.append(f"{name} (some runs) FAILED:\n" + _indent(s["first_error"]))
        if "conn_error" in s:
            notes.append(f"{name}, idle connections:\n" + _indent(s["conn_error"]))
    if base is not None:
        two = all(n in summaries for n in PUBLISHED) and base in PUBLISHED
        why = ", the faster of the two published configurations here (median req/s)" if two else ""
        notes.insert(0, f"(vs published, paired: over {base}{why})")
    return "\n".join([*out, "", *notes]).rstrip() + "\n"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def target_rows(results: dict[str, dict[str, Summary]]) -> list[tuple[str, str, str, str, str]]:
    """(check, messaging, ASGI, target, result) for each of issue 16's targets in the scenarios
    that ran: the paired ratio over the faster published configuration of the scenario, ahead of
    granian (when it ran), p99 no worse than the best peer's; and the idle memory limits."""
    rows = []
    for scen, goal in TARGETS.items():
        if scen not in results:
            continue
        sums = results[scen]
        base = faster_published({n: sums.get(n, {}).get("rps_median") for n in PUBLISHED})
        key, what = ("cpu_paired_to", "CPU per request") if scen in BY_CPU else \
            ("paired_to", "req/s")  # fmt: skip
        ratios = {i: sums.get(n, {}).get(key, {}).get(base or "") for i, n in OURS.items()}
        rows.append(_row(f"{scen} paired {what} vs {base or 'the published uvicorn'}", ratios,
                         goal, higher=True, unit="x"))  # fmt: skip
        if "rps_median" in sums.get("granian", {}):
            ratios = {i: sums.get(n, {}).get(key, {}).get("granian") for i, n in OURS.items()}
            rows.append(_row(f"{scen} paired {what} vs granian", ratios, GRANIAN_GOAL,
                             higher=True, unit="x"))  # fmt: skip
        peers = {n: s["p99_ms"] for n, s in sums.items()
                 if n not in OURS.values() and s.get("p99_ms") is not None}  # fmt: skip
        best = min(peers, key=lambda n: peers[n]) if peers else None
        p99s = {i: sums.get(n, {}).get("p99_ms") for i, n in OURS.items()}
        rows.append(_row(f"{scen} p99 ms vs {best or 'the peers'}", p99s,
                         peers.get(best or ""), higher=False, unit=" ms"))  # fmt: skip
    if any(scen in TARGETS for scen in results):
        for key, what, limit in (("idle_master_mib", "the master process", MASTER_MIB),
                                 ("idle_worker_mib", "one worker", WORKER_MIB)):  # fmt: skip
            idle = {i: _median([s[n][key] for scen, s in results.items() if scen in TARGETS
                                and s.get(n, {}).get(key) is not None])
                    for i, n in OURS.items()}  # fmt: skip
            rows.append(_row(f"idle RSS of {what}", idle, limit, higher=False, unit=" MiB"))
    return rows


def granian_notes(results: dict[str, dict[str, Summary]]) -> list[str]:
    """Why 'ahead of granian' was not judged where it was not."""
    ran = [scen for scen in TARGETS if scen in results]
    if ran and not any("granian" in results[scen] for scen in ran):
        return ["(granian did not run: 'ahead of granian' is not judged; add --peers granian)"]
    failed = [scen for scen in ran if "granian" in results[scen]
              and "rps_median" not in results[scen]["granian"]]  # fmt: skip
    if failed:
        return [f"(granian failed in {', '.join(failed)}: 'ahead of granian' there is not "
                "judged)"]  # fmt: skip
    return []


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


def _others(results: dict[str, dict[str, Summary]], scenarios: Any) -> float | None:
    """The median of other processes' CPU% over the summaries of those scenarios."""
    return _median([s["other_cpu_pct"] for scen, sums in results.items() if scen in scenarios
                    for s in sums.values() if s.get("other_cpu_pct") is not None])  # fmt: skip


def targets_table(results: dict[str, dict[str, Summary]]) -> str:
    rows = target_rows(results)
    out = [
        "### Targets (issue 16): ours vs the faster published uvicorn configuration (httptools "
        "or zttp, per scenario), granian and every peer in the same run", "",
        "| check | messaging | ASGI | target | result |", "|---|---:|---:|---|---|",
    ]  # fmt: skip
    out += [f"| {' | '.join(row)} |" for row in rows]
    notes = granian_notes(results)
    line = verdict(rows, _others(results, TARGETS))
    return "\n".join([*out, "", *notes, *([""] if notes else []), line]) + "\n"


def h2_target_rows(results: dict[str, dict[str, Summary]], goals: dict[str, float],
                   scenarios: tuple[str, ...] = H2_SCENARIOS, refs: dict[str, str] = H2_REFS,
                   what: str = "req/s") -> list[tuple[str, str, str, str, str]]:  # fmt: skip
    """(check, messaging, ASGI, target, result) for each of `goals` (reference: paired ratio)
    whose reference has a result in that HTTP/2 (or file) scenario."""
    rows = []
    for scen in scenarios:
        sums = results.get(scen, {})
        for ref, goal in goals.items():
            if "rps_median" not in sums.get(ref, {}):
                continue  # the reference did not run or failed: h2_targets_table() says so
            ratios = {i: sums.get(n, {}).get("paired_to", {}).get(ref) for i, n in OURS.items()}
            rows.append(_row(f"{scen} paired {what} vs {refs[ref]}", ratios, goal, higher=True,
                             unit="x"))  # fmt: skip
    return rows


def file_targets_table(results: dict[str, dict[str, Summary]]) -> str:
    """Issue 13's static-file targets: ours over the published uvicorn and over granian, bytes
    per second paired per round; a note for each reference that did not run or failed."""
    rows = h2_target_rows(results, FILE_GOALS, FILE_SCENARIOS, FILE_REFS, "bytes/s")
    out = [
        "### Targets (issue 13): static files, ours vs the published uvicorn and granian in "
        "the same run", "",
        "| check | messaging | ASGI | target | result |", "|---|---:|---:|---|---|",
    ]  # fmt: skip
    out += [f"| {' | '.join(row)} |" for row in rows]
    notes = []
    for ref, goal in FILE_GOALS.items():
        sums = [s for scen, s in results.items() if scen in FILE_SCENARIOS]
        if any("rps_median" not in s.get(ref, {}) for s in sums):
            notes.append(f"({FILE_REFS[ref]} did not run or failed in a scenario: the "
                         f">= {goal:g}x there is not judged)")  # fmt: skip
    line = verdict(rows, _others(results, FILE_SCENARIOS))
    return "\n".join([*out, "", *notes, *([""] if notes else []), line]) + "\n"


def h2_targets_table(results: dict[str, dict[str, Summary]]) -> str:
    """Issue 12's targets: ours over the published uvicorn with zttp and over hypercorn, paired
    per round, judged by the verdict; then ours over granian (the aim, not judged); a note for
    each reference that did not run or failed in a scenario."""
    rows = h2_target_rows(results, H2_GOALS)
    aims = [(*row[:4], "reached" if row[4] == "pass" else "not reached")
            for row in h2_target_rows(results, H2_AIMS)]  # fmt: skip
    out = [
        "### Targets (issue 12): HTTP/2, ours vs the published uvicorn with zttp and hypercorn "
        "in the same run (granian: the aim, not judged)", "",
        "| check | messaging | ASGI | target | result |", "|---|---:|---:|---|---|",
    ]  # fmt: skip
    out += [f"| {' | '.join(row)} |" for row in [*rows, *aims]]
    notes = []
    for ref, goal in {**H2_GOALS, **H2_AIMS}.items():
        sums = [(scen, results[scen]) for scen in H2_SCENARIOS if scen in results]
        failed = [scen for scen, s in sums if ref in s and "rps_median" not in s[ref]]
        if failed:
            notes.append(f"({H2_REFS[ref]} failed in {', '.join(failed)}: the >= {goal:g}x "
                         "there is not judged)")  # fmt: skip
        if ref in H2_GOALS and any(ref not in s for _, s in sums):
            notes.append(f"({H2_REFS[ref]} did not run: the >= {goal:g}x target over it is "
                         "not judged)")  # fmt: skip
    line = verdict(rows, _others(results, H2_SCENARIOS))
    return "\n".join([*out, "", *notes, *([""] if notes else []), line]) + "\n"
