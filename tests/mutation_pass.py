"""The mutation-testing pass over the code that computes published figures
(optional; not part of the test suite, mutmut is not a dependency):

    pip install "mutmut<3"
    python tests/mutation_pass.py [--seconds-per-module 600] [--only dlbench/measure/timing.py]

For each module below, mutmut 2 mutates the functions that compute a
published figure (every other line is marked ``# pragma: no mutate``) in a
copy of the tree under a temporary folder, never in the checkout, and runs
the module's fast tests for each mutant in one pytest run (``-x``): the tests
that were there before first (``old``), then the new ones (``new``). Each
mutant is logged as killed by the old tests, killed only by the new ones, or
surviving, with its diff and the test file that failed first (``mutations.tsv`` in the copy), and the kill rates
before (old) and after (old + new) are printed per module. mutmut 2 is used
because it mutates files in place and takes any runner command, which this
layout (``backends/`` installed as ``dlbench_backends``) needs; a module
whose time runs out is reported with the mutants it reached.
"""

from __future__ import annotations

import argparse
import ast
import collections
import io
import os
import shutil
import subprocess
import sys
import tempfile
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INFERENCE_K = ("-k 'first_call or call_count or p99_interval or batch_sizes or norm_wise or another_shape or "
               "malformed or schema or compare_ or every_report_format or sequence_inference_reports or "
               "repetitions_pool or published_figures or inference_table_cells'")
FIGURES = "tests/report/test_published_figures.py"
CELLS = "tests/report/test_inference_table_cells.py"
PLAN = "tests/plugin/test_data_parallel_plan.py"
LAYERS = "tests/backends/test_mixed_precision_layers.py"
#: module -> (the functions computing published figures ("": all of it), the pytest arguments: the fast
#: tests that were there before, then the new ones, and the new test files, space-separated)
MODULES = {
    "backends/numpy/precision.py": ("", f"tests/backends/test_kit_mixed_precision_contract.py {LAYERS} -k "
                                        "'numpy or mixed_precision_layers'", LAYERS),
    "dlbench/measure/timing.py": ("TrainingMeasurement,summarize",
                              f"tests/measure/test_measurement.py tests/scale/test_data_parallel.py {FIGURES} -m 'not slow'", FIGURES),
    "dlbench/run/row.py": ("combine_repeats,_rates_of_the_median,finished_row",
                           f"tests/measure/test_measurement.py tests/scale/test_data_parallel.py {FIGURES} -m 'not slow'", FIGURES),
    "dlbench/report/table.py": ("_ratios,entries,_with_scaling,replicas,speed_cell,unstable,_ratio,_percent,_count,"
                                "communication_cell",
                                f"tests/report/test_report.py tests/scale/test_data_parallel.py {FIGURES} -k 'speed_ratios or "
                                "sweep_rows or precision_sweep or fp32_run or every_format_shows or seeds_give or "
                                "outcomes_test or efficiency or peak_share or report_format or published_figures'",
                                FIGURES),
    "dlbench/measure/inference.py": ("latency_entry,with_tokens,pool_repeats,rel_diff,output_agreement,"
                                 "measure_batch_size,percentile_interval",
                                 f"tests/run/test_inference.py {FIGURES} {INFERENCE_K}", FIGURES),
    "dlbench/report/inference.py": ("", f"tests/run/test_inference.py {FIGURES} {CELLS} {INFERENCE_K}",
                                    f"{FIGURES} {CELLS}"),
    "dlbench/plugin/distributed.py": ("DataParallel,replica_slice,check_divides,check_replicas,distributed_row",
                                   f"tests/scale/test_data_parallel.py {FIGURES} {PLAN} -m 'not slow'",
                                   f"{FIGURES} {PLAN}"),
}
RUNNER = """#!/bin/bash
# one mutant, one pytest run (-x): the old tests first, then the new ones; the first failure's file says
# which killed it (mutmut reads the exit status)
cd "$MUT_ROOT"
change=$(diff -U0 "$MUT_PRISTINE/$MUT_FILE" "$MUT_FILE" | tail -n +3 | tr '\\n\\t' '  ')
out=$(eval timeout 120 "$MUT_PYTHON" -m pytest -x -q -rf -p no:cacheprovider $MUT_TESTS 2>&1)
if [ $? -eq 0 ]; then printf 'survived\\t%s\\t%s\\n' "$MUT_FILE" "$change" >> mutations.tsv; exit 0; fi
first=$(echo "$out" | grep -m1 -oE '^(FAILED|ERROR) [^ :]+' | awk '{print $2}')
verdict=old; case " $MUT_NEW " in *" $first "*) verdict=new;; esac
printf '%s\\t%s\\t%s\\t%s\\n' "$verdict" "$MUT_FILE" "$change" "$first" >> mutations.tsv
exit 1
"""


