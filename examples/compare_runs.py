"""Compare two result documents, as ``dlbench compare BASE.json NEW.json`` does.

    python examples/compare_runs.py

Two runs of the same scenario are saved, read back and compared: the change
of median samples/s per backend (a rank test on the raw samples says whether
a slowdown is more than noise) and of test accuracy.
"""

import dlbench

base = dlbench.benchmark("moons-mlp", backends="numpy", steps=40, progress=False)
new = dlbench.benchmark("moons-mlp", backends="numpy", steps=40, progress=False)
base_path, new_path = base.save("base.json"), new.save("new.json")  # new files, never replacing one

comparison = dlbench.load(new_path).compare(dlbench.load(base_path), threshold=0.05)
print(comparison)
print("regressed" if comparison.regressed else "no regression")
