#!/bin/sh
# The whole GPU check of dlbench (issue 40) in one call, into one output folder:
#
#   scripts/gpu-check.sh [--pack] OUT            on a GPU machine (torch + JAX with CUDA, no TensorFlow)
#   scripts/gpu-check.sh --dry OUT               the same steps with --device cpu, tiny step counts (no GPU needed)
#
# It installs dlbench from this tree without touching the frameworks (pip --no-index --no-deps:
# the wheels in .whl/, then dlbench itself), checks the installed versions against dlbench's
# requirements, and runs, within a time budget (--budget, 450 s; the most important first):
# TF32 probes, `dlbench peak --device gpu`, `dlbench run --device gpu -b numpy,torch,jax` on the
# default suite, digits-cnn, synthetic-fcn, chars-lstm and chars-gpt (--repeat 3, 100 steps) at
# fp32, tf32 and bf16 with the checks of their documents and reports, the harness against the
# hand-written loops timed by CUDA events, and two --deterministic runs compared bit for bit.
# OUT gets summary.txt (PASS/FAIL/SKIP/NOTE lines, then RESULT), gpu-check.log (every command
# and its output), report-PRECISION.html, and details/ (result documents, Markdown reports,
# the peak cache); --pack makes details/ one details.tar.gz (the device tool returns at most
# 8 files). Exit status 1 when a check failed. See scripts/gpu_check.py for the steps.
#
# Packages the GPU machine lacks travel as wheels in .whl/ (ignored by git; name it in the device
# tool's `carry`). Populate it here, once, with:
#   scripts/gpu-check.sh --wheels
# which downloads, for CPython 3.12 on manylinux x86-64, dlbench's requirements missing from a
# stock torch + JAX image: mnist1d (its own requirements, numpy, scipy, matplotlib and requests,
# are there). On the device: `scripts/gpu-check.sh --pack "$OUT"` with carry [".whl"].
set -e
here=$(dirname "$0")
if [ "$1" = "--wheels" ]; then
    mkdir -p "$here/../.whl"
    exec "${PYTHON:-python3}" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any -d "$here/../.whl" "mnist1d==0.0.2.post1"
fi
exec "${PYTHON:-python3}" "$here/gpu_check.py" "$@"
