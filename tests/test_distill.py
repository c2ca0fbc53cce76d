import json
import os

import numpy as np
import pytest

from tfasc.config import ConfigError, load_config
from tfasc.data.tau import SCENES
from tfasc.distill import Fusion, LogitsStore, StoreError, lambda_at, make_kd_loss
from tfasc.keras import tf
from tfasc.losses import cross_entropy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


# ----------------------------------------------------------------------- loss
@pytest.mark.parametrize("lam,T,Tm", [(0.5, 2.0, 1.0), (0.1, 4.0, 1.0), (0.3, 1.0, 10.0)])
def test_kd_loss_matches_numpy(lam, T, Tm):
    rng = np.random.default_rng(0)
    C = 10
    z_s = rng.normal(0, 3, (6, C))
    z_t = rng.normal(0, 3, (6, C))
    y = np.eye(C)[rng.integers(0, C, 6)]
    p = np.exp(np_log_softmax(z_s / Tm))  # the heated-up softmax output the student model gives
    # NumPy reference of seed 000 eq. 5: KL(teacher || student), both at temperature T, scaled by T^2
    q_t, lq_t, lq_s = np.exp(np_log_softmax(z_t / T)), np_log_softmax(z_t / T), np_log_softmax(z_s / T)
    kl = np.sum(q_t * (lq_t - lq_s), -1)
    ce = -np.sum(y * np.log(p), -1)
    want = lam * ce + (1 - lam) * T**2 * kl
    loss = make_kd_loss(cross_entropy, C, T, Tm, tf.Variable(lam))
    got = loss(tf.constant(np.concatenate([y, z_t], 1), tf.float32), tf.constant(p, tf.float32)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # the direction matters: swapping teacher and student gives another value
    swapped = lam * ce + (1 - lam) * T**2 * np.sum(np.exp(lq_s) * (lq_s - lq_t), -1)
    assert np.max(np.abs(swapped - want)) > 1e-2


def test_kd_loss_gradient_reaches_only_the_student():
    C = 10
    z_s = tf.Variable(np.random.default_rng(1).normal(size=(4, C)), dtype=tf.float32)
    targets = tf.Variable(np.concatenate([np.eye(C)[[0, 1, 2, 3]], np.random.default_rng(2).normal(size=(4, C))], 1),
                          dtype=tf.float32)
    loss = make_kd_loss(cross_entropy, C, 2.0, 1.0, 0.0)  # pure distillation term
    with tf.GradientTape(persistent=True) as tape:
        value = tf.reduce_sum(loss(targets, tf.nn.softmax(z_s)))
    gt = tape.gradient(value, targets)
    assert gt is None or not np.any(gt.numpy()[:, C:])  # the teacher logits are data: no gradient
    g = tape.gradient(value, z_s).numpy()
    # d/dz_s of T^2 KL(q_t || softmax(z_s/T)) = T (q_s - q_t)
    q_s = np.exp(np_log_softmax(z_s.numpy() / 2))
    q_t = np.exp(np_log_softmax(targets.numpy()[:, C:] / 2))
    np.testing.assert_allclose(g, 2 * (q_s - q_t), atol=1e-4)


def test_lambda_schedules():
    assert [lambda_at(e, 5, 0.9, 0.1, "constant") for e in range(5)] == [0.9] * 5
    np.testing.assert_allclose([lambda_at(e, 5, 0.9, 0.1, "linear") for e in range(5)], [0.9, 0.7, 0.5, 0.3, 0.1])
    cos = [lambda_at(e, 5, 0.9, 0.1, "cosine") for e in range(5)]
    np.testing.assert_allclose([cos[0], cos[2], cos[4]], [0.9, 0.5, 0.1])
    assert cos[1] > 0.7  # cosine stays near the start longer than linear


# --------------------------------------------------------------------- fusion
def test_fusion_recovers_known_weights_and_biases():
    rng = np.random.default_rng(3)
    S, N, C = 3, 30000, 10
    z = rng.normal(0, 2, (S, N, C))
    w_true = np.array([0.8, 0.3, 1.5])
    b_true = rng.normal(0, 1, C)
    f = np.einsum("s,snc->nc", w_true, z) + b_true
    labels = np.argmax(f + rng.gumbel(size=f.shape), 1)  # sampled from softmax(f) (Gumbel-max)
    fit = Fusion.fit(z, labels, l2=0.0)
    np.testing.assert_allclose(fit.weights, w_true, atol=0.1)
    np.testing.assert_allclose(np.array(fit.bias) - np.mean(fit.bias), b_true - b_true.mean(), atol=0.15)
    avg = Fusion.averaged(S)
    np.testing.assert_allclose(avg.apply(z), z.mean(0), rtol=1e-5, atol=1e-5)
    assert Fusion.from_dict(json.loads(json.dumps(fit.to_dict()))) == fit


# ---------------------------------------------------------------------- store
def make_store(teachers=("t0", "t1"), n=5, seed=0):
    rng = np.random.default_rng(seed)
    files = tuple(f"audio/clip-{i}-a.wav" for i in range(n))
    return LogitsStore(files, tuple(teachers), rng.normal(size=(len(teachers), n, len(SCENES))).astype(np.float32))


def test_store_round_trip_and_lookup(tmp_path):
    s = make_store()
    s.save(str(tmp_path / "s.npz"))
    r = LogitsStore.load(str(tmp_path / "s.npz"))
    assert r.filenames == s.filenames and r.teachers == s.teachers and r.classes == SCENES
    np.testing.assert_array_equal(r.logits, s.logits)
    np.testing.assert_array_equal(r.lookup([s.filenames[3], s.filenames[1]]), s.logits[:, [3, 1]])
    with pytest.raises(StoreError, match="1 clip.*no teacher logits.*missing.wav"):
        r.lookup(["audio/missing.wav"])
    merged = LogitsStore.merge([make_store(("a",)), make_store(("b",), seed=1)])
    assert merged.teachers == ("a", "b") and merged.logits.shape == (2, 5, 10)
    with pytest.raises(StoreError, match="cover different clips"):
        LogitsStore.merge([make_store(("a",)), make_store(("b",), n=4)])
    with pytest.raises(StoreError, match="duplicate teacher"):
        LogitsStore.merge([make_store(("a",)), make_store(("a",))])


def test_store_imports_csv_and_external_npz(tmp_path):
    s = make_store(("passt",), n=3)
    order = list(reversed(SCENES))  # another class order is reordered on import
    lines = ["filename,teacher," + ",".join(order)]
    for i, f in enumerate(s.filenames):
        row = s.logits[0, i, [SCENES.index(c) for c in order]]
        lines.append(f"{os.path.basename(f)},passt," + ",".join(f"{v:.6f}" for v in row))
    (tmp_path / "ext.csv").write_text("\n".join(lines) + "\n")
    r = LogitsStore.load(str(tmp_path / "ext.csv"))
    assert r.filenames == s.filenames and r.teachers == ("passt",)
    np.testing.assert_allclose(r.logits, s.logits, atol=1e-5)
    np.savez(tmp_path / "ext.npz", filenames=np.array(s.filenames), logits=s.logits[0])
    r = LogitsStore.load(str(tmp_path / "ext.npz"))
    assert r.teachers == ("ext",)
    np.testing.assert_array_equal(r.logits, s.logits)
    (tmp_path / "bad.csv").write_text("filename,teacher," + ",".join(SCENES[:9]) + ",beach\nx.wav,t," + ",".join(["0"] * 10))
    with pytest.raises(StoreError, match=r"bad\.csv.*unknown: \['beach'\]"):
        LogitsStore.load(str(tmp_path / "bad.csv"))
    np.savez(tmp_path / "bad.npz", names=np.array(["x"]))
    with pytest.raises(StoreError, match=r"bad\.npz: missing array 'filenames'"):
        LogitsStore.load(str(tmp_path / "bad.npz"))


def test_mixup_mixes_labels_and_teacher_logits_with_the_same_weights():
    from tfasc.augment import mixup

    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(size=(8, 4, 3, 1)), tf.float32)
    labels = np.eye(10)[np.arange(8)]
    teacher = rng.normal(size=(8, 10))
    xm, t = mixup(x, {"label": tf.constant(labels, tf.float32), "teacher": tf.constant(teacher, tf.float32)},
                  0.4, tf.constant([1, 2]))
    y, zt = t["label"].numpy(), t["teacher"].numpy()
    for i in range(8):  # each mixed row is lam * own + (1 - lam) * partner's; recover lam and partner from the label
        nz = np.flatnonzero(y[i] > 1e-6)
        lam = y[i, i]
        partner = [j for j in nz if j != i][0] if len(nz) > 1 else i
        np.testing.assert_allclose(zt[i], lam * teacher[i] + (1 - lam) * teacher[partner], atol=1e-5)
        np.testing.assert_allclose(xm.numpy()[i], lam * x.numpy()[i] + (1 - lam) * x.numpy()[partner], atol=1e-5)


