"""Building blocks of the Keras builds, as the authors' Keras 2 code used them.

* Keras 2 ``hard_sigmoid`` (0.2·x + 0.5, clipped to [0, 1]); Keras 3's built-in is x/6 + 0.5.
* ``GRU`` with Keras 2 defaults (``reset_after=False``, that hard sigmoid, one bias vector), or
  with PyTorch ``nn.GRU`` semantics (``reset_after=True``, logistic sigmoid, two bias vectors).
* conv → BN → activation → max-pool → dropout blocks with Keras defaults (TF "same" padding,
  ``BatchNormalization`` ε = 1e-3, momentum 0.99, Glorot-uniform kernels, zero biases).
* The channels-first → channels-last transpose every model starts with: the harness stores
  features as ``(1, 96, T)`` (log-mel) or ``(1, S)`` (waveform), the authors' Keras models read
  ``(96, T, 1)``.
* Layer groups for transfer learning (Wang et al., Table III): every layer's name starts with
  ``cnn_``, ``rnn_`` or ``head_``; the head ends in the layer that produces the logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mcbench.keras_learner import load_keras

keras = load_keras()
layers, ops = keras.layers, keras.ops

#: Name prefixes of the three transfer-learning groups; the head produces the logits.
GROUPS = ("cnn", "rnn", "head")
#: Name of the layer that produces the logits in every Keras build.
OUTPUT_LAYER = "head_output"

Pair = int | tuple[int, int]


@keras.saving.register_keras_serializable(package="mcbench")
def keras2_hard_sigmoid(x):
    """Keras 2 ``hard_sigmoid``: min(1, max(0, 0.2·x + 0.5)), the GRU gate of the authors' code."""
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


def gru(units: int, *, keras2: bool = True, return_sequences: bool = False, name: str):
    """A ``GRU`` reading ``(B, L, D)``.

    ``keras2=True``: Keras 2's ``GRU(units)`` (``reset_after=False``, hard sigmoid; the reset gate
    acts before the recurrent matmul; bias ``(3n,)``). ``keras2=False``: PyTorch ``nn.GRU``
    (``reset_after=True``, logistic sigmoid; reset gate after the matmul; bias ``(2, 3n)``, input
    and recurrent). Both use Keras's gate order [z, r, h], Glorot-uniform input kernel, orthogonal
    recurrent kernel and zero bias.
    """
    if keras2:
        return layers.GRU(units, reset_after=False, recurrent_activation=keras2_hard_sigmoid,
                          return_sequences=return_sequences, name=name)
    return layers.GRU(units, reset_after=True, recurrent_activation="sigmoid",
                      return_sequences=return_sequences, name=name)


def channels_last(inputs):
    """``(B, 1, F, T)`` → ``(B, F, T, 1)``, or ``(B, 1, S)`` → ``(B, S, 1)``."""
    rank = len(inputs.shape) - 1
    order = tuple(range(2, rank + 1)) + (1,)
    return layers.Permute(order, name="input_channels_last")(inputs)


def model_input(input_shape: Sequence[int]):
    """A ``keras.Input`` for the channels-first shape the harness stores (batch axis excluded)."""
    return keras.Input(shape=tuple(int(v) for v in input_shape), name="features")


@keras.saving.register_keras_serializable(package="mcbench")
class TransposedConv2D(layers.Conv2D):
    """``Conv2D`` computed on the map with its two spatial axes swapped, then swapped back.

    The kernel variable keeps ``Conv2D``'s shape ``(kh, kw, C_in, C_out)``, so weights, parameter
    count and outputs are those of ``Conv2D`` (TF "same" padding is per axis, so swapping the
    axes of input, kernel, strides and dilations gives the same result). Reason: on CPUs with
    AVX-512, TensorFlow 2.17–2.21's oneDNN convolution aborts the whole process ("Check failed:
    dtype() == expected_dtype (1 vs. 4) uint8 expected, got float") for the Timbre CNN's first
    branch, ``Conv2D(10, (96, 1), padding='same')`` on a 96×1360×1 log-mel; the same filter
    applied along the other axis runs fine. TensorFlow 2.16 and ``DNNL_MAX_CPU_ISA=AVX2`` do not
    crash.
    """

    def convolution_op(self, inputs, kernel):
        swapped = ops.conv(
            ops.transpose(inputs, (0, 2, 1, 3)),
            ops.transpose(kernel, (1, 0, 2, 3)),
            strides=self.strides[::-1],
            padding=self.padding,
            dilation_rate=self.dilation_rate[::-1],
            data_format=self.data_format,
        )
        return ops.transpose(swapped, (0, 2, 1, 3))

    def build(self, input_shape):
        if self.data_format != "channels_last" or self.groups != 1:
            raise ValueError(f"{self.name}: TransposedConv2D supports channels_last, groups=1 only")
        super().build(input_shape)


def conv_block(
    x,
    filters: int,
    kernel: Pair,
    *,
    name: str,
    activation: str,
    pool: Pair | None = None,
    pool_stride: Pair | None = None,
    conv_stride: Pair = 1,
    dropout: float = 0.0,
    transposed: bool = False,
):
    """``Conv2D(padding='same')`` → ``BatchNormalization()`` → activation → ``MaxPooling2D``
    (TF "same") → ``Dropout``; layers are named ``{name}_conv``, ``_bn``, ``_act``, ``_pool``,
    ``_dropout``.

    ``transposed`` runs the convolution as :class:`TransposedConv2D` (same weights, same
    numbers; see there why the Timbre CNN needs it).
    """
    conv = TransposedConv2D if transposed else layers.Conv2D
    x = conv(filters, kernel, strides=conv_stride, padding="same", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.Activation(activation, name=f"{name}_act")(x)
    if pool is not None:
        x = layers.MaxPooling2D(pool, strides=pool_stride, padding="same", name=f"{name}_pool")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def _all_layers(model) -> list:
    """Every layer with its own weights, nested models and RNN cells left to their parents."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(_all_layers(layer))
        else:
            found.append(layer)
    return found


def keras_layer_groups(model) -> dict[str, list]:
    """The transfer groups ``cnn``, ``rnn`` and ``head`` as lists of layers, by name prefix.

    Freezing a group is ``layer.trainable = False`` for its layers; a frozen
    ``BatchNormalization`` then runs in inference mode (its running statistics), as the paper's
    frozen layers did. Layers without weights (input, transposes, pools) belong to no group.
    """
    groups: dict[str, list] = {g: [] for g in GROUPS}
    for layer in _all_layers(model):
        if not layer.weights:
            continue
        prefix = layer.name.split("_", 1)[0]
        if prefix not in groups:
            raise ValueError(
                f"layer {layer.name!r} of Keras model {model.name!r} has weights but its name "
                f"does not start with one of {[g + '_' for g in GROUPS]}"
            )
        groups[prefix].append(layer)
    return groups


def keras_parameter_groups(model) -> dict[str, list]:
    """The transfer groups ``cnn``, ``rnn`` (empty without recurrent layers) and ``head`` as lists
    of trainable ``keras.Variable`` (batch-norm running statistics are not trainable)."""
    return {
        group: [v for layer in members for v in layer.trainable_weights]
        for group, members in keras_layer_groups(model).items()
    }


def count_trainable(model) -> int:
    """Trainable parameters (batch-norm running statistics excluded, like ``count_parameters``)."""
    return int(sum(math.prod(v.shape) for v in model.trainable_weights))
