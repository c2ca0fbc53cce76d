"""Augmentations as small pure TensorFlow functions on batches.

Order in the pipeline: waveform (DIR/ADIR) -> STFT -> spectrum correction ->
mel/log -> spectrogram (time roll, frequency mask) -> batch (Freq-MixStyle, mixup).
Every function takes an explicit ``seed`` pair for ``tf.random.stateless_*`` so
results are reproducible; spectrograms are ``[B, F, T, C]``.
"""
from __future__ import annotations

import numpy as np

from tfasc.keras import tf


def _split(seed, n):
    return tf.unstack(tf.random.experimental.stateless_split(seed, n))


def time_roll(x, max_frames: int, seed):
    """Roll each spectrogram along time by an integer drawn from [-max, max]."""
    if max_frames <= 0:
        return x
    b = tf.shape(x)[0]
    shifts = tf.random.stateless_uniform([b], seed, -max_frames, max_frames + 1, dtype=tf.int32)
    t = tf.shape(x)[2]
    # out[:, :, j] = x[:, :, (j - shift) mod T], the same as np.roll(x, shift, axis=2)
    idx = tf.math.floormod(tf.range(t)[None, :] - shifts[:, None], t)
    return tf.gather(x, idx, axis=2, batch_dims=1)


def freq_mask(x, max_bins: int, seed):
    """Zero one band of width in [0, max_bins) at a random position, per example (SpecAugment)."""
    if max_bins <= 0:
        return x
    s1, s2 = _split(seed, 2)
    b, f = tf.shape(x)[0], tf.shape(x)[1]
    width = tf.random.stateless_uniform([b], s1, 0, max_bins, dtype=tf.int32)
    start = tf.cast(tf.random.stateless_uniform([b], s2) * tf.cast(f - width, tf.float32), tf.int32)
    bins = tf.range(f)[None, :]
    keep = tf.logical_or(bins < start[:, None], bins >= (start + width)[:, None])
    return x * tf.cast(keep, x.dtype)[:, :, None, None]


def sample_beta(seed, shape, alpha: float):
    """Beta(alpha, alpha) as G1 / (G1 + G2) with stateless Gamma draws."""
    s1, s2 = _split(seed, 2)
    g1 = tf.random.stateless_gamma(shape, s1, alpha)
    g2 = tf.random.stateless_gamma(shape, s2, alpha)
    return g1 / (g1 + g2)


def freq_mixstyle(x, p: float, alpha: float, seed, eps: float = 1e-6):
    """Freq-MixStyle (Kim et al.; seed 000 II-C1).

    With probability ``p`` per batch: per sample and frequency bin, take the mean
    and std over (time, channels), normalise, and re-style with statistics mixed
    with those of a randomly permuted sample:

        mu, sig  = mean/std of x over (T, C)             (no gradient through them)
        lam      ~ Beta(alpha, alpha), per sample
        mu_mix   = lam * mu + (1 - lam) * mu[perm]
        sig_mix  = lam * sig + (1 - lam) * sig[perm]
        out      = (x - mu) / sig * sig_mix + mu_mix
    """
    if p <= 0:
        return x
    s_apply, s_lam, s_perm = _split(seed, 3)
    b = tf.shape(x)[0]
    mu = tf.stop_gradient(tf.reduce_mean(x, axis=[2, 3], keepdims=True))
    var = tf.stop_gradient(tf.math.reduce_variance(x, axis=[2, 3], keepdims=True))
    sig = tf.sqrt(var + eps)
    lam = sample_beta(s_lam, [b, 1, 1, 1], alpha)
    perm = tf.argsort(tf.random.stateless_uniform([b], s_perm))
    mu_mix = lam * mu + (1 - lam) * tf.gather(mu, perm)
    sig_mix = lam * sig + (1 - lam) * tf.gather(sig, perm)
    mixed = (x - mu) / sig * sig_mix + mu_mix
    apply = tf.random.stateless_uniform([], s_apply) < p
    return tf.where(apply, mixed, x)