# ------------------------------------------------------------------- trainer
def test_distilled_training_from_store_reports_teachers(tiny_dataset, tmp_path):
    from tfasc.data.tau import load_splits
    from tfasc.train import Trainer

    # teachers that know the label (plus noise) so the fused ensemble is meaningful
    recs = [r for split in load_splits(tiny_dataset, "fold1").items() for r in split[1]]
    rng = np.random.default_rng(5)
    onehot = np.eye(10)[[r.label for r in recs]]
    logits = np.stack([4 * onehot + rng.normal(0, 1.5, onehot.shape), 2 * onehot + rng.normal(0, 1.5, onehot.shape)])
    store = LogitsStore(tuple(r.filename for r in recs), ("good", "weak"), logits.astype(np.float32))
    store.save(str(tmp_path / "store.npz"))
    cfg = load_config(os.path.join(ROOT, "configs", "demo.yaml"), [
        f"data.root={tiny_dataset}", f"data.cache_dir={tmp_path / 'cache'}", "data.val_fraction=0.5",
        "train.epochs=2", "train.batch_size=16", "augment.dir.p=0.0", "augment.mixup.alpha=0.3",
        "qat.enabled=false", "export.enabled=false", "distill.enabled=true", f"distill.store={tmp_path / 'store.npz'}",
        "distill.lambda_schedule=linear", "distill.lambda_start=0.9", "distill.lambda_end=0.1"])
    out = str(tmp_path / "run")
    results = Trainer(cfg, out).run()
    fusion = json.load(open(os.path.join(out, "fusion.json")))
    assert fusion["kind"] == "fused" and fusion["teachers"] == ["good", "weak"]
    assert fusion["weights"][0] > fusion["weights"][1]  # the better teacher gets the larger weight
    assert {"float", "teacher good", "teacher weak", "ensemble averaged", "ensemble fused"} <= set(results)
    assert results["teacher good"]["overall"]["accuracy"] > results["teacher weak"]["overall"]["accuracy"]
    md = open(os.path.join(out, "evaluation.md")).read()
    assert "| ensemble fused |" in md and "| teacher good |" in md
    hist = json.load(open(os.path.join(out, "history.json")))
    np.testing.assert_allclose(hist["kd_lambda"], [0.9, 0.1], atol=1e-6)  # the linear schedule, epoch by epoch


