"""Scenario files (TOML) -> validated specs, and back.

A scenario names a dataset, a model and how to train it; see README.md for
the format. Every error names the file, the key and what is allowed.

The way back, :func:`scenario_document` and :func:`dumps` (the inverse of
:func:`parse_scenario`), is how a model built in Python is trained by the
same isolated workers as a shipped scenario: it is written as a scenario
file, which each worker reads back, so a notebook's run and a shell's run
are the same run. Every setting is written out, defaults too, so the file
says exactly what was trained; the training step limit (``--steps``) is not
part of a scenario file and travels as an override.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from dlbench.errors import InputError, one_of
from dlbench.network import LAYER_TYPES, ModelSpec, TrainSpec, check_choice, make_optimizer, optimizer_table
from dlbench.network.loss import LOSSES, loss_table
from dlbench.network.transformer import MAX_RESIDUAL_DEPTH

TOP_KEYS = ("name", "description", "source", "expected_accuracy", "expected_perplexity", "data", "model", "train",
            "expected_r2")
MODEL_KEYS = ("input_shape", "layers")
TRAIN_KEYS = ("loss", "optimizer", "batch_size", "epochs", "seed", "drop_last", "target_accuracy")


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    data_name: str
    data_options: dict
    model: ModelSpec
    train: TrainSpec
    source: str = ""
    path: str = ""
    expected_accuracy: tuple[float, float] | None = None
    #: a language model's test perplexity range on the reference (exp of the mean token cross-entropy)
    expected_perplexity: tuple[float, float] | None = None
    #: a regression's test R^2 range on the reference (in place of an accuracy, which it has not)
    expected_r2: tuple[float, float] | None = None
    overrides: dict = field(default_factory=dict)
    #: SHA-256 (16 hex digits) of the file's text: a worker refuses a file that changed after the run began
    digest: str = ""

    def with_overrides(self, **overrides) -> "Scenario":
        """The scenario with training settings replaced (None values are ignored)."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if not overrides:
            return self
        try:
            train = dataclasses.replace(self.train, **overrides)
        except InputError as exc:
            raise exc.within(source="command line") from None
        return dataclasses.replace(self, train=train, overrides={**self.overrides, **overrides})


def _table(doc: dict, key: str, required: bool = True) -> dict:
    value = doc.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"must be a table, got {value!r}" if value is not None else "missing table",
                         field=key)
    return value


def _check_keys(table: dict, allowed, prefix: str) -> None:
    for key in table:
        if key not in allowed:
            raise InputError(f"unknown key {key!r}; {one_of(allowed)}", field=f"{prefix}{key}")


def _layer(table, index: int, within: str = "model.", chain: str = "layers", field_name: str | None = None,
           depth: int = 0):
    """Layer ``index`` of a table's ``chain`` (its layers, or a residual block's
    shortcut); residual blocks' layers read to at most :data:`MAX_RESIDUAL_DEPTH`
    levels (refused before they are read further: thousands of levels would
    exhaust Python's recursion)."""
    field_name = field_name or f"{within}{chain}[{index}]"
    if depth > MAX_RESIDUAL_DEPTH:
        raise InputError(f"residual blocks nested more than {MAX_RESIDUAL_DEPTH} deep; at most "
                         f"{MAX_RESIDUAL_DEPTH} levels of residual blocks inside residual blocks", field="model.layers")
    if not isinstance(table, dict):
        raise InputError(f"must be a table like {{ type = \"dense\", units = 10 }}, got {table!r}",
                         field=field_name)
    options = dict(table)
    cls = LAYER_TYPES[check_choice(options.pop("type", None), LAYER_TYPES, f"{field_name}.type")]
    allowed = [f.name for f in dataclasses.fields(cls) if f.name != "input_shape"]
    _check_keys(options, allowed, f"{field_name}.")
    if cls.type == "residual" and isinstance(options.get("layers"), list):  # a block's layers are tables too
        options["layers"] = [_layer(t, j, f"{field_name}.", depth=depth + 1) for j, t in enumerate(options["layers"])]
    if cls.type == "residual" and isinstance(options.get("shortcut"), list):  # and its shortcut's
        options["shortcut"] = [_layer(t, j, f"{field_name}.", "shortcut", depth=depth + 1)
                               for j, t in enumerate(options["shortcut"])]
    if cls.type == "bidirectional" and "layer" in options:  # the wrapped layer is a table too
        options["layer"] = _layer(options["layer"], 0, field_name=f"{field_name}.layer", depth=depth)
    try:
        return cls(**options)
    except InputError as exc:
        raise exc.within(field_prefix=field_name) from None


