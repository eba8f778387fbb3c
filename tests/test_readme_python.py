"""The README's commands and Python are the ones that run: its example is
executed (with the rest of the docs' "From Python" page), and its two commands
are exactly what CI runs (.ci/run) and what the getting-started page says."""

import re
import shlex
from pathlib import Path

import pytest

from dlbench.plugin.manager import get_plugins

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
PYTHON_API = ROOT / "docs" / "guide" / "python-api.md"
GETTING_STARTED = ROOT / "docs" / "guide" / "getting-started.md"


def section_examples(path: Path, title: str | None = None, language: str = "python") -> list[str]:
    """The ``language`` code blocks of the section ``## title`` (the whole file without a title)."""
    text = path.read_text(encoding="utf-8")
    if title is not None:
        start = text.index(f"## {title}\n")
        end = text.find("\n## ", start + 1)
        text = text[start:end if end > 0 else None]
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def commands(path: Path) -> dict[str, str]:
    """The command under each ``# set up and run ...`` comment of the file's first bash block."""
    block = section_examples(path, language="bash")[0]
    found = re.findall(r"^# (set up and run [^\n]*)\n(.*)$", block, re.M)
    return {comment: command.strip() for comment, command in found}


def test_the_readme_shows_the_python_api_pages_first_example():
    readme = section_examples(README, "From Python")
    assert len(readme) == 2  # a Keras model, then a torch class with its own forward
    assert "class Net(nn.Module)" in readme[1] and "def forward" in readme[1]
    assert "dlbench.benchmark(model" in readme[0] and "results.plot()" in readme[0]
    assert len([line for line in readme[0].splitlines() if line.strip()]) <= 6
    assert section_examples(PYTHON_API)[0] == readme[0]  # so the page's examples continue the README's


def test_the_readmes_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    found = commands(README)
    assert found["set up and run the tests"] == ci
    setup = ci.removesuffix(" && python -m pytest").replace('".[all,test]"', '".[all]"')
    main = found["set up and run the default suite (xor-mlp, digits-mlp) on every backend"]
    assert main == f"{setup} && dlbench run --backend all"
    assert commands(GETTING_STARTED) == found


def test_the_readmes_run_command_runs_the_default_suite_on_every_backend(tmp_path, monkeypatch):
    """The README's ``dlbench run`` command, given to the command line as written, asks for the suite its comment
    names on every registered backend (tests/cli/test_cli.py runs that suite in worker processes; here nothing trains)."""
    from click.testing import CliRunner

    from dlbench.cli import commands as cli_commands, main
    from dlbench.run.settings import RunSettings

    (comment, command), = [(c, cmd) for c, cmd in commands(README).items() if "default suite" in c]
    words = shlex.split(command.rsplit(" && ", 1)[1])
    assert words[0] == "dlbench"
    given = {}
    monkeypatch.setattr(cli_commands, "run", lambda fmt, out, require_verdict, **options: given.update(options) or 0)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, words[1:])
    assert result.exit_code == 0, result.output
    jobs = RunSettings.from_options(get_plugins(), **given).jobs()
    scenarios = re.search(r"\((.*)\)", comment).group(1).split(", ")
    backends = get_plugins().backends
    assert [Path(job.request.scenario).stem for job in jobs] == [name for name in scenarios for _ in backends]
    assert {job.request.backend for job in jobs} == set(backends)


def test_the_readme_is_a_front_door():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for page in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / page).exists(), page


@pytest.mark.slow
def test_every_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("keras")
    pytest.importorskip("torch")
    pytest.importorskip("pandas")
    monkeypatch.chdir(tmp_path)  # the examples write xor.html and xor.json
    namespace: dict = {}
    keras_example, torch_example = section_examples(README, "From Python")
    exec(compile(keras_example, str(README), "exec"), namespace)
    torch_namespace = dict(namespace)  # the page's examples go on from the Keras example's results
    exec(compile(torch_example, str(README), "exec"), torch_namespace)
    assert [r.status for r in torch_namespace["results"].rows] == ["ok", "ok"]  # the torch class: numpy, torch
    assert torch_namespace["results"].rows[1].agrees
    for example in section_examples(PYTHON_API)[1:]:
        exec(compile(example, str(PYTHON_API), "exec"), namespace)
    results, again, frame = namespace["results"], namespace["again"], namespace["frame"]
    assert [r.status for r in results.rows] == ["ok", "ok"]  # the spec on digits, numpy and jax
    every_backend = set(get_plugins().backends)  # the README's backends="all": plugins too (paddle where installed)
    assert {r.backend for r in again.rows} == every_backend
    assert len(frame) == len(every_backend) and (tmp_path / "xor.html").exists() and (tmp_path / "xor.json").exists()
