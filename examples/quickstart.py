"""Quickstart: the XOR network of the Keras example on NumPy and PyTorch, from Python.

    python examples/quickstart.py

``dlbench.benchmark`` runs what ``dlbench run`` runs (fresh worker processes,
the parity certificate, the result document) and returns the results.
"""

import dlbench

results = dlbench.benchmark("xor-mlp", backends="numpy,torch", steps=30)
for row in results.rows:
    print(f"{row.backend:>6}: {row.status}, agrees with numpy: {row.agrees}, "
          f"test accuracy {row.test_accuracy:.3f}, {row.samples_per_sec:,.0f} samples/s")
print(results.table())
