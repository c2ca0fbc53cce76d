import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfasc.config import load_config
from tfasc.data.tau import DataError
from tfasc.train import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_cfg(root, tmp_path, *extra):
    return load_config(os.path.join(ROOT, "configs", "demo.yaml"), [
        f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.val_fraction=0.5",
        "train.epochs=2", "train.batch_size=16", "augment.dir.p=0.0", *extra])


def test_train_writes_run_dir_and_resumes(tiny_dataset, tmp_path):
    cfg = tiny_cfg(tiny_dataset, tmp_path, "features.correction.enabled=true", "features.correction.reference=BC",
                   "augment.mixup.alpha=0.3")
    out = str(tmp_path / "run")
    results = Trainer(cfg, out).run()
    for f in ("config.yaml", "model.keras", "history.json", "metrics.json", "evaluation.md",
              "evaluation_confusion_float.png", "evaluation_devices.png", "correction.npz"):
        assert os.path.isfile(os.path.join(out, f)), f
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert set(m["float"]["device"]) == {"a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6"}
    assert 0.0 <= m["float"]["accuracy"] <= 1.0
    assert load_config(os.path.join(out, "config.yaml")) == cfg  # the resolved config is saved
    # per-device accuracies are consistent with the overall figure
    r = results["float"]
    n = sum(v["n"] for v in r["device"].values())
    overall = sum(v["accuracy"] * v["n"] for v in r["device"].values()) / n
    assert abs(overall - r["overall"]["accuracy"]) < 1e-9
    # a second run reuses the finished training phase instead of training again
    mtime = os.path.getmtime(os.path.join(out, "model.keras"))
    Trainer(cfg, out).run()
    assert os.path.getmtime(os.path.join(out, "model.keras")) == mtime


def test_bad_root_points_to_layout_and_demo(tmp_path):
    cfg = load_config(os.path.join(ROOT, "configs", "sm1.yaml"), [f"data.root={tmp_path / 'missing'}"])
    with pytest.raises(DataError, match=r"(?s)does not exist.*evaluation_setup/fold1_train\.csv.*configs/demo\.yaml"):
        Trainer(cfg, str(tmp_path / "run")).run()


def test_train_script_reports_config_errors(tmp_path):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train.py"), os.path.join(ROOT, "configs", "sm1.yaml"),
                        "--set", "train.optimiser.lr=1"], capture_output=True, text=True, cwd=str(tmp_path))
    assert p.returncode == 2
    assert "sm1.yaml" in p.stderr and "train.optimiser: unknown key" in p.stderr


def test_pipeline_training_batches(tiny_dataset, tmp_path):
    cfg = tiny_cfg(tiny_dataset, tmp_path, "augment.mixup.alpha=0.4", "augment.freq_mixstyle.p=1.0")
    t = Trainer(cfg, str(tmp_path / "run"))
    ds = t.pipeline().dataset(t.cache("train"), training=True)
    x, y = next(iter(ds))
    assert x.shape[1:] == (256, 64, 1) and y.shape[1:] == (10,)
    np.testing.assert_allclose(y.numpy().sum(1), 1.0, atol=1e-5)
    assert (y.numpy() > 0).sum(1).max() == 2  # mixup mixes pairs of labels
    xv, yv = next(iter(t.pipeline().dataset(t.cache("val"), training=False)))
    assert set(np.unique(yv.numpy())) <= {0.0, 1.0}  # no augmentation at evaluation


