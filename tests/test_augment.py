import numpy as np
import pytest

from conftest import shared_path
from tfasc import augment
from tfasc.correction import SpectrumCorrection
from tfasc.keras import tf

SEED = tf.constant([1, 2], tf.int64)


def batch(shape=(6, 16, 12, 1), seed=0):
    return np.random.default_rng(seed).normal(2.0, 3.0, shape).astype(np.float32)


def test_time_roll_matches_np_roll():
    x = batch()
    out = augment.time_roll(tf.constant(x), 5, SEED).numpy()
    for i in range(len(x)):  # each example is some np.roll of itself along time, by at most 5
        matches = [s for s in range(-5, 6) if np.array_equal(out[i], np.roll(x[i], s, axis=1))]
        assert matches
    again = augment.time_roll(tf.constant(x), 5, SEED).numpy()
    np.testing.assert_array_equal(out, again)  # deterministic under a seed


def test_freq_mask_zeroes_one_band():
    x = batch() + 10.0
    out = augment.freq_mask(tf.constant(x), 6, SEED).numpy()
    for i in range(len(x)):
        zero_rows = np.where(np.all(out[i] == 0, axis=(1, 2)))[0]
        assert len(zero_rows) < 6
        if len(zero_rows):
            assert np.all(np.diff(zero_rows) == 1)  # one contiguous band
        keep = np.setdiff1d(np.arange(x.shape[1]), zero_rows)
        np.testing.assert_array_equal(out[i, keep], x[i, keep])


def test_freq_mixstyle_matches_numpy():
    x = batch()
    out = augment.freq_mixstyle(tf.constant(x), 1.0, 0.3, SEED).numpy()
    # recover lam and perm from the same stateless draws and recompute in NumPy
    s_apply, s_lam, s_perm = tf.unstack(tf.random.experimental.stateless_split(SEED, 3))
    lam = augment.sample_beta(s_lam, [len(x), 1, 1, 1], 0.3).numpy()
    perm = np.argsort(tf.random.stateless_uniform([len(x)], s_perm).numpy())
    mu = x.mean(axis=(2, 3), keepdims=True)
    sig = np.sqrt(x.var(axis=(2, 3), keepdims=True) + 1e-6)
    mu_mix = lam * mu + (1 - lam) * mu[perm]
    sig_mix = lam * sig + (1 - lam) * sig[perm]
    np.testing.assert_allclose(out, (x - mu) / sig * sig_mix + mu_mix, atol=1e-4)
    np.testing.assert_array_equal(augment.freq_mixstyle(tf.constant(x), 0.0, 0.3, SEED).numpy(), x)


def test_freq_mixstyle_probability():
    x = tf.constant(batch())
    applied = [not np.array_equal(augment.freq_mixstyle(x, 0.3, 0.3, tf.constant([k, 0], tf.int64)).numpy(), x.numpy())
               for k in range(300)]
    assert 0.2 < np.mean(applied) < 0.4


def test_freq_mixstyle_blocks_gradient_through_statistics():
    x = tf.constant(batch((2, 4, 3, 1)))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(augment.freq_mixstyle(x, 1.0, 0.3, SEED))
    g = tape.gradient(y, x).numpy()
    # with statistics held constant, dy/dx = sig_mix / sig per (sample, frequency): constant over time
    assert np.allclose(g, g[:, :, :1, :])


def test_mixup_mixes_labels_and_teacher_with_same_weights():
    x = batch((8, 4, 3, 1))
    y = np.eye(10, dtype=np.float32)[np.arange(8)]
    teacher = np.random.default_rng(1).normal(size=(8, 10)).astype(np.float32)
    xm, t = augment.mixup(tf.constant(x), {"label": tf.constant(y), "teacher": tf.constant(teacher)}, 0.4, SEED)
    xm, ym, tm = xm.numpy(), t["label"].numpy(), t["teacher"].numpy()
    for i in range(8):
        # the label reveals lam and the partner; the inputs and teacher logits must use the same
        lam = ym[i, i]
        j = ([k for k in np.nonzero(ym[i])[0] if k != i] or [i])[0]
        np.testing.assert_allclose(xm[i], lam * x[i] + (1 - lam) * x[j], atol=1e-5)
        np.testing.assert_allclose(tm[i], lam * teacher[i] + (1 - lam) * teacher[j], atol=1e-5)
    np.testing.assert_allclose(ym.sum(1), 1.0, atol=1e-6)


