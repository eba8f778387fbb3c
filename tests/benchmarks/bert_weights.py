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
