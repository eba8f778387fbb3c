"""Every script and notebook in examples/ runs as written, as a new user runs it."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))


def test_every_example_is_tested():
    assert {p.name for p in SCRIPTS} == {"quickstart.py", "custom_scenario.py", "compare_runs.py"}
    assert [p.name for p in EXAMPLES.glob("*.ipynb")] == ["quickstart.ipynb"]


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_the_example_script_runs(script, tmp_path):
    if script.stem == "quickstart":
        pytest.importorskip("torch")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    expected = {"quickstart": r"torch: ok, agrees with numpy: True", "custom_scenario": r"tiny-moons on numpy: ok",
                # two runs on a shared machine may differ by more than the threshold: either verdict is a result
                "compare_runs": r"moons-mlp.*\n(.*\n)*(regressed|no regression)\n$"}[script.stem]
    assert re.search(expected, result.stdout), result.stdout
    if script.stem == "custom_scenario":
        assert (tmp_path / "tiny-moons.md").exists() and len(list(tmp_path.glob("results/*/*.json"))) == 1


def notebook_outputs(path: Path, folder: Path) -> list[dict]:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


@pytest.mark.slow
def test_the_notebook_runs_with_a_progress_bar_and_no_ipywidgets_warning(tmp_path):
    pytest.importorskip("nbclient")
    pytest.importorskip("torch")
    outputs = notebook_outputs(EXAMPLES / "quickstart.ipynb", tmp_path)
    text = json.dumps(outputs)
    assert "ipywidgets" not in text and "Warning" not in text and not any(o.output_type == "error" for o in outputs)
    bars = [o for o in outputs if "<progress" in o.get("data", {}).get("text/html", "")]
    assert len(bars) == 1  # one display, updated in place
    assert "[2/2] xor-mlp / torch: ok" in bars[0]["data"]["text/html"]
    assert "done: 2 of 2 runs" in bars[0]["data"]["text/plain"]
    tables = [o["data"]["text/html"] for o in outputs if "dlbench-results" in o.get("data", {}).get("text/html", "")]
    assert tables and "yes (" in tables[0]  # the report's table, torch agreeing with numpy
    assert tables[0].index("yes (") < tables[0].index("What the columns mean")  # results first
