"""The checks of scripts/gpu_check.py on a run's result document and its reports
(``ck`` is its ``Check``: the device, the output folder, how to call dlbench)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpu_check import Check

FRAMEWORKS = ("torch", "jax")


def check_document(ck: Check, doc: dict, precision: str) -> None:
    """Rows ok, agreeing, placed, with their device memory; the GPU in the environment; % peak."""
    rows, env = doc["results"], doc["environment"]
    bad = [f"{r['scenario']}/{r['backend']}: {r['status']}: {(r.get('error') or '')[:160]}"
           for r in rows if r["status"] != "ok"]
    ck.record("FAIL" if bad or not rows else "PASS", f"rows ok ({precision})", "; ".join(bad) or f"{len(rows)} rows")
    judged = [r for r in rows if r["backend"] != "numpy" and r["status"] == "ok"]
    disagree = [f"{r['scenario']}/{r['backend']}: {json.dumps(r.get('parity'))[:200]}"
                for r in judged if not (r.get("parity") or {}).get("agrees")]
    ck.record("FAIL" if disagree or not judged else "PASS", f"rows agree with the NumPy reference ({precision})",
              "; ".join(disagree) or f"{len(judged)} rows")
    frameworks = [r for r in judged if r["backend"] in FRAMEWORKS]
    misplaced = [f"{r['scenario']}/{r['backend']} on {r['device']}" for r in rows if r["status"] == "ok"
                 and (r["device"] == "cpu") != (r["backend"] == "numpy" or ck.dry)]
    ck.record("FAIL" if misplaced else "PASS", f"rows placed ({precision})",
              "; ".join(misplaced) or f"numpy on the CPU, torch and jax on {ck.device}")
    memory = {f"{r['scenario']}/{r['backend']}": r["metrics"].get("peak_device_mib") for r in frameworks}
    filled = all(v is None for v in memory.values()) if ck.dry else all(v and v > 0 for v in memory.values())
    ck.record("PASS" if filled and memory else "FAIL", f"peak device memory ({precision})",
              ", ".join(f"{k} {v if v is None else f'{v:.1f} MiB'}" for k, v in memory.items()))
    gpu_env = bool(env.get("gpus")) and bool(env.get("gpu_peak_gflops"))
    ck.record("SKIP" if ck.dry else "PASS" if gpu_env else "FAIL", f"GPU in the environment ({precision})",
              f"{env.get('gpus')}; GPU fp32 peak {env.get('gpu_peak_gflops')}")
    check_peak_fraction(ck, rows, env, precision)


def check_peak_fraction(ck: Check, rows: list[dict], env: dict, precision: str) -> None:
    """% peak of synthetic-fcn's framework rows: the row's GFLOP/s over the best
    ceiling of its dtype on its device, as recorded in the environment."""
    from_cpu = {"bf16": "bfloat16", "fp16": "float16"}.get(precision, "float32")
    dtype = {"tf32": "tfloat32"}.get(precision, from_cpu) if not ck.dry else from_cpu
    key = ("gpu_" if not ck.dry else "") + ("peak_gflops" if dtype == "float32" else f"peak_gflops_{dtype}")
    ceiling = max((v for v in (env.get(key) or {}).values() if v), default=None)
    for r in rows:
        if r["scenario"] != "synthetic-fcn" or r["backend"] not in FRAMEWORKS or r["status"] != "ok":
            continue
        m = r["metrics"]
        fraction, gflops = m.get("peak_fraction"), m.get("gflops_per_sec")
        # above 100% only where the ceiling was measured on a busy CPU (the dry mode on a shared machine)
        ok = bool(fraction and gflops and ceiling) and abs(fraction - gflops / ceiling) <= 1e-9 * fraction \
            and 0 < fraction and (ck.dry or fraction <= 1)
        ck.record("PASS" if ok else "FAIL", f"% peak synthetic-fcn {r['backend']} ({precision})",
                  f"{100 * (fraction or 0):.2f}% = {gflops or 0:,.0f} of {ceiling or 0:,.0f} GFLOP/s ({key})")


def check_reports(ck: Check, path: Path, precision: str) -> None:
    """Markdown (in the details) and HTML (beside the summary) reports, each naming the GPU (a CPU in dry mode)."""
    env = json.loads(path.read_text())["environment"]
    name = (env.get("cpu") or "") if ck.dry else (env.get("gpus") or ["no GPU recorded"])[0].split(",")[0]
    targets = [ck.work / "reports" / f"report-{precision}.md", ck.out / f"report-{precision}.html"]
    missing = []
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        ck.dlbench(["report", path, "--out", target], f"report {target.suffix}")
        text = target.read_text(errors="replace") if target.exists() else ""
        if not text or name not in text or (not ck.dry and "GPU peak GFLOP/s" not in text):
            missing.append(target.name)
    ck.record("FAIL" if missing or not name else "PASS", f"report headers name the {ck.device} ({precision})",
              f"{name!r} missing in {missing}" if missing else f"{name!r} in {', '.join(t.name for t in targets)}")