def _expected_accuracy(value, field_name: str = "expected_accuracy") -> tuple[float, float] | None:
    """A [low, high] range within [0, 1] (an accuracy's, or a regression's R^2)."""
    if value is None:
        return None
    ok = (isinstance(value, list) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
          and 0 <= value[0] <= value[1] <= 1)
    if not ok:
        raise InputError(f"must be [low, high] with 0 <= low <= high <= 1, got {value!r}", field=field_name)
    return (float(value[0]), float(value[1]))


def _expected_perplexity(value) -> tuple[float, float] | None:
    if value is None:
        return None
    ok = (isinstance(value, list) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
          and 1 <= value[0] <= value[1])
    if not ok:
        raise InputError(f"must be [low, high] with 1 <= low <= high, got {value!r}", field="expected_perplexity")
    return (float(value[0]), float(value[1]))


def _string(doc: dict, key: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {value!r}" if value is not None else "missing", field=key)
    return value


def parse_scenario(doc: dict, default_name: str) -> Scenario:
    """A scenario from a parsed TOML document (errors carry no file name)."""
    _check_keys(doc, TOP_KEYS, "")
    data = dict(_table(doc, "data"))
    data_name = data.pop("name", None)
    if not isinstance(data_name, str):
        raise InputError(f"must name a dataset, got {data_name!r}", field="data.name")
    model = _table(doc, "model")
    _check_keys(model, MODEL_KEYS, "model.")
    train = _table(doc, "train")
    _check_keys(train, TRAIN_KEYS, "train.")
    layers = model.get("layers")
    if not isinstance(layers, list) or not layers:
        raise InputError("must be a non-empty list of layer tables", field="model.layers")
    input_shape = model.get("input_shape")
    if not isinstance(input_shape, list):
        raise InputError(f"must be a list of positive integers, got {input_shape!r}", field="model.input_shape")
    if "loss" not in train:
        raise InputError(f"missing; {one_of(LOSSES)}", field="train.loss")
    built_layers = tuple(_layer(t, i) for i, t in enumerate(layers))
    try:
        optimizer = make_optimizer(train.get("optimizer", "adam"))
        spec = ModelSpec(tuple(input_shape), built_layers, train["loss"], optimizer)
    except InputError as exc:
        prefix = "train" if exc.field and exc.field.startswith(("optimizer", "loss")) else "model"
        raise exc.within(field_prefix=prefix) from None
    train_options = {k: v for k, v in train.items() if k not in ("loss", "optimizer")}
    try:
        train_spec = TrainSpec(**train_options)
    except InputError as exc:
        raise exc.within(field_prefix="train") from None
    return Scenario(
        name=_string(doc, "name", default_name),
        description=_string(doc, "description", ""),
        source=_string(doc, "source", ""),
        data_name=data_name,
        data_options=data,
        model=spec,
        train=train_spec,
        expected_accuracy=_expected_accuracy(doc.get("expected_accuracy")),
        expected_perplexity=_expected_perplexity(doc.get("expected_perplexity")),
        expected_r2=_expected_accuracy(doc.get("expected_r2"), "expected_r2"),
    )


def read_toml_text(path: Path, what: str) -> str:
    """The text of a TOML file (UTF-8, as TOML requires), a regular file only;
    an unreadable one, or a byte that is not UTF-8, is one line naming where."""
    from dlbench.data.regular import open_regular

    with open_regular(path, what) as f:
        raw = f.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = raw.count(b"\n", 0, exc.start) + 1, exc.start - raw.rfind(b"\n", 0, exc.start)
        raise InputError(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, column {column}; "
                         "TOML files are UTF-8", source=str(path)) from None


def load_scenario_file(path: Path | str) -> Scenario:
    path = Path(path)
    text = read_toml_text(path, "scenario file")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"malformed TOML: {exc}", source=str(path)) from None
    except RecursionError:
        raise InputError("nested too deeply for Python's TOML reader; scenarios nest a few tables, and residual "
                         f"blocks at most {MAX_RESIDUAL_DEPTH} deep", source=str(path)) from None
    try:
        scenario = parse_scenario(doc, default_name=path.stem)
    except InputError as exc:
        raise exc.within(source=str(path)) from None
    options = scenario.data_options
    if isinstance(options.get("path"), str) and options["path"] and not Path(options["path"]).expanduser().is_absolute():
        options = {**options, "path": str(path.parent / options["path"])}  # relative to the scenario file
    return dataclasses.replace(scenario, path=str(path), data_options=options,
                               digest=hashlib.sha256(text.encode()).hexdigest()[:16])


