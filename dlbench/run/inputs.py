"""What ``dlbench.benchmark`` is given, made into what a run trains.

A run's workers read scenarios from files (a shipped name or a .toml path),
so every model given in Python is written into a run-private folder first:
a ``Scenario`` or compiled spec as a scenario file, arrays as the .npz file
of the ``npz`` dataset, the model's own weights (``weights="model"``) as a
.npz of canonical initial weights whose path the workers get. A Keras or
torch model is read by the backend that knows its framework
(``Backend.reads_model`` / ``Backend.import_model``), since the core names
no framework. Everything is checked before a file is written.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from dlbench.data import arrays as user_arrays
from dlbench.errors import InputError, one_of
from dlbench.plugin.manager import Plugins
from dlbench.scenario import Scenario
from dlbench.network import ModelSpec, Sequential, TrainSpec
from dlbench.network.init import check_weights, save_weights
from dlbench.network.sequence import takes_tokens

WEIGHTS = ("init", "model")
ACCEPTED = ("a shipped scenario name or a scenario file (or a list of them), a Scenario, a compiled Sequential "
            "spec (Sequential([...]).compile(...)), a Keras model or a torch module")


@dataclass
class RunInputs:
    """The scenarios to run (names or files) and what the document records of them."""

    scenarios: list[str]
    sources: dict[str, str] = field(default_factory=dict)
    weights_files: dict[str, str] = field(default_factory=dict)
    label: str = ""  # the model in a message or the run's command, e.g. "Keras Sequential 'xor'"
    folder: Path | None = None  # where the run-private files are
    max_steps: int | None = None  # a Scenario's step limit, which a scenario file cannot hold

    def relocated(self, error: InputError) -> InputError:
        """``error`` about a run-private file, told about the model it was written from instead."""
        if self.folder is None or not error.source or not error.source.startswith(str(self.folder)):
            return error
        return InputError(error.message, field=error.field, source=self.label)


@dataclass(frozen=True)
class Model:
    """A model to write as a scenario: its spec, name, where it came from, its own weights if it has any."""

    spec: ModelSpec
    name: str
    description: str
    weights: list | None = None
    channels_first: bool = False
    train: TrainSpec = TrainSpec()


def prepare_inputs(plugins: Plugins, model, data, weights, folder: Path, *, loss=None,
                   optimizer=None) -> RunInputs:
    """The run's scenarios for ``model`` (and ``data``, ``weights``), written into ``folder``."""
    if isinstance(model, (str, os.PathLike)) or (isinstance(model, (list, tuple)) and model
                                                 and all(isinstance(m, (str, os.PathLike)) for m in model)):
        names = [os.fspath(m) for m in (model if isinstance(model, (list, tuple)) else [model])]
        _only_for_models(data, weights, loss, optimizer, f"scenario {', '.join(names)}")
        return RunInputs(names, label=repr(names[0] if len(names) == 1 else names))
    if isinstance(model, Scenario):
        _only_for_models(data, None, loss, optimizer, f"scenario {model.name!r}")
        label = f"Scenario {model.name!r}" + (f" from {model.path}" if model.path else " built in Python")
        return _write(model, _weights(weights, model.model, None), folder, label, label)
    found = _model(plugins, model, data, loss, optimizer)
    scenario, data_text = _scenario(plugins, found, data, folder)
    chosen = _weights(weights, found.spec, found.weights)
    described = f"{found.description}; data: {data_text}"
    if chosen is not None:
        described += "; initial weights: " + ("the model's own" if weights == "model" else "given in Python")
    return _write(scenario, chosen, folder, described, found.description)


def _only_for_models(data, weights, loss, optimizer, what: str) -> None:
    given = [name for name, value in (("data", data), ("loss", loss), ("optimizer", optimizer)) if value is not None]
    if weights not in (None, "init"):
        given.append("weights")
    if given:
        raise InputError(f"{what} names its own dataset, loss, optimizer and initial weights; "
                         f"{', '.join(given)} is only for a model given in Python", field=given[0])


