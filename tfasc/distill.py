"""Knowledge distillation from a fused teacher ensemble (seed 000 sec. II-D).

* :class:`LogitsStore`: every teacher's logits for every clip, keyed by filename,
  with teacher ids and class names; saved as one ``.npz`` per ensemble. Logits of
  teachers trained elsewhere (e.g. PaSST) import from CSV or NPZ.
* :class:`Fusion`: ``averaged`` (mean of the teachers' logits) or ``fused``
  (seed 000 eq. 4: ``z_c = sum_s w_s z_{s,c} + b_c``, fitted on held-out clips by
  minimising cross-entropy).
* :func:`kd_loss`: seed 000 eq. 5,
  ``L = lambda CE(y, p_student) + (1 - lambda) T^2 KL(softmax(z_t / T) || softmax(z_s / T))``
  with ``lambda`` from :func:`lambda_at` (constant, linear or cosine over the epochs).
"""
from __future__ import annotations

import csv
import dataclasses
import math
import os
from typing import Sequence

import numpy as np

from tfasc.data.tau import SCENES
from tfasc.io import atomic_write


class StoreError(ValueError):
    """A logits store or an imported logits file is missing, malformed or does not match the data."""


# ----------------------------------------------------------------- logits store
@dataclasses.dataclass(frozen=True)
class LogitsStore:
    """Teacher logits ``[S teachers, N clips, C classes]`` keyed by filename.

    Classes are always stored in :data:`SCENES` order; files with another order are
    reordered on import, files with other class names are refused.
    """

    filenames: tuple
    teachers: tuple
    logits: np.ndarray
    classes: tuple = SCENES

    def __post_init__(self):
        S, N, C = np.shape(self.logits) if np.ndim(self.logits) == 3 else (None, None, None)
        if S is None:
            raise StoreError(f"logits: expected [teachers, clips, classes], got shape {np.shape(self.logits)}")
        if (S, N, C) != (len(self.teachers), len(self.filenames), len(self.classes)):
            raise StoreError(f"logits shape {(S, N, C)} does not match {len(self.teachers)} teachers x "
                             f"{len(self.filenames)} filenames x {len(self.classes)} classes")
        for what, names in (("filename", self.filenames), ("teacher", self.teachers)):
            if len(set(names)) != len(names):
                dup = sorted({n for n in names if list(names).count(n) > 1})[:3]
                raise StoreError(f"duplicate {what}(s) in the store: {dup}")
        if not np.all(np.isfinite(self.logits)):
            raise StoreError("the store holds non-finite logits")

    # ------------------------------------------------------------ access
    def index(self, filenames: Sequence[str]) -> np.ndarray:
        pos = {f: i for i, f in enumerate(self.filenames)}
        missing = [f for f in filenames if f not in pos]
        if missing:
            raise StoreError(f"{len(missing)} clip(s) have no teacher logits in the store, e.g. {missing[:3]}")
        return np.array([pos[f] for f in filenames], np.int64)

    def lookup(self, filenames: Sequence[str]) -> np.ndarray:
        """``[S, len(filenames), C]`` logits of the given clips; an error names clips not in the store."""
        return self.logits[:, self.index(filenames)]

    def covers(self, filenames: Sequence[str]) -> bool:
        have = set(self.filenames)
        return all(f in have for f in filenames)

    # ------------------------------------------------------------ combine
    @staticmethod
    def merge(stores: Sequence["LogitsStore"]) -> "LogitsStore":
        """One store with the teachers of all; they must cover the same clips."""
        first = stores[0]
        logits = [first.logits]
        for s in stores[1:]:
            if set(s.filenames) != set(first.filenames):
                diff = sorted(set(s.filenames) ^ set(first.filenames))
                raise StoreError(f"teachers {list(s.teachers)} and {list(first.teachers)} cover different clips "
                                 f"({len(diff)} differ, e.g. {diff[:3]})")
            logits.append(s.lookup(first.filenames))
        return LogitsStore(first.filenames, tuple(t for s in stores for t in s.teachers), np.concatenate(logits))

    # --------------------------------------------------------------- files
    def save(self, path: str) -> None:
        def write(tmp):
            with open(tmp, "wb") as fh:
                np.savez(fh, filenames=np.array(self.filenames), teachers=np.array(self.teachers),
                         classes=np.array(self.classes), logits=np.asarray(self.logits, np.float32))

        atomic_write(path, write)

    @classmethod
    def load(cls, path: str, teacher: str | None = None) -> "LogitsStore":
        """A store written by :meth:`save`, or external logits (``.npz`` or ``.csv``; see :meth:`from_csv`).

        An external ``.npz`` needs ``filenames`` [N] and ``logits`` [N, C] or [S, N, C]; ``classes`` [C]
        and ``teachers`` [S] are optional (default: :data:`SCENES` order, and ``teacher`` or the file stem).
        """
        if not os.path.isfile(path):
            raise StoreError(f"{path}: teacher logits file not found")
        if path.endswith(".csv"):
            return cls.from_csv(path, teacher)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as e:  # noqa: BLE001 - any unreadable file
            raise StoreError(f"{path}: not a readable .npz file ({e})") from None
        for key in ("filenames", "logits"):
            if key not in data:
                raise StoreError(f"{path}: missing array {key!r}; found {sorted(data)}")
        logits = np.asarray(data["logits"], np.float32)
        if logits.ndim == 2:
            logits = logits[None]
        n_teachers = logits.shape[0] if logits.ndim == 3 else 0
        default_ids = [teacher or os.path.splitext(os.path.basename(path))[0]]
        if n_teachers > 1:
            default_ids = [f"{default_ids[0]}_{i}" for i in range(n_teachers)]
        teachers = tuple(str(t) for t in data.get("teachers", default_ids))
        classes = tuple(str(c) for c in data.get("classes", SCENES))
        try:
            return cls.from_arrays([str(f) for f in data["filenames"]], teachers, classes, logits)
        except StoreError as e:
            raise StoreError(f"{path}: {e}") from None

    @classmethod
    def from_arrays(cls, filenames, teachers, classes, logits) -> "LogitsStore":
        """Build a store, reordering classes to :data:`SCENES` and normalising filenames to ``audio/x.wav``."""
        classes = [str(c) for c in classes]
        unknown = [c for c in classes if c not in SCENES]
        if unknown or len(classes) != len(SCENES):
            raise StoreError(f"classes {classes}: expected the {len(SCENES)} TAU22 scenes {list(SCENES)}"
                             + (f"; unknown: {unknown}" if unknown else ""))
        order = [classes.index(s) for s in SCENES]
        files = tuple(f if f.startswith("audio/") else "audio/" + os.path.basename(f) for f in filenames)
        return cls(files, tuple(teachers), np.asarray(logits, np.float32)[..., order])

    @classmethod
    def from_csv(cls, path: str, teacher: str | None = None) -> "LogitsStore":
        """CSV (comma or tab) with a ``filename`` column, an optional ``teacher`` column and one column per scene."""
        with open(path, newline="", encoding="utf-8") as fh:
            text = fh.read()
        dialect = "excel-tab" if "\t" in text.splitlines()[0] else "excel"
        rows = list(csv.DictReader(text.splitlines(), dialect=dialect))
        if not rows:
            raise StoreError(f"{path}: no rows")
        cols = list(rows[0])
        if "filename" not in cols:
            raise StoreError(f"{path}: expected a 'filename' column, found {cols}")
        classes = [c for c in cols if c not in ("filename", "teacher")]
        default = teacher or os.path.splitext(os.path.basename(path))[0]
        by_teacher: dict = {}
        for line, r in enumerate(rows, start=2):
            try:
                vals = [float(r[c]) for c in classes]
            except (TypeError, ValueError):
                raise StoreError(f"{path}, line {line}: expected {len(classes)} numeric logits, got {r}") from None
            by_teacher.setdefault(r.get("teacher") or default, {})[r["filename"]] = vals
        ids = sorted(by_teacher)
        files = sorted(by_teacher[ids[0]])
        for t in ids[1:]:
            if set(by_teacher[t]) != set(files):
                raise StoreError(f"{path}: teachers {ids[0]!r} and {t!r} cover different clips")
        logits = np.array([[by_teacher[t][f] for f in files] for t in ids], np.float32)
        try:
            return cls.from_arrays(files, ids, classes, logits)
        except StoreError as e:
            raise StoreError(f"{path}: {e}") from None


