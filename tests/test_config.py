"""Settings are checked once, in ``Config``: ``uvicorn.run()`` (typed values), the command line and
the environment (text) accept exactly the same values, and refuse the others with one error that
names the setting."""

from __future__ import annotations

from typing import Any

import pytest

from uvicorn.cli import parse_args
from uvicorn.config import Config, fields, flag_of
from uvicorn.exceptions import ConfigError

# Values a careless operator or program may pass, typed as a program would.
CANDIDATES: list[Any] = [-5, -1, -0.5, 0, 0.5, 1, 2, 65536, 10**9, True, "x", "", None]


def refusal(options: dict[str, Any]) -> str | None:
    try:
        Config(**options)
    except ConfigError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize(
    "options, message",
    [
        ({"timeout_keep_alive": -1}, "invalid --timeout-keep-alive -1: must be 0 or more"),
        ({"ws_max_size": 0}, "invalid --ws-max-size 0: must be at least 1"),
        ({"limit_request_line": -5}, "invalid --limit-request-line -5: must be at least 1"),
        ({"graceful_timeout": -1}, "invalid --graceful-timeout -1: must be 0 or more"),
        ({"boot_timeout": -1}, "invalid --boot-timeout -1: must be 0 or more"),
        ({"workers": 0}, "invalid --workers 0: must be at least 1"),
        ({"workers": 2.5}, "invalid --workers 2.5: not a whole number"),
        ({"backlog": True}, "invalid --backlog True: not a whole number"),
        ({"timeout": float("inf")}, "invalid --timeout inf: not a number"),
        ({"port": 70000}, "invalid --port 70000: not in 0-65535"),
        ({"access_log": "no"}, "invalid --access-log 'no': must be True or False"),
        ({"root_path": 1}, "invalid --root-path 1: must be a string"),
        ({"bind": "0.0.0.0:80"}, "invalid --bind '0.0.0.0:80': expected a list of values"),
        ({"headers": ["novalue"]}, "invalid --header 'novalue': expected NAME:VALUE"),
        ({"ssl_cert_reqs": 3}, "invalid --ssl-cert-reqs 3: choose none (0), optional (1)"),
        ({"lifespan": "maybe"}, "invalid --lifespan 'maybe': choose from auto, on, off"),
    ],
)
def test_uvicorn_run_refuses_what_the_command_line_refuses(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Config(app="app:app", **options)
    assert message in str(info.value)


def test_text_is_parsed_into_typed_values() -> None:
    config = Config(app="app:app", workers="4", timeout=" 2.5", port="0", ssl_cert_reqs="required")
    assert (config.workers, config.timeout, config.port, config.ssl_cert_reqs) == (4, 2.5, 0, 2)
    assert Config(app="app:app", timeout=3).timeout == 3.0


@pytest.mark.parametrize("field", [f for f in fields() if f.metadata["parse"] is not None],
                         ids=lambda f: f.name)  # fmt: skip
def test_the_command_line_and_uvicorn_run_agree(field: Any) -> None:
    """For every setting parsed from text: a value is refused from the command line exactly when
    it is refused from a program (the same rule, written once)."""
    flag = flag_of(field)
    for value in CANDIDATES:
        if value is None or isinstance(value, bool):
            continue  # not something a command line can say
        items = [value] if field.metadata["repeatable"] else value
        from_program = refusal({"app": "app:app", field.name: items})
        from_cli = refusal(parse_args(["app:app", flag, str(value)]))
        assert (from_program is None) == (from_cli is None), (field.name, value, from_cli)
        if from_program is not None:
            assert flag in from_program


def test_a_setting_left_unset_is_none() -> None:
    config = Config(app="app:app")
    assert config.port is None and config.limit_concurrency is None


def test_environment_values_are_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "-2")
    with pytest.raises(ConfigError, match="invalid --workers '-2': must be at least 1"):
        Config(**parse_args(["app:app"]))
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert Config(**parse_args(["app:app"])).workers == 3


def test_a_sigterm_while_the_master_does_not_hold_the_signals_ends_with_status_0(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before the master takes the signals over, and after it gave them back while the process
    exits (a second TERM, say), a SIGTERM ends the command with status 0, as a stop asked for:
    never killed by the signal, which systemd reports as a failed stop."""
    import os
    import signal

    from uvicorn.cli import main

    def run(**options: Any) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10_000):  # the handler runs at the next check of the eval loop
            pass
        raise AssertionError("the SIGTERM was not handled")

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr("uvicorn.main.run", run)
    try:
        assert main(["examples.hello_world:hello_world"]) == 0
        # Then only Python's exit is left, which would give SIGTERM its default action back
        # before it ends: one more (an impatient second stop) would kill it, status -15.
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)
