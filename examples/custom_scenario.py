"""A scenario file of your own, run as ``dlbench run --scenario examples/tiny-moons.toml`` runs it.

    python examples/custom_scenario.py

It writes its result document into ``results/`` under the current folder
(a new numbered file, never replacing one) and a Markdown report beside it.
"""

from pathlib import Path

import dlbench

scenario = Path(__file__).with_name("tiny-moons.toml")
results = dlbench.benchmark(scenario, backends="numpy", out="results")
print(f"result document: {results.path}")
print(f"report: {results.report('tiny-moons.md', plots=False)}")
row = results.rows[0]
print(f"{row.scenario} on {row.backend}: {row.status}, test accuracy {row.test_accuracy:.3f}")
