import os

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from tfasc.data.audio import AudioError, WaveCache, fit_length, load_audio
from tfasc.data.tau import Record


def tone(sr, seconds=1.0, f=440.0, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * np.pi * f * t)
    return np.stack([x] * channels, 1) if channels > 1 else x


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_decode_formats_and_resample(tmp_path, subtype):
    p = str(tmp_path / f"x_{subtype}.wav")
    x = tone(44100)
    sf.write(p, x, 44100, subtype=subtype)
    y = load_audio(p, 32000)
    assert y.dtype == np.float32 and len(y) == 32000
    ref = resample_poly(x, 320, 441)  # 32000/44100 reduced
    tol = {"PCM_16": 1e-3, "PCM_24": 1e-5, "FLOAT": 1e-6}[subtype]
    assert np.max(np.abs(y - ref)) < tol


def test_flac_and_stereo_mixdown(tmp_path):
    p = str(tmp_path / "s.flac")
    left, right = tone(32000, f=300), tone(32000, f=700)
    sf.write(p, np.stack([left, right], 1), 32000, subtype="PCM_24")
    y = load_audio(p, 32000)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-5)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(AudioError, match=r"missing\.wav: audio file is missing"):
        load_audio(str(tmp_path / "missing.wav"), 32000)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: audio file is empty"):
        load_audio(str(tmp_path / "empty.wav"), 32000)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(AudioError, match=r"corrupt\.wav: cannot decode audio"):
        load_audio(str(tmp_path / "corrupt.wav"), 32000)
    p = str(tmp_path / "short.wav")
    sf.write(p, tone(44100, 0.5), 44100, subtype="PCM_24")
    with pytest.raises(AudioError, match=r"short\.wav: wrong length: 16000 samples after resampling, expected 32000"):
        fit_length(load_audio(p, 32000), 32000, p)


def test_cache_decodes_once_and_reports_bad_file(tmp_path):
    root = tmp_path / "ds"
    (root / "audio").mkdir(parents=True)
    recs = []
    for i in range(3):
        name = f"audio/park-lyon-1-{i}-0-a.wav"
        sf.write(str(root / name), tone(44100, f=200 + 100 * i), 44100, subtype="PCM_24")
        recs.append(Record(name, "park", "a", "lyon", "lyon-1"))
    cache_dir = str(tmp_path / "cache")
    c1 = WaveCache.build(str(root), recs, 32000, 1.0, cache_dir, name="train")
    assert c1.waves.shape == (3, 32000)
    np.testing.assert_allclose(c1.waves[2], load_audio(str(root / recs[2].filename), 32000), atol=1e-7)
    mtime = os.path.getmtime(c1.path)
    c2 = WaveCache.build(str(root), recs, 32000, 1.0, cache_dir, name="train")
    assert c2.path == c1.path and os.path.getmtime(c2.path) == mtime  # reused, not re-decoded
    # a corrupt file fails the whole build with its name and leaves no partial cache behind
    (root / recs[1].filename).write_bytes(b"garbage")
    with pytest.raises(AudioError, match="park-lyon-1-1-0-a.wav"):
        WaveCache.build(str(root), recs, 32000, 1.0, cache_dir, name="train")
    assert not [f for f in os.listdir(cache_dir) if f.startswith(".tmp")]
