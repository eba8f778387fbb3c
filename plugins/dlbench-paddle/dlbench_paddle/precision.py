"""What Paddle computes in on a CPU: float32 only (fp32; tf32 is fp32 on a CPU).

``paddle.amp.auto_cast`` is a no-op on a CPU place (Paddle warns "amp_guard can
only be enabled on CUDAPlace, XPUPlace, and CustomPlace") and Paddle 3.3.1's
CPU build registers no bfloat16/float16 matmul kernel, so a bf16 or fp16 run
would silently train in float32. Instead it is an "unavailable" row whose
reason is Paddle's own refusal, found by trying one tiny matmul.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def mixed_unavailable(precision: str) -> str:
    """Why Paddle cannot train in ``precision`` ("bf16" or "fp16") on a CPU, in Paddle's words."""
    import paddle

    dtype = "bfloat16" if precision == "bf16" else "float16"
    try:
        a = paddle.ones([2, 2], dtype="float32").astype(dtype)
        paddle.matmul(a, a)
    except (RuntimeError, NotImplementedError, ValueError) as exc:
        refusal = " ".join(str(exc).split())[:160]
        return f"paddle {paddle.__version__} has no {dtype} matmul on a CPU ({refusal}); paddle.amp is a no-op there"
    return f"paddle {paddle.__version__}'s paddle.amp is a no-op on a CPU: it would train in float32, not {dtype}"