# ----------------------------------------------------------------------- fusion
def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


@dataclasses.dataclass(frozen=True)
class Fusion:
    """``z_c = sum_s w_s z_{s,c} + b_c`` (seed 000 eq. 4); ``averaged`` is w = 1/S, b = 0."""

    kind: str
    weights: tuple
    bias: tuple

    @classmethod
    def averaged(cls, n_teachers: int, n_classes: int = len(SCENES)) -> "Fusion":
        return cls("averaged", (1.0 / n_teachers,) * n_teachers, (0.0,) * n_classes)

    @classmethod
    def fit(cls, logits: np.ndarray, labels: np.ndarray, l2: float = 1e-4) -> "Fusion":
        """Weights and biases minimising the mean cross-entropy of the fused logits on held-out clips.

        ``logits``: [S, N, C]; ``labels``: [N] class indices. L-BFGS on the convex
        objective ``mean_n -log softmax(sum_s w_s z_sn + b)_{y_n} + l2 (|w|^2 + |b|^2) / 2``,
        started from the average.
        """
        from scipy.optimize import minimize

        z = np.asarray(logits, np.float64)
        S, N, C = z.shape
        y = np.eye(C)[np.asarray(labels)]

        def objective(theta):
            w, b = theta[:S], theta[S:]
            f = np.einsum("s,snc->nc", w, z) + b
            ls = log_softmax(f)
            loss = -np.mean(np.sum(y * ls, axis=1)) + 0.5 * l2 * np.sum(theta**2)
            g = (np.exp(ls) - y) / N  # dL/df
            grad = np.concatenate([np.einsum("nc,snc->s", g, z), g.sum(0)]) + l2 * theta
            return loss, grad

        theta0 = np.concatenate([np.full(S, 1.0 / S), np.zeros(C)])
        res = minimize(objective, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 500})
        return cls("fused", tuple(float(v) for v in res.x[:S]), tuple(float(v) for v in res.x[S:]))

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """[S, N, C] teacher logits -> [N, C] ensemble logits."""
        return np.einsum("s,snc->nc", np.asarray(self.weights), np.asarray(logits, np.float64)).astype(np.float32) \
            + np.asarray(self.bias, np.float32)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Fusion":
        return cls(d["kind"], tuple(d["weights"]), tuple(d["bias"]))


