"""TAU Urban Acoustic Scenes Mobile metadata: records, splits, devices.

Layouts read:

* TAU22 Mobile (1-s clips): ``audio/<scene>-<city>-<location>-<segment>-<sub>-<device>.wav``,
  ``meta.csv`` (tab-separated ``filename scene_label identifier source_label``),
  ``evaluation_setup/fold1_{train,evaluate,test}.csv`` and the DCASE2024
  subsets ``split{5,10,25,50,100}.csv``.
* TAU19/20 Mobile (10-s clips, devices a, b, c):
  ``audio/<scene>-<city>-<location>-<segment>-<device>.wav`` with the same files.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

SCENES = (
    "airport",
    "bus",
    "metro",
    "metro_station",
    "park",
    "public_square",
    "shopping_mall",
    "street_pedestrian",
    "street_traffic",
    "tram",
)
DEVICES = ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")
DEVICE_GROUPS = {
    "real": ("a", "b", "c"),
    "seen": ("s1", "s2", "s3"),
    "unseen": ("s4", "s5", "s6"),
}
SPLIT_DIRS = ("", "evaluation_setup", "split_setup", "dcase24_splits")

LAYOUT_HELP = """expected a TAU Urban Acoustic Scenes Mobile layout:
  ROOT/audio/<scene>-<city>-<location>-<segment>[-<sub>]-<device>.wav
  ROOT/meta.csv                                  (optional; tab-separated)
  ROOT/evaluation_setup/fold1_train.csv          (tab-separated: filename, scene_label)
  ROOT/evaluation_setup/fold1_evaluate.csv       (tab-separated: filename, scene_label)
  ROOT/split{5,10,25,50,100}.csv                 (DCASE2024 subsets; optional)
For a small synthetic dataset in this layout run `tfasc data synth ROOT`,
or train with configs/demo.yaml, which generates one."""


class DataError(ValueError):
    """The dataset on disk does not match what was expected."""


def device_group(device: str) -> str:
    for group, members in DEVICE_GROUPS.items():
        if device in members:
            return group
    raise DataError(f"device {device!r} is outside the vocabulary {list(DEVICES)}")


@dataclass(frozen=True)
class Record:
    """One clip: its path relative to the dataset root and what it is."""

    filename: str
    scene: str
    device: str
    city: str
    location: str  # the TAU "identifier": <city>-<location id>

    @property
    def label(self) -> int:
        return SCENES.index(self.scene)


def parse_filename(filename: str) -> dict:
    """Scene, city, location identifier and device from a TAU file name."""
    stem = os.path.splitext(os.path.basename(filename))[0]
    parts = stem.split("-")
    if len(parts) < 5:
        raise DataError(
            f"{filename}: cannot parse a TAU file name; expected "
            "<scene>-<city>-<location>-<segment>[-<sub>]-<device>.wav"
        )
    scene, city, loc, device = parts[0], parts[1], parts[2], parts[-1]
    if device not in DEVICES:
        raise DataError(f"{filename}: device {device!r} is outside the vocabulary {list(DEVICES)}")
    return {"scene": scene, "city": city, "location": f"{city}-{loc}", "device": device}


def _read_tsv(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if reader.fieldnames is None or "filename" not in reader.fieldnames:
            raise DataError(f"{path}: expected a tab-separated header with a 'filename' column")
        return [dict(r) for r in reader]


def read_meta(root: str) -> dict[str, dict]:
    """``meta.csv`` as {filename: row}, or {} when the file is absent."""
    path = os.path.join(root, "meta.csv")
    if not os.path.isfile(path):
        return {}
    rows = _read_tsv(path)
    return {r["filename"]: r for r in rows}


def make_record(filename: str, scene: str | None, meta: dict[str, dict], where: str) -> Record:
    info = parse_filename(filename)
    row = meta.get(filename)
    if row is not None:
        scene = scene or row.get("scene_label")
        if row.get("source_label"):
            info["device"] = row["source_label"]
        if row.get("identifier"):
            info["location"] = row["identifier"]
    scene = scene or info["scene"]
    if scene not in SCENES:
        raise DataError(f"{where}: {filename}: scene {scene!r} is outside the vocabulary {list(SCENES)}")
    if info["device"] not in DEVICES:
        raise DataError(f"{where}: {filename}: device {info['device']!r} is outside the vocabulary {list(DEVICES)}")
    return Record(filename, scene, info["device"], info["city"], info["location"])


def find_split_file(root: str, name: str) -> str:
    for sub in SPLIT_DIRS:
        path = os.path.join(root, sub, name)
        if os.path.isfile(path):
            return path
    raise DataError(f"{root}: no {name} found (looked in {', '.join(s or '.' for s in SPLIT_DIRS)})\n{LAYOUT_HELP}")


def read_split(path: str, meta: dict[str, dict] | None = None) -> list[Record]:
    """Records of one split file (``filename[\\tscene_label]``)."""
    meta = meta or {}
    return [make_record(r["filename"], r.get("scene_label"), meta, path) for r in _read_tsv(path)]


def split_by_location(records: Sequence[Record], fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Hold out ``fraction`` of the locations of every scene; no location lands in both parts."""
    if fraction <= 0:
        return list(records), []
    rng = np.random.default_rng(seed)
    held: set[str] = set()
    for scene in SCENES:
        locs = sorted({r.location for r in records if r.scene == scene})
        if len(locs) < 2:
            continue
        n = max(1, int(round(fraction * len(locs))))
        held.update(rng.permutation(locs)[:n].tolist())
    train = [r for r in records if r.location not in held]
    val = [r for r in records if r.location in held]
    return train, val


@dataclass(frozen=True)
class Splits:
    train: list
    val: list
    test: list

    def items(self):
        return (("train", self.train), ("val", self.val), ("test", self.test))


def load_splits(root: str, split: str = "fold1", val_fraction: float = 0.15, seed: int = 0) -> Splits:
    """The training, validation (held-out locations) and test records of a dataset."""
    if not os.path.isdir(root):
        raise DataError(f"dataset root {root!r} does not exist\n{LAYOUT_HELP}")
    meta = read_meta(root)
    train_name = "fold1_train.csv" if split == "fold1" else f"{split}.csv"
    train = read_split(find_split_file(root, train_name), meta)
    test = read_split(find_split_file(root, "fold1_evaluate.csv"), meta)
    train, val = split_by_location(train, val_fraction, seed)
    test_locs = {r.location for r in test}
    overlap = test_locs & {r.location for r in train + val}
    if overlap:
        raise DataError(f"{root}: locations in both training and test lists: {sorted(overlap)[:5]}")
    return Splits(train, val, test)


def count_table(records: Iterable[Record]) -> dict[str, dict[str, int]]:
    """{device: {scene: n}} over the records."""
    table: dict[str, dict[str, int]] = {}
    for r in records:
        table.setdefault(r.device, {}).setdefault(r.scene, 0)
        table[r.device][r.scene] += 1
    return table
