#!/usr/bin/env python3
"""Run the fuzz harnesses: python3 fuzz/run.py [--seconds 60] [target ...]

Sets up .venvs/fuzz (the same Python as .venv, the project installed editable, and PACKAGES) if
needed, seeds a working corpus per target (the small committed seeds in fuzz/corpus/<target>/
plus byte strings taken from the protocol tests), runs each harness for the given time, and
prints one line per target: executions, coverage, corpus size, and the reproducer of a crash.
Exits non-zero if any harness crashed. The working corpora and crash artifacts live under
--workdir (default /tmp/uvicorn-fuzz), outside git; a corpus grown by one run seeds the next.

Reproduce a crash: .venvs/fuzz/bin/python fuzz/fuzz_<target>.py PATH
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
VENV = ROOT / ".venvs" / "fuzz"
TARGETS = ("http_parser", "http_response", "websocket", "hpack", "http2")
# What the harnesses import besides the project (hpack and hypothesis: fuzz_hpack's oracle and
# the test module it comes from; h2, for its hyperframe: fuzz_http2 reads what the core sends).
PACKAGES = ("atheris", "h11", "pytest", "hpack", "hypothesis", "h2")


def base_python() -> str:
    """The interpreter .venv was made from (so both environments run the same Python)."""
    cfg = ROOT / ".venv" / "pyvenv.cfg"
    if cfg.exists():
        for line in cfg.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "executable" and Path(value.strip()).exists():
                return value.strip()
    return sys.executable


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    ready = VENV / ".ready"  # holds PACKAGES once installed: a package added is installed
    if python.exists() and ready.exists() and ready.read_text().split() == list(PACKAGES):
        return python
    if not python.exists():
        subprocess.run([base_python(), "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *PACKAGES], check=True)
    subprocess.run([*pip, "-e", str(ROOT)], check=True)
    ready.write_text(" ".join(PACKAGES))
    return python


# Seeds: what the protocol tests feed, taken from their modules.


def _evaluated(path: Path, module: str, keep: re.Pattern[bytes]) -> list[bytes]:
    """Every expression in a test module that evaluates, in the module's namespace, to bytes
    matching ``keep`` (literal requests, H + b"...", frame(TEXT, b"x"), ...)."""
    namespace = vars(importlib.import_module(module))
    found: list[bytes] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, (ast.BinOp, ast.Call, ast.Constant)):
            continue
        try:
            value = eval(compile(ast.Expression(node), str(path), "eval"), dict(namespace))
        except Exception:
            continue
        if isinstance(value, bytes) and keep.search(value):
            found.append(value)
    return found


def test_seeds(target: str) -> list[bytes]:
    sys.path.insert(0, str(ROOT))
    tests = ROOT / "tests" / "protocols"
    if target == "http_parser":
        requests = []
        for name in ("test_http_parser", "test_http_parser_errors"):
            requests += _evaluated(
                tests / f"{name}.py", f"tests.protocols.{name}", re.compile(rb" HTTP/\d")
            )
        # flags: default limits, bytewise; small limits in odd pieces, websocket spoken.
        return [bytes([flags, 7]) + r for r in requests for flags in (0x00, 0x0D)]
    if target == "websocket":
        frames = _evaluated(
            tests / "test_websocket_frames.py",
            "tests.protocols.test_websocket_frames",
            re.compile(rb"^[\x00-\x0f\x80-\x8f][\x80-\xff]", re.S),
        )
        # flags: raw bytes, with and without permessage-deflate, whole and in odd pieces.
        return [bytes([flags, 3]) + f for f in frames for flags in (0x00, 0x11, 0x24)]
    if target == "hpack":
        from tests.protocols.test_hpack import C_EXAMPLES, ERRORS

        # flags: Appendix C's sequences as length-prefixed blocks, with and without a table
        # size limit changing; each error block alone.
        sequences = [
            b"".join(bytes([len(b)]) + b for b in map(bytes.fromhex, blocks))
            for _, blocks, _ in C_EXAMPLES.values()
        ]
        return [bytes([flags, 7]) + s for s in sequences for flags in (0x60, 0x69)] + [
            bytes([0x00, 0]) + block for block in ERRORS.values()
        ]
    if target == "http2":
        import hpack

        from tests.protocols import h2frames as h

        blocks = hpack.Encoder()
        exchange = b"".join([
            h.headers(1, blocks.encode(h.GET)),
            h.headers(3, blocks.encode(h.post(5)), end_stream=False),
            h.data(3, b"hello", end_stream=True), h.window_update(0, 1000), h.ping(),
            h.rst_stream(1), h.settings({4: 0}), h.goaway(),
        ])  # fmt: skip
        # flags: raw bytes after the preface, under each of the server's settings, whole and
        # in odd pieces.
        return [bytes([flags, 7]) + exchange for flags in (0x00, 0x11, 0x22, 0x33)]
    return []


def seed_corpus(target: str, corpus: Path) -> int:
    corpus.mkdir(parents=True, exist_ok=True)
    seeds = [p.read_bytes() for p in sorted((FUZZ / "corpus" / target).glob("*")) if p.is_file()]
    seeds += test_seeds(target)
    for seed in seeds:
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    return len(seeds)


def run_target(python: Path, target: str, seconds: int, workdir: Path) -> tuple[str, bool]:
    corpus = workdir / target / "corpus"
    artifacts = workdir / target / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    seeded = seed_corpus(target, corpus)
    log = workdir / target / "last.log"
    command = [
        str(python),
        str(FUZZ / f"fuzz_{target}.py"),
        str(corpus),
        f"-max_total_time={seconds}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
        "-timeout=20",
        "-rss_limit_mb=4096",
        "-max_len=4096",
        "-use_value_profile=1",
    ]
    dictionary = FUZZ / f"{target}.dict"
    if dictionary.exists():
        command.append(f"-dict={dictionary}")
    started = time.monotonic()
    with log.open("wb") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=FUZZ).returncode
    elapsed = time.monotonic() - started
    text = log.read_text(errors="replace")
    executions = re.findall(r"stat::number_of_executed_units: (\d+)", text)
    progress = re.findall(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)", text)
    crash = re.findall(r"Test unit written to (\S+)", text)
    runs = executions[-1] if executions else (progress[-1][0] if progress else "?")
    cov, ft, corp = progress[-1][1:] if progress else ("?", "?", "?")
    line = (
        f"{target}: {runs} executions in {elapsed:.0f} s, cov {cov} ft {ft}, corpus {corp} "
        f"(seeded {seeded})"
    )
    crashed = code != 0 or bool(crash)
    if crash:
        line += f", CRASH: reproduce with {python} {FUZZ / f'fuzz_{target}.py'} {crash[-1]}"
    elif code != 0:
        line += f", FAILED (exit {code}), see {log}"
    else:
        line += ", no crash"
    return line, crashed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", metavar="target", help=f"of {TARGETS}")
    parser.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/uvicorn-fuzz"))
    parser.add_argument("--clean", action="store_true", help="start from the seeds alone")
    args = parser.parse_args()
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s) {sorted(unknown)}: choose from {TARGETS}")
    python = ensure_venv()
    if Path(sys.prefix).resolve() != VENV.resolve():
        # The seeds are taken from the test modules, which import the project: run in the
        # fuzz environment.
        os.execv(python, [str(python), __file__, *sys.argv[1:]])
    if args.clean and args.workdir.exists():
        shutil.rmtree(args.workdir)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    crashed = False
    for target in args.targets or TARGETS:
        line, failed = run_target(python, target, args.seconds, args.workdir)
        print(line, flush=True)
        crashed |= failed
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