def mixup(x, targets: dict, alpha: float, seed):
    """mixup (Zhang et al.): x' = lam x + (1 - lam) x[perm], every target mixed with the same lam and perm.

    ``targets`` maps names to ``[B, K]`` float tensors (one-hot labels, teacher logits);
    one lam ~ Beta(alpha, alpha) per sample.
    """
    if alpha <= 0:
        return x, targets
    s_lam, s_perm = _split(seed, 2)
    b = tf.shape(x)[0]
    lam = sample_beta(s_lam, [b], alpha)
    perm = tf.argsort(tf.random.stateless_uniform([b], s_perm))

    def mix(t):
        shape = tf.concat([[b], tf.ones([tf.rank(t) - 1], tf.int32)], 0)
        l = tf.reshape(lam, shape)
        return l * t + (1 - l) * tf.gather(t, perm)

    return mix(x), {k: mix(v) for k, v in targets.items()}


# ----------------------------------------------------------------- DIR / ADIR
def clip_energy(wave):
    """E = sum of squared samples of each waveform (seed 000 eq. 3)."""
    return tf.reduce_sum(tf.square(wave), axis=-1)


def convolve_ir(wave, ir):
    """'same'-length causal convolution of ``[B, N]`` waveforms with ``[B, K]`` impulse responses via FFT,
    rescaled so each output keeps the input's RMS level."""
    n = tf.shape(wave)[-1]
    k = tf.shape(ir)[-1]
    size = n + k - 1
    fft_len = tf.cast(2 ** tf.math.ceil(tf.math.log(tf.cast(size, tf.float32)) / tf.math.log(2.0)), tf.int32)
    y = tf.signal.irfft(tf.signal.rfft(wave, [fft_len]) * tf.signal.rfft(ir, [fft_len]), [fft_len])[:, :n]
    rms_in = tf.sqrt(tf.reduce_mean(tf.square(wave), -1, keepdims=True))
    rms_out = tf.sqrt(tf.reduce_mean(tf.square(y), -1, keepdims=True))
    return y * rms_in / (rms_out + 1e-12)


def device_ir_subset(wave, device, irs, p: float, seed, eligible, threshold=None):
    """The clips DIR / ADIR convolves and their convolved waveforms: ``(idx [m], convolved [m, N])``.

    Each clip whose device is ``eligible`` (a boolean vector over device indices) is,
    with probability ``p``, convolved with an impulse response drawn uniformly from
    ``irs`` ``[n_irs, K]``. With ``threshold`` set (ADIR) only clips whose energy
    E = sum(x^2) exceeds it are convolved. Only the chosen clips are convolved, and
    their output keeps each clip's RMS level.
    """
    s_p, s_ir = _split(seed, 2)
    b = tf.shape(wave)[0]
    pick = tf.random.stateless_uniform([b], s_ir, 0, tf.shape(irs)[0], dtype=tf.int32)
    do = tf.logical_and(tf.random.stateless_uniform([b], s_p) < p, tf.gather(eligible, device))
    if threshold is not None:
        do = tf.logical_and(do, clip_energy(wave) > threshold)
    idx = tf.where(do)[:, 0]
    return idx, convolve_ir(tf.gather(wave, idx), tf.gather(irs, tf.gather(pick, idx)))


def device_ir(wave, device, irs, p: float, seed, eligible, threshold=None):
    """DIR / ADIR augmentation (seed 000 II-C2) of a batch: see :func:`device_ir_subset`."""
    if p <= 0:
        return wave
    idx, convolved = device_ir_subset(wave, device, irs, p, seed, eligible, threshold)
    return tf.tensor_scatter_nd_update(wave, idx[:, None], convolved)


def load_irs(folder: str, sample_rate: int) -> np.ndarray:
    """All WAV impulse responses in ``folder``, mono, resampled, zero-padded to one length."""
    import glob
    import os

    from tfasc.data.audio import load_audio

    paths = sorted(glob.glob(os.path.join(folder, "*.wav")))
    if not paths:
        from tfasc.config import ConfigError

        raise ConfigError(f"augment.dir.path: no .wav impulse responses in {folder!r} (expected e.g. the 66 MicIRP "
                          "responses; set augment.dir.p: 0 to train without DIR)")
    irs = [load_audio(p, sample_rate) for p in paths]
    out = np.zeros((len(irs), max(len(i) for i in irs)), np.float32)
    for i, ir in enumerate(irs):
        out[i, : len(ir)] = ir
    return out
