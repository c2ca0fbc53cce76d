"""DS-FlexiNet (seed 000, Fig. 1): MobileNetV2-style depthwise-separable residual blocks.

Stem: two 3x3 stride-2 convolutions, each + BN + ReLU. Stages of inverted-residual
blocks: pointwise expand (+BN+ReLU), depthwise 3x3 (+BN+ReLU), pointwise project
+ the block's normalisation (ResidualNorm or BatchNorm, the Table V ablation);
the shortcut is the identity when shape is kept, else a 1x1 (strided) projection
+ BN. Head: global average pooling (as AVERAGE_POOL_2D) and Dense(10).
"""
from __future__ import annotations

from dataclasses import dataclass

from tfasc.keras import keras
from tfasc.models.common import classifier_head, conv_bn_relu
from tfasc.models.layers import ResidualNorm


@dataclass(frozen=True)
class BlockSpec:
    """One stage: ``blocks`` inverted-residual blocks of ``channels`` outputs."""

    channels: int
    expansion: int
    blocks: int
    stride: int  # of the stage's first block


@dataclass(frozen=True)
class NetSpec:
    stem: tuple  # channels of the two stride-2 stem convolutions
    stages: tuple  # of BlockSpec


# Sizes sm1-sm4 chosen to match Table II (params, MACs on a 256 x 64 input).
DSFLEXINET_SPECS = {
    "sm1": NetSpec(stem=(4, 8), stages=(BlockSpec(8, 3, 3, 1), BlockSpec(12, 3, 3, 2), BlockSpec(16, 3, 3, 2))),
    "sm2": NetSpec(stem=(16, 16), stages=(BlockSpec(16, 2, 1, 1), BlockSpec(32, 2, 2, 2), BlockSpec(48, 2, 2, 2))),
    "sm3": NetSpec(stem=(16, 16), stages=(BlockSpec(16, 3, 2, 1), BlockSpec(32, 3, 3, 2), BlockSpec(48, 3, 2, 2))),
    "sm4": NetSpec(stem=(8, 16), stages=(BlockSpec(16, 4, 3, 1), BlockSpec(32, 4, 3, 2), BlockSpec(64, 4, 3, 2))),
}


def _norm(x, kind: str, name: str):
    if kind == "rn":
        return ResidualNorm(name=f"{name}_rn")(x)
    return keras.layers.BatchNormalization(name=f"{name}_bn")(x)


def inverted_residual(x, channels: int, expansion: int, stride: int, norm: str, name: str):
    cin = x.shape[-1]
    y = conv_bn_relu(x, cin * expansion, 1, 1, f"{name}_expand")
    y = keras.layers.DepthwiseConv2D(3, stride, padding="same", use_bias=False, name=f"{name}_depthwise")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_depthwise_bn")(y)
    y = keras.layers.ReLU(name=f"{name}_depthwise_relu")(y)
    y = keras.layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_project")(y)
    y = _norm(y, norm, f"{name}_project")
    if stride == 1 and cin == channels:
        shortcut = x
    else:
        shortcut = keras.layers.Conv2D(channels, 1, stride, use_bias=False, name=f"{name}_shortcut")(x)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_shortcut_bn")(shortcut)
    return keras.layers.Add(name=f"{name}_add")([y, shortcut])


def build_dsflexinet(
    input_shape=(256, 64, 1), variant: str = "sm1", norm: str = "rn", num_classes: int = 10, temperature: float = 1.0
) -> keras.Model:
    if variant not in DSFLEXINET_SPECS:
        raise ValueError(f"unknown DS-FlexiNet variant {variant!r}; expected one of {sorted(DSFLEXINET_SPECS)}")
    spec = DSFLEXINET_SPECS[variant]
    inputs = keras.Input(input_shape, name="logmel")
    x = conv_bn_relu(inputs, spec.stem[0], 3, 2, "stem_conv1")
    x = conv_bn_relu(x, spec.stem[1], 3, 2, "stem_conv2")
    for s, st in enumerate(spec.stages, start=1):
        for b in range(1, st.blocks + 1):
            stride = st.stride if b == 1 else 1
            x = inverted_residual(x, st.channels, st.expansion, stride, norm, f"stage{s}_block{b}")
    outputs = classifier_head(x, num_classes, temperature)
    return keras.Model(inputs, outputs, name=f"dsflexinet_{variant}_{norm}")
