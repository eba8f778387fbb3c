"""Scenarios -> TOML: the inverse of :func:`dlbench.scenario.parse_scenario`.

A model built in Python (a ``Sequential`` spec, a Keras or torch model) is
trained by the same isolated workers as a shipped scenario: it is written as
a scenario file, which each worker reads back, so a notebook's run and a
shell's run are the same run. Every setting is written out, defaults too,
so the file says exactly what was trained. ``parse_scenario`` of what
:func:`scenario_document` returns equals the scenario (tested for every
layer type and optimizer); the training step limit (``--steps``) is not part
of a scenario file and travels as an override.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

from dlbench.errors import InputError
from dlbench.scenario import Scenario
from dlbench.spec import ModelSpec, TrainSpec

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def layer_table(layer) -> dict:
    """``{type = "conv2d", filters = 16, ...}``: every field but the shape, which the model infers."""
    fields = {f.name: getattr(layer, f.name) for f in dataclasses.fields(layer) if f.name != "input_shape"}
    return {"type": layer.type, **fields}


def optimizer_table(optimizer) -> dict:
    return {"name": optimizer.name, **dataclasses.asdict(optimizer)}


def train_table(spec: ModelSpec, train: TrainSpec) -> dict:
    table = {"loss": spec.loss, "optimizer": optimizer_table(spec.optimizer), "batch_size": train.batch_size,
             "epochs": train.epochs, "seed": train.seed, "drop_last": train.drop_last}
    if train.target_accuracy is not None:
        table["target_accuracy"] = train.target_accuracy
    return table


def scenario_document(scenario: Scenario) -> dict:
    """The scenario as the parsed TOML document it would be read from."""
    doc = {"name": scenario.name, "description": scenario.description, "source": scenario.source}
    if scenario.expected_accuracy is not None:
        doc["expected_accuracy"] = list(scenario.expected_accuracy)
    doc["data"] = {"name": scenario.data_name, **scenario.data_options}
    doc["model"] = {"input_shape": list(scenario.model.input_shape),
                    "layers": [layer_table(layer) for layer in scenario.model.layers]}
    doc["train"] = train_table(scenario.model, scenario.train)
    return doc


def value(item, where: str) -> str:
    """One TOML value: strings, booleans, integers, floats (exactly: ``repr``
    round-trips), arrays and inline tables."""
    if isinstance(item, str):
        return json.dumps(item, ensure_ascii=False)  # JSON's escapes are TOML basic-string escapes
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        if math.isnan(item):
            return "nan"
        return repr(item) if math.isfinite(item) else ("inf" if item > 0 else "-inf")
    if isinstance(item, (list, tuple)):
        return "[" + ", ".join(value(v, where) for v in item) + "]"
    if isinstance(item, dict):
        return inline_table(item, where)
    raise InputError(f"{type(item).__name__} {item!r} cannot be written to a scenario file; expected a string, "
                     "number, boolean, list or table", field=where)


def key(name) -> str:
    if not isinstance(name, str):
        raise InputError(f"keys must be strings, got {name!r}")
    return name if BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)


def inline_table(table: dict, where: str) -> str:
    return "{ " + ", ".join(f"{key(k)} = {value(v, f'{where}.{k}')}" for k, v in table.items()) + " }"


def dumps(doc: dict) -> str:
    """A scenario document as TOML text: scalars first, then one ``[table]``
    per table; the model's layers one inline table a line."""
    lines = [f"{key(k)} = {value(v, k)}" for k, v in doc.items() if not isinstance(v, dict)]
    for name, table in doc.items():
        if not isinstance(table, dict):
            continue
        lines += ["", f"[{key(name)}]"]
        for k, v in table.items():
            if name == "model" and k == "layers":
                lines += ["layers = ["] + [f"  {value(layer, f'model.layers[{i}]')}," for i, layer in enumerate(v)]
                lines.append("]")
            else:
                lines.append(f"{key(k)} = {value(v, f'{name}.{k}')}")
    return "\n".join(lines) + "\n"


def write_scenario(scenario: Scenario, path: Path) -> Path:
    """``scenario`` as a scenario file at ``path``."""
    path = Path(path)
    path.write_text(dumps(scenario_document(scenario)), encoding="utf-8")
    return path
