import numpy as np
import pytest

from tfasc.config import FeatureConfig
from tfasc.features import LogMel, input_shape, mel_matrix, np_logmel, np_mel_matrix
from tfasc.keras import tf

DSFLEXINET = FeatureConfig()
CNN5 = FeatureConfig(sample_rate=44100, n_fft=2048, win_length=2048, hop_length=512, power=1.0,
                     log_offset=1e-6, norm_mode="clip")


def test_default_shapes():
    assert input_shape(DSFLEXINET, 1.0) == (256, 64, 1)  # seed 000: 1 s at 32 kHz -> 256 x 64
    assert input_shape(CNN5, 10.0) == (256, 862, 1)  # seed 001: 10 s at 44.1 kHz -> 256 x 862
    assert input_shape(CNN5, 1.0) == (256, 87, 1)


@pytest.mark.parametrize("cfg,seconds", [(DSFLEXINET, 1.0), (CNN5, 10.0), (FeatureConfig(fmin=50, fmax=12000, n_mels=64, window="hamming"), 1.0)])
def test_tf_matches_numpy_reference(cfg, seconds):
    np.testing.assert_allclose(mel_matrix(cfg), np_mel_matrix(cfg), atol=1e-4)
    rng = np.random.default_rng(0)
    n = int(seconds * cfg.sample_rate)
    wave = (0.1 * rng.standard_normal((2, n))).astype(np.float32)
    wave[1] *= np.linspace(0, 1, n, dtype=np.float32)  # a second, non-stationary clip
    fe = LogMel(cfg)
    eager = fe(tf.constant(wave)).numpy()
    graph = tf.function(lambda w: fe(w))(tf.constant(wave)).numpy()
    for i in range(2):
        np.testing.assert_allclose(eager[i, :, :, 0], np_logmel(cfg, wave[i]), atol=2e-3)
    np.testing.assert_allclose(graph, eager, atol=1e-5)


def test_correction_hook_scales_magnitude_per_device():
    cfg = FeatureConfig(n_mels=64)
    rng = np.random.default_rng(1)
    table = rng.uniform(0.5, 2.0, (9, cfg.n_fft // 2 + 1)).astype(np.float32)
    wave = (0.1 * rng.standard_normal((2, 32000))).astype(np.float32)
    fe = LogMel(cfg, table)
    out = fe(tf.constant(wave), tf.constant([3, 7])).numpy()
    np.testing.assert_allclose(out[0, :, :, 0], np_logmel(cfg, wave[0], table[3]), atol=2e-3)
    np.testing.assert_allclose(out[1, :, :, 0], np_logmel(cfg, wave[1], table[7]), atol=2e-3)
    plain = LogMel(cfg)(tf.constant(wave)).numpy()
    assert np.abs(out - plain).max() > 0.05  # the correction changed something


def test_bad_feature_config():
    from tfasc.config import ConfigError

    with pytest.raises(ConfigError, match="win_length"):
        LogMel(FeatureConfig(n_fft=1024, win_length=2048))
