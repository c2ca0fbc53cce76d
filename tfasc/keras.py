"""The one place tfasc imports Keras.

TF-MOT only works with Keras 2 models, so tfasc pins the legacy Keras
(`tf_keras`). ``TF_USE_LEGACY_KERAS`` must be set before TensorFlow builds its
Keras bridge, and importing ``tensorflow_model_optimization`` flips it too, so
every other module imports ``keras`` (and ``tfmot``) from here.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402


def tfmot():
    """Import TF-MOT lazily (it is heavy and only QAT needs it)."""
    import tensorflow_model_optimization as _tfmot

    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    return _tfmot


__all__ = ["keras", "tf", "tfmot"]
