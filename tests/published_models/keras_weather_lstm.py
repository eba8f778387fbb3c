"""The weather forecaster of keras-io ("Timeseries forecasting for weather prediction"): one LSTM
over 120 steps of 7 features, a Dense(1) regression out, mean squared error.

Source: https://github.com/keras-team/keras-io, examples/timeseries/timeseries_weather_forecasting.py
(``LSTM(32)``, ``Dense(1)``, ``Adam(learning_rate=0.001)``, ``loss="mse"``). dlbench's labels are
class indices, so the offline targets here are 0 and 1.
"""

import keras
import numpy as np

FRAMEWORK = "keras"
INPUT_SHAPE = (120, 7)
OUTPUT = "logits"


def model():
    inputs = keras.layers.Input(shape=INPUT_SHAPE)
    lstm_out = keras.layers.LSTM(32)(inputs)
    outputs = keras.layers.Dense(1)(lstm_out)
    net = keras.Model(inputs=inputs, outputs=outputs)
    net.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="mse")
    return net


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *INPUT_SHAPE)).astype(np.float32), rng.integers(0, 2, n)
