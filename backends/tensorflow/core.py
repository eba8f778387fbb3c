"""TensorFlow and Keras, imported on first use with Keras on TensorFlow: every
module of the backend takes them from :func:`framework`, so that listing the
backend imports neither, and Keras never starts on another backend."""

from __future__ import annotations

import functools
import os


@functools.cache
def framework():
    """(tensorflow, keras), imported on first use with Keras on TensorFlow."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"keras was already imported with the {keras.backend.backend()!r} backend; "
                           "the tensorflow backend needs KERAS_BACKEND=tensorflow")
    tf.get_logger().setLevel("ERROR")
    return tf, keras
