"""The five-layer CNN of seed 001 (Table 1; Kosmider's SRPOL base model), 70,954 parameters.

Five Conv2D 3x3 'valid' layers (16, 32, 32, 64, 64 filters; strides 1, 2, 1, 2, 1),
each Conv -> ReLU -> BN in that order, global average pooling, Dense(10) with a
linear output and the heated-up softmax. Glorot-uniform initialisation.
"""
from __future__ import annotations

import numpy as np

from tfasc.keras import keras
from tfasc.models.common import classifier_head

CNN5_SPECS = ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1))  # (filters, stride)


def build_cnn5(input_shape=(256, 862, 1), num_classes: int = 10, temperature: float = 1.0,
               batchnorm: bool = True) -> keras.Model:
    """The seed 001 CNN; ``batchnorm=False`` gives the BN-free graph :func:`fold_batchnorm` fills."""
    inputs = keras.Input(input_shape, name="logmel")
    x = inputs
    for i, (filters, stride) in enumerate(CNN5_SPECS, start=1):
        x = keras.layers.Conv2D(
            filters, 3, stride, padding="valid", kernel_initializer="glorot_uniform", name=f"conv{i}"
        )(x)
        x = keras.layers.ReLU(name=f"conv{i}_relu")(x)
        if batchnorm:
            x = keras.layers.BatchNormalization(name=f"conv{i}_bn")(x)
    outputs = classifier_head(x, num_classes, temperature)
    return keras.Model(inputs, outputs, name="cnn5" if batchnorm else "cnn5_folded")


def fold_batchnorm(model: keras.Model) -> keras.Model:
    """The same function without BatchNormalization layers (for int8 export).

    Each BN comes after its ReLU, so it cannot fold into its own convolution; it is an
    affine map per channel, ``bn(x) = a x + c`` with ``a = gamma / sqrt(var + eps)`` and
    ``c = beta - mean a``, and folds into what follows:

    * the next 'valid' convolution: ``W'[.., i, o] = a_i W[.., i, o]`` and
      ``b'_o = b_o + sum_{kh, kw, i} c_i W[kh, kw, i, o]`` (exact: with no zero padding
      every tap sees ``a x + c``);
    * the last one through global average pooling into the Dense:
      ``GAP(a x + c) = a GAP(x) + c``, so ``W' = diag(a) W`` and ``b' = b + c W``.
    """
    shape = model.input_shape[1:]
    num_classes = model.get_layer("classifier").units
    temperature = model.get_layer("softmax").temperature
    folded = build_cnn5(shape, num_classes, temperature, batchnorm=False)

    def affine(i):
        bn = model.get_layer(f"conv{i}_bn")
        gamma, beta, mean, var = bn.get_weights()
        a = gamma / np.sqrt(var + bn.epsilon)
        return a, beta - mean * a

    for i in range(1, len(CNN5_SPECS) + 1):
        w, b = model.get_layer(f"conv{i}").get_weights()
        if i > 1:
            a, c = affine(i - 1)
            b = b + np.einsum("hwio,i->o", w, c)
            w = w * a[None, None, :, None]
        folded.get_layer(f"conv{i}").set_weights([w, b])
    w, b = model.get_layer("classifier").get_weights()
    a, c = affine(len(CNN5_SPECS))
    folded.get_layer("classifier").set_weights([w * a[:, None], b + c @ w])
    return folded