def test_feature_cache_gives_the_same_batches(tiny_dataset, tmp_path):
    """Cached features + recomputing only the DIR-convolved clips == computing every clip's features."""
    from tfasc.config import replace
    from tfasc.pipeline import Pipeline

    cfg = tiny_cfg(tiny_dataset, tmp_path, "augment.dir.p=0.7", "augment.dir.devices=[a, b, c, s1, s2, s3]",
                   "augment.mixup.alpha=0.3", "augment.freq_mixstyle.p=0.5", "augment.roll_max_frames=5")
    cache = Trainer(cfg, str(tmp_path / "run")).cache("train")
    irs = np.random.default_rng(0).normal(0, 0.1, (4, 300)).astype(np.float32)
    batches = []
    for on in (True, False):
        pipe = Pipeline(replace(cfg, **{"data.feature_cache": on}), None, irs, None)
        batches.append([(x.numpy(), y.numpy()) for x, y in pipe.dataset(cache, training=True).take(3)])
        if on:
            feats = pipe.feature_cache(cache)
            assert feats.shape == (len(cache), 256, 64, 1) and os.path.dirname(cache.path) in feats.filename
            direct = Pipeline(replace(cfg, **{"data.feature_cache": False}), None, irs, None).features_of(cache)
            np.testing.assert_allclose(pipe.features_of(cache), direct, atol=1e-5)
    for (xa, ya), (xb, yb) in zip(*batches):
        np.testing.assert_allclose(xa, xb, atol=2e-4)
        np.testing.assert_array_equal(ya, yb)
    # the DIR path did change some clips: a batch differs from the same batch without DIR
    plain = Pipeline(replace(cfg, **{"augment.dir.p": 0.0}), None, None, None)
    x0 = next(iter(plain.dataset(cache, training=True)))[0].numpy()
    assert np.abs(x0 - batches[0][0][0]).max() > 1e-2


def test_interrupted_training_resumes_from_the_last_epoch(tiny_dataset, tmp_path):
    from tfasc.keras import keras

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("killed after epoch 2")

    cfg = tiny_cfg(tiny_dataset, tmp_path, "train.epochs=4", "qat.enabled=false", "export.enabled=false")
    out = str(tmp_path / "run")
    t = Trainer(cfg, out)
    t.extra_callbacks = [Interrupt()]
    with pytest.raises(KeyboardInterrupt):
        t.run()
    assert not os.path.exists(os.path.join(out, "model.keras")) and "train" not in t.state["done"]
    assert [int(line.split(",")[0]) for line in open(os.path.join(out, "history.csv")).read().split()[1:]] == [0, 1]
    Trainer(cfg, out).run()  # the same command again
    epochs = [int(line.split(",")[0]) for line in open(os.path.join(out, "history.csv")).read().split()[1:]]
    assert epochs == [0, 1, 2, 3]  # continued at epoch 3, did not start over
    assert os.path.isfile(os.path.join(out, "model.keras"))


def test_batchnorm_recalibration_gives_the_mean_of_batch_statistics():
    from tfasc.keras import keras
    from tfasc.train import recalibrate_batchnorm

    rng = np.random.default_rng(0)
    inp = keras.Input((6, 5, 3))
    conv = keras.layers.Conv2D(4, 1, name="c")
    model = keras.Model(inp, keras.layers.BatchNormalization(name="bn")(conv(inp)))
    batches = [rng.normal(k, 1 + k, (8, 6, 5, 3)).astype(np.float32) for k in range(3)]
    assert recalibrate_batchnorm(model, iter(batches)) == 3
    h = [conv(b).numpy().reshape(-1, 4) for b in batches]  # the BN inputs, NumPy statistics per batch
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([x.mean(0) for x in h], 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([x.var(0, ddof=1) for x in h], 0), rtol=1e-4, atol=1e-5)  # Keras keeps the unbiased variance
    assert bn.momentum == 0.99  # restored


def test_batchnorm_recalibration_reaches_qat_wrapped_layers():
    from tfasc.models.dsflexinet import build_dsflexinet
    from tfasc.qat import deploy_model, quantize_model
    from tfasc.train import recalibrate_batchnorm

    q = quantize_model(deploy_model(build_dsflexinet((32, 16, 1), "sm1", "bn")))
    before = [w.numpy().copy() for w in q.weights if "moving_mean" in w.name]
    assert before
    x = np.random.default_rng(1).normal(3, 2, (2, 8, 32, 16, 1)).astype(np.float32)
    assert recalibrate_batchnorm(q, iter(x)) == 2
    after = [w.numpy() for w in q.weights if "moving_mean" in w.name]
    assert all(np.abs(a - b).max() > 1e-3 for a, b in zip(after, before))