def test_device_ir_matches_numpy_convolution_and_adir_gate():
    rng = np.random.default_rng(0)
    wave = rng.normal(size=(4, 2000)).astype(np.float32)
    wave[1] *= 0.01  # a quiet clip: below the ADIR threshold
    irs = rng.normal(size=(3, 50)).astype(np.float32) * np.exp(-np.arange(50) / 10.0).astype(np.float32)
    device = tf.constant([0, 0, 1, 0])  # clip 2 is device b: not eligible
    eligible = tf.constant([True] + [False] * 8)
    threshold = 0.5 * float(np.mean(np.sum(wave**2, 1)))
    out = augment.device_ir(tf.constant(wave), device, tf.constant(irs), 1.0, SEED, eligible, threshold).numpy()
    np.testing.assert_array_equal(out[1], wave[1])  # ADIR: low energy, untouched
    np.testing.assert_array_equal(out[2], wave[2])  # not an eligible device
    for i in (0, 3):
        cands = []
        for ir in irs:
            ref = np.convolve(wave[i], ir)[:2000]
            ref *= np.sqrt(np.mean(wave[i] ** 2) / np.mean(ref**2))
            cands.append(np.abs(out[i] - ref).max())
        assert min(cands) < 1e-3  # one of the IRs, level preserved
        np.testing.assert_allclose(np.sqrt(np.mean(out[i] ** 2)), np.sqrt(np.mean(wave[i] ** 2)), rtol=1e-4)


def test_load_real_micirp():
    irs = augment.load_irs(shared_path("micirp"), 32000)
    assert irs.shape[0] == 66 and 0.3 * 32000 < irs.shape[1] <= 0.55 * 32000


def test_spectrum_correction_fit_transform_save(tmp_path):
    rng = np.random.default_rng(0)
    spectra = {d: rng.uniform(0.5, 2.0, (20, 33)) for d in ("a", "b", "c", "s1")}
    corr = SpectrumCorrection.fit(spectra, 32000, 64, "BC", "identity")
    ref = (spectra["b"].mean(0) + spectra["c"].mean(0)) / 2
    np.testing.assert_allclose(corr.vector("s1"), ref / spectra["s1"].mean(0), rtol=1e-5)
    np.testing.assert_allclose(corr.vector("s5"), 1.0)  # unseen device: identity policy
    mag = rng.uniform(size=(7, 33))
    before = mag.copy()
    out = corr.transform(mag, "a")
    np.testing.assert_array_equal(mag, before)  # input not mutated
    np.testing.assert_allclose(out, mag * corr.vector("a"), rtol=1e-6)
    corr.save(str(tmp_path / "c.npz"))
    back = SpectrumCorrection.load(str(tmp_path / "c.npz"))
    np.testing.assert_array_equal(back.table(), corr.table())
    mean_policy = SpectrumCorrection.fit(spectra, 32000, 64, "ABC", "mean")
    np.testing.assert_allclose(mean_policy.vector("s6"), np.mean([mean_policy.vector(d) for d in spectra], 0), rtol=1e-5)
    with pytest.raises(ValueError, match="reference device"):
        SpectrumCorrection.fit({"a": spectra["a"]}, 32000, 64, "BC")


def test_demo_device_irs_load_for_dir(tmp_path):
    from tfasc.augment import load_irs
    from tfasc.config import ConfigError
    from tfasc.data.synth import write_device_irs

    assert write_device_irs(str(tmp_path / "irs"), n=5) == 5
    irs = load_irs(str(tmp_path / "irs"), 32000)
    assert irs.shape == (5, round(2048 * 32000 / 44100)) or abs(irs.shape[1] - 2048 * 32000 / 44100) <= 1
    spectra = np.abs(np.fft.rfft(irs, axis=1))
    assert np.std(np.log(spectra[:, 20:200] + 1e-9), axis=0).mean() > 0.1  # the devices differ in colouration
    with pytest.raises(ConfigError, match="augment.dir.path: no .wav impulse responses"):
        load_irs(str(tmp_path / "empty"), 32000)
