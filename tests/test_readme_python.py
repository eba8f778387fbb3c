"""Every example of the README's "From Python" section runs as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def section_examples(title: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end if end > 0 else None], re.S)


def test_the_section_has_its_examples():
    examples = section_examples("From Python")
    assert len(examples) == 3
    assert "dlbench.benchmark(model" in examples[0] and "results.plot()" in examples[0]
    assert len([line for line in examples[0].splitlines() if line.strip()]) <= 6


@pytest.mark.slow
def test_every_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("keras")
    pytest.importorskip("torch")
    pytest.importorskip("pandas")
    monkeypatch.chdir(tmp_path)  # the examples write xor.html and xor.json
    namespace: dict = {}
    for example in section_examples("From Python"):
        exec(compile(example, str(README), "exec"), namespace)
    results, again, frame = namespace["results"], namespace["again"], namespace["frame"]
    assert [r.status for r in results.rows] == ["ok", "ok"]  # the spec on digits, numpy and jax
    assert {r.backend for r in again.rows} == {"numpy", "torch", "tensorflow", "jax"}
    assert len(frame) == 4 and (tmp_path / "xor.html").exists() and (tmp_path / "xor.json").exists()