def test_distill_config_errors(tiny_dataset, tmp_path):
    from tfasc.train import Trainer

    with pytest.raises(ConfigError, match=r"distill.teachers\[0\].config: teacher config .*nope.yaml not found"):
        load_config(os.path.join(ROOT, "configs", "sm2.yaml"), ["distill.teachers=[{config: nope.yaml}]"])
    cfg = load_config(os.path.join(ROOT, "configs", "demo.yaml"), [
        f"data.root={tiny_dataset}", f"data.cache_dir={tmp_path / 'cache'}", "distill.enabled=true",
        f"distill.store={tmp_path / 'store.npz'}"])
    make_store().save(str(tmp_path / "store.npz"))  # logits for clips that are not in the dataset
    with pytest.raises(StoreError, match="no teacher logits"):
        Trainer(cfg, str(tmp_path / "run")).run()


def test_teacher_ensemble_trained_in_the_run_and_collected_by_the_cli(tiny_dataset, tmp_path):
    from tfasc.cli import main
    from tfasc.train import Trainer

    cfg = load_config(os.path.join(ROOT, "configs", "demo.yaml"), [
        f"data.root={tiny_dataset}", f"data.cache_dir={tmp_path / 'cache'}", "data.val_fraction=0.5",
        "train.epochs=1", "train.batch_size=16", "augment.dir.p=0.0", "qat.enabled=false", "export.enabled=false",
        "distill.enabled=true", "distill.fusion=averaged",
        "distill.teachers=[{id: tiny, config: teacher_cpresnet.yaml, set: [model.width=8, model.depth=1, train.epochs=1, "
        "train.batch_size=16, augment.dir.p=0.0]}]"])
    out = str(tmp_path / "run")
    Trainer(cfg, out).run()
    tcfg = load_config(os.path.join(out, "teachers", "tiny", "config.yaml"))
    assert tcfg.model.width == 8 and tcfg.data == cfg.data  # the teacher trains on the student's data and splits
    store = LogitsStore.load(os.path.join(out, "teacher_logits.npz"))
    assert store.teachers == ("tiny",)
    # the same teacher run, collected again by `tfasc teachers`, gives the same logits
    assert main(["teachers", os.path.join(out, "teachers", "tiny"), "--out", str(tmp_path / "again.npz")]) == 0
    again = LogitsStore.load(str(tmp_path / "again.npz"))
    np.testing.assert_allclose(again.lookup(store.filenames), store.logits, atol=1e-4)