def _model(plugins: Plugins, model, data, loss, optimizer) -> Model:
    """``model`` as a spec: a compiled spec as it is, a framework's model through its backend."""
    if isinstance(model, Sequential):
        raise InputError("compile the Sequential first: Sequential([...], input_shape=...).compile(loss=..., "
                         "optimizer=...)", field="model")
    if isinstance(model, ModelSpec):
        if loss is not None or optimizer is not None:
            raise InputError("a compiled spec has its loss and optimizer; change them with compile(...)",
                             field="loss" if loss is not None else "optimizer")
        return Model(model, "model", "Sequential spec built in Python")
    backend = next((b for b in plugins.backends.values() if b.reads_model(model)), None)
    if backend is None:
        raise InputError(f"cannot benchmark a {type(model).__module__}.{type(model).__qualname__}; expected {ACCEPTED}",
                         field="model")
    channels_first = backend.model_layout == "channels_first"
    imported = backend.import_model(model, input_shape=_input_shape_hint(plugins, data, channels_first),
                                    loss=loss, optimizer=optimizer)
    return Model(imported.spec, imported.name, imported.description, imported.weights, imported.channels_first)


def _input_shape_hint(plugins: Plugins, data, channels_first: bool) -> tuple | None:
    """The shape of one sample as the model takes it, from the data (a model that does not say its own)."""
    if user_arrays.is_arrays(data):
        x_train = user_arrays.unpack(data)["x_train"] if len(data) == 4 else None
        return None if x_train is None or x_train.ndim < 2 else tuple(x_train.shape[1:])
    name, options = _dataset(data) if data is not None else (None, {})
    info = plugins.datasets.get(name) if name else None
    if info is None:
        return None
    shape = info.describe(0, options).input_shape
    return (shape[-1], *shape[:-1]) if channels_first and len(shape) > 1 else shape


def _dataset(data) -> tuple[str, dict]:
    """A dataset name, or a table ``{"name": ..., **options}`` as in a scenario's ``[data]``."""
    if isinstance(data, str):
        return data, {}
    if isinstance(data, dict) and isinstance(data.get("name"), str):
        options = dict(data)
        return options.pop("name"), options
    raise InputError(f"expected a dataset name, a table {{'name': ..., **options}} or the arrays (x_train, y_train, "
                     f"x_test, y_test), got {type(data).__name__}", field="data")


def _scenario(plugins: Plugins, model: Model, data, folder: Path) -> tuple[Scenario, str]:
    """The scenario of ``model`` on ``data``, and what the data were."""
    if data is None:
        raise InputError("a model given in Python needs data=: a dataset name "
                         f"({one_of(plugins.datasets)}), a table {{'name': ..., **options}}, or the arrays "
                         "(x_train, y_train, x_test, y_test)", field="data")
    if user_arrays.is_arrays(data):
        shape = model.spec.input_shape
        if model.channels_first and len(shape) > 1:
            shape = (shape[-1], *shape[:-1])
        arrays = user_arrays.checked_arrays(data, shape, model.spec, model.channels_first)
        path = user_arrays.write_npz(arrays, folder / "data.npz")
        text = user_arrays.describe(user_arrays.unpack(data))
        name, options = "npz", {"path": str(path), **({"tokens": True} if takes_tokens(model.spec) else {})}
    else:
        name, options = _dataset(data)
        text = name + "".join(f", {k}={v!r}" for k, v in options.items())
    return Scenario(name=model.name, description=model.description, data_name=name, data_options=options,
                    model=model.spec, train=model.train, source=model.description), text


def _weights(weights, spec: ModelSpec, own: list | None) -> list | None:
    """The initial weights to write (None: the core's initialisation for the run's seed)."""
    if isinstance(weights, str):
        if weights not in WEIGHTS:
            raise InputError(f"unknown {weights!r}; {one_of(WEIGHTS)}, or a list of per-layer weight dicts "
                             "in canonical layout", field="weights")
        if weights == "init":
            return None
        if own is None:
            raise InputError("weights='model' starts from a Keras or torch model's own weights; this model has "
                             "none: use 'init', or pass the weights", field="weights")
        return check_weights(spec, own)
    return check_weights(spec, weights)


def _write(scenario: Scenario, weights: list | None, folder: Path, described: str, label: str) -> RunInputs:
    """The scenario file (and weights file) of one model, and what the document says of it."""
    from dlbench.scenario import write_scenario

    scenario = dataclasses.replace(scenario, data_options=_absolute_path(scenario.data_options))
    path = write_scenario(scenario, folder / "scenario.toml")
    inputs = RunInputs([str(path)], {scenario.name: described}, label=label, folder=folder,
                       max_steps=scenario.train.max_steps)
    if weights is not None:
        save_weights(weights, folder / "weights.npz")
        inputs.weights_files[scenario.name] = str(folder / "weights.npz")
    return inputs


def _absolute_path(options: dict) -> dict:
    """A dataset file's path made absolute: the scenario file is read from another folder."""
    path = options.get("path")
    if isinstance(path, str) and path:
        return {**options, "path": str(Path(path).expanduser().resolve())}
    return options
