"""Custom layers: Residual Normalization and the heated-up softmax."""
from __future__ import annotations

from tfasc.keras import keras, tf


def _spatial_mean(x):
    """Mean over (frequency, time), keeping dims.

    With a static map size it is one average pooling over the whole map: the same
    numbers as ``reduce_mean``, but it converts to AVERAGE_POOL_2D, which TFLM runs with
    its pooling kernels (CMSIS-NN on Cortex-M) instead of the generic int8 MEAN code.
    """
    h, w = x.shape[1], x.shape[2]
    if h is None or w is None:
        return tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    return tf.nn.avg_pool2d(x, ksize=(h, w), strides=(h, w), padding="VALID")


@keras.utils.register_keras_serializable(package="tfasc")
class ResidualNorm(keras.layers.Layer):
    """Residual Normalization (DS-FlexiNet eqs. 1-2).

    ``y = lambda * x + IN(x)`` where ``IN(x) = (x - mu) / sqrt(var + epsilon)``
    normalises every channel of every sample over (frequency, time) and
    ``lambda`` is one trainable scalar.

    Args:
        epsilon: added to the variance to avoid division by zero.
        lambda_init: initial value of ``lambda``.
    """

    def __init__(self, epsilon=1e-5, lambda_init=0.1, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.lambda_init = lambda_init

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{self.name}: expected a 4-D input [batch, freq, time, channels], got {input_shape}")
        self.lam = self.add_weight(
            name="lambda",
            shape=(),
            initializer=keras.initializers.Constant(self.lambda_init),
            trainable=True,
        )
        super().build(input_shape)

    def call(self, x):
        mean = _spatial_mean(x)
        centred = x - mean
        var = _spatial_mean(tf.square(centred))
        return self.lam * x + centred * tf.math.rsqrt(var + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "lambda_init": self.lambda_init}


@keras.utils.register_keras_serializable(package="tfasc")
class HeatedSoftmax(keras.layers.Layer):
    """Heated-up softmax (seed 001 eq. 3): ``p = softmax(z / T)``.

    Args:
        temperature: T > 0; larger values give softer distributions.
    """

    def __init__(self, temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def call(self, logits):
        return tf.nn.softmax(logits / self.temperature, axis=-1)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


def fold_temperature(kernel, bias, temperature: float):
    """Dense weights with 1/T folded in: softmax((xW + b) / T) == softmax(x(W/T) + b/T)."""
    return kernel / temperature, bias / temperature


CUSTOM_OBJECTS = {"ResidualNorm": ResidualNorm, "HeatedSoftmax": HeatedSoftmax}
