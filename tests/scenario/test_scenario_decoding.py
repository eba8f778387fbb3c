"""A scenario file that cannot be read as a scenario is one clear line, exit 2:
a byte that is not UTF-8, thousands of nested residual blocks (issue 34,
cases 13 and 14), a FIFO given as the file."""

import os
import signal

import pytest
from click.testing import CliRunner

from dlbench.cli import main
from dlbench.errors import InputError
from dlbench.scenario import load_scenario_file
from dlbench.network import Dense
from dlbench.network.transformer import MAX_RESIDUAL_DEPTH, Residual

HEAD = '[data]\nname = "synthetic"\n[model]\ninput_shape = [4]\n'
TAIL = '[train]\nloss = "categorical_crossentropy"\n'


def inline_nesting(levels: int) -> str:
    layers = '{ type = "dense", units = 4 }'
    for _ in range(levels):
        layers = '{ type = "residual", layers = [' + layers + "] }"
    return f'{HEAD}layers = [{layers}, {{ type = "dense", units = 2, activation = "softmax" }}]\n{TAIL}'


def header_nesting(levels: int) -> str:
    parts, prefix = [HEAD], "model.layers"
    for _ in range(levels):
        parts.append(f'[[{prefix}]]\ntype = "residual"\n')
        prefix += ".layers"
    parts.append(f'[[{prefix}]]\ntype = "dense"\nunits = 4\n')
    parts.append('[[model.layers]]\ntype = "dense"\nunits = 2\nactivation = "softmax"\n')
    return "".join(parts) + TAIL


def one_line(path, message):
    result = CliRunner().invoke(main, ["run", "--scenario", str(path), "--backend", "numpy", "--in-process",
                                       "--out", str(path.parent / "out")])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"dlbench: error: {path}: {message}"]


def test_a_byte_that_is_not_utf8_is_one_line_naming_where(tmp_path):
    path = tmp_path / "s.toml"
    path.write_bytes(b'[data]\nname = "synth\xffetic"\n')
    one_line(path, "not UTF-8 text: byte 0xff at line 2, column 14; TOML files are UTF-8")


@pytest.mark.parametrize("write, message", [
    (inline_nesting, "nested too deeply for Python's TOML reader; scenarios nest a few tables, and residual "
                     f"blocks at most {MAX_RESIDUAL_DEPTH} deep"),
    (header_nesting, f"model.layers: residual blocks nested more than {MAX_RESIDUAL_DEPTH} deep; at most "
                     f"{MAX_RESIDUAL_DEPTH} levels of residual blocks inside residual blocks"),
], ids=["inline tables", "table headers"])
def test_three_thousand_nested_residual_blocks_are_one_line(tmp_path, write, message):
    path = tmp_path / "s.toml"
    path.write_text(write(3000 if write is inline_nesting else 1000))  # headers: tomllib is quadratic in them
    one_line(path, message)


@pytest.mark.parametrize("write", [inline_nesting, header_nesting], ids=["inline tables", "table headers"])
def test_residual_blocks_nest_up_to_the_limit_and_not_beyond(tmp_path, write):
    path = tmp_path / "s.toml"
    path.write_text(write(MAX_RESIDUAL_DEPTH))
    assert load_scenario_file(path).model.layers[0].nesting == MAX_RESIDUAL_DEPTH
    path.write_text(write(MAX_RESIDUAL_DEPTH + 1))
    with pytest.raises(InputError, match="residual blocks nested more than"):
        load_scenario_file(path)


def test_the_python_api_refuses_nesting_beyond_the_limit():
    layer = Dense(units=4)
    for _ in range(MAX_RESIDUAL_DEPTH):
        layer = Residual(layers=[layer])
    with pytest.raises(InputError, match=f"layers: residual blocks nested more than {MAX_RESIDUAL_DEPTH} deep"):
        Residual(layers=[layer])


def test_a_scenario_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path):
    path = tmp_path / "s.toml"
    os.mkfifo(path)
    signal.alarm(20)  # a hang fails the test (SIGALRM's default action ends the process) instead of blocking CI
    try:
        with pytest.raises(InputError, match="scenario file is a FIFO; expected a regular file"):
            load_scenario_file(path)
    finally:
        signal.alarm(0)
