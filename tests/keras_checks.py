"""Helpers of the Keras test files: weight randomisation and torch ⇄ Keras output comparison."""

from __future__ import annotations

import numpy as np
import torch

#: Largest allowed difference of output probabilities between the torch and Keras ports.
PARITY_TOLERANCE = 1e-5


def cpu_only() -> None:
    """Run the Keras tests on the CPU, like the torch tests: a GPU's TF32 matrix products would
    put the parity figures far above the tolerance, and op determinism is only exercised there.
    Must run before TensorFlow executes its first operation (at the top of a test module)."""
    from mcbench.keras_learner import load_keras

    load_keras()
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # the runtime already started (another module called this first)
        pass


def randomize_torch(module: torch.nn.Module, seed: int) -> None:
    """Non-zero biases and non-trivial batch norm (γ, β, running mean and variance).

    Kernels keep their (random, Glorot/orthogonal) initialisation.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.8, 1.2, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)
                m.running_mean.uniform_(-0.2, 0.2, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
        for name, p in module.named_parameters():
            if "bias" in name.rsplit(".", 1)[-1]:  # bias, bias_ih_l0, time_bias...
                p.uniform_(-0.2, 0.2, generator=g)


def randomize_keras(model, seed: int) -> None:
    """The Keras twin of :func:`randomize_torch`, by weight name."""
    rng = np.random.default_rng(seed)
    ranges = {"bias": (-0.2, 0.2), "beta": (-0.2, 0.2), "gamma": (0.8, 1.2),
              "moving_mean": (-0.2, 0.2), "moving_variance": (0.5, 1.5)}
    for w in model.weights:
        key = "bias" if w.name.endswith("bias") else w.name  # bias, time_bias, depth_bias
        if key in ranges:
            low, high = ranges[key]
            w.assign(rng.uniform(low, high, size=w.shape).astype(np.float32))


def probabilities_torch(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    module.eval()
    with torch.no_grad():
        return torch.sigmoid(module(torch.from_numpy(x))).numpy()


def probabilities_keras(model, x: np.ndarray) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.sigmoid(model(x, training=False)))


def parity(torch_module, keras_model, impl, input_shape, batch: int = 2, seed: int = 0):
    """Max |Δ probability| after copying torch → Keras and, with new weights, Keras → torch.

    Also returns how far the second comparison's outputs moved from the first's, which shows the
    Keras → torch copy really carried new weights (a copy that did nothing would leave both
    models at the first weights and still agree).
    """
    x = np.random.default_rng(seed).normal(size=(batch, *input_shape)).astype(np.float32)
    randomize_torch(torch_module, seed + 1)
    impl.torch_to_keras(torch_module, keras_model)
    first = probabilities_torch(torch_module, x)
    to_keras = float(np.abs(first - probabilities_keras(keras_model, x)).max())
    randomize_keras(keras_model, seed + 2)
    impl.keras_to_torch(keras_model, torch_module)
    second = probabilities_keras(keras_model, x)
    to_torch = float(np.abs(probabilities_torch(torch_module, x) - second).max())
    moved = float(np.abs(second - first).max())
    return to_keras, to_torch, moved
