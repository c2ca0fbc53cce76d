"""The user-facing commands on a small finished run: evaluate, export, predict, calibrate, analyze."""
import json
import os

import numpy as np
import pytest
import soundfile as sf

from tfasc.cli import main
from tfasc.config import load_config
from tfasc.inference import Predictor, Run, RunError, windows
from tfasc.train import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def run_dir(tiny_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    cfg = load_config(os.path.join(ROOT, "configs", "demo.yaml"), [
        f"data.root={tiny_dataset}", f"data.cache_dir={tmp / 'cache'}", "data.val_fraction=0.5", "train.epochs=1",
        "train.batch_size=16", "augment.dir.p=0.0", "features.correction.enabled=true", "features.correction.reference=BC",
        "qat.epochs=1", "export.representative_clips=20", "export.verify_clips=10"])
    out = str(tmp / "run")
    Trainer(cfg, out).run()
    return out


def test_windows_cover_the_recording():
    n = 100
    assert windows(np.arange(40), n).shape == (1, n)  # short: zero-padded
    w = windows(np.arange(260), n)  # 2 full windows + a remainder of 60 >= 50: one more ending at the last sample
    assert w.shape == (3, n) and w[2, -1] == 259 and w[1, 0] == 100
    assert windows(np.arange(230), n).shape == (2, n)  # remainder 30 < 50: dropped


def test_report_md_has_the_sections(run_dir):
    md = open(os.path.join(run_dir, "report.md")).read()
    for text in ("## Model and complexity", "DCASE budget", "| int8_tflm |", "## Export", "model_data.cc",
                 "tensor arena", "## Phases", "## Resolved config", "evaluation_devices.png"):
        assert text in md, text


def test_evaluate_command_rewrites_metrics(run_dir, capsys):
    os.remove(os.path.join(run_dir, "metrics.json"))
    assert main(["evaluate", run_dir, "--backend", "tflm"]) == 0
    m = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert set(m) == {"int8_tflm"} and "accuracy" in capsys.readouterr().out


def test_predict_any_length_agrees_across_backends(run_dir, tiny_dataset, tmp_path, capsys):
    run = Run(run_dir)
    sr = 44100
    src, _ = sf.read(os.path.join(tiny_dataset, "audio", sorted(os.listdir(os.path.join(tiny_dataset, "audio")))[0]))
    long = np.concatenate([src, src, src[: len(src) * 3 // 4]])  # 2.75 s
    sf.write(tmp_path / "long.wav", np.stack([long, long], 1), sr, subtype="PCM_24")  # stereo, 24-bit, 44.1 kHz
    res = {b: Predictor(run, b).predict_file(str(tmp_path / "long.wav"), device="a") for b in ("float", "litert", "tflm")}
    assert len(res["float"]["windows"]) == 3 and res["float"]["windows"][2]["start_s"] == pytest.approx(1.75, abs=1e-3)
    p = {b: np.array(list(r["probabilities"].values())) for b, r in res.items()}
    np.testing.assert_allclose(p["float"].sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose(p["litert"], p["tflm"], atol=2 / 256)  # int8 backends: within ~1 LSB per window
    # the mean of the windows' probabilities is the recording's
    w = np.array([list(x["probabilities"].values()) for x in res["float"]["windows"]])
    np.testing.assert_allclose(w.mean(0), p["float"], atol=1e-5)
    assert main(["predict", run_dir, str(tmp_path / "long.wav"), "--backend", "litert", "--windows"]) == 0
    assert "3 window(s)" in capsys.readouterr().out
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    assert main(["predict", run_dir, str(tmp_path / "bad.wav")]) == 2
    assert "bad.wav: cannot decode audio" in capsys.readouterr().err


def test_calibrate_new_device_matches_reference_over_spectrum(run_dir, tiny_dataset, tmp_path):
    from tfasc.correction import SpectrumCorrection
    from tfasc.features import LogMel
    from tfasc.keras import tf

    run = Run(run_dir)
    audio = os.path.join(tiny_dataset, "audio")
    files = [os.path.join(audio, f) for f in sorted(os.listdir(audio)) if f.endswith("-s2.wav")][:5]
    assert main(["calibrate", run_dir, "--device", "phone7", *files]) == 0
    new = SpectrumCorrection.load(os.path.join(run_dir, "calibrated", "phone7.npz"))
    base = run.correction()
    assert "phone7" not in base.coefficients  # the run's own artifact is unchanged
    # independent check: R / mean over the files' windows of the time-averaged STFT magnitude
    fe = LogMel(run.cfg.features)
    from tfasc.data.audio import load_audio

    mags = [tf.reduce_mean(fe.magnitude(tf.constant(windows(load_audio(f, 32000), 32000))), 1).numpy() for f in files]
    want = base.reference_spectrum / np.maximum(np.concatenate(mags).mean(0), 1e-10)
    np.testing.assert_allclose(new.vector("phone7"), want, rtol=1e-4)
    assert not np.allclose(run.correction_vector("phone7"), run.correction_vector(None))  # predict picks it up


def test_commands_name_what_is_missing(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a tfasc run directory" in capsys.readouterr().err
    with pytest.raises(RunError, match="backend 'gpu'"):
        Run.__new__(Run).classifier("gpu")


def test_analyze_temperature_figures(run_dir, capsys):
    assert main(["analyze", run_dir, "--temperatures", "1", "10", "--set", "train.epochs=1",
                 "--set", "features.correction.enabled=false"]) == 0
    out = os.path.join(run_dir, "analyze")
    rows = json.load(open(os.path.join(out, "temperature.json")))
    assert [r["temperature"] for r in rows] == [1.0, 10.0]
    for r in rows:
        assert 0 <= r["accuracy"] <= 1 and 0 < r["pca_explained"][1] <= r["pca_explained"][0] <= 1
    for f in ("accuracy_vs_temperature.png", "embeddings_pca.png"):
        assert os.path.getsize(os.path.join(out, f)) > 1000
    assert "| 10 |" in open(os.path.join(out, "temperature.md")).read()
    cfg = load_config(os.path.join(out, "T10", "config.yaml"))
    assert cfg.model.temperature == 10.0 and not cfg.export.enabled


def test_pca_matches_numpy_covariance():
    from tfasc.analyze import pca_2d

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * np.array([5, 3, 1, 0.5, 0.1])
    proj, var = pca_2d(x)
    ev = np.sort(np.linalg.eigvalsh(np.cov(x.T)))[::-1]
    np.testing.assert_allclose(var, ev[:2] / ev.sum(), rtol=1e-6)
    np.testing.assert_allclose(np.var(proj, 0, ddof=1), ev[:2], rtol=1e-6)


def test_cnn5_windowed_export_runs_in_tflm(tiny_dataset, tmp_path):
    """CNN5 exported for 29-frame windows of a 1-s clip: no BN ops, smaller arena, window-averaged evaluation."""
    from tfasc.config import load_config
    from tflm_export.convert import op_list

    cfg = load_config(os.path.join(ROOT, "configs", "cnn5.yaml"), [
        f"data.root={tiny_dataset}", f"data.cache_dir={tmp_path / 'cache'}", "data.layout=tau22", "data.clip_seconds=1.0",
        "data.val_fraction=0.5", "train.epochs=1", "train.batch_size=16", "qat.epochs=1", "export.window_frames=29",
        "export.representative_clips=20", "export.verify_clips=10", "features.correction.clips_per_device=10"])
    out = str(tmp_path / "run")
    results = Trainer(cfg, out).run()
    t = Trainer(cfg, out)
    assert t.input_shape == (256, 87, 1) and t.export_shape == (256, 29, 1)
    data = open(os.path.join(out, "model_int8.tflite"), "rb").read()
    ops = op_list(data)
    assert "MUL" not in ops and "ADD" not in ops
    exp = t.state["export"]
    assert exp["input_shape"] == [256, 29, 1] and exp["full_input_arena_bytes"] > 2 * exp["arena_bytes"]
    assert {"float", "float_windowed", "int8_litert", "int8_tflm"} <= set(results)
    settings = open(os.path.join(out, "tflm", "cnn5_model_settings.h")).read()
    assert "29" in settings
    # the int8 evaluation averages the 3 windows of each clip: check one clip against a direct computation
    from tflm_export.verify import Runner

    x = t.test_features()[:2]
    r = Runner(data, "litert")
    direct = np.stack([r.predict(np.stack([x[i, :, k * 29:(k + 1) * 29] for k in range(3)])).mean(0) for i in range(2)])
    pred = Run(out).classifier("litert")(x)
    np.testing.assert_allclose(pred, direct, atol=1e-6)


def test_data_check_counts_and_reports_bad_audio(tiny_dataset, tmp_path, capsys):
    import shutil

    from tfasc.data.tau import load_splits

    root = str(tmp_path / "copy")
    shutil.copytree(tiny_dataset, root)
    assert main(["data", "check", root, "--sample-rate", "16000"]) == 0
    out = capsys.readouterr().out
    n_train = len(load_splits(root, "fold1", 0.0).train)
    assert f"train: {n_train} clips" in out and "all audio files decode" in out
    bad = sorted(os.listdir(os.path.join(root, "audio")))[3]
    open(os.path.join(root, "audio", bad), "wb").write(b"not a wav")
    assert main(["data", "check", root, "--sample-rate", "16000"]) == 1
    assert f"{bad}: cannot decode audio" in capsys.readouterr().out


def test_export_command_rebuilds_a_missing_export(run_dir, capsys):
    from tfasc.io import read_json, write_json

    state_path = os.path.join(run_dir, "state.json")
    state = read_json(state_path)
    state["done"] = [p for p in state["done"] if p != "export"]
    write_json(state_path, state)
    os.remove(os.path.join(run_dir, "model_int8.tflite"))
    assert main(["export", run_dir]) == 0
    out = capsys.readouterr().out
    assert "model_int8.tflite" in out and "tensor arena" in out and "demo_model_data.cc" in out
    assert "export" in read_json(state_path)["done"]
    from tflm_export.convert import check_int8

    check_int8(open(os.path.join(run_dir, "model_int8.tflite"), "rb").read())
