"""A run's progress in a notebook: one display, updated in place, with an HTML
bar and the finished rows (rich's live bar needs ipywidgets there)."""

import pytest

from dlbench.run import notebook
from dlbench.run.runner import describe, upcoming


class FakeHandle:
    """What ``IPython.display.display(..., display_id=True)`` returns: the updates land here."""

    def __init__(self, bundle):
        self.shown = [bundle]

    def update(self, bundle, raw=False):
        assert raw
        self.shown.append(bundle)


class FakeSuite:
    """A suite of two jobs whose run reports progress and rows as the real one does."""

    def __init__(self, jobs):
        self.jobs, self.executor = jobs, None
        self.on_row = self.on_progress = None

    def run(self):
        for job in self.jobs:
            for steps in (10, 20, 30):
                self.on_progress(job, steps, 30)
            self.on_row({"scenario": job.request.name, "backend": job.request.backend, "status": "ok"})


def two_jobs():
    from types import SimpleNamespace

    return [SimpleNamespace(request=SimpleNamespace(name="xor-mlp", backend=b, mode="train"), sweep_point={})
            for b in ("numpy", "torch")]


@pytest.fixture
def displays(monkeypatch):
    pytest.importorskip("IPython")
    handles = []

    def display(bundle, raw=False, display_id=False):
        assert raw and display_id
        handles.append(FakeHandle(bundle))
        return handles[-1]

    monkeypatch.setattr("IPython.display.display", display)
    monkeypatch.setattr(notebook, "UPDATE_SECONDS", 0.0)
    return handles


def test_a_notebook_run_shows_one_bar_updated_to_the_end(displays):
    notebook.run_in_notebook(FakeSuite(two_jobs()), describe, upcoming)
    [handle] = displays
    first, middle, last = handle.shown[0], handle.shown[2], handle.shown[-1]
    assert "training xor-mlp on numpy: starting" in first["text/plain"]
    assert "<progress value='0.667' max='2'" in middle["text/html"]  # 20 of 30 steps of the first of two jobs
    assert "training xor-mlp on numpy: 20/30 steps" in middle["text/plain"]
    assert "[1/2] xor-mlp / numpy: ok" in last["text/html"] and "[2/2] xor-mlp / torch: ok" in last["text/html"]
    assert "<progress value='2.000' max='2'" in last["text/html"] and "done: 2 of 2 runs" in last["text/plain"]


def test_a_terminal_run_keeps_richs_bar(monkeypatch, capsys):
    """Only a notebook takes the HTML display: a console that is not Jupyter runs rich's Progress."""
    from dlbench.run import runner

    monkeypatch.setattr(notebook, "run_in_notebook", lambda *a: pytest.fail("a terminal got the notebook display"))
    runner.run_with_progress(FakeSuite(two_jobs()[:1]))
    assert "[1/1] xor-mlp / numpy: ok" in capsys.readouterr().err
