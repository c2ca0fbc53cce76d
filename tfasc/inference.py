"""Using a finished run: classify recordings of any length, calibrate a new device.

A recording is cut into windows of the run's clip length (``data.clip_seconds``):
consecutive, non-overlapping windows, plus one final window ending at the last
sample when the remainder is at least half a window (shorter remainders are
dropped; a recording shorter than one window is zero-padded). The recording's
probabilities are the mean of its windows' probabilities.
"""
from __future__ import annotations

import os

import numpy as np

from tfasc.config import ConfigError, load_config
from tfasc.correction import SpectrumCorrection
from tfasc.data.audio import load_audio
from tfasc.data.tau import SCENES
from tfasc.features import LogMel

BACKENDS = ("float", "litert", "tflm")


class RunError(ValueError):
    """A run directory lacks what the command needs."""


class Run:
    """The artifacts of one run directory."""

    def __init__(self, run_dir: str):
        self.dir = run_dir
        path = os.path.join(run_dir, "config.yaml")
        if not os.path.isfile(path):
            raise RunError(f"{run_dir}: not a tfasc run directory (no config.yaml); train one with `tfasc train CONFIG`")
        try:
            self.cfg = load_config(path)
        except ConfigError as e:
            raise RunError(f"{path}: {e}") from None

    def path(self, *parts) -> str:
        return os.path.join(self.dir, *parts)

    @property
    def clip_samples(self) -> int:
        return int(round(self.cfg.data.clip_seconds * self.cfg.features.sample_rate))

    def correction(self) -> SpectrumCorrection | None:
        if not self.cfg.features.correction.applies:
            return None
        path = self.path("correction.npz")
        if not os.path.isfile(path):
            raise RunError(f"{path}: missing; the run enables spectrum correction but has no fitted coefficients")
        return SpectrumCorrection.load(path)

    def correction_vector(self, device: str | None) -> np.ndarray | None:
        """The device's correction row: fitted, calibrated (``calibrated/<device>.npz``) or the unseen policy."""
        corr = self.correction()
        if corr is None:
            return None
        if device and device not in corr.coefficients:
            cal = self.path("calibrated", f"{device}.npz")
            if os.path.isfile(cal):
                corr = SpectrumCorrection.load(cal)
        return corr.vector(device or "")

    def classifier(self, backend: str):
        """``f(features [n, F, T, 1]) -> probabilities [n, C]`` for one backend."""
        if backend not in BACKENDS:
            raise RunError(f"backend {backend!r}: expected one of {list(BACKENDS)}")
        if backend == "float":
            path = self.path("model.keras")
            if not os.path.isfile(path):
                raise RunError(f"{path}: missing; the float model is written when training finishes")
            from tfasc.train import load_model

            model = load_model(path)
            return lambda x: model.predict(x, verbose=0, batch_size=64)
        path = self.path("model_int8.tflite")
        if not os.path.isfile(path):
            raise RunError(f"{path}: missing; enable export (export.enabled: true) and run `tfasc export {self.dir}`")
        from tflm_export.verify import Runner

        from tfasc.train import windowed_predict

        with open(path, "rb") as fh:
            runner = Runner(fh.read(), backend)
        frames = int(runner.inp["shape"][2])  # a windowed export averages its windows
        return lambda x: windowed_predict(runner.predict, x, frames)


def window_starts(length: int, n: int) -> list[int]:
    """First samples of the analysis windows of ``n`` samples over ``length`` (see the module docstring)."""
    k = length // n
    starts = [i * n for i in range(k)]
    if k == 0 or length - k * n >= n // 2:
        starts.append(max(0, length - n))
    return starts


def windows(wave: np.ndarray, n: int) -> np.ndarray:
    """``[k, n]`` analysis windows of a 1-D waveform; a recording shorter than ``n`` is zero-padded."""
    wave = np.asarray(wave, np.float32)
    padded = np.pad(wave, (0, max(0, n - len(wave))))
    return np.stack([padded[s : s + n] for s in window_starts(len(wave), n)])


class Predictor:
    """Scene probabilities for recordings of any length, with one backend of a run."""

    def __init__(self, run: Run, backend: str = "float"):
        self.run = run
        self.backend = backend
        self.classify = run.classifier(backend)

    def features(self, wave: np.ndarray, device: str | None = None) -> np.ndarray:
        from tfasc.keras import tf

        vec = self.run.correction_vector(device)
        fe = LogMel(self.run.cfg.features, None if vec is None else vec[None])
        w = windows(wave, self.run.clip_samples)
        dev = None if vec is None else tf.zeros([len(w)], tf.int32)
        return fe(tf.constant(w), dev).numpy()

    def predict_file(self, path: str, device: str | None = None) -> dict:
        """``{"file", "scene", "probabilities", "windows": [{"start_s", "scene", "probabilities"}]}``."""
        wave = load_audio(path, self.run.cfg.features.sample_rate)
        probs = np.asarray(self.classify(self.features(wave, device)), np.float64)
        probs = probs / probs.sum(1, keepdims=True)
        mean = probs.mean(0)
        sr = self.run.cfg.features.sample_rate
        starts = [s / sr for s in window_starts(len(wave), self.run.clip_samples)]
        return {
            "file": path, "backend": self.backend, "device": device, "seconds": len(wave) / sr,
            "scene": SCENES[int(np.argmax(mean))], "probabilities": dict(zip(SCENES, mean.round(6).tolist())),
            "windows": [{"start_s": round(s, 3), "scene": SCENES[int(np.argmax(p))],
                         "probabilities": dict(zip(SCENES, p.round(6).tolist()))} for s, p in zip(starts, probs)],
        }


def calibrate(run: Run, device: str, files: list[str], out: str | None = None) -> tuple[str, int]:
    """Fit ``device``'s spectrum-correction vector from its unlabeled recordings; returns (path, windows used).

    Writes a new artifact (``<run>/calibrated/<device>.npz`` by default) holding the run's
    coefficients plus the new device's; the run's own ``correction.npz`` is not changed.
    """
    from tfasc.keras import tf

    corr = run.correction()
    if corr is None:
        raise RunError(f"{run.dir}: the run does not use spectrum correction (features.correction.enabled: false)")
    if not files:
        raise RunError("calibrate: give at least one recording of the device")
    fe = LogMel(run.cfg.features)
    spectra = []
    for f in files:
        w = windows(load_audio(f, run.cfg.features.sample_rate), run.clip_samples)
        spectra.append(tf.reduce_mean(fe.magnitude(tf.constant(w)), axis=1).numpy())
    spectra = np.concatenate(spectra)
    new = corr.calibrate(device, spectra)
    out = out or run.path("calibrated", f"{device}.npz")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    new.save(out)
    return out, len(spectra)
