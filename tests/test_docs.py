"""The documentation site builds with ``mkdocs build --strict`` (a broken link,
a missing page, a reference to code that is gone all fail), and its
generated pages follow the code."""

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return out


def page_text(site: Path, page: str) -> str:
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", (site / page / "index.html").read_text(encoding="utf-8")))


def test_the_api_reference_has_every_parameter_of_benchmark(site):
    import dlbench

    text = page_text(site, "reference/api")
    signature = text[text.index("benchmark(model"):]
    for name in inspect.signature(dlbench.benchmark).parameters:
        assert f"{name}" in signature[:signature.index("-> Results")], name


def test_the_command_line_page_has_every_command_and_option(site):
    from dlbench.cli import main

    text = page_text(site, "reference/cli")
    for name, command in main.commands.items():
        assert f"dlbench {name}" in text
        for param in command.params:
            assert all(opt in text for opt in param.opts if opt.startswith("--")), (name, param.opts)


def test_the_layout_page_lists_every_module(site):
    text = page_text(site, "reference/layout")
    for package in ("dlbench", "backends"):
        for module in (ROOT / package).rglob("*.py"):
            if module.name != "__main__.py":
                assert module.relative_to(ROOT).as_posix() in text


def test_every_guide_page_is_built(site):
    for page in (ROOT / "docs").rglob("*.md"):
        relative = page.relative_to(ROOT / "docs").with_suffix("")
        built = site / ("index.html" if relative.name == "index" else relative / "index.html")
        assert built.exists(), relative
