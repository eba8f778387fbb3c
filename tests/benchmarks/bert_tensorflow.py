"""A plain Keras-on-TensorFlow training loop of the BERT-style encoder:
``keras.layers.Embedding``, a position-embedding layer, ``LayerNormalization(epsilon=1e-12)``,
``MultiHeadAttention`` (its (d, H, K) kernels), post-norm blocks, ``Dense`` with
exact GELU, ``GlobalAveragePooling1D``, a tanh pooler, Adam(W) in TF ops
(``TextbookAdam``: Keras's own places epsilon otherwise; decoupled weight decay
as Keras's ``AdamW``) at Hugging Face's linear warm-up and decay as a Keras
schedule where the scenario has one and one ``@tf.function``
step per batch, the embedding's gradient made dense (``handwritten_tensorflow``'s
loop; as ``tf.IndexedSlices`` it would take Keras's sparse path).
``make_loop(weights, x_train, y_train, scenario)`` returns ``train(indices) -> losses``."""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from bert_weights import adamw_recipe, parts, settings  # noqa: E402
from handwritten_tensorflow import TextbookAdam, _loop  # noqa: E402
from transformer_tensorflow import AddPositions, _dense  # noqa: E402


class WarmupLinear(keras.optimizers.schedules.LearningRateSchedule):
    """Hugging Face's ``get_linear_schedule_with_warmup`` as a Keras schedule (Keras has none):
    ``lr * step / warmup_steps``, then a straight line to ``alpha * lr`` at ``decay_steps``; float64."""

    def __init__(self, learning_rate: float, warmup_steps: int, decay_steps: int, alpha: float):
        self.lr, self.warmup, self.decay, self.alpha = learning_rate, warmup_steps, decay_steps, alpha

    def __call__(self, step):
        step = tf.cast(step, tf.float64)
        decay = self.alpha + (1 - self.alpha) * tf.maximum((self.decay - step) / (self.decay - self.warmup), 0.0)
        return self.lr * tf.where(step < self.warmup, step / self.warmup, decay)


def _norm(x, gamma, beta, epsilon: float):
    layer = keras.layers.LayerNormalization(epsilon=epsilon)
    y = layer(x)
    layer.set_weights([gamma, beta])
    return y


def _encoder_layer(x, w, heads: int, epsilon: float):
    d = w["query"][0].shape[0]
    key_dim = w["query"][0].shape[1] // heads
    attention = keras.layers.MultiHeadAttention(heads, key_dim)
    a = attention(x, x)
    attention.set_weights([w["query"][0].reshape(d, heads, key_dim), w["query"][1].reshape(heads, key_dim),
                           w["key"][0].reshape(d, heads, key_dim), w["key"][1].reshape(heads, key_dim),
                           w["value"][0].reshape(d, heads, key_dim), w["value"][1].reshape(heads, key_dim),
                           w["output"][0].reshape(heads, key_dim, d), w["output"][1]])
    x = _norm(x + a, *w["norm1"], epsilon)
    gelu = lambda z: keras.activations.gelu(z, approximate=False)  # noqa: E731
    h = _dense(_dense(x, *w["up"], activation=gelu), *w["down"])
    return _norm(x + h, *w["norm2"], epsilon)


def make_loop(weights, x_train, y_train, scenario):
    heads, epsilon = settings(scenario)
    p = parts(weights)
    inputs = keras.Input(x_train.shape[1:], dtype="int32")
    embedding = keras.layers.Embedding(*p["embeddings"].shape)
    x = embedding(inputs)
    embedding.set_weights([p["embeddings"]])
    positions = AddPositions()
    x = positions(x)
    positions.set_weights([p["positions"][:x_train.shape[1]]])
    x = _norm(x, *p["norm"], epsilon)
    for layer in p["layers"]:
        x = _encoder_layer(x, layer, heads, epsilon)
    x = _dense(keras.layers.GlobalAveragePooling1D()(x), *p["pooler"], activation="tanh")
    model = keras.Model(inputs, _dense(x, *p["classifier"]))
    adam = adamw_recipe(scenario)
    learning_rate = adam["learning_rate"]
    if adam["warmup_steps"]:
        learning_rate = WarmupLinear(learning_rate, adam["warmup_steps"], adam["decay_steps"], adam["alpha"])
    return _loop(model, TextbookAdam(learning_rate, adam["beta_1"], adam["beta_2"], adam["epsilon"],
                                     adam["weight_decay"]),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 tf.constant(x_train, tf.int32), tf.constant(y_train.astype("int64")), dense_gradients=True)
