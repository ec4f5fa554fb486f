"""The dotenv parser of --env-file: python-dotenv's syntax (the published uvicorn's), variables
already in the environment win, and a file that cannot be read or parsed is a ConfigError that
names the flag (and the line)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from uvicorn import env_file
from uvicorn.exceptions import ConfigError


def values(text: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    return env_file.resolve(env_file.parse(text), environ or {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=1", {"A": "1"}),
        ("A=1\r\nB=2\rC=3\n", {"A": "1", "B": "2", "C": "3"}),
        ("export A=1", {"A": "1"}),
        ("  A  =  spaced value  ", {"A": "spaced value"}),
        ("A=x # comment", {"A": "x"}),
        ("A=x#not a comment", {"A": "x#not a comment"}),
        ("A=#value", {"A": "#value"}),
        ("A= # only a comment", {"A": ""}),
        ("A=", {"A": ""}),
        ("# comment\n\n   \nA=1 \n# another", {"A": "1"}),
        ("A", {}),  # no '=': sets nothing
        ("A='single # kept'  # comment", {"A": "single # kept"}),
        ("A='it\\'s \\\\ \\n'", {"A": "it's \\ \\n"}),  # single quotes: only \' and \\
        ('A="tab\\tnew\\nline \\"q\\" \\\\"', {"A": 'tab\tnew\nline "q" \\'}),
        ('A="keeps \\x unknown"', {"A": "keeps \\x unknown"}),
        ('A="two\nlines"', {"A": "two\nlines"}),
        ("A='two\nlines'", {"A": "two\nlines"}),
        ("'QUOTED KEY'=v", {"QUOTED KEY": "v"}),
        ("A=1\nA=2", {"A": "2"}),  # the last one
        ("\ufeffA=1", {"A": "1"}),  # a byte order mark
        ("A=é ü", {"A": "é ü"}),
    ],
)
def test_syntax(text: str, expected: dict[str, str]) -> None:
    assert values(text) == expected


def test_variables_are_expanded_in_unquoted_and_double_quoted_values() -> None:
    text = 'A=1\nB=${A}2\nC="${B}-${NONE}-${NONE:-dflt}"\nD=\'${A}\'\nE=${HOME_}\n'
    assert values(text, {"HOME_": "/home"}) == {"A": "1", "B": "12", "C": "12--dflt",
                                               "D": "${A}", "E": "/home"}  # fmt: skip
    # The environment's value first, as it is the one that will be in force.
    assert values("A=file\nB=${A}", {"A": "env"}) == {"B": "env"}


def test_variables_already_set_win() -> None:
    assert values("A=file\nB=file", {"A": "env"}) == {"B": "file"}
    assert values("A=file", {"A": ""}) == {}  # set, though empty


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("A='unterminated", 1),
        ('A=1\nB="unterminated\nC=3', 2),
        ("=value", 1),
        ("A='x' junk", 1),
        ("A=1\n\n  B junk", 3),
    ],
)
def test_a_line_that_is_not_key_value_is_refused_by_number(text: str, line: int) -> None:
    with pytest.raises(ValueError, match=f"^line {line} is not KEY=VALUE"):
        env_file.parse(text)


def test_load_sets_the_environment_without_overriding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ".env"
    path.write_text("UVICORN_T_NEW=new\nUVICORN_T_SET=file\n")
    monkeypatch.setenv("UVICORN_T_SET", "env")
    monkeypatch.delenv("UVICORN_T_NEW", raising=False)
    try:
        assert env_file.load(str(path)) == ["UVICORN_T_NEW"]
        assert (os.environ["UVICORN_T_NEW"], os.environ["UVICORN_T_SET"]) == ("new", "env")
        assert env_file.load(str(path)) == []  # again: nothing left to set
    finally:
        os.environ.pop("UVICORN_T_NEW", None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read --env-file '{path}': No such file or directory"),
        (b"UVICORN_T_A=1\nB='x\n",
         "invalid --env-file '{path}': line 2 is not KEY=VALUE: \"B='x\""),
        (b"A=\xff\n", "cannot read --env-file '{path}': not UTF-8 (invalid start byte)"),
        (b"UVICORN_T_A=1\nB=\"\0\"",
         "invalid --env-file '{path}': 'B': the environment takes no NUL, nor '=' in a name"),
    ],
)
def test_load_errors_name_the_flag(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / ".env"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        env_file.load(str(path))
    assert str(info.value) == message.format(path=path)
    assert "UVICORN_T_A" not in os.environ  # nothing set from a file refused
