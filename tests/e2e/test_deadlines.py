"""--boot-timeout: a worker that does not start serving in time (its lifespan startup hangs, or
its import blocks) is stopped with its traceback logged; a first start then exits non-zero, and
the canary keeps the other workers from being started. --timeout does not apply while booting."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.process import REPO, CLIProcess, http_get, run_cli
from tests.helpers import UNIT


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def test_a_hung_lifespan_startup_halts_the_first_start() -> None:
    started = time.monotonic()
    result = run_cli("tests.e2e.apps:hangs_in_startup", "--port", "0", "--workers", "3",
                     "--boot-timeout", "1")  # fmt: skip
    assert time.monotonic() - started < 10 * UNIT
    assert result.returncode == 1, result.stderr
    assert errors(result.stderr) == [
        "Error: worker timed out while booting (longer than --boot-timeout 1s)"
    ]
    # The worker's log says where the app waits: the coroutines of its lifespan call.
    assert "in wait_for_the_database" in result.stderr, result.stderr
    assert result.stderr.count("lifespan startup has not completed") == 1  # the canary only


def test_an_import_that_blocks_is_aborted_with_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "heavy.py").write_text(
        "import time\n\ndef load_models():\n    time.sleep(60)\n\nload_models()\n"
        "async def app(message, channels):\n    pass\n"
    )
    started = time.monotonic()
    result = run_cli("heavy:app", "--app-dir", str(tmp_path), "--port", "0",
                     "--boot-timeout", "1")  # fmt: skip
    assert time.monotonic() - started < 10 * UNIT
    assert result.returncode == 1
    assert "timed out while booting (longer than --boot-timeout 1s); aborting it" in result.stderr
    assert 'heavy.py", line 4 in load_models' in result.stderr  # faulthandler's dump
    assert errors(result.stderr) == [
        "Error: worker timed out while booting (longer than --boot-timeout 1s)"
    ]


def test_a_slow_import_may_take_longer_than_timeout(tmp_path: Path) -> None:
    (tmp_path / "slow_import.py").write_text(
        "import time\ntime.sleep(2)\n\nasync def app(message, channels):\n"
        "    await channels['reply'].send({'status': 200, 'content': b'loaded'})\n"
    )
    with CLIProcess("slow_import:app", "--app-dir", str(tmp_path), "--port", "0",
                    "--timeout", "1", "--boot-timeout", "10") as server:  # fmt: skip
        port = server.wait_ready()
        assert http_get(port).endswith(b"loaded")
        assert server.stop() == 0
    assert "timed out" not in server.output()


def test_without_a_master_a_blocked_import_is_ended_too(tmp_path: Path) -> None:
    (tmp_path / "stuck.py").write_text(
        "import time\n\ndef connect():\n    time.sleep(60)\n\nconnect()\n"
        "async def app(message, channels):\n    pass\n"
    )
    code = (
        "import uvicorn\n"
        f"uvicorn.run('stuck:app', app_dir={str(tmp_path)!r}, port=0, supervise=False, "
        "boot_timeout=1)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=20 * UNIT)  # fmt: skip
    assert result.returncode != 0
    assert 'stuck.py", line 4 in connect' in result.stderr, result.stderr


def test_without_a_master_a_hung_startup_raises() -> None:
    code = (
        "import uvicorn\n"
        "uvicorn.run('tests.e2e.apps:hangs_in_startup', port=0, supervise=False, "
        "boot_timeout=0.5)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=20 * UNIT)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.rstrip().endswith(
        "uvicorn.exceptions.StartupError: worker timed out while booting "
        "(longer than --boot-timeout 0.5s)"
    ), result.stderr
    assert "in wait_for_the_database" in result.stderr


def test_a_second_signal_ends_a_hanging_lifespan_shutdown_without_a_master() -> None:
    code = (
        "import uvicorn\n"
        "uvicorn.run('tests.e2e.apps:hangs_in_shutdown', port=0, supervise=False)\n"
    )
    with CLIProcess("-c", code, module=None) as server:
        server.wait_ready()
        server.signal(signal.SIGTERM)
        server.wait_for_line("app: shutdown asked")
        server.signal(signal.SIGINT)
        assert server.proc.wait(timeout=5 * UNIT) == 0
    assert "lifespan shutdown stopped at once: cancelled" in server.output()


def test_the_whole_shutdown_keeps_to_the_graceful_timeout() -> None:
    with CLIProcess("tests.e2e.apps:hangs_in_shutdown", "--port", "0",
                    "--graceful-timeout", "1") as server:  # fmt: skip
        server.wait_ready()
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 1 + 1 + 2 * UNIT  # --graceful-timeout, FINAL_GRACE
    output = server.output()
    assert "did not complete within --graceful-timeout: cancelled" in output
    assert "did not stop in time" not in output  # never SIGKILLed by the master
