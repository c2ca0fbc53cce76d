"""Experiment configuration: frozen dataclasses mirrored by YAML.

A YAML file mirrors the dataclass tree below. ``load_config`` validates every
key and value and raises :class:`ConfigError` naming the file, the dotted key
path (``train.optimizer.lr``) and what was expected. A file may start from
another with ``base: other.yaml`` (resolved relative to the file), and
command-line overrides use the same dotted paths (``--set train.epochs=3``).
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import yaml


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


def _f(default, *, choices=None, lo=None, hi=None, item=None, doc=""):
    """A dataclass field with validation metadata (``item``: the dataclass of a list's elements)."""
    meta = {"choices": choices, "lo": lo, "hi": hi, "item": item, "doc": doc}
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults")
    if dataclasses.is_dataclass(default):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class SynthConfig:
    """The built-in synthetic TAU22-layout demo dataset."""

    generate_if_missing: bool = _f(False, doc="generate the demo dataset at data.root if absent")
    cities: int = _f(3, lo=2, hi=12)
    locations_per_city: int = _f(2, lo=1, hi=20)
    segments_per_location: int = _f(6, lo=1, hi=200)
    seed: int = _f(0, lo=0)


@dataclass(frozen=True)
class DataConfig:
    root: str = _f("data/demo", doc="dataset root (TAU22 or TAU19/20 layout)")
    layout: str = _f("tau22", choices=("tau22", "tau19"))
    split: str = _f(
        "fold1",
        choices=("fold1", "split5", "split10", "split25", "split50", "split100"),
        doc="training list: official fold1_train or a DCASE2024 subset",
    )
    val_fraction: float = _f(0.15, lo=0.0, hi=0.5, doc="fraction of training locations held out")
    clip_seconds: float = _f(1.0, lo=0.1, hi=30.0)
    cache_dir: str = _f(".tfasc_cache", doc="where decoded, resampled waveforms are cached")
    cache_dtype: str = _f("float32", choices=("float16", "float32"))
    feature_cache: bool = _f(True, doc="cache un-augmented log-mel features; training recomputes only DIR-convolved clips")
    synth: SynthConfig = _f(SynthConfig())


# ------------------------------------------------------------------------- features
@dataclass(frozen=True)
class CorrectionConfig:
    """Spectrum correction (seed 001, sec. 2.1), applied to the STFT magnitude."""

    enabled: bool = _f(False)
    reference: str = _f("ABC", choices=("ABC", "BC", "none"))
    clips_per_device: int = _f(540, lo=1)
    unseen: str = _f("identity", choices=("identity", "mean"), doc="policy for devices without coefficients")

    @property
    def applies(self) -> bool:
        """Whether features are corrected: enabled with a reference (Ref.none is seed 001's NoCorrection)."""
        return self.enabled and self.reference != "none"


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel front end. This is the firmware contract: C settings are generated from it."""

    sample_rate: int = _f(32000, lo=4000, hi=96000)
    n_fft: int = _f(4096, lo=64, hi=16384)
    win_length: int = _f(3072, lo=16, hi=16384)
    hop_length: int = _f(500, lo=1, hi=16384)
    window: str = _f("hann", choices=("hann", "hamming"))
    n_mels: int = _f(256, lo=8, hi=512)
    fmin: float = _f(0.0, lo=0.0)
    fmax: float = _f(0.0, lo=0.0, doc="0 means sample_rate / 2")
    power: float = _f(2.0, choices=(1.0, 2.0))
    log_offset: float = _f(1e-5, lo=0.0)
    norm_mode: str = _f("fixed", choices=("fixed", "clip"), doc="fixed: (x - mean) / std; clip: per-clip standardisation")
    norm_mean: float = _f(-4.5)
    norm_std: float = _f(5.0, lo=1e-6)
    correction: CorrectionConfig = _f(CorrectionConfig())


# --------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class DirConfig:
    p: float = _f(0.0, lo=0.0, hi=1.0, doc="probability of convolving a clip with a device IR")
    path: str = _f("../shared/micirp", doc="folder of impulse-response WAV files")
    devices: tuple = _f(("a",), doc="devices whose clips may be convolved")
    adir: bool = _f(False, doc="gate by clip energy (ADIR)")
    adir_threshold: str = _f("mean", doc="a number, or 'mean' (training-set mean energy)")


@dataclass(frozen=True)
class MixStyleConfig:
    p: float = _f(0.0, lo=0.0, hi=1.0)
    alpha: float = _f(0.3, lo=1e-3)
    eps: float = _f(1e-6, lo=0.0)


@dataclass(frozen=True)
class MixupConfig:
    alpha: float = _f(0.0, lo=0.0, doc="Beta(alpha, alpha); 0 disables")


@dataclass(frozen=True)
class AugmentConfig:
    dir: DirConfig = _f(DirConfig())
    freq_mixstyle: MixStyleConfig = _f(MixStyleConfig())
    mixup: MixupConfig = _f(MixupConfig())
    roll_max_frames: int = _f(0, lo=0, doc="random time roll of the spectrogram by up to this many frames")
    freq_mask_bins: int = _f(0, lo=0, doc="width of one random frequency mask; 0 disables")


# ---------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ModelConfig:
    name: str = _f("dsflexinet", choices=("dsflexinet", "cnn5", "cpresnet"))
    variant: str = _f("sm1", choices=("sm1", "sm2", "sm3", "sm4"), doc="DS-FlexiNet size (Table II)")
    norm: str = _f("rn", choices=("rn", "bn"), doc="block normalisation: ResidualNorm or BatchNorm")
    temperature: float = _f(1.0, lo=1e-3, doc="heated-up softmax temperature")
    width: int = _f(32, lo=4, doc="CP-ResNet base width")
    depth: int = _f(2, lo=1, hi=8, doc="CP-ResNet blocks per stage")
    rho: int = _f(7, lo=1, hi=12, doc="CP-ResNet receptive-field regulariser")
    num_classes: int = _f(10, lo=2)


# ------------------------------------------------------------------------- training
@dataclass(frozen=True)
class OptimizerConfig:
    name: str = _f("adam", choices=("adam", "adamw", "adadelta", "sgd"))
    lr: float = _f(1e-3, lo=0.0, hi=10.0)
    weight_decay: float = _f(0.0, lo=0.0)
    momentum: float = _f(0.9, lo=0.0, hi=1.0)


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = _f("cosine", choices=("constant", "cosine", "plateau"))
    warmup_epochs: int = _f(0, lo=0)
    plateau_patience: int = _f(16, lo=1)
    plateau_factor: float = _f(0.1, lo=0.0, hi=1.0)


@dataclass(frozen=True)
class LossConfig:
    name: str = _f("ce", choices=("ce", "focal"))
    gamma: float = _f(1.0, lo=0.0)
    label_smoothing: float = _f(0.0, lo=0.0, hi=1.0)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = _f(10, lo=0)
    batch_size: int = _f(64, lo=1)
    steps_per_epoch: int = _f(0, lo=0, doc="0: one pass over the training split")
    optimizer: OptimizerConfig = _f(OptimizerConfig())
    schedule: ScheduleConfig = _f(ScheduleConfig())
    loss: LossConfig = _f(LossConfig())
    strategy: str = _f("default", choices=("default", "mirrored", "multi_worker"))
    deterministic: bool = _f(True)
    bn_recalibration_clips: int = _f(2048, lo=0, doc="re-estimate BatchNorm statistics on this many clean training "
                                                      "clips after training and after QAT; 0: keep the moving averages")


@dataclass(frozen=True)
class TeacherSpec:
    """One teacher of the ensemble: a config file trained by the same trainer on the student's data."""

    id: str = _f("", doc="teacher id in the logits store; default: the config name plus the seed")
    config: str = _f("teacher_cpresnet.yaml", doc="config file, relative to the student config's folder")
    set: tuple = _f((), doc="overrides for this teacher, e.g. [seed=1, model.width=48]")


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation from a fused teacher ensemble (seed 000 sec. II-D, eqs. 4-5)."""

    enabled: bool = _f(False)
    store: str = _f("", doc="teacher logits store (.npz from tfasc, or an external .csv/.npz); empty: train the teachers")
    teachers: tuple = _f((), item=TeacherSpec, doc="teachers to train when no store is given")
    fusion: str = _f("fused", choices=("averaged", "fused"))
    temperature: float = _f(2.0, lo=1e-3, doc="distillation temperature T of eq. 5")
    lambda_start: float = _f(0.5, lo=0.0, hi=1.0, doc="weight of the label loss at the start")
    lambda_end: float = _f(0.5, lo=0.0, hi=1.0, doc="weight of the label loss at the end")
    lambda_schedule: str = _f("constant", choices=("constant", "linear", "cosine"))


@dataclass(frozen=True)
class QatConfig:
    enabled: bool = _f(False)
    epochs: int = _f(2, lo=1)
    lr: float = _f(1e-4, lo=0.0)


@dataclass(frozen=True)
class ExportConfig:
    enabled: bool = _f(False)
    name: str = _f("", doc="C symbol prefix; default: the config name")
    representative_clips: int = _f(200, lo=10)
    window_frames: int = _f(0, lo=0, doc="export for a window of this many frames; 0: the full input")
    arena_margin: float = _f(0.1, lo=0.0, hi=2.0)
    max_flash_kb: float = _f(0.0, lo=0.0, doc="0: no limit")
    max_arena_kb: float = _f(0.0, lo=0.0, doc="0: no limit")
    verify_clips: int = _f(100, lo=1)
    parity_max_lsb: int = _f(1, lo=0, doc="largest int8 difference allowed between TFLM and LiteRT reference kernels, "
                                          "compared at the logits (the final SOFTMAX kernels differ by design)")
    parity_min_top1: float = _f(0.98, lo=0.0, hi=1.0, doc="smallest top-1 agreement allowed between TFLM and LiteRT")


@dataclass(frozen=True)
class Config:
    name: str = _f("run")
    seed: int = _f(42, lo=0)
    data: DataConfig = _f(DataConfig())
    features: FeatureConfig = _f(FeatureConfig())
    augment: AugmentConfig = _f(AugmentConfig())
    model: ModelConfig = _f(ModelConfig())
    train: TrainConfig = _f(TrainConfig())
    distill: DistillConfig = _f(DistillConfig())
    qat: QatConfig = _f(QatConfig())
    export: ExportConfig = _f(ExportConfig())
    evaluate_tflm: bool = _f(True, doc="evaluate the int8 model in the TFLM interpreter")


# ------------------------------------------------------------------------ loading
def _describe(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp, where: str, f: dataclasses.Field | None) -> Any:
    """Check and convert one leaf value against its annotated type."""
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping of {_describe(tp)} keys, got {value!r}")
        return _from_dict(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        value = float(value)
    elif tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # e.g. adir_threshold: 323
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
    elif tp is tuple:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = f.metadata.get("item") if f is not None else None
        if item is not None:
            value = tuple(_convert(v, item, f"{where}[{i}]", None) for i, v in enumerate(value))
        else:
            value = tuple(value)
    if f is not None:
        meta = f.metadata
        if meta.get("choices") is not None and value not in meta["choices"]:
            raise ConfigError(f"{where}: expected one of {list(meta['choices'])}, got {value!r}")
        if meta.get("lo") is not None and value < meta["lo"]:
            raise ConfigError(f"{where}: expected a value >= {meta['lo']}, got {value!r}")
        if meta.get("hi") is not None and value > meta["hi"]:
            raise ConfigError(f"{where}: expected a value <= {meta['hi']}, got {value!r}")
    return value


def _from_dict(cls, data: Mapping, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"{key}: unknown key; expected one of {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        where = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _convert(value, hints[name], where, fields[name])
    return cls(**kwargs)


def to_dict(cfg) -> dict:
    """The config as plain YAML-ready data (tuples become lists)."""

    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def _deep_merge(base: dict, over: Mapping) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _read_yaml(path: str, chain: tuple = ()) -> dict:
    path = os.path.abspath(path)
    if path in chain:
        raise ConfigError(f"{path}: circular 'base' chain: {' -> '.join(chain + (path,))}")
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    with open(path, encoding="utf-8") as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: malformed YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return dict(data)
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base: expected a file name, got {base!r}")
    parent = _read_yaml(os.path.join(os.path.dirname(path), base), chain + (path,))
    return _deep_merge(parent, data)


def parse_override(text: str) -> tuple[str, Any]:
    """``train.epochs=3`` -> ("train.epochs", 3); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. train.epochs=3")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {text!r}: malformed value: {e}") from None
    return key.strip(), value


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    data = _deep_merge({}, data)
    for text in overrides:
        key, value = parse_override(text)
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"--set {text!r}: {p} is not a section")
            else:
                nxt = node[p] = dict(nxt)
            node = nxt
        node[parts[-1]] = value
    return data


