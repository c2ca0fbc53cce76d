import numpy as np
import pytest

from tfasc.complexity import keras_summary
from tfasc.config import ModelConfig
from tfasc.keras import keras, tf
from tfasc.models import CUSTOM_OBJECTS, HeatedSoftmax, ResidualNorm, build_model
from tfasc.models.cnn5 import build_cnn5
from tfasc.models.cpresnet import build_cpresnet
from tfasc.models.dsflexinet import build_dsflexinet
from tfasc.models.layers import fold_temperature

# Table II of seed 000: (params, MACs) on a 256 x 64 input
TABLE_II = {"sm1": (13_760, 3.88e6), "sm2": (30_690, 8.27e6), "sm3": (54_980, 14.34e6), "sm4": (126_120, 23.03e6)}
PINNED_PARAMS = {"sm1": 13_491, "sm2": 31_327, "sm3": 54_401, "sm4": 127_931}


@pytest.mark.parametrize("variant", sorted(TABLE_II))
def test_dsflexinet_matches_table_ii(variant):
    model = build_dsflexinet((256, 64, 1), variant, "rn")
    assert model.count_params() == PINNED_PARAMS[variant]
    s = keras_summary(model)
    params, macs = TABLE_II[variant]
    assert abs(s["params"] / params - 1) <= 0.03
    assert abs(s["macs"] / macs - 1) <= 0.03
    assert s["param_bytes_int8"] == s["params"] and s["param_bytes_float32"] == 4 * s["params"]


def test_dsflexinet_layers_named_and_norm_switch():
    rn = build_dsflexinet((256, 64, 1), "sm1", "rn")
    bn = build_dsflexinet((256, 64, 1), "sm1", "bn")
    names = [l.name for l in rn.layers]
    assert "stage2_block1_depthwise_bn" in names and "stage2_block1_project_rn" in names
    assert "stage2_block1_shortcut" in names  # stride-2 block gets a projection shortcut
    assert "stage1_block2_project_bn" in [l.name for l in bn.layers]
    assert sum(isinstance(l, ResidualNorm) for l in rn.layers) == 9
    assert not any(isinstance(l, ResidualNorm) for l in bn.layers)
    assert rn.output_shape == (None, 10)


def test_cnn5_params_and_shapes():
    model = build_cnn5((256, 862, 1))
    assert model.count_params() == 70_954
    shapes = [model.get_layer(f"conv{i}").output_shape[1:3] for i in range(1, 6)]
    assert shapes == [(254, 860), (126, 429), (124, 427), (61, 213), (59, 211)]
    order = [l.name for l in model.layers[1:4]]
    assert order == ["conv1", "conv1_relu", "conv1_bn"]  # Conv -> ReLU -> BN
    assert isinstance(model.get_layer("conv1").kernel_initializer, keras.initializers.GlorotUniform)


def np_residual_norm(x, lam, eps):
    mu = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    return lam * x + (x - mu) / np.sqrt(var + eps)


def test_residual_norm_matches_numpy_and_serialises():
    x = np.random.default_rng(0).normal(3.0, 2.0, (2, 8, 5, 3)).astype(np.float32)
    layer = ResidualNorm(epsilon=1e-3, lambda_init=0.25)
    np.testing.assert_allclose(layer(x).numpy(), np_residual_norm(x, 0.25, 1e-3), atol=1e-5)
    cfg = layer.get_config()
    assert cfg["epsilon"] == 1e-3 and cfg["lambda_init"] == 0.25
    clone = ResidualNorm.from_config(cfg)
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), layer(x).numpy(), atol=1e-6)


def test_residual_norm_gradient_reaches_lambda():
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 4, 4, 2)).astype(np.float32))
    layer = ResidualNorm()
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(x) * x)
    g = tape.gradient(y, layer.lam)
    # d/dlambda sum((lambda x + IN(x)) * x) = sum(x^2)
    np.testing.assert_allclose(g.numpy(), np.sum(x.numpy() ** 2), rtol=1e-5)


def test_model_save_load_round_trip(tmp_path):
    model = build_dsflexinet((64, 16, 1), "sm1", "rn", temperature=3.0)
    x = np.random.default_rng(2).normal(size=(2, 64, 16, 1)).astype(np.float32)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert loaded.get_layer("softmax").temperature == 3.0


@pytest.mark.parametrize("t", [1.0, 5.0, 35.0])
def test_heated_softmax_and_fold(t):
    rng = np.random.default_rng(3)
    z_in = rng.normal(size=(4, 16)).astype(np.float32)
    w, b = rng.normal(size=(16, 10)).astype(np.float32), rng.normal(size=10).astype(np.float32)
    z = z_in @ w + b
    p = HeatedSoftmax(t)(z).numpy()
    ref = np.exp(z / t - (z / t).max(1, keepdims=True))
    np.testing.assert_allclose(p, ref / ref.sum(1, keepdims=True), atol=1e-6)
    wf, bf = fold_temperature(w, b, t)
    zf = z_in @ wf + bf
    folded = np.exp(zf - zf.max(1, keepdims=True))
    np.testing.assert_allclose(folded / folded.sum(1, keepdims=True), p, atol=1e-6)
    with pytest.raises(ValueError):
        HeatedSoftmax(0.0)


def test_cpresnet_knobs_change_size_and_receptive_field():
    small = build_cpresnet((256, 64, 1), width=16, depth=1, rho=4)
    wide = build_cpresnet((256, 64, 1), width=32, depth=2, rho=4)
    assert wide.count_params() > 2 * small.count_params()
    k = [l.kernel_size for l in build_cpresnet((256, 64, 1), 16, 2, rho=3).layers if "block" in l.name and isinstance(l, keras.layers.Conv2D) and "shortcut" not in l.name]
    assert k[:3] == [(3, 3)] * 3 and set(k[3:]) == {(1, 1)}  # only the first rho convolutions are 3x3
    assert build_model(ModelConfig(name="cpresnet", width=16, depth=1), (256, 64, 1)).output_shape == (None, 10)
