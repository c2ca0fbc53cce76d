"""Log-mel features in TensorFlow (``tf.signal``), and a NumPy reference.

Pipeline for a batch of waveforms ``[B, N]``:

    frames   = frame(pad_end(x), win_length, hop_length)          # ceil(N / hop) frames
    mag      = |rfft(frames * window, n_fft)|                       # [B, T, n_fft/2+1]
    mag      = mag * correction[device]                             # spectrum correction hook
    mel      = (mag ** power) @ mel_matrix                          # [B, T, n_mels]
    logmel   = log(mel + log_offset)
    features = (logmel - norm_mean) / norm_std          (norm_mode "fixed")
             | (logmel - mean(logmel)) / std(logmel)    (norm_mode "clip", per clip)

returned as ``[B, n_mels, T, 1]`` (frequency is the image height). The mel matrix is
TensorFlow's HTK-style ``linear_to_mel_weight_matrix``; the firmware receives the
same matrix as a C array, so a board computes identical features.
"""
from __future__ import annotations



import numpy as np

from tfasc.config import FeatureConfig
from tfasc.keras import tf

CLIP_NORM_EPS = 1e-5


def num_frames(n_samples: int, hop_length: int) -> int:
    """Frames produced with end padding: ceil(N / hop)."""
    return -(-int(n_samples) // int(hop_length))


def input_shape(cfg: FeatureConfig, clip_seconds: float) -> tuple[int, int, int]:
    n = int(round(clip_seconds * cfg.sample_rate))
    return (cfg.n_mels, num_frames(n, cfg.hop_length), 1)


def fmax(cfg: FeatureConfig) -> float:
    return cfg.fmax or cfg.sample_rate / 2


def validate(cfg: FeatureConfig) -> None:
    from tfasc.config import ConfigError

    if cfg.win_length > cfg.n_fft:
        raise ConfigError(f"features.win_length: expected <= features.n_fft ({cfg.n_fft}), got {cfg.win_length}")
    if fmax(cfg) > cfg.sample_rate / 2 or cfg.fmin >= fmax(cfg):
        raise ConfigError(
            f"features.fmin/fmax: expected 0 <= fmin < fmax <= sample_rate/2, got {cfg.fmin}/{fmax(cfg)}"
        )


def mel_matrix(cfg: FeatureConfig) -> np.ndarray:
    """[n_fft/2+1, n_mels] float32 mel filterbank (TensorFlow's HTK formula)."""
    m = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=cfg.n_mels,
        num_spectrogram_bins=cfg.n_fft // 2 + 1,
        sample_rate=cfg.sample_rate,
        lower_edge_hertz=cfg.fmin,
        upper_edge_hertz=fmax(cfg),
    )
    return m.numpy()


def window(cfg: FeatureConfig) -> np.ndarray:
    fn = tf.signal.hann_window if cfg.window == "hann" else tf.signal.hamming_window
    return fn(cfg.win_length, periodic=True).numpy()


class LogMel:
    """The TensorFlow front end; call on ``[B, N]`` float waveforms."""

    def __init__(self, cfg: FeatureConfig, correction: np.ndarray | None = None):
        validate(cfg)
        self.cfg = cfg
        self.mel = tf.constant(mel_matrix(cfg))
        self.correction = None if correction is None else tf.constant(correction, tf.float32)

    def magnitude(self, wave):
        c = self.cfg
        fn = tf.signal.hann_window if c.window == "hann" else tf.signal.hamming_window
        stft = tf.signal.stft(wave, c.win_length, c.hop_length, fft_length=c.n_fft, window_fn=fn, pad_end=True)
        return tf.abs(stft)

    def from_magnitude(self, mag, device=None):
        c = self.cfg
        if self.correction is not None:
            if device is None:
                raise ValueError("spectrum correction needs the device index of every clip")
            mag = mag * tf.gather(self.correction, device)[:, None, :]
        power = mag if c.power == 1.0 else tf.square(mag)
        mel = tf.tensordot(power, self.mel, axes=1)
        x = tf.math.log(mel + c.log_offset)
        if c.norm_mode == "fixed":
            x = (x - c.norm_mean) / c.norm_std
        else:
            mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
            std = tf.math.reduce_std(x, axis=[1, 2], keepdims=True)
            x = (x - mean) / (std + CLIP_NORM_EPS)
        return tf.transpose(x, [0, 2, 1])[..., None]

    def __call__(self, wave, device=None):
        return self.from_magnitude(self.magnitude(wave), device)


# ------------------------------------------------------------------ NumPy reference
def np_hz_to_mel(f):
    return 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)


def np_mel_matrix(cfg: FeatureConfig) -> np.ndarray:
    """Independent NumPy HTK triangular filterbank (bin 0 weighted zero, as TF does)."""
    n_bins = cfg.n_fft // 2 + 1
    freqs = np.linspace(0.0, cfg.sample_rate / 2, n_bins)
    edges = np.linspace(np_hz_to_mel(cfg.fmin), np_hz_to_mel(fmax(cfg)), cfg.n_mels + 2)
    m = np_hz_to_mel(freqs)[:, None]
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    w = np.maximum(0.0, np.minimum((m - lower) / (centre - lower), (upper - m) / (upper - centre)))
    w[0] = 0.0
    return w


def np_window(cfg: FeatureConfig) -> np.ndarray:
    n = np.arange(cfg.win_length)
    a = 0.5 if cfg.window == "hann" else 0.54
    return a - (1 - a) * np.cos(2 * np.pi * n / cfg.win_length)


def np_magnitude(cfg: FeatureConfig, wave: np.ndarray) -> np.ndarray:
    """[T, n_fft/2+1] STFT magnitude of one waveform (float64)."""
    wave = np.asarray(wave, np.float64)
    t = num_frames(len(wave), cfg.hop_length)
    padded = np.zeros((t - 1) * cfg.hop_length + cfg.win_length)
    padded[: len(wave)] = wave
    idx = np.arange(cfg.win_length)[None, :] + cfg.hop_length * np.arange(t)[:, None]
    return np.abs(np.fft.rfft(padded[idx] * np_window(cfg), n=cfg.n_fft, axis=1))


def np_logmel(cfg: FeatureConfig, wave: np.ndarray, correction: np.ndarray | None = None) -> np.ndarray:
    """[n_mels, T] features of one waveform; ``correction`` is that device's vector."""
    mag = np_magnitude(cfg, wave)
    if correction is not None:
        mag = mag * correction[None, :]
    mel = (mag**cfg.power) @ np_mel_matrix(cfg)
    x = np.log(mel + cfg.log_offset)
    if cfg.norm_mode == "fixed":
        x = (x - cfg.norm_mean) / cfg.norm_std
    else:
        x = (x - x.mean()) / (x.std() + CLIP_NORM_EPS)
    return x.T


__all__ = ["LogMel", "np_logmel", "mel_matrix", "num_frames", "input_shape"]