def only_these_functions(path: Path, names: str) -> None:
    """Mark every line outside the functions and classes ``names`` '# pragma: no mutate' (mutmut 2)."""
    if not names:
        return
    source = path.read_text()
    keep = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names.split(","):
            keep.update(range(node.lineno, node.end_lineno + 1))
    ends = {token.start[0] for token in tokenize.generate_tokens(io.StringIO(source).readline)
            if token.type in (tokenize.NEWLINE, tokenize.NL)}  # lines a comment can end (not inside a string)
    lines = source.split("\n")
    for number, line in enumerate(lines, 1):
        if number not in keep and number in ends and line.strip():
            lines[number - 1] = line + "  # pragma: no mutate"
    path.write_text("\n".join(lines))


def copy_tree(target: Path) -> None:
    """The checkout's sources and tests, importable as installed (``dlbench_backends`` is ``backends/``)."""
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", "results", ".benchmarks", ".ci", ".mutmut-cache")
    shutil.copytree(ROOT, target, ignore=ignore)
    (target / "dlbench_backends").symlink_to("backends")


def tally(log: Path) -> dict[str, collections.Counter]:
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in log.read_text().splitlines() if log.exists() else []:
        verdict, module, change = (line.split("\t") + ["", ""])[:3]
        if change.strip():  # the baseline run (no change) is not a mutant
            counts[module][verdict] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds-per-module", type=int, default=600)
    parser.add_argument("--only", action="append", help="a module of the list (repeatable)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dlbench-mutation-"))
    root, pristine = work / "tree", work / "pristine"
    copy_tree(root)
    copy_tree(pristine)
    (root / "runner.sh").write_text(RUNNER)
    (root / "runner.sh").chmod(0o755)
    for module, (functions, tests, new) in MODULES.items():
        if args.only and module not in args.only:
            continue
        for tree in (root, pristine):
            only_these_functions(tree / module, functions)
        (root / ".mutmut-cache").unlink(missing_ok=True)  # each module counted from scratch
        env = {**os.environ, "PYTHONPATH": str(root), "MUT_ROOT": str(root), "MUT_PRISTINE": str(pristine),
               "MUT_FILE": module, "MUT_TESTS": tests, "MUT_NEW": new, "MUT_PYTHON": sys.executable}
        subprocess.run(["timeout", str(args.seconds_per_module), sys.executable, "-m", "mutmut", "run",
                        "--paths-to-mutate", module, "--runner", "./runner.sh", "--no-progress"],
                       cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        shutil.copy(pristine / module, root / module)  # a run stopped by its timeout leaves its mutant in place
    for module, counts in tally(root / "mutations.tsv").items():
        total = sum(counts.values())
        print(f"{module}: {total} mutants; killed before {counts['old']} ({counts['old'] / total:.0%}), after "
              f"{counts['old'] + counts['new']} ({(counts['old'] + counts['new']) / total:.0%}); "
              f"{counts['survived']} survive (see {root / 'mutations.tsv'})")


if __name__ == "__main__":
    main()
