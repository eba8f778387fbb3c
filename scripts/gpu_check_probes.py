"""Probes of scripts/gpu_check.py that run inside a framework: whether TF32 is
really off at fp32 and on at tf32, under the backends' own switches.

    python scripts/gpu_check_probes.py tf32 gpu|cpu   -> one JSON object on stdout

For each backend (torch, JAX) and precision (fp32, tf32) it applies the
setting the way the backend's trainer does (torch: ``apply_settings`` of its
trainer, the global cuBLAS/cuDNN switches; JAX: the backend's precision
``Policy``, whose products every layer calls, and its attention layer), then
computes a float32 matmul, a convolution and causal self-attention on random
data and gives each one's error relative to a float64 reference on the host:
max |result - reference| / max |reference|. True float32 is within a few
1e-6; TF32 (10 mantissa bits) is off by about 1e-3. On a CPU tf32 is fp32.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np

SIZE, SEQUENCE, WIDTH, HEADS = 1024, 64, 128, 4


def relative_error(result, reference: np.ndarray) -> float:
    result = np.asarray(result, np.float64)
    return float(np.max(np.abs(result - reference)) / np.max(np.abs(reference)))


def operands(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    normal = rng.standard_normal
    return {"a": normal((SIZE, SIZE)), "b": normal((SIZE, SIZE)),
            "image": normal((8, 32, 32, 64)), "filters": normal((3, 3, 64, 64)) / 24,
            "x": normal((4, SEQUENCE, WIDTH)),
            **{f"{p}_kernel": normal((WIDTH, WIDTH)) / math.sqrt(WIDTH) for p in ("query", "key", "value", "output")},
            **{f"{p}_bias": normal(WIDTH) / 10 for p in ("query", "key", "value", "output")}}


def as_float32(data: dict) -> dict:
    """The operands rounded to float32; the references are computed from these, in float64."""
    return {k: v.astype(np.float32) for k, v in data.items()}


def reference_conv(image: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """'same' 3x3 convolution, NHWC x HWIO, in float64."""
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = image.shape[1:3]
    return sum(padded[:, i:i + h, j:j + w, :] @ filters[i, j] for i in range(3) for j in range(3))


def reference_attention(p: dict) -> np.ndarray:
    """The spec's causal self-attention (projections, scaled softmax, output projection) in float64."""
    x = p["x"]
    b, t, d = x.shape
    key_dim = d // HEADS

    def heads(part):
        return (x @ p[f"{part}_kernel"] + p[f"{part}_bias"]).reshape(b, t, HEADS, key_dim).transpose(0, 2, 1, 3)

    q, k, v = heads("query"), heads("key"), heads("value")
    logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(key_dim)
    logits = np.where(np.tril(np.ones((t, t), bool)), logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = (weights @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
    return out @ p["output_kernel"] + p["output_bias"]


def references(p: dict) -> dict[str, np.ndarray]:
    q = {k: v.astype(np.float64) for k, v in p.items()}
    return {"matmul": q["a"] @ q["b"], "conv": reference_conv(q["image"], q["filters"]),
            "attention": reference_attention(q)}


def torch_errors(device: str, precision: str, p: dict, ref: dict) -> dict[str, float]:
    import torch
    from torch.nn import functional as F

    from dlbench.plugin.backend import TrainerOptions
    from dlbench_backends.torch.trainer import apply_settings

    apply_settings(TrainerOptions(device=device, precision=precision))
    where = torch.device("cuda" if device == "gpu" else "cpu")
    t = {k: torch.from_numpy(v).to(where) for k, v in p.items()}
    conv = F.conv2d(t["image"].permute(0, 3, 1, 2), t["filters"].permute(3, 2, 0, 1), padding=1).permute(0, 2, 3, 1)
    b, length, d = t["x"].shape

    def heads(part):
        return (t["x"] @ t[f"{part}_kernel"] + t[f"{part}_bias"]).view(b, length, HEADS, -1).transpose(1, 2)

    attended = F.scaled_dot_product_attention(heads("query"), heads("key"), heads("value"), is_causal=True)
    attention = attended.transpose(1, 2).reshape(b, length, d) @ t["output_kernel"] + t["output_bias"]
    results = {"matmul": t["a"] @ t["b"], "conv": conv, "attention": attention}
    return {name: relative_error(r.double().cpu().numpy(), ref[name]) for name, r in results.items()}


def jax_errors(device: str, precision: str, p: dict, ref: dict) -> dict[str, float]:
    import jax

    from dlbench.network import SelfAttention
    from dlbench_backends.jax.precision import Policy
    from dlbench_backends.jax.transformer import attention_layer

    policy = Policy(precision)
    target = jax.devices(device)[0]
    t = {k: jax.device_put(v, target) for k, v in p.items()}
    layer = SelfAttention(num_heads=HEADS, key_dim=WIDTH // HEADS, causal=True)
    attend = attention_layer(layer, (SEQUENCE, WIDTH), policy)
    weights = {k: v for k, v in t.items() if k.endswith(("_kernel", "_bias"))}
    results = {
        "matmul": jax.jit(policy.dot)(t["a"], t["b"]),
        "conv": jax.jit(lambda x, w: policy.conv(x, w, (1, 1), "SAME",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC")))(t["image"], t["filters"]),
        "attention": jax.jit(lambda w, x: attend(w, {}, x, False, None)[0])(weights, t["x"]),
    }
    return {name: relative_error(jax.device_get(r), ref[name]) for name, r in results.items()}


def tf32_probe(device: str) -> dict:
    """{backend: {precision: {product: relative error}}} (a backend that fails: {"error": ...})."""
    p = as_float32(operands())
    ref = references(p)
    found = {}
    for name, errors in (("torch", torch_errors), ("jax", jax_errors)):
        try:
            found[name] = {precision: errors(device, precision, p, ref) for precision in ("fp32", "tf32")}
        except Exception as exc:  # the check records it as a FAIL line
            found[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return found


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "tf32" or sys.argv[2] not in ("cpu", "gpu"):
        sys.exit("usage: gpu_check_probes.py tf32 cpu|gpu")
    print(json.dumps(tf32_probe(sys.argv[2])))