def softmax(z: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(np.asarray(z, np.float64)))


# ------------------------------------------------------------------------- loss
def lambda_at(epoch: int, epochs: int, start: float, end: float, schedule: str) -> float:
    """The label-loss weight at the start of ``epoch`` (0-based) of ``epochs``."""
    if schedule == "constant" or epochs <= 1:
        return float(start)
    t = min(1.0, epoch / (epochs - 1))
    if schedule == "linear":
        return float(start + (end - start) * t)
    if schedule == "cosine":
        return float(end + (start - end) * 0.5 * (1 + math.cos(math.pi * t)))
    raise ValueError(f"distill.lambda_schedule: expected constant, linear or cosine, got {schedule!r}")


def make_kd_loss(label_loss, num_classes: int, temperature: float, model_temperature: float, lam):
    """Seed 000 eq. 5 as a Keras loss on ``targets = concat([label, teacher logits])`` and student probabilities.

    The student's logits are recovered from its heated-up softmax output up to a constant
    (``z_s = T_model log p``), which softmax ignores. ``lam`` is a ``tf.Variable`` (or float)
    updated by :class:`LambdaCallback`. Only the student is differentiated: the teacher
    logits are data.
    """
    from tfasc.keras import tf

    T = float(temperature)

    def kd(y_true, p):
        y, z_t = y_true[:, :num_classes], tf.stop_gradient(y_true[:, num_classes:])
        z_s = model_temperature * tf.math.log(tf.clip_by_value(p, 1e-30, 1.0))
        log_q_t = tf.nn.log_softmax(z_t / T)
        log_q_s = tf.nn.log_softmax(z_s / T)
        kl = tf.reduce_sum(tf.exp(log_q_t) * (log_q_t - log_q_s), axis=-1)
        w = tf.cast(lam, p.dtype)
        return w * label_loss(y, p) + (1.0 - w) * T**2 * kl

    kd.__name__ = "kd"
    return kd


def lambda_callback(variable, cfg, epochs: int):
    """A Keras callback setting ``variable`` to :func:`lambda_at` at the start of every epoch."""
    from tfasc.keras import keras

    class LambdaCallback(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            variable.assign(lambda_at(epoch, epochs, cfg.lambda_start, cfg.lambda_end, cfg.lambda_schedule))

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["kd_lambda"] = float(variable.numpy())

    return LambdaCallback()
