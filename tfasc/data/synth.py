"""A small synthetic multi-device scene dataset in the exact TAU22 Mobile layout.

Ten scenes differ in the spectral envelope of their background and in their
event types (tones, chirps, clicks, hum, noise bursts, babble). Each source
segment is "recorded" in parallel by devices a, b, c, s1-s6, every device with
its own smooth frequency response, band limits, gain and noise floor. As in
TAU22, s4-s6 appear only in the test split, and b, c, s1-s3 record fewer
training clips than a. Files are 1-s, 24-bit, 44.1 kHz mono WAV.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import soundfile as sf

from tfasc.data.tau import DEVICES, SCENES

log = logging.getLogger(__name__)

SR = 44100
CITIES = ("barcelona", "helsinki", "lisbon", "london", "lyon", "milan", "paris", "prague", "stockholm", "vienna", "amsterdam", "berlin")

# Per scene: background envelope (centre Hz, width in octaves, tilt dB/oct) and events.
SCENE_SPECS = {
    "airport": dict(bg=(500, 2.0, -3), events=(("tone", 2, (400, 900)), ("babble", 1, (300, 3000)))),
    "bus": dict(bg=(120, 1.5, -6), events=(("hum", 1, (70, 130)), ("click", 2, (1000, 4000)))),
    "metro": dict(bg=(250, 1.5, -4), events=(("tone", 1, (2000, 4500)), ("hum", 1, (150, 300)))),
    "metro_station": dict(bg=(400, 2.5, -2), events=(("burst", 2, (200, 2000)), ("tone", 1, (600, 1200)))),
    "park": dict(bg=(2000, 2.0, -1), events=(("chirp", 4, (3000, 7000)),)),
    "public_square": dict(bg=(800, 3.0, -2), events=(("babble", 1, (300, 3000)), ("chirp", 1, (2500, 5000)))),
    "shopping_mall": dict(bg=(600, 2.0, -3), events=(("babble", 2, (250, 3500)), ("tone", 1, (800, 1600)))),
    "street_pedestrian": dict(bg=(900, 2.5, -2), events=(("click", 3, (500, 2500)), ("babble", 1, (300, 3000)))),
    "street_traffic": dict(bg=(300, 2.0, -4), events=(("burst", 3, (100, 1500)), ("hum", 1, (40, 90)))),
    "tram": dict(bg=(200, 1.5, -5), events=(("tone", 2, (1100, 1400)), ("hum", 1, (90, 180)))),
}


def _envelope(freqs: np.ndarray, centre: float, width_oct: float, tilt_db_oct: float) -> np.ndarray:
    """Magnitude envelope: a log-frequency Gaussian bump on a spectral tilt."""
    octs = np.log2(np.maximum(freqs, 20.0) / centre)
    db = 20.0 * np.exp(-0.5 * (octs / width_oct) ** 2) + tilt_db_oct * np.maximum(octs, 0)
    return 10 ** (db / 20)


def _coloured_noise(rng, n: int, env: np.ndarray) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n)) * env
    return np.fft.irfft(spec, n)


def _event(rng, kind: str, n: int, fr: tuple, t: np.ndarray) -> np.ndarray:
    lo, hi = fr
    start = rng.integers(0, n // 2)
    dur = int(rng.uniform(0.1, 0.5) * SR)
    idx = slice(start, min(n, start + dur))
    tt = t[idx] - t[start]
    out = np.zeros(n)
    env = np.hanning(len(tt) * 2)[: len(tt)][::-1] if kind in ("click", "tone") else np.hanning(len(tt))
    if kind == "tone":  # harmonic tone with a decaying envelope (bells, announcements)
        f0 = rng.uniform(lo, hi)
        out[idx] = env * sum(np.sin(2 * np.pi * k * f0 * tt) / k for k in (1, 2, 3))
    elif kind == "hum":  # engine hum: low harmonic series over the whole clip
        f0 = rng.uniform(lo, hi)
        out[:] = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.28)) / k for k in range(1, 6))
        out *= 0.6
    elif kind == "chirp":  # bird-like fast FM sweeps
        f0, f1 = rng.uniform(lo, hi, 2)
        phase = 2 * np.pi * (f0 * tt + 0.5 * (f1 - f0) * tt**2 / max(tt[-1], 1e-3))
        out[idx] = env * np.sin(phase) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(8, 20) * tt))
    elif kind == "click":  # footsteps / rattles: trains of short decaying clicks
        period = int(SR / rng.uniform(2, 8))
        for p in range(start, n, period):
            m = min(n - p, 400)
            out[p : p + m] += rng.standard_normal(m) * np.exp(-np.arange(m) / 60.0)
        f = np.fft.rfftfreq(n, 1 / SR)
        out = np.fft.irfft(np.fft.rfft(out) * ((f > lo) & (f < hi)), n)
    elif kind in ("burst", "babble"):  # band-limited noise, slowly (burst) or syllabically (babble) modulated
        f = np.fft.rfftfreq(n, 1 / SR)
        band = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * ((f > lo) & (f < hi)), n)
        rate = rng.uniform(3, 6) if kind == "babble" else rng.uniform(0.5, 1.5)
        out = band * (0.5 + 0.5 * np.sin(2 * np.pi * rate * t + rng.uniform(0, 6.28))) ** 2
    return out / (np.std(out) + 1e-9)


def scene_clip(scene: str, rng: np.random.Generator, n: int = SR) -> np.ndarray:
    """One second of a synthetic scene (before any device)."""
    spec = SCENE_SPECS[scene]
    t = np.arange(n) / SR
    freqs = np.fft.rfftfreq(n, 1 / SR)
    centre, width, tilt = spec["bg"]
    centre *= 2 ** rng.uniform(-0.3, 0.3)  # location / segment variation
    x = _coloured_noise(rng, n, _envelope(freqs, centre, width, tilt))
    x /= np.std(x) + 1e-9
    for kind, count, fr in spec["events"]:
        for _ in range(rng.poisson(count) + 1):
            x += rng.uniform(0.3, 1.0) * _event(rng, kind, n, fr, t)
    return x


def device_response(device: str, freqs: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(magnitude response, gain, noise level) of a synthetic recording device."""
    if device == "a":
        return np.ones_like(freqs), 1.0, 0.002
    seed = DEVICES.index(device) * 7919
    rng = np.random.default_rng(seed)
    octs = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    db = np.zeros_like(freqs)
    for _ in range(3):  # a few resonances / dips
        db += rng.uniform(-9, 9) * np.exp(-0.5 * ((octs - rng.uniform(-3, 3)) / rng.uniform(0.3, 1.0)) ** 2)
    db += rng.uniform(-3, 3) * octs  # tilt
    lo, hi = rng.uniform(80, 400), rng.uniform(5000, 16000)
    resp = 10 ** (db / 20) / np.sqrt(1 + (lo / np.maximum(freqs, 1.0)) ** 4) / np.sqrt(1 + (freqs / hi) ** 8)
    return resp, float(rng.uniform(0.4, 1.2)), float(rng.uniform(0.003, 0.02))


