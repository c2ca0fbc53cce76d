"""The one trainer. Phases run in order and are chosen by the config:

    data -> spectrum correction fit -> teacher logits (load, or train the ensemble) -> fusion
    -> float / distilled training -> QAT -> export -> evaluation (float, int8 LiteRT, int8 TFLM) -> report

Each finished phase records itself in ``state.json`` in the run directory and its
artifacts are reused when the run is started again; an interrupted training phase
resumes from its last finished epoch (``BackupAndRestore``). All writes are atomic.
"""
from __future__ import annotations

import logging
import os
import random
import time

import numpy as np

from tfasc.config import Config, ConfigError, config_from_dict, load_config, save_config, to_dict
from tfasc.data.audio import WaveCache
from tfasc.data.tau import DEVICES, LAYOUT_HELP, DataError, Splits, load_splits
from tfasc.features import input_shape
from tfasc.io import read_json, write_json
from tfasc.keras import keras, tf

log = logging.getLogger(__name__)


def set_determinism(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and TF; with ``deterministic`` also request deterministic TF kernels."""
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def get_strategy(name: str):
    """A ``tf.distribute`` strategy: default (one device; the GPU when present), mirrored, multi_worker."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def make_optimizer(cfg: Config, steps_per_epoch: int):
    o, s = cfg.train.optimizer, cfg.train.schedule
    lr = o.lr
    total = max(1, cfg.train.epochs * steps_per_epoch)
    if s.name == "cosine":
        warm = s.warmup_epochs * steps_per_epoch
        if warm:
            lr = keras.optimizers.schedules.CosineDecay(
                0.0, max(1, total - warm), warmup_target=o.lr, warmup_steps=warm
            )
        else:
            lr = keras.optimizers.schedules.CosineDecay(o.lr, total)
    wd = o.weight_decay or None
    if o.name == "adam":
        return keras.optimizers.Adam(lr, weight_decay=wd)
    if o.name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=o.weight_decay)
    if o.name == "adadelta":
        return keras.optimizers.Adadelta(lr, weight_decay=wd)
    return keras.optimizers.SGD(lr, momentum=o.momentum, weight_decay=wd)


