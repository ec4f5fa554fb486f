"""Issue 15's operations flags through the real command line: --env-file (read by the master,
seen by every worker and every worker that replaces one), --limit-request-body with curl and
h2load, coloured level names on a terminal (--use-colors), and the one-line errors of a missing
env file or a cipher list OpenSSL refuses."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.h2tools import curl, h2load
from tests.e2e.process import REPO, CLIProcess, http_get, run_cli
from tests.e2e.supervision import serving_pids
from tests.helpers import UNIT

ENV_APP = "tests.e2e.operations_apps:environment"
GREEN_INFO = "\x1b[32mINFO\x1b[0m:"


def environment(port: int, *names: str) -> dict[str, object]:
    raw = http_get(port, "/?" + "&".join(names))
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])  # type: ignore[no-any-return]


def test_env_file_reaches_every_worker_and_their_replacements(tmp_path: Path) -> None:
    env = tmp_path / "prod.env"
    env.write_text(
        "# the deployment's settings\n"
        "WEB_CONCURRENCY=2\n"
        "export GREETING='hello, world'\n"
        'MULTI="one\\ntwo"  # a comment\n'
        "PRESET=from the file\n"
        "URL=postgres://${GREETING:-x}@db/${MISSING:-app}\n"
    )
    names = ("GREETING", "MULTI", "PRESET", "URL")
    expected = {"GREETING": "hello, world", "MULTI": "one\ntwo", "PRESET": "from the environment",
                "URL": "postgres://hello, world@db/app"}  # fmt: skip
    with CLIProcess(ENV_APP, "--port", "0", "--env-file", str(env), "--no-access-log",
                    env={"PRESET": "from the environment"}) as server:  # fmt: skip
        port = server.wait_ready()
        first = set(serving_pids(server, 2))  # WEB_CONCURRENCY from the file: two workers
        seen: set[int] = set()
        for _ in range(200):  # (connections go to either worker: until both answered)
            answer = environment(port, *names)
            assert answer["values"] == expected
            seen.add(answer["pid"])  # type: ignore[arg-type]
            if seen == first:
                break
        assert seen == first
        server.signal(signal.SIGHUP)  # new workers, forked from the master
        server.wait_for_line("Reload complete: generation 2 serving")
        answer = environment(port, *names)
        assert answer["pid"] not in first and answer["values"] == expected
        assert server.stop() == 0


def test_uvicorn_run_takes_env_file_too(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("GREETING=from uvicorn.run()\n")
    script = (f"import uvicorn; uvicorn.run({ENV_APP!r}, port=0, env_file={str(env)!r}, "
              "access_log=False)")  # fmt: skip
    with CLIProcess("-c", script, module=None) as server:
        port = server.wait_ready()
        assert environment(port, "GREETING")["values"] == {"GREETING": "from uvicorn.run()"}
        assert server.stop() == 0
    assert any(f"Loaded environment from {env}" in line for line in server.lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env-file", "/nonexistent/.env"],
         "Error: cannot read --env-file '/nonexistent/.env': No such file or directory"),
        (["--env-file", "{bad}"],
         "Error: invalid --env-file '{bad}': line 2 is not KEY=VALUE: \"BAD='unterminated\""),
        (["--ssl-ciphers", "NO-SUCH-CIPHER"],
         "Error: invalid --ssl-ciphers 'NO-SUCH-CIPHER': OpenSSL selects no cipher from it"),
    ],
)  # fmt: skip
def test_a_bad_env_file_or_cipher_list_is_one_line_and_status_1(
    args: list[str], message: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.env"
    bad.write_text("GOOD=1\nBAD='unterminated\n")
    args = [arg.replace("{bad}", str(bad)) for arg in args]
    message = message.replace("{bad}", str(bad))
    result = run_cli("examples.hello_world:hello_world", "--port", "0", *args)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [message]


def test_limit_request_body_with_curl_and_h2load(tmp_path: Path) -> None:
    big, small = tmp_path / "big", tmp_path / "small"
    big.write_bytes(b"x" * 5000)
    small.write_bytes(b"y" * 1000)
    with CLIProcess("examples.echo_body:echo_body", "--port", "0", "--limit-request-body",
                    "1000") as server:  # fmt: skip
        url = f"http://127.0.0.1:{server.wait_ready()}/"
        fits = curl("--data-binary", f"@{small}", "-w", " %{http_code}", url)
        assert fits.stdout == "y" * 1000 + " 200"
        for extra in ([], ["-H", "Transfer-Encoding: chunked"]):  # declared, then counted
            refused = curl("--data-binary", f"@{big}", *extra, "-o", "/dev/null",
                           "-w", "%{http_code}", url)  # fmt: skip
            assert refused.stdout == "413", (extra, refused.stderr)
        # HTTP/2 (prior knowledge): every stream refused, on connections that go on.
        summary = h2load(url, "-n", "20", "-c", "2", "-d", str(big))
        assert (summary.done, summary.status_2xx, summary.status_other) == (20, 0, 20)
        assert h2load(url, "-n", "20", "-c", "2", "-d", str(small)).clean
        assert server.stop() == 0


def _on_a_terminal(*args: str, env: dict[str, str] | None = None) -> str:
    """Start the CLI with its stderr (and stdout) on a pseudo-terminal; what it printed up to
    the line that says it serves."""
    master, slave = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    environment.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.hello_world:hello_world", "--port", "0",
         *args],
        cwd=REPO, env=environment, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 10 * UNIT
    try:
        while b"Uvicorn running on" not in output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"not serving in time: {output!r}"
            ready, _, _ = select.select([master], [], [], remaining)
            if ready:
                try:
                    output += os.read(master, 65536)
                except OSError:  # EIO: the process exited
                    raise AssertionError(f"exited: {output!r}") from None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10 * UNIT)
        os.close(master)
    return output.decode()


def test_level_names_are_coloured_on_a_terminal_unless_no_color() -> None:
    coloured = _on_a_terminal()
    assert GREEN_INFO + "     Uvicorn running on" in coloured
    plain = _on_a_terminal(env={"NO_COLOR": "1"})
    assert "\x1b[" not in plain and "INFO:     Uvicorn running on" in plain
    assert "\x1b[" not in _on_a_terminal("--no-use-colors")


def test_colours_when_asked_for_but_never_in_a_log_file(tmp_path: Path) -> None:
    with CLIProcess("examples.hello_world:hello_world", "--port", "0", "--use-colors") as server:
        server.wait_ready()  # (stderr is a pipe here: coloured only because asked)
        assert server.stop() == 0
    assert any(line.startswith(GREEN_INFO) for line in server.lines)
    log = tmp_path / "server.log"
    with CLIProcess("examples.hello_world:hello_world", "--port", "0", "--use-colors",
                    "--log-file", str(log)) as server:  # fmt: skip
        deadline = time.monotonic() + 10 * UNIT
        while "Uvicorn running on" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "not serving in time"
            time.sleep(0.02)  # the log goes to the file: nothing to wait on but the file
        assert server.stop() == 0
    assert "INFO:     Uvicorn running on" in log.read_text() and "\x1b[" not in log.read_text()
