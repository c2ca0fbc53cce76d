"""Audio decoding, resampling and the per-split waveform cache.

Decoding uses soundfile (16/24-bit PCM, float WAV, FLAC), mixes down to mono and
resamples with ``scipy.signal.resample_poly``. Every split is decoded once into
a memory-mapped ``.npy`` beside a JSON index, so epochs never re-decode.
"""
from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from math import gcd
from typing import Sequence

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from tfasc.data.tau import DataError, Record
from tfasc.io import atomic_write, write_json

log = logging.getLogger(__name__)

# A decoded clip may differ from the expected length by this fraction (resampling
# rounding, encoder padding); beyond it the file is reported as wrong-length.
LENGTH_TOLERANCE = 0.01


class AudioError(DataError):
    """A missing, empty, unreadable or wrong-length audio file."""


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling by the reduced ratio sr_out / sr_in."""
    if sr_in == sr_out:
        return x
    g = gcd(int(sr_in), int(sr_out))
    return resample_poly(x, sr_out // g, sr_in // g, axis=0)


def load_audio(path: str, sample_rate: int) -> np.ndarray:
    """Mono float32 waveform of ``path`` at ``sample_rate``; errors name the file."""
    if not os.path.isfile(path):
        raise AudioError(f"{path}: audio file is missing")
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: audio file is empty (0 bytes)")
    try:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError subclasses
        raise AudioError(f"{path}: cannot decode audio ({e})") from None
    if x.shape[0] == 0:
        raise AudioError(f"{path}: audio file has no samples")
    x = x.mean(axis=1)
    x = resample(x, sr, sample_rate).astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    return x


def fit_length(x: np.ndarray, n: int, path: str) -> np.ndarray:
    """Pad or trim a clip to ``n`` samples, refusing clips far from that length."""
    if abs(len(x) - n) > max(1, LENGTH_TOLERANCE * n):
        raise AudioError(
            f"{path}: wrong length: {len(x)} samples after resampling, expected {n} "
            f"(+-{LENGTH_TOLERANCE:.0%})"
        )
    if len(x) >= n:
        return x[:n]
    return np.pad(x, (0, n - len(x)))


def _fingerprint(root: str, records: Sequence[Record], sample_rate: int, n: int, dtype: str) -> str:
    h = hashlib.sha1()
    h.update(f"{os.path.abspath(root)}|{sample_rate}|{n}|{dtype}|v1".encode())
    for r in records:
        path = os.path.join(root, r.filename)
        try:
            st = os.stat(path)
            h.update(f"{r.filename}|{st.st_size}|{int(st.st_mtime)}\n".encode())
        except OSError:
            h.update(f"{r.filename}|missing\n".encode())
    return h.hexdigest()[:16]


class WaveCache:
    """Decoded, resampled waveforms of one list of records, memory-mapped.

    ``waves[i]`` is the clip of ``records[i]`` as ``dtype`` of length
    ``clip_seconds * sample_rate``.
    """

    def __init__(self, path: str, records: Sequence[Record], waves: np.ndarray, sample_rate: int):
        self.path = path
        self.records = list(records)
        self.waves = waves
        self.sample_rate = sample_rate
        self.index = {r.filename: i for i, r in enumerate(self.records)}

    def __len__(self):
        return len(self.records)

    @classmethod
    def build(
        cls,
        root: str,
        records: Sequence[Record],
        sample_rate: int,
        clip_seconds: float,
        cache_dir: str,
        dtype: str = "float32",
        name: str = "split",
        workers: int | None = None,
    ) -> "WaveCache":
        """Open the cache of these records, decoding them first if needed."""
        n = int(round(clip_seconds * sample_rate))
        key = _fingerprint(root, records, sample_rate, n, dtype)
        os.makedirs(cache_dir, exist_ok=True)
        npy = os.path.join(cache_dir, f"{name}-{sample_rate}-{key}.npy")
        idx = npy[:-4] + ".json"
        if os.path.isfile(npy) and os.path.isfile(idx):
            waves = np.load(npy, mmap_mode="r")
            if waves.shape == (len(records), n):
                log.info("cache hit: %s (%d clips)", npy, len(records))
                return cls(npy, records, waves, sample_rate)
        log.info("decoding %d clips of split '%s' at %d Hz into %s", len(records), name, sample_rate, npy)

        def write(tmp):
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(records), n))

            def one(i):
                path = os.path.join(root, records[i].filename)
                out[i] = fit_length(load_audio(path, sample_rate), n, path)

            with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as ex:
                list(ex.map(one, range(len(records))))
            out.flush()
            del out

        atomic_write(npy, write)
        write_json(idx, {"files": [r.filename for r in records], "sample_rate": sample_rate, "samples": n})
        return cls(npy, records, np.load(npy, mmap_mode="r"), sample_rate)


def check_audio(root: str, records: Sequence[Record], sample_rate: int, clip_seconds: float) -> list[str]:
    """Problems (one line each) with the audio of these records; empty when all decode."""
    n = int(round(clip_seconds * sample_rate))
    problems = []

    def one(r):
        path = os.path.join(root, r.filename)
        try:
            fit_length(load_audio(path, sample_rate), n, path)
        except AudioError as e:
            return str(e)
        return None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as ex:
        for p in ex.map(one, records):
            if p:
                problems.append(p)
    return problems