class Trainer:
    """Runs the configured phases of one experiment into ``out_dir``."""

    def __init__(self, cfg: Config, out_dir: str):
        self.cfg = cfg
        self.out = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self.state_path = os.path.join(out_dir, "state.json")
        self.state = read_json(self.state_path) if os.path.isfile(self.state_path) else {"done": []}
        self._splits = None
        self.extra_callbacks = []  # e.g. for a progress hook; not part of the config
        self._caches = {}
        self._teacher_targets = {}  # split -> fused teacher logits
        self._test_features = None
        self._pipeline = None

    # ------------------------------------------------------------ helpers
    def path(self, *parts) -> str:
        return os.path.join(self.out, *parts)

    def _mark(self, phase: str, **info):
        if phase not in self.state["done"]:
            self.state["done"].append(phase)
        self.state[phase] = info
        write_json(self.state_path, self.state)

    def done(self, phase: str) -> bool:
        return phase in self.state["done"]

    @property
    def input_shape(self):
        return input_shape(self.cfg.features, self.cfg.data.clip_seconds)

    # --------------------------------------------------------------- data
    def splits(self) -> Splits:
        if self._splits is None:
            d = self.cfg.data
            if not os.path.isdir(d.root) and d.synth.generate_if_missing:
                from tfasc.data.synth import synthesize

                log.info("phase data: generating the demo dataset at %s", d.root)
                synthesize(d.root, d.synth.cities, d.synth.locations_per_city, d.synth.segments_per_location, d.synth.seed)
            elif d.synth.generate_if_missing:  # demo data written before it came with device IRs
                from tfasc.data.synth import IR_FOLDER, write_device_irs

                if not os.path.isdir(os.path.join(d.root, IR_FOLDER)):
                    write_device_irs(os.path.join(d.root, IR_FOLDER), seed=d.synth.seed)
            try:
                self._splits = load_splits(d.root, d.split, d.val_fraction, self.cfg.seed)
            except DataError as e:
                msg = str(e)
                if LAYOUT_HELP not in msg:
                    msg += "\n" + LAYOUT_HELP
                raise DataError(f"{msg}\n(data.root = {d.root!r}; configs/demo.yaml trains on a generated demo dataset)") from None
            for name, recs in self._splits.items():
                log.info("phase data: %s %d clips", name, len(recs))
        return self._splits

    def cache(self, split: str) -> WaveCache:
        if split not in self._caches:
            d = self.cfg.data
            recs = getattr(self.splits(), split)
            self._caches[split] = WaveCache.build(
                d.root, recs, self.cfg.features.sample_rate, d.clip_seconds, d.cache_dir, d.cache_dtype, name=split
            )
        return self._caches[split]

    # --------------------------------------------------- spectrum correction
    def correction(self):
        """The fitted spectrum correction (fit once, saved as ``correction.npz``), or None."""
        c = self.cfg.features.correction
        if not c.applies:
            return None
        from tfasc.correction import SpectrumCorrection

        path = self.path("correction.npz")
        if os.path.isfile(path) and self.done("correction"):
            return SpectrumCorrection.load(path)
        log.info("phase correction: fitting per-device coefficients (Ref.%s, %d clips per device)", c.reference, c.clips_per_device)
        spectra = self.mean_spectra(self.cache("train"), c.clips_per_device)
        corr = SpectrumCorrection.fit(spectra, self.cfg.features.sample_rate, self.cfg.features.n_fft, c.reference, c.unseen)
        corr.save(path)
        self._mark("correction", devices=sorted(spectra), clips={d: len(v) for d, v in spectra.items()})
        return corr

    def mean_spectra(self, cache: WaveCache, per_device: int) -> dict:
        from tfasc.features import LogMel

        fe = LogMel(self.cfg.features)
        rng = np.random.default_rng(self.cfg.seed)
        out = {}
        for d in DEVICES:
            idx = [i for i, r in enumerate(cache.records) if r.device == d]
            if not idx:
                continue
            idx = np.sort(rng.permutation(idx)[:per_device])
            mags = []
            for k in range(0, len(idx), 64):
                w = tf.constant(np.asarray(cache.waves[idx[k : k + 64]], np.float32))
                mags.append(tf.reduce_mean(fe.magnitude(w), axis=1).numpy())
            out[d] = np.concatenate(mags)
        return out

    def pipeline(self):
        if self._pipeline is None:
            from tfasc.augment import clip_energy, load_irs
            from tfasc.pipeline import Pipeline

            corr = self.correction()
            table = None if corr is None else corr.table()
            irs = threshold = None
            dcfg = self.cfg.augment.dir
            if dcfg.p > 0:
                irs = load_irs(dcfg.path, self.cfg.features.sample_rate)
                if dcfg.adir:
                    if dcfg.adir_threshold == "mean":
                        w = self.cache("train").waves
                        threshold = float(np.mean([clip_energy(np.asarray(w[i : i + 256], np.float32)).numpy().mean()
                                                   for i in range(0, len(w), 256)]))
                    else:
                        try:
                            threshold = float(dcfg.adir_threshold)
                        except ValueError:
                            raise ValueError(f"augment.dir.adir_threshold: expected a number or 'mean', got {dcfg.adir_threshold!r}") from None
                    log.info("ADIR energy threshold: %.3f", threshold)
            self._pipeline = Pipeline(self.cfg, table, irs, threshold)
        return self._pipeline

    # ------------------------------------------------------------ training
    def build_model(self):
        from tfasc.models import build_model

        return build_model(self.cfg.model, self.input_shape)

    def loss(self):
        """The label loss, or with distillation seed 000 eq. 5 with a scheduled lambda."""
        from tfasc.losses import make_loss

        label_loss = make_loss(self.cfg.train.loss)
        if not self.cfg.distill.enabled:
            return label_loss
        from tfasc.distill import make_kd_loss

        d = self.cfg.distill
        self._lam = tf.Variable(d.lambda_start, trainable=False, dtype=tf.float32, name="kd_lambda")
        return make_kd_loss(label_loss, self.cfg.model.num_classes, d.temperature, self.cfg.model.temperature, self._lam)

    def callbacks(self, epochs: int) -> list:
        if not self.cfg.distill.enabled:
            return []
        from tfasc.distill import lambda_callback

        return [lambda_callback(self._lam, self.cfg.distill, epochs)]

    def compile(self, model, steps_per_epoch: int, lr_override: float | None = None):
        from tfasc.losses import accuracy

        opt = make_optimizer(self.cfg, steps_per_epoch)
        if lr_override is not None:
            opt = keras.optimizers.Adam(lr_override)
        model.compile(optimizer=opt, loss=self.loss(), metrics=[accuracy])
        return model

    def dataset(self, split: str, training: bool):
        """The split's batches; with distillation the targets carry the fused teacher logits."""
        teacher = self.teacher_targets(split) if self.cfg.distill.enabled else None
        return self.pipeline().dataset(self.cache(split), training=training, teacher=teacher)

    # -------------------------------------------------------- distillation
    def teacher_config(self, spec) -> Config:
        """A teacher's config, trained on the student's data and splits, float only."""
        tcfg = to_dict(load_config(spec.config, spec.set))
        tcfg["data"] = to_dict(self.cfg)["data"]
        tcfg["qat"]["enabled"] = tcfg["export"]["enabled"] = tcfg["distill"]["enabled"] = False
        tcfg["distill"]["teachers"] = []
        return config_from_dict(tcfg)

    def train_teacher(self, i: int, spec):
        """Train one teacher with this trainer into ``teachers/<id>`` and collect its logits for every clip."""
        tcfg = self.teacher_config(spec)
        tid = spec.id or f"t{i}_{tcfg.name}_seed{tcfg.seed}"
        log.info("phase teachers: training teacher %s (%s)", tid, os.path.basename(spec.config))
        t = Trainer(tcfg, self.path("teachers", tid))
        save_config(tcfg, t.path("config.yaml"))
        set_determinism(tcfg.seed, tcfg.train.deterministic)
        store = t.logits_store(t.train_float(), tid)
        set_determinism(self.cfg.seed, self.cfg.train.deterministic)
        return store

    def logits_store(self, model, teacher_id: str):
        """This run's model as a teacher: its logits for every clip of every split."""
        from tfasc.distill import LogitsStore

        logits_model = keras.Model(model.input, model.get_layer("softmax").input)
        files, logits = [], []
        for split, recs in self.splits().items():
            if recs:
                files += [r.filename for r in recs]
                logits.append(self.predict(logits_model, split))
        return LogitsStore(tuple(files), (teacher_id,), np.concatenate(logits)[None])

    def teacher_store(self):
        """The ensemble's logits store ``teacher_logits.npz``: loaded/imported, or trained here."""
        from tfasc.distill import LogitsStore

        path = self.path("teacher_logits.npz")
        if self.done("teachers") and os.path.isfile(path):
            return LogitsStore.load(path)
        d = self.cfg.distill
        if d.store:
            log.info("phase teachers: loading %s", d.store)
            store = LogitsStore.load(d.store)
        elif d.teachers:
            store = LogitsStore.merge([self.train_teacher(i, t) for i, t in enumerate(d.teachers)])
        else:
            raise ConfigError("distill.enabled: set distill.store (a logits file) or distill.teachers (configs to train)")
        for split in ("train", "val"):
            recs = getattr(self.splits(), split)
            store.index([r.filename for r in recs])  # raises naming the clips without logits
        store.save(path)
        self._mark("teachers", teachers=list(store.teachers), clips=len(store.filenames))
        return store

    def fusion(self):
        """Averaged or fused (seed 000 eq. 4, fitted on the validation clips) teacher ensemble."""
        from tfasc.distill import Fusion

        path = self.path("fusion.json")
        if self.done("fusion") and os.path.isfile(path):
            return Fusion.from_dict(read_json(path))
        store = self.teacher_store()
        if self.cfg.distill.fusion == "averaged":
            fusion = Fusion.averaged(len(store.teachers), self.cfg.model.num_classes)
        else:
            val = self.splits().val
            if not val:
                raise ConfigError("distill.fusion: 'fused' is fitted on held-out clips; set data.val_fraction > 0 "
                                  "or use distill.fusion: averaged")
            fusion = Fusion.fit(store.lookup([r.filename for r in val]), np.array([r.label for r in val]))
        write_json(path, {**fusion.to_dict(), "teachers": list(store.teachers)})
        log.info("phase fusion: %s, weights %s", fusion.kind, np.round(fusion.weights, 3).tolist())
        self._mark("fusion", kind=fusion.kind)
        return fusion

    def teacher_targets(self, split: str) -> np.ndarray:
        """Fused teacher logits ``[n, C]`` aligned with the split's cached clips."""
        if split not in self._teacher_targets:
            recs = self.cache(split).records
            self._teacher_targets[split] = self.fusion().apply(self.teacher_store().lookup([r.filename for r in recs]))
        return self._teacher_targets[split]

    def evaluate_teachers(self) -> dict:
        """Each teacher's, the averaged and the fused ensemble's metrics (Table IV), on test (or val) clips."""
        from tfasc.distill import Fusion, softmax
        from tfasc.evaluate import compute_metrics

        store, fusion = self.teacher_store(), self.fusion()
        split = "test" if store.covers([r.filename for r in self.splits().test]) else "val"
        recs = getattr(self.splits(), split)
        z = store.lookup([r.filename for r in recs])
        suffix = "" if split == "test" else " (val)"
        out = {f"teacher {t}{suffix}": compute_metrics(softmax(z[i]), recs) for i, t in enumerate(store.teachers)}
        out[f"ensemble averaged{suffix}"] = compute_metrics(softmax(Fusion.averaged(len(store.teachers)).apply(z)), recs)
        if fusion.kind == "fused":
            out[f"ensemble fused{suffix}"] = compute_metrics(softmax(fusion.apply(z)), recs)
        for k, v in out.items():
            log.info("phase evaluate: %s accuracy %.2f %%", k, 100 * v["overall"]["accuracy"])
        return out

    def recalibrate(self, model, what: str):
        n = self.cfg.train.bn_recalibration_clips
        if n <= 0:
            return
        bs = min(self.cfg.train.batch_size * 4, 256)
        ds = self.pipeline().dataset(self.cache("train"), training=False, batch_size=bs).take(max(1, n // bs))
        k = recalibrate_batchnorm(model, (x for x, _ in ds))
        if k:
            log.info("phase %s: BatchNorm statistics re-estimated on %d clean training batches of %d", what, k, bs)

    def train_float(self):
        model_path = self.path("model.keras")
        if self.done("train") and os.path.isfile(model_path):
            log.info("phase train: reusing %s", model_path)
            return load_model(model_path)
        cfg = self.cfg
        train_ds = self.dataset("train", training=True)
        val_ds = self.dataset("val", training=False) if self.splits().val else None
        steps = max(1, len(self.cache("train")) // cfg.train.batch_size)
        strategy = get_strategy(cfg.train.strategy)
        with strategy.scope():
            model = self.compile(self.build_model(), steps)
        monitor = "val_accuracy" if val_ds is not None else "accuracy"
        callbacks = [
            keras.callbacks.BackupAndRestore(self.path("backup")),
            keras.callbacks.ModelCheckpoint(self.path("best.weights.h5"), monitor=monitor, mode="max",
                                            save_best_only=True, save_weights_only=True),
            keras.callbacks.CSVLogger(self.path("history.csv"), append=True),
            keras.callbacks.TensorBoard(self.path("tensorboard"), write_graph=False, profile_batch=0),
        ]
        if cfg.train.schedule.name == "plateau":
            callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode="max",
                                                               factor=cfg.train.schedule.plateau_factor,
                                                               patience=cfg.train.schedule.plateau_patience))
        callbacks += self.callbacks(cfg.train.epochs) + list(self.extra_callbacks)
        log.info("phase train: %s, %d epochs x %d steps on %s", model.name, cfg.train.epochs, steps,
                 ", ".join(d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU") or "CPU")
        t0 = time.time()
        hist = model.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs,
                         steps_per_epoch=cfg.train.steps_per_epoch or None, callbacks=callbacks, verbose=2 if os.environ.get("CI") else 1)
        if os.path.isfile(self.path("best.weights.h5")):
            model.load_weights(self.path("best.weights.h5"))
        self.recalibrate(model, "train")
        save_model(model, model_path)
        write_json(self.path("history.json"), {k: [float(x) for x in v] for k, v in hist.history.items()})
        self._mark("train", seconds=round(time.time() - t0, 1), epochs=cfg.train.epochs)
        return model

    # ---------------------------------------------------------- evaluation
    def predict(self, model, split: str = "test") -> np.ndarray:
        ds = self.pipeline().dataset(self.cache(split), training=False)
        return model.predict(ds.map(lambda x, y: x), verbose=0)

    def evaluate_float(self, model) -> dict:
        from tfasc.evaluate import compute_metrics

        m = compute_metrics(self.predict(model), self.cache("test").records)
        log.info("phase evaluate: float test accuracy %.2f %%", 100 * m["overall"]["accuracy"])
        return m

    # ------------------------------------------------------- QAT and export
    def representative(self, n: int) -> np.ndarray:
        """Up to ``n`` training clips' features, drawn round-robin across (device, scene) strata."""
        recs = self.cache("train").records
        groups: dict = {}
        for i, r in enumerate(recs):
            groups.setdefault((r.device, r.scene), []).append(i)
        rng = np.random.default_rng(self.cfg.seed)
        queues = [list(rng.permutation(v)) for _, v in sorted(groups.items())]
        picked = []
        while len(picked) < min(n, len(recs)):
            for q in queues:
                if q and len(picked) < n:
                    picked.append(int(q.pop()))
        idx = np.sort(picked)
        waves = tf.constant(np.asarray(self.cache("train").waves[idx], np.float32))
        devices = tf.constant([DEVICES.index(recs[i].device) for i in idx])
        return self.pipeline().features(waves, devices).numpy()

    def train_qat(self, model):
        from tfasc.qat import deploy_model, quantize_model

        path = self.path("qat.weights.h5")
        qmodel = quantize_model(deploy_model(model))
        if self.done("qat") and os.path.isfile(path):
            try:
                qmodel.load_weights(path)
                return qmodel
            except (KeyError, ValueError, OSError) as e:  # unreadable: fine-tune again
                log.warning("phase qat: cannot reload %s (%s); fine-tuning again", path, e)
        q = self.cfg.qat
        steps = max(1, len(self.cache("train")) // self.cfg.train.batch_size)
        self.compile(qmodel, steps, lr_override=q.lr)
        log.info("phase qat: %d epochs at lr %g", q.epochs, q.lr)
        qmodel.fit(self.dataset("train", training=True), epochs=q.epochs, callbacks=self.callbacks(q.epochs),
                   verbose=2 if os.environ.get("CI") else 1)
        self.recalibrate(qmodel, "qat")
        from tfasc.io import atomic_write

        atomic_write(path, lambda tmp: qmodel.save_weights(tmp))
        self._mark("qat", epochs=q.epochs)
        return qmodel

    # ----------------------------------------------------- windowed export
    @property
    def export_shape(self):
        """The int8 model's input: the full clip, or ``export.window_frames`` frames of it."""
        F, T, C = self.input_shape
        w = self.cfg.export.window_frames
        if w > T:
            raise ConfigError(f"export.window_frames: {w} exceeds the {T} frames of a {self.cfg.data.clip_seconds}-s clip")
        return (F, w or T, C)

    def at_export_shape(self, model, qmodel):
        """``qmodel`` rebuilt for the export input (fully convolutional models with global pooling: same weights)."""
        if self.export_shape == self.input_shape:
            return qmodel
        from tfasc.models import build_model
        from tfasc.qat import deploy_model, quantize_model

        f = build_model(self.cfg.model, self.export_shape)
        f.set_weights(model.get_weights())
        if qmodel is model:
            return f
        q = quantize_model(deploy_model(f))
        q.set_weights(qmodel.get_weights())
        return q

    def export(self, model, qmodel) -> bytes:
        from tfasc.data.tau import SCENES
        from tfasc.features import mel_matrix, window
        from tfasc.io import atomic_write_bytes
        from tflm_export import codegen
        from tflm_export.convert import ExportError, convert_int8, op_list
        from tflm_export.verify import Runner, arena_bytes, compare_backends

        path = self.path("model_int8.tflite")
        e = self.cfg.export
        frames = self.export_shape[1]
        rep = frame_windows(self.representative(e.representative_clips), frames)[: max(e.representative_clips, 1)]
        log.info("phase export: int8 conversion of a %s input with %d representative windows", self.export_shape, len(rep))
        emodel = self.at_export_shape(model, qmodel)
        data = convert_int8(emodel, rep)
        arena = arena_bytes(data)
        flash_kb, arena_kb = len(data) / 1024, arena / 1024
        if e.max_flash_kb and flash_kb > e.max_flash_kb:
            raise ExportError(f"export.max_flash_kb: the model needs {flash_kb:.1f} KB of flash, over the {e.max_flash_kb} KB budget")
        if e.max_arena_kb and arena_kb > e.max_arena_kb:
            raise ExportError(f"export.max_arena_kb: the tensor arena needs {arena_kb:.1f} KB, over the {e.max_arena_kb} KB budget"
                              + ("" if e.window_frames else "; export.window_frames exports a shorter window"))
        x = frame_windows(self.test_features()[: e.verify_clips], frames)[: e.verify_clips]
        parity = compare_backends(data, x)
        lsb = parity.get("max_lsb_diff_logits", parity["max_lsb_diff"])
        if lsb > e.parity_max_lsb or parity["top1_agreement"] < e.parity_min_top1:
            raise ExportError(f"TFLM and LiteRT reference kernels disagree beyond export.parity_max_lsb = "
                              f"{e.parity_max_lsb} / export.parity_min_top1 = {e.parity_min_top1}: {parity}")
        ref = Runner(data, "litert")
        parity["int8_vs_qat_float_top1"] = float(np.mean(np.argmax(ref.predict(x), 1)
                                                         == np.argmax(emodel.predict(x, verbose=0), 1)))
        extra = {}
        if frames != self.input_shape[1]:  # the full-clip model's arena, for comparison
            extra["full_input_arena_bytes"] = arena_bytes(convert_int8(qmodel, self.representative(16)))
        info = {
            "input_shape": list(self.export_shape), "labels": list(SCENES),
            "input_scale": float(ref.inp["quantization"][0]), "input_zero_point": int(ref.inp["quantization"][1]),
            "output_scale": float(ref.out["quantization"][0]), "output_zero_point": int(ref.out["quantization"][1]),
            "arena_measured": arena, "arena_margin": e.arena_margin,
            "arena_bytes": int(np.ceil(arena * (1 + e.arena_margin) / 16) * 16), "ops": op_list(data),
        }
        corr = self.correction()
        files = codegen.generate(self.path("tflm"), e.name or self.cfg.name, data, info, self.cfg.features,
                                 mel_matrix(self.cfg.features), window(self.cfg.features),
                                 None if corr is None else corr.table())
        atomic_write_bytes(path, data)
        log.info("phase export: %d bytes flash, %d bytes arena, TFLM vs LiteRT %s", len(data), arena, parity)
        self._mark("export", flash_bytes=len(data), arena_bytes=arena, input_shape=list(self.export_shape), files=files,
                   verification=parity, **extra)
        return data

    def test_features(self) -> np.ndarray:
        if self._test_features is None:
            self._test_features = self.pipeline().features_of(self.cache("test"))
        return self._test_features

    def evaluate_int8(self, data: bytes, backend: str) -> dict:
        """Test metrics of the int8 model; a windowed export averages its windows' probabilities per clip."""
        from tfasc.evaluate import compute_metrics
        from tflm_export.verify import Runner

        runner = Runner(data, backend)
        probs = windowed_predict(runner.predict, self.test_features(), int(runner.inp["shape"][2]))
        m = compute_metrics(probs, self.cache("test").records)
        log.info("phase evaluate: int8 %s test accuracy %.2f %%", backend, 100 * m["overall"]["accuracy"])
        return m

    def int8(self, model) -> bytes | None:
        """QAT and export (each reused when finished); the int8 model's bytes, or None when export is off."""
        int8_path = self.path("model_int8.tflite")
        if self.cfg.export.enabled and self.done("export") and os.path.isfile(int8_path):
            log.info("phase export: reusing %s", int8_path)
            with open(int8_path, "rb") as fh:
                return fh.read()
        if not self.cfg.export.enabled:
            if self.cfg.qat.enabled:
                self.train_qat(model)
            return None
        qmodel = self.train_qat(model) if self.cfg.qat.enabled else model
        return self.export(model, qmodel)

    def evaluate(self, model=None, data: bytes | None = None, backends=("float", "litert", "tflm")) -> dict:
        """Per-device metrics of the chosen backends (and the teachers, with distillation); writes the report."""
        results = {}
        if "float" in backends:
            model = model if model is not None else load_model(self.path("model.keras"))
            results["float"] = self.evaluate_float(model)
            if self.export_shape != self.input_shape:  # windowed inference with the float weights, for comparison
                from tfasc.evaluate import compute_metrics

                f = self.at_export_shape(model, model)
                probs = windowed_predict(lambda x: f.predict(x, verbose=0), self.test_features(), self.export_shape[1])
                results["float_windowed"] = compute_metrics(probs, self.cache("test").records)
        if data is not None:
            if "litert" in backends:
                results["int8_litert"] = self.evaluate_int8(data, "litert")
            if "tflm" in backends and self.cfg.evaluate_tflm:
                results["int8_tflm"] = self.evaluate_int8(data, "tflm")
        if self.cfg.distill.enabled:
            results.update(self.evaluate_teachers())
        from tfasc.evaluate import write_report
        from tfasc.report import write_run_report

        files = write_report(results, self.out, "evaluation", title=self.cfg.name)
        summary = {k: {"accuracy": v["overall"]["accuracy"], "log_loss": v["overall"]["log_loss"],
                       "device": {d: x["accuracy"] for d, x in v["device"].items()}} for k, v in results.items()}
        write_json(self.path("metrics.json"), summary)
        self._mark("evaluate", files=files, backends=list(results))
        write_run_report(self, results, files)
        log.info("report: %s", self.path("report.md"))
        return results

    def run(self) -> dict:
        save_config(self.cfg, self.path("config.yaml"))
        set_determinism(self.cfg.seed, self.cfg.train.deterministic)
        self.splits()
        if self.cfg.distill.enabled:
            self.fusion()
        model = self.train_float()
        data = self.int8(model)
        return self.evaluate(model, data)


def frame_windows(x: np.ndarray, frames: int) -> np.ndarray:
    """``[n, F, T, 1]`` features -> ``[n * k, F, frames, 1]``: the k = T // frames consecutive windows of every clip."""
    n, F, T, C = x.shape
    k = T // frames
    if k == 1 and frames == T:
        return x
    w = x[:, :, : k * frames].reshape(n, F, k, frames, C)
    return np.moveaxis(w, 2, 1).reshape(n * k, F, frames, C)


def windowed_predict(predict, x: np.ndarray, frames: int) -> np.ndarray:
    """Clip probabilities as the mean over the clip's windows of ``frames`` frames."""
    k = x.shape[2] // frames
    p = np.asarray(predict(frame_windows(x, frames)))
    return p.reshape(len(x), k, -1).mean(1)


def recalibrate_batchnorm(model, batches) -> int:
    """Replace every BatchNorm's moving statistics by averages over ``batches`` of clean inputs.

    During training the moving averages follow augmented batches (DIR, Freq-MixStyle, masks,
    mixup) and lag behind the weights; measured on the demo, a BN DS-FlexiNet scored 12 %
    on validation with them and 78 % after this re-estimation ("precise BN"). Batch k enters
    with weight 1/k (momentum (k-1)/k), so the result is the mean of the batch statistics.
    Layers wrapped by TF-MOT (QAT) are found through ``.layer``; returns the batches used.
    """
    inner = [getattr(l, "layer", l) for l in _all_layers(model)]
    inner = [b for b in inner if isinstance(b, keras.layers.BatchNormalization)]
    if not inner:
        return 0
    saved = [b.momentum for b in inner]
    k = 0
    try:
        for x in batches:
            k += 1
            for b in inner:
                b.momentum = (k - 1) / k
            model(x, training=True)
    finally:
        for b, m in zip(inner, saved):
            b.momentum = m
    return k


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def save_model(model, path: str) -> None:
    from tfasc.io import atomic_write

    atomic_write(path, lambda tmp: model.save(tmp))


def load_model(path: str):
    from tfasc.models import CUSTOM_OBJECTS

    return keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