def shipped_scenario_dir() -> Path:
    return Path(str(importlib.resources.files("dlbench_scenarios")))


def scenario_files(extra_dirs=()) -> dict[str, Path]:
    """Name -> file of every shipped and plugin-provided scenario."""
    files: dict[str, Path] = {}
    for folder in [shipped_scenario_dir(), *map(Path, extra_dirs)]:
        for path in sorted(folder.glob("*.toml")):
            files.setdefault(path.stem, path)
    return files


def resolve_scenario(name_or_path: str, extra_dirs=()) -> Scenario:
    """A shipped scenario by name, or a scenario file by path."""
    files = scenario_files(extra_dirs)
    if name_or_path in files:
        return load_scenario_file(files[name_or_path])
    if name_or_path.endswith(".toml") or Path(name_or_path).exists():
        return load_scenario_file(name_or_path)
    raise InputError(f"unknown scenario {name_or_path!r}; {one_of(files)}, or a path to a .toml file",
                     field="--scenario")


# ---------------------------------------------------------------- and back
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def layer_table(layer) -> dict:
    """``{type = "conv2d", filters = 16, ...}``: every field but the shape, which the model infers, and
    those that are None (an activation's ``alpha`` where it takes none: TOML has no null)."""
    fields = {f.name: getattr(layer, f.name) for f in dataclasses.fields(layer)
              if f.name != "input_shape" and getattr(layer, f.name) is not None}
    if layer.type == "residual":  # a block's layers are tables too, and its shortcut's if it has one
        fields["layers"] = [layer_table(inner) for inner in layer.layers]
        fields.pop("shortcut")
        if layer.shortcut:
            fields["shortcut"] = [layer_table(inner) for inner in layer.shortcut]
    if layer.type == "bidirectional":
        fields["layer"] = layer_table(layer.layer)
    return {"type": layer.type, **fields}


def train_table(spec: ModelSpec, train: TrainSpec) -> dict:
    table = {"loss": loss_table(spec.loss, spec.loss_kwargs), "optimizer": optimizer_table(spec.optimizer),
             "batch_size": train.batch_size, "epochs": train.epochs, "seed": train.seed, "drop_last": train.drop_last}
    if train.target_accuracy is not None:
        table["target_accuracy"] = train.target_accuracy
    return table


def scenario_document(scenario: Scenario) -> dict:
    """The scenario as the parsed TOML document it would be read from."""
    doc = {"name": scenario.name, "description": scenario.description, "source": scenario.source}
    if scenario.expected_accuracy is not None:
        doc["expected_accuracy"] = list(scenario.expected_accuracy)
    if scenario.expected_perplexity is not None:
        doc["expected_perplexity"] = list(scenario.expected_perplexity)
    if scenario.expected_r2 is not None:
        doc["expected_r2"] = list(scenario.expected_r2)
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