def load_config(path: str, overrides: Sequence[str] = ()) -> Config:
    """Read, merge (``base:``), override and validate a YAML config."""
    data = _read_yaml(path)
    data = apply_overrides(data, overrides)
    try:
        cfg = _from_dict(Config, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return _resolve_teachers(cfg, os.path.dirname(os.path.abspath(path)))


def _resolve_teachers(cfg: Config, folder: str) -> Config:
    """Teacher config paths are relative to the student config's folder; store them absolute."""
    specs = []
    for i, t in enumerate(cfg.distill.teachers):
        p = t.config if os.path.isabs(t.config) else os.path.join(folder, t.config)
        if not os.path.isfile(p):
            raise ConfigError(f"distill.teachers[{i}].config: teacher config {p} not found")
        specs.append(dataclasses.replace(t, config=os.path.abspath(p)))
    if not specs:
        return cfg
    return dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, teachers=tuple(specs)))


def config_from_dict(data: Mapping) -> Config:
    return _from_dict(Config, data)


def replace(cfg, **changes):
    """Copy of ``cfg`` with dotted keys changed: ``replace(cfg, **{"train.epochs": 3})``."""
    data = to_dict(cfg)
    for key, value in changes.items():
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config_from_dict(data)


def save_config(cfg: Config, path: str) -> None:
    from tfasc.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
