import os
import shutil
import subprocess

import numpy as np
import pytest

from tfasc.config import FeatureConfig
from tfasc.features import mel_matrix, window
from tfasc.keras import keras, tf
from tfasc.models.dsflexinet import build_dsflexinet
from tfasc.qat import deploy_model, quantize_model
from tflm_export import codegen
from tflm_export.convert import ExportError, check_int8, convert_int8, op_list
from tflm_export.verify import Runner, arena_bytes, compare_backends


@pytest.fixture(scope="module")
def int8_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 64, 16, 1)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(64) % 10]
    model = build_dsflexinet((64, 16, 1), "sm1", "rn", temperature=4.0)
    q = quantize_model(deploy_model(model))
    q.compile("adam", "categorical_crossentropy")
    q.fit(x, y, epochs=1, verbose=0)  # a QAT model must see data before conversion
    return model, q, convert_int8(q, x[:32]), x


def test_deploy_model_folds_temperature():
    model = build_dsflexinet((64, 16, 1), "sm1", "bn", temperature=10.0)
    x = np.random.default_rng(1).normal(size=(3, 64, 16, 1)).astype(np.float32)
    d = deploy_model(model)
    assert d.get_layer("softmax").temperature == 1.0
    np.testing.assert_allclose(d.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_int8_model_is_integer_only_and_tflm_matches_reference(int8_model):
    _, _, data, x = int8_model
    check_int8(data)
    ops = op_list(data)
    assert "DEQUANTIZE" not in ops and "MEAN" not in ops and "AVERAGE_POOL_2D" in ops and "SOFTMAX" in ops
    parity = compare_backends(data, x[:20])
    assert parity["max_lsb_diff_logits"] <= 1 and parity["top1_agreement"] == 1.0
    assert 20_000 < arena_bytes(data) < 200_000


def test_float_model_is_refused_with_op_names():
    model = build_dsflexinet((64, 16, 1), "sm1", "bn")
    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    with pytest.raises(ExportError, match=r"CONV_2D: tensor '.*' is float32"):
        check_int8(data)


def test_codegen_deterministic_round_trip_and_compiles(int8_model, tmp_path):
    _, _, data, _ = int8_model
    fc = FeatureConfig(n_mels=64)
    ref = Runner(data)
    info = {"input_shape": [64, 16, 1], "labels": [f"c{i}" for i in range(10)],
            "input_scale": float(ref.inp["quantization"][0]), "input_zero_point": int(ref.inp["quantization"][1]),
            "output_scale": float(ref.out["quantization"][0]), "output_zero_point": int(ref.out["quantization"][1]),
            "arena_measured": 1000, "arena_margin": 0.1, "arena_bytes": 1104, "ops": op_list(data)}
    corr = np.ones((9, fc.n_fft // 2 + 1), np.float32)
    a, b = tmp_path / "a", tmp_path / "b"
    files = codegen.generate(str(a), "sm1 test", data, info, fc, mel_matrix(fc), window(fc), corr)
    codegen.generate(str(b), "sm1 test", data, info, fc, mel_matrix(fc), window(fc), corr)
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes()  # deterministic
    cc = (a / "sm1_test_model_data.cc").read_text()
    assert "alignas(16) const unsigned char g_sm1_test_model_data[]" in cc
    assert codegen.read_back_array(cc) == data
    resolver = (a / "sm1_test_op_resolver.h").read_text()
    assert f"MicroMutableOpResolver<{len(info['ops'])}>" in resolver and "AddRsqrt()" in resolver
    # the self-contained sources compile for the host and for Cortex-M4
    (a / "check.cc").write_text('#include "sm1_test_model_settings.h"\n#include "sm1_test_features.h"\n'
                                '#include "sm1_test_model_data.h"\nint check() { return kSM1_TESTNumClasses + '
                                'static_cast<int>(g_sm1_test_mel_matrix[5] + g_sm1_test_window[3]) + g_sm1_test_model_data_size; }\n')
    sources = ["sm1_test_model_data.cc", "sm1_test_features.cc", "check.cc"]
    compilers = [["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror"],
                 ["arm-none-eabi-g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-mcpu=cortex-m4", "-mthumb",
                  "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]]
    for cxx in compilers:
        if shutil.which(cxx[0]) is None:
            pytest.fail(f"{cxx[0]} is not installed (.ci/run installs gcc-arm-none-eabi)")
        for src in sources:
            subprocess.run(cxx + ["-c", src, "-o", os.devnull], cwd=a, check=True)


def test_cnn5_batchnorm_fold_is_exact_and_leaves_no_standalone_mul_add():
    from tfasc.models.cnn5 import build_cnn5

    rng = np.random.default_rng(2)
    model = build_cnn5((40, 60, 1), temperature=5.0)
    for i in range(1, 6):  # non-trivial BN statistics and affine parameters
        bn = model.get_layer(f"conv{i}_bn")
        c = bn.get_weights()[0].shape[0]
        bn.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 0.5, c), rng.normal(0, 0.5, c), rng.uniform(0.2, 3, c)])
    x = rng.normal(size=(4, 40, 60, 1)).astype(np.float32)
    d = deploy_model(model)
    assert not [l for l in d.layers if isinstance(l, keras.layers.BatchNormalization)]
    logits = keras.Model(model.input, model.get_layer("softmax").input).predict(x, verbose=0)
    folded = keras.Model(d.input, d.get_layer("softmax").input).predict(x, verbose=0)
    np.testing.assert_allclose(folded, logits / 5.0, rtol=1e-4, atol=1e-4)  # BN and 1/T folded, in float
    assert d.count_params() == model.count_params() - 4 * (16 + 32 + 32 + 64 + 64)
    data = convert_int8(d, x)
    ops = op_list(data)
    assert "MUL" not in ops and "ADD" not in ops and set(ops) <= {"CONV_2D", "AVERAGE_POOL_2D", "RESHAPE",
                                                                   "FULLY_CONNECTED", "SOFTMAX"}


def test_tflm_runs_models_whose_arena_exceeds_the_default():
    """The TFLM Python API defaults to an arena of 10x the model size; large activations need more."""
    from tfasc.models.cnn5 import build_cnn5

    x = np.random.default_rng(3).normal(size=(4, 256, 200, 1)).astype(np.float32)
    data = convert_int8(deploy_model(build_cnn5((256, 200, 1))), x)
    arena = arena_bytes(data)
    assert arena > 10 * len(data) and arena > 254 * 198 * 16  # at least conv1's int8 output
    parity = compare_backends(data, x[:2])
    assert parity["max_lsb_diff_logits"] <= 1 and parity["top1_agreement"] == 1.0


def test_strip_softmax_exposes_the_logits():
    """The parity check compares the graph before the SOFTMAX, whose TFLM int8 kernel differs by design."""
    from tflm_export.verify import strip_softmax

    rng = np.random.default_rng(4)
    inp = keras.Input((32,))
    model = keras.Model(inp, keras.layers.Softmax()(keras.layers.Dense(10, name="d")(inp)))
    model.get_layer("d").set_weights([rng.normal(0, 1, (32, 10)).astype(np.float32), np.zeros(10, np.float32)])
    x = rng.normal(0, 1, (200, 32)).astype(np.float32)
    data = convert_int8(model, x[:100])
    logits = strip_softmax(data)
    assert op_list(data) == ["FULLY_CONNECTED", "SOFTMAX"] and op_list(logits) == ["FULLY_CONNECTED"]
    r = Runner(logits)
    z = r.dequantize(r.run_int8(r.quantize(x)))
    np.testing.assert_allclose(z, model.get_layer("d")(x).numpy(), atol=4 * r.out["quantization"][0] + 0.05)
    parity = compare_backends(data, x)
    assert parity["max_lsb_diff_logits"] <= 1 and parity["top1_agreement"] == 1.0
    assert strip_softmax(convert_int8(keras.Model(inp, model.get_layer("d").output), x[:50])) is None
