"""Losses on the model's probabilities (the heated-up softmax output).

Targets are ``[B, C]`` (one-hot or mixup-mixed); with distillation they are
``[B, 2C]``: the label part, then the teacher's logits.
"""
from __future__ import annotations

from tfasc.keras import tf

PROB_EPS = 1e-7


def _log(p):
    return tf.math.log(tf.clip_by_value(p, PROB_EPS, 1.0))


def cross_entropy(y, p, label_smoothing: float = 0.0):
    """CE(p, y) = -sum_j y_j log p_j (seed 001 eq. 1)."""
    if label_smoothing:
        c = tf.cast(tf.shape(y)[-1], y.dtype)
        y = y * (1 - label_smoothing) + label_smoothing / c
    return -tf.reduce_sum(y * _log(p), axis=-1)


def focal(y, p, gamma: float = 1.0):
    """FL(p, y) = -sum_j (1 - p_j)^gamma y_j log p_j (seed 001 eq. 2)."""
    return -tf.reduce_sum(tf.pow(1.0 - p, gamma) * y * _log(p), axis=-1)


def make_loss(cfg):
    """The label loss of a ``LossConfig`` as a Keras loss function."""
    if cfg.name == "focal":
        fn = lambda y, p: focal(y, p, cfg.gamma)  # noqa: E731
    else:
        fn = lambda y, p: cross_entropy(y, p, cfg.label_smoothing)  # noqa: E731
    fn.__name__ = cfg.name
    return fn


def accuracy(y, p):
    """Top-1 agreement with the (possibly mixed) label part of the targets."""
    c = tf.shape(p)[-1]
    return tf.cast(tf.equal(tf.argmax(y[:, :c], -1), tf.argmax(p, -1)), tf.float32)


__all__ = ["cross_entropy", "focal", "make_loss", "accuracy"]
