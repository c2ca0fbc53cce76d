"""Quantization-aware training with TF-MOT.

Before QAT the heated-up softmax's 1/T is folded into the classifier Dense
(``deploy_model``) so the int8 graph ends in a plain SOFTMAX. Custom layers get
their own ``QuantizeConfig``s inside ``quantize_scope``:

* ResidualNorm: no weight quantizer (lambda becomes an int8 MUL constant at
  conversion); its output gets a moving-average activation quantizer.
* HeatedSoftmax (T = 1 after folding): no output quantizer, since int8 SOFTMAX
  has the fixed output scale 1/256 and zero point -128.
"""
from __future__ import annotations

from tfasc.keras import keras, tfmot
from tfasc.models.layers import CUSTOM_OBJECTS, HeatedSoftmax, ResidualNorm


def deploy_model(model):
    """A copy of ``model`` with softmax(z / T) folded into the Dense: W/T, b/T and T = 1.

    The five-layer CNN's post-ReLU BatchNorms are folded first (``fold_batchnorm``), so the
    int8 graph has no standalone MUL/ADD.
    """
    if model.name == "cnn5":
        from tfasc.models.cnn5 import fold_batchnorm

        model = fold_batchnorm(model)
    cfg = model.get_config()
    temperature = 1.0
    for layer in cfg["layers"]:
        if layer["class_name"].endswith("HeatedSoftmax"):
            temperature = layer["config"]["temperature"]
            layer["config"]["temperature"] = 1.0
    new = keras.Model.from_config(cfg, custom_objects=CUSTOM_OBJECTS)
    new.set_weights(model.get_weights())
    if temperature != 1.0:
        dense = new.get_layer("classifier")
        w, b = dense.get_weights()
        dense.set_weights([w / temperature, b / temperature])
    return new


def _configs():
    q = tfmot().quantization.keras

    class ActivationOnlyQuantizeConfig(q.QuantizeConfig):
        """No weight quantizers; an 8-bit moving-average quantizer on the output (ResidualNorm)."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [q.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self):
            return {}

    class NoOutputQuantizeConfig(ActivationOnlyQuantizeConfig):
        """Nothing quantized in the layer itself (softmax: fixed int8 output scale)."""

        def get_output_quantizers(self, layer):
            return []

    return ActivationOnlyQuantizeConfig, NoOutputQuantizeConfig


def quantize_model(model):
    """``quantize_apply`` on a deploy model with tfasc's QuantizeConfigs."""
    q = tfmot().quantization.keras
    act_only, no_out = _configs()

    def annotate(layer):
        if isinstance(layer, ResidualNorm):
            return q.quantize_annotate_layer(layer, act_only())
        if isinstance(layer, HeatedSoftmax):
            return q.quantize_annotate_layer(layer, no_out())
        return q.quantize_annotate_layer(layer)

    annotated = keras.models.clone_model(model, clone_function=annotate)
    scope = {**CUSTOM_OBJECTS, "ActivationOnlyQuantizeConfig": act_only, "NoOutputQuantizeConfig": no_out}
    with q.quantize_scope(scope):
        return q.quantize_apply(annotated)
