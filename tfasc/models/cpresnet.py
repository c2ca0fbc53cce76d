"""CP-ResNet teacher (Koutini et al., receptive-field-regularised ResNet).

A 5x5 stride-2 stem, three stages of basic residual blocks (widths w, 2w, 4w,
``depth`` blocks each, 2x2 max-pooling after the first two stages) and a 1x1
convolution classifier with global pooling. The receptive field is regularised
as in CP-ResNet: only the first ``rho`` block convolutions use 3x3 kernels,
the rest are 1x1, so ``rho`` caps how much of the spectrogram one output sees.
"""
from __future__ import annotations

from tfasc.keras import keras
from tfasc.models.common import conv_bn_relu, global_average_pool
from tfasc.models.layers import HeatedSoftmax


def build_cpresnet(
    input_shape=(256, 64, 1), width: int = 32, depth: int = 2, rho: int = 7, num_classes: int = 10, temperature: float = 1.0
) -> keras.Model:
    inputs = keras.Input(input_shape, name="logmel")
    x = conv_bn_relu(inputs, width, 5, 2, "stem_conv")
    k = 0  # index of the block convolution, for the receptive-field rule
    for s, channels in enumerate((width, 2 * width, 4 * width), start=1):
        for b in range(1, depth + 1):
            name = f"stage{s}_block{b}"
            k1, k2 = (3 if k < rho else 1), (3 if k + 1 < rho else 1)
            k += 2
            y = conv_bn_relu(x, channels, k1, 1, f"{name}_conv1")
            y = keras.layers.Conv2D(channels, k2, padding="same", use_bias=False, name=f"{name}_conv2")(y)
            y = keras.layers.BatchNormalization(name=f"{name}_conv2_bn")(y)
            if x.shape[-1] != channels:
                x = keras.layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_shortcut")(x)
                x = keras.layers.BatchNormalization(name=f"{name}_shortcut_bn")(x)
            x = keras.layers.Add(name=f"{name}_add")([x, y])
            x = keras.layers.ReLU(name=f"{name}_relu")(x)
        if s < 3:
            x = keras.layers.MaxPooling2D(2, name=f"stage{s}_pool")(x)
    x = keras.layers.Conv2D(num_classes, 1, use_bias=False, name="classifier_conv")(x)
    x = keras.layers.BatchNormalization(name="classifier_bn")(x)
    logits = global_average_pool(x)
    outputs = HeatedSoftmax(temperature, name="softmax")(logits)
    return keras.Model(inputs, outputs, name=f"cpresnet_w{width}_d{depth}_rho{rho}")
