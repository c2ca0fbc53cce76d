"""Spectrum correction (seed 001 sec. 2.1; Kosmider's SRPOL system).

For each device d: the device spectrum S_d is the mean over N clips of each
clip's time-averaged STFT magnitude; the reference spectrum R is the mean of
the reference devices' spectra (``ABC`` or ``BC``); the device's coefficient
vector is c_d = R / S_d, one coefficient per STFT bin, applied to the magnitude
before the mel filterbank. Devices without coefficients follow the ``unseen``
policy: ``identity`` (all ones) or ``mean`` (mean of the known vectors), or get
their own vector from a handful of their unlabeled clips with :meth:`calibrate`
(``tfasc calibrate``), which needs the stored reference spectrum R.
"""
from __future__ import annotations

import numpy as np

from tfasc.data.tau import DEVICES
from tfasc.io import atomic_write

REFERENCES = {"ABC": ("a", "b", "c"), "BC": ("b", "c")}


class SpectrumCorrection:
    """Fitted per-device coefficients; ``table()`` gives one row per device in DEVICES order."""

    def __init__(self, coefficients: dict[str, np.ndarray], sample_rate: int, n_fft: int, reference: str, unseen: str,
                 reference_spectrum: np.ndarray | None = None):
        self.coefficients = {k: np.asarray(v, np.float32) for k, v in coefficients.items()}
        self.reference_spectrum = None if reference_spectrum is None else np.asarray(reference_spectrum, np.float64)
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.reference = reference
        self.unseen = unseen

    @classmethod
    def fit(cls, mean_spectra: dict[str, np.ndarray], sample_rate: int, n_fft: int, reference: str = "ABC", unseen: str = "identity"):
        """``mean_spectra[d]`` is ``[n_clips, n_bins]``: time-averaged STFT magnitudes of device d's clips."""
        refs = REFERENCES[reference]
        missing = [d for d in refs if d not in mean_spectra]
        if missing:
            raise ValueError(f"spectrum correction Ref.{reference}: no clips of reference device(s) {missing}")
        device_spec = {d: np.mean(np.asarray(s, np.float64), axis=0) for d, s in mean_spectra.items()}
        ref = np.mean([device_spec[d] for d in refs], axis=0)
        coefs = {d: ref / np.maximum(s, 1e-10) for d, s in device_spec.items()}
        return cls(coefs, sample_rate, n_fft, reference, unseen, ref)

    def calibrate(self, device: str, mean_spectra: np.ndarray) -> "SpectrumCorrection":
        """A new correction with ``device``'s vector R / S fitted from ``[n_clips, n_bins]`` of its clips."""
        if self.reference_spectrum is None:
            raise ValueError("this correction artifact has no reference spectrum; fit it again to calibrate new devices")
        s = np.mean(np.asarray(mean_spectra, np.float64), axis=0)
        if s.shape != self.reference_spectrum.shape:
            raise ValueError(f"calibration spectra have {s.shape[0]} bins, the correction {self.reference_spectrum.shape[0]}")
        coefs = {**self.coefficients, device: self.reference_spectrum / np.maximum(s, 1e-10)}
        return SpectrumCorrection(coefs, self.sample_rate, self.n_fft, self.reference, self.unseen, self.reference_spectrum)

    def vector(self, device: str) -> np.ndarray:
        if device in self.coefficients:
            return self.coefficients[device]
        if self.unseen == "mean":
            return np.mean(list(self.coefficients.values()), axis=0).astype(np.float32)
        return np.ones(self.n_fft // 2 + 1, np.float32)

    def table(self) -> np.ndarray:
        """[len(DEVICES), n_bins] coefficient rows indexed by device id."""
        return np.stack([self.vector(d) for d in DEVICES])

    def transform(self, magnitude: np.ndarray, device: str) -> np.ndarray:
        """A corrected copy of a ``[T, n_bins]`` magnitude spectrogram (the input is not changed)."""
        return np.asarray(magnitude) * self.vector(device)[None, :]

    def save(self, path: str) -> None:
        def write(tmp):
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    devices=np.array(sorted(self.coefficients)),
                    coefficients=np.stack([self.coefficients[d] for d in sorted(self.coefficients)]),
                    sample_rate=self.sample_rate,
                    n_fft=self.n_fft,
                    reference=self.reference,
                    unseen=self.unseen,
                    **({} if self.reference_spectrum is None else {"reference_spectrum": self.reference_spectrum}),
                )

        atomic_write(path, write)

    @classmethod
    def load(cls, path: str) -> "SpectrumCorrection":
        z = np.load(path)
        coefs = dict(zip(z["devices"].tolist(), z["coefficients"]))
        ref = z["reference_spectrum"] if "reference_spectrum" in z.files else None
        return cls(coefs, int(z["sample_rate"]), int(z["n_fft"]), str(z["reference"]), str(z["unseen"]), ref)
