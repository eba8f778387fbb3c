"""The canonical weights of the BERT-style benchmark network (``bert-tiny-style``),
read per part for the hand-written loops: token and position embeddings, the
embedding LayerNorm, post-norm encoder layers (attention, LayerNorm, feed-forward,
LayerNorm), the pooler and the classifier."""

from __future__ import annotations


def _layer(attention: dict, norm1: dict, feed_forward: dict, norm2: dict) -> dict:
    return {**{part: (attention[f"0.{part}_kernel"], attention[f"0.{part}_bias"])
               for part in ("query", "key", "value", "output")},
            "norm1": (norm1["gamma"], norm1["beta"]),
            "up": (feed_forward["0.kernel"], feed_forward["0.bias"]),
            "down": (feed_forward["1.kernel"], feed_forward["1.bias"]),
            "norm2": (norm2["gamma"], norm2["beta"])}


def parts(weights: list) -> dict:
    """{"embeddings", "positions", "norm", "layers": [{query, key, value, output, norm1, up, down, norm2}],
    "pooler": (W, b), "classifier": (W, b)}."""
    body = weights[3:-3]
    layers = [_layer(*body[i:i + 4]) for i in range(0, len(body), 4)]
    return {"embeddings": weights[0]["embeddings"], "positions": weights[1]["position_embeddings"],
            "norm": (weights[2]["gamma"], weights[2]["beta"]), "layers": layers,
            "pooler": (weights[-2]["kernel"], weights[-2]["bias"]),
            "classifier": (weights[-1]["kernel"], weights[-1]["bias"])}


def settings(scenario) -> tuple[int, float]:
    """(attention heads, LayerNorm epsilon) of the network."""
    return scenario.model.layers[3].layers[0].num_heads, scenario.model.layers[2].epsilon


def adamw_recipe(scenario) -> dict:
    """The network's Adam(W) as the hand-written loops build it: ``learning_rate``, ``beta_1``, ``beta_2``,
    ``epsilon``, ``weight_decay`` (decoupled: ``adamw``; 0 for ``adam``), and the linear warm-up then linear
    decay's ``warmup_steps``, ``decay_steps`` (counting the warm-up) and ``alpha`` (``warmup_steps`` None:
    a constant learning rate)."""
    adam = scenario.model.optimizer
    schedule = adam.schedule
    if schedule is not None and schedule.name != "warmup_linear":
        raise ValueError(f"the hand-written BERT loops follow a warmup_linear schedule, not {schedule.name!r}")
    if adam.name != "adamw" and adam.weight_decay:
        raise ValueError("the hand-written BERT loops decay weights as adamw does (decoupled), not coupled")
    return {"learning_rate": adam.learning_rate, "beta_1": adam.beta_1, "beta_2": adam.beta_2,
            "epsilon": adam.epsilon, "weight_decay": adam.weight_decay,
            "warmup_steps": schedule.warmup_steps if schedule else None,
            "decay_steps": schedule.decay_steps if schedule else None, "alpha": schedule.alpha if schedule else 0.0}


def warmup_linear(step: int, warmup_steps: int, decay_steps: int, alpha: float) -> float:
    """The learning-rate factor after ``step`` steps: Hugging Face's ``get_linear_schedule_with_warmup``
    (``step / warmup_steps``, then a straight line to ``alpha`` at ``decay_steps``), as a user passes it
    to torch's ``LambdaLR`` or Keras's schedule."""
    if step < warmup_steps:
        return step / warmup_steps
    return alpha + (1.0 - alpha) * max(0.0, (decay_steps - step) / (decay_steps - warmup_steps))