def record(x: np.ndarray, device: str, rng: np.random.Generator) -> np.ndarray:
    n = len(x)
    resp, gain, noise = device_response(device, np.fft.rfftfreq(n, 1 / SR))
    y = np.fft.irfft(np.fft.rfft(x) * resp, n) * gain
    return y + noise * rng.standard_normal(n) * np.std(y)


IR_FOLDER = "device_irs"


def write_device_irs(folder: str, n: int = 16, seed: int = 0, length: int = 2048) -> int:
    """Synthetic device impulse responses for DIR on the demo (the real MicIRP set is not shipped).

    Each is a linear-phase FIR of ``length`` taps at 44.1 kHz whose magnitude response is a
    random device colouration (resonances, dips, tilt, band limits) like the demo's devices,
    but from other seeds, so the demo's DIR simulates devices it has not seen.
    """
    os.makedirs(folder, exist_ok=True)
    freqs = np.fft.rfftfreq(length, 1 / SR)
    for k in range(n):
        rng = np.random.default_rng([seed, 4242, k])
        octs = np.log2(np.maximum(freqs, 20.0) / 1000.0)
        db = sum(rng.uniform(-9, 9) * np.exp(-0.5 * ((octs - rng.uniform(-3, 3)) / rng.uniform(0.3, 1.0)) ** 2)
                 for _ in range(3)) + rng.uniform(-3, 3) * octs
        lo, hi = rng.uniform(80, 400), rng.uniform(5000, 16000)
        resp = 10 ** (db / 20) / np.sqrt(1 + (lo / np.maximum(freqs, 1.0)) ** 4) / np.sqrt(1 + (freqs / hi) ** 8)
        h = np.roll(np.fft.irfft(resp, length), length // 2) * np.hanning(length)
        sf.write(os.path.join(folder, f"ir_{k:02d}.wav"), (h / np.max(np.abs(h))).astype(np.float32), SR, subtype="FLOAT")
    return n


def synthesize(root: str, cities: int = 3, locations_per_city: int = 2, segments_per_location: int = 6, seed: int = 0) -> dict:
    """Write the demo dataset under ``root``; returns {split: n_clips}."""
    audio_dir = os.path.join(root, "audio")
    os.makedirs(audio_dir, exist_ok=True)
    os.makedirs(os.path.join(root, "evaluation_setup"), exist_ok=True)
    meta, train, test = [], [], []
    train_devices = ("b", "c", "s1", "s2", "s3")
    for si, scene in enumerate(SCENES):
        for ci, city in enumerate(CITIES[:cities]):
            for li in range(locations_per_city):
                loc_id = 100 * (si + 1) + 10 * ci + li
                is_test = li % 2 == 1  # every other location of a city is a test location
                for seg in range(segments_per_location):
                    if is_test and seg % 2:  # test locations: half the segments, every device
                        continue
                    rng = np.random.default_rng([seed, si, ci, li, seg])
                    src = scene_clip(scene, rng)
                    if is_test:
                        devices = DEVICES
                    else:  # device a records everything; each other seen device about half
                        devices = ("a",) + tuple(d for k, d in enumerate(train_devices) if (seg + k) % 2 == 0)
                    for dev in devices:
                        name = f"audio/{scene}-{city}-{loc_id}-{seg}-0-{dev}.wav"
                        y = record(src, dev, np.random.default_rng([seed, si, ci, li, seg, DEVICES.index(dev)]))
                        y = 0.5 * y / (np.max(np.abs(y)) + 1e-9) * rng.uniform(0.3, 1.0)
                        sf.write(os.path.join(root, name), y.astype(np.float32), SR, subtype="PCM_24")
                        meta.append((name, scene, f"{city}-{loc_id}", dev))
                        (test if is_test else train).append((name, scene))
    _write_tsv(os.path.join(root, "meta.csv"), ("filename", "scene_label", "identifier", "source_label"), meta)
    setup = os.path.join(root, "evaluation_setup")
    _write_tsv(os.path.join(setup, "fold1_train.csv"), ("filename", "scene_label"), train)
    _write_tsv(os.path.join(setup, "fold1_evaluate.csv"), ("filename", "scene_label"), test)
    _write_tsv(os.path.join(setup, "fold1_test.csv"), ("filename",), [(f,) for f, _ in test])
    order = np.random.default_rng(seed).permutation(len(train))
    for pct in (5, 10, 25, 50, 100):  # DCASE2024-style nested subsets of the training list
        keep = sorted(order[: max(1, len(train) * pct // 100)])
        _write_tsv(os.path.join(root, f"split{pct}.csv"), ("filename", "scene_label"), [train[i] for i in keep])
    write_device_irs(os.path.join(root, IR_FOLDER), seed=seed)
    log.info("synthesized %d training and %d test clips under %s", len(train), len(test), root)
    return {"train": len(train), "test": len(test)}


def _write_tsv(path: str, header: tuple, rows) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("\t".join(header) + "\n")
        for row in rows:
            fh.write("\t".join(row) + "\n")
