"""The five-layer CNN of seed 001 (Table 1; Kosmider's SRPOL base model), 70,954 parameters.

Five Conv2D 3x3 'valid' layers (16, 32, 32, 64, 64 filters; strides 1, 2, 1, 2, 1),
each Conv -> ReLU -> BN in that order, global average pooling, Dense(10) with a
linear output and the heated-up softmax. Glorot-uniform initialisation.
"""
from __future__ import annotations

from tfasc.keras import keras
from tfasc.models.common import classifier_head

CNN5_SPECS = ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1))  # (filters, stride)


def build_cnn5(input_shape=(256, 862, 1), num_classes: int = 10, temperature: float = 1.0) -> keras.Model:
    inputs = keras.Input(input_shape, name="logmel")
    x = inputs
    for i, (filters, stride) in enumerate(CNN5_SPECS, start=1):
        x = keras.layers.Conv2D(
            filters, 3, stride, padding="valid", kernel_initializer="glorot_uniform", name=f"conv{i}"
        )(x)
        x = keras.layers.ReLU(name=f"conv{i}_relu")(x)
        x = keras.layers.BatchNormalization(name=f"conv{i}_bn")(x)
    outputs = classifier_head(x, num_classes, temperature)
    return keras.Model(inputs, outputs, name="cnn5")
