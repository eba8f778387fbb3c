"""The canonical weights of the Transformer benchmark network (``mnist1d-transformer``),
read per part for the hand-written loops: input projection (a 1x1 Conv1D, i.e. a
per-position dense layer), position embeddings, pre-norm blocks (attention
sub-block, feed-forward sub-block), final layer norm, classifier."""

from __future__ import annotations


def parts(weights: list) -> dict:
    """{"projection": (W, b), "positions": P, "blocks": [{...}], "norm": (gamma, beta), "classifier": (W, b)}."""
    blocks = []
    for attention, feed_forward in zip(weights[2:-3:2], weights[3:-3:2]):
        blocks.append({
            "norm1": (attention["0.gamma"], attention["0.beta"]),
            **{part: (attention[f"1.{part}_kernel"], attention[f"1.{part}_bias"])
               for part in ("query", "key", "value", "output")},
            "norm2": (feed_forward["0.gamma"], feed_forward["0.beta"]),
            "up": (feed_forward["1.kernel"][0], feed_forward["1.bias"]),
            "down": (feed_forward["2.kernel"][0], feed_forward["2.bias"]),
        })
    return {"projection": (weights[0]["kernel"][0], weights[0]["bias"]),
            "positions": weights[1]["position_embeddings"], "blocks": blocks,
            "norm": (weights[-3]["gamma"], weights[-3]["beta"]),
            "classifier": (weights[-1]["kernel"], weights[-1]["bias"])}


def num_heads(scenario) -> int:
    """The attention heads of the benchmark network (its first block's attention layer)."""
    return scenario.model.layers[2].layers[1].num_heads
