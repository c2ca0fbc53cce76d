"""Building blocks shared by the model families."""
from __future__ import annotations

from tfasc.keras import keras
from tfasc.models.layers import HeatedSoftmax


def conv_bn_relu(x, filters: int, kernel: int, stride: int, name: str, padding: str = "same"):
    """Conv (no bias) -> BN -> ReLU, the BN foldable into the convolution."""
    x = keras.layers.Conv2D(filters, kernel, stride, padding=padding, use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def global_average_pool(x, name: str = "global_pool"):
    """Global average pooling as one AVERAGE_POOL_2D over the whole map.

    Numerically the same as a MEAN over (frequency, time), but TFLM runs it with
    its optimized pooling kernels instead of the generic reduce code.
    """
    h, w = x.shape[1], x.shape[2]
    x = keras.layers.AveragePooling2D((h, w), name=name)(x)
    return keras.layers.Flatten(name=f"{name}_flatten")(x)


def classifier_head(x, num_classes: int, temperature: float):
    """GAP -> Dense(num_classes) logits -> heated-up softmax probabilities."""
    x = global_average_pool(x)
    logits = keras.layers.Dense(num_classes, name="classifier")(x)
    return HeatedSoftmax(temperature, name="softmax")(logits)
