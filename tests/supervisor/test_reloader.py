"""Which files --reload watches."""

from __future__ import annotations

from pathlib import Path

import pytest

from uvicorn.supervisor.reloader import ChangeFilter


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for folder in ("app/sub", ".git", ".venv/lib", "env/lib", "node_modules/x", "__pycache__",
                   "lib/site-packages/pkg", "static"):  # fmt: skip
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n")  # a venv by another name
    return tmp_path


@pytest.mark.parametrize(
    ("path", "watched"),
    [
        ("main.py", True),
        ("app/sub/models.py", True),
        ("app/sub/notes.txt", False),
        (".git/hooks.py", False),
        (".venv/lib/mod.py", False),
        ("env/lib/mod.py", False),
        ("node_modules/x/y.py", False),
        ("__pycache__/main.py", False),
        ("lib/site-packages/pkg/mod.py", False),
        ("main.pyc", False),
    ],
)
def test_default_filter(project: Path, path: str, watched: bool) -> None:
    assert ChangeFilter([str(project)])(str(project / path)) is watched


def test_include_and_exclude_globs(project: Path) -> None:
    check = ChangeFilter([str(project)], includes=["*.html"], excludes=["static", "test_*.py"])
    assert check(str(project / "app" / "page.html"))
    assert not check(str(project / "static" / "page.html"))
    assert not check(str(project / "app" / "test_views.py"))
    assert check(str(project / "app" / "views.py"))


def test_outside_the_roots_is_ignored(project: Path) -> None:
    assert not ChangeFilter([str(project / "app")])(str(project / "main.py"))


def test_ignored_trees_are_not_even_walked(project: Path) -> None:
    check = ChangeFilter([str(project)], excludes=["static"])
    found = {str(Path(d).relative_to(project)) for d in check.directories()}
    assert found == {".", "app", "app/sub", "lib"}
    assert check.display(str(project / "app" / "x.py")) == "app/x.py"
