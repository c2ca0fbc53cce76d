"""The one tf.data pipeline builder.

Elements travel as dicts (``audio``, ``label``, ``device``, optional ``teacher``)
from the waveform cache, in batches:

    waveform (DIR/ADIR) -> STFT -> spectrum correction -> mel/log
    -> spectrogram (time roll, frequency mask) -> batch (Freq-MixStyle, mixup)

and leave as ``(features, targets)`` for Keras: ``targets`` is the one-hot label,
or with distillation ``concat([one-hot, teacher logits])`` mixed together.
"""
from __future__ import annotations

import numpy as np

from tfasc import augment
from tfasc.config import Config
from tfasc.data.audio import WaveCache
from tfasc.data.tau import DEVICES
from tfasc.features import LogMel
from tfasc.keras import tf


class Pipeline:
    """Feature extraction and augmentation for one config.

    Args:
        cfg: the experiment config.
        correction: ``[len(DEVICES), n_bins]`` spectrum-correction table, or None.
        irs: ``[n_irs, K]`` device impulse responses at the feature rate (DIR), or None.
        adir_threshold: clip-energy threshold for ADIR, or None.
    """

    def __init__(self, cfg: Config, correction=None, irs=None, adir_threshold=None):
        self.cfg = cfg
        self.logmel = LogMel(cfg.features, correction)
        self.irs = None if irs is None else tf.constant(irs)
        self.adir_threshold = adir_threshold
        self.dir_eligible = tf.constant([d in cfg.augment.dir.devices for d in DEVICES])

    # -------------------------------------------------------------- pieces
    def features(self, wave, device):
        return self.logmel(wave, device)

    def augment_batch(self, elem, seed):
        """Training-time transform of one batch dict -> (features, targets dict).

        With cached features (``elem["features"]``) only the clips DIR convolves go through
        the front end again; the others keep their cached, identical features.
        """
        a = self.cfg.augment
        s_dir, s_roll, s_mask, s_fms, s_mix = tf.unstack(tf.random.experimental.stateless_split(seed, 5))
        wave, device, x = elem.get("audio"), elem["device"], elem.get("features")
        if self.irs is not None and a.dir.p > 0:
            idx, conv = augment.device_ir_subset(wave, device, self.irs, a.dir.p, s_dir, self.dir_eligible,
                                                 self.adir_threshold)
            if x is None:
                wave = tf.tensor_scatter_nd_update(wave, idx[:, None], conv)
            else:
                x = tf.tensor_scatter_nd_update(x, idx[:, None], self.features(conv, tf.gather(device, idx)))
        if x is None:
            x = self.features(wave, device)
        x = augment.time_roll(x, a.roll_max_frames, s_roll)
        x = augment.freq_mask(x, a.freq_mask_bins, s_mask)
        x = augment.freq_mixstyle(x, a.freq_mixstyle.p, a.freq_mixstyle.alpha, s_fms, a.freq_mixstyle.eps)
        targets = self._targets(elem)
        return augment.mixup(x, targets, a.mixup.alpha, s_mix)

    def _targets(self, elem):
        t = {"label": tf.one_hot(elem["label"], self.cfg.model.num_classes)}
        if "teacher" in elem:
            t["teacher"] = elem["teacher"]
        return t

    @staticmethod
    def _pack(x, targets):
        if "teacher" in targets:
            return x, tf.concat([targets["label"], targets["teacher"]], axis=-1)
        return x, targets["label"]

    # ------------------------------------------------------------ datasets
    def feature_cache(self, cache: WaveCache) -> np.ndarray:
        """Un-augmented features ``[n, F, T, 1]`` of a waveform cache, computed once and memory-mapped
        beside it (keyed by the waveforms, the feature config and the correction table)."""
        import hashlib
        import logging
        import os

        from tfasc.config import to_dict
        from tfasc.io import atomic_write

        h = hashlib.sha1(f"{os.path.basename(cache.path)}|{sorted(to_dict(self.cfg.features).items())}|v1".encode())
        if self.logmel.correction is not None:
            h.update(self.logmel.correction.numpy().tobytes())
        path = f"{cache.path[:-4]}-logmel-{h.hexdigest()[:12]}.npy"
        if os.path.isfile(path):
            feats = np.load(path, mmap_mode="r")
            if feats.shape[0] == len(cache):
                return feats
        logging.getLogger(__name__).info("caching the log-mel features of %d clips in %s", len(cache), path)
        dtype = self.cfg.data.cache_dtype

        def write(tmp):
            out = None
            k = 0
            for x, _ in self._dataset(cache, False, None, 64, None):
                x = x.numpy()
                if out is None:
                    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(cache), *x.shape[1:]))
                out[k : k + len(x)] = x
                k += len(x)
            out.flush()

        atomic_write(path, write)
        return np.load(path, mmap_mode="r")

    def dataset(self, cache: WaveCache, training: bool, teacher: np.ndarray | None = None, batch_size: int | None = None):
        """Batches of ``(features, targets)`` over the clips of ``cache``."""
        feats = self.feature_cache(cache) if self.cfg.data.feature_cache else None
        return self._dataset(cache, training, teacher, batch_size or self.cfg.train.batch_size, feats)

    def _dataset(self, cache: WaveCache, training: bool, teacher, bs: int, feats):
        labels = np.array([r.label for r in cache.records], np.int32)
        devices = np.array([DEVICES.index(r.device) for r in cache.records], np.int32)
        waves = cache.waves

        def load(idx):
            return np.asarray(waves[idx], np.float32)

        needs_audio = self.irs is not None and self.cfg.augment.dir.p > 0

        def load_features(idx):
            return np.asarray(feats[idx], np.float32)

        def fetch(idx):
            idx = tf.sort(idx)
            elem = {"label": tf.gather(labels, idx), "device": tf.gather(devices, idx)}
            if feats is None or (training and needs_audio):  # DIR works on the waveforms
                audio = tf.numpy_function(load, [idx], tf.float32, stateful=False)
                audio.set_shape([None, waves.shape[1]])
                elem["audio"] = audio
            if feats is not None:
                x = tf.numpy_function(load_features, [idx], tf.float32, stateful=False)
                x.set_shape([None, *feats.shape[1:]])
                elem["features"] = x
            if teacher is not None:
                elem["teacher"] = tf.gather(tf.constant(teacher, tf.float32), idx)
            return elem

        n = len(cache)
        ds = tf.data.Dataset.range(n)
        if training:
            ds = ds.shuffle(n, seed=self.cfg.seed, reshuffle_each_iteration=True)
        ds = ds.batch(bs, drop_remainder=training and n >= bs).map(fetch, num_parallel_calls=tf.data.AUTOTUNE)
        if training:
            seeds = tf.data.Dataset.random(seed=self.cfg.seed, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip((ds, seeds)).map(
                lambda e, s: self._pack(*self.augment_batch(e, s)), num_parallel_calls=tf.data.AUTOTUNE
            )
        else:
            ds = ds.map(lambda e: self._pack(e["features"] if "features" in e else self.features(e["audio"], e["device"]),
                                             self._targets(e)), num_parallel_calls=tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.deterministic = self.cfg.train.deterministic
        return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

    def features_of(self, cache: WaveCache, batch_size: int = 64) -> np.ndarray:
        """All features of a cache, unaugmented, as one array ``[n, F, T, 1]``."""
        return np.concatenate([x.numpy() for x, _ in self.dataset(cache, training=False, batch_size=batch_size)])
