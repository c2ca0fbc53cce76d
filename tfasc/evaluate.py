"""Metrics and reports: overall, per device, per device group, per scene; JSON, Markdown, PNG."""
from __future__ import annotations

import logging
import os
import re
from typing import Sequence

import numpy as np

from tfasc.data.tau import DEVICE_GROUPS, DEVICES, SCENES, Record
from tfasc.io import atomic_write, atomic_write_text, write_json

log = logging.getLogger(__name__)
EPS = 1e-7


def _acc_ll(probs: np.ndarray, labels: np.ndarray) -> dict:
    if len(labels) == 0:
        return {"n": 0, "accuracy": None, "log_loss": None}
    p = np.clip(probs[np.arange(len(labels)), labels], EPS, 1.0)
    return {
        "n": int(len(labels)),
        "accuracy": float(np.mean(np.argmax(probs, 1) == labels)),
        "log_loss": float(-np.mean(np.log(p))),
    }


def compute_metrics(probs: np.ndarray, records: Sequence[Record]) -> dict:
    """Accuracy and log loss overall, per device, per device group and per scene, plus the confusion matrix."""
    probs = np.asarray(probs, np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)
    labels = np.array([r.label for r in records])
    devices = np.array([r.device for r in records])
    scenes = np.array([r.scene for r in records])
    out = {"overall": _acc_ll(probs, labels), "device": {}, "group": {}, "scene": {}}
    for d in DEVICES:
        m = devices == d
        if m.any():
            out["device"][d] = _acc_ll(probs[m], labels[m])
    for g, members in DEVICE_GROUPS.items():
        m = np.isin(devices, members)
        if m.any():
            out["group"][g] = _acc_ll(probs[m], labels[m])
    for s in SCENES:
        m = scenes == s
        if m.any():
            out["scene"][s] = _acc_ll(probs[m], labels[m])
    cm = np.zeros((len(SCENES), len(SCENES)), np.int64)
    np.add.at(cm, (labels, np.argmax(probs, 1)), 1)
    out["confusion"] = cm.tolist()
    return out


def _pct(v):
    return "-" if v is None else f"{100 * v:.2f}"


def markdown_tables(results: dict[str, dict]) -> str:
    """Per-device accuracy tables (Table IV/V layout), one row per backend/model."""
    devs = [d for d in DEVICES if any(d in r["device"] for r in results.values())]
    head = "| model | " + " | ".join(d.upper() for d in devs) + " | real | seen | unseen | ACC | log loss |"
    lines = [head, "|" + "---|" * (len(devs) + 6)]
    for name, r in results.items():
        cells = [_pct(r["device"].get(d, {}).get("accuracy")) for d in devs]
        cells += [_pct(r["group"].get(g, {}).get("accuracy")) for g in DEVICE_GROUPS]
        ll = r["overall"]["log_loss"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_pct(r['overall']['accuracy'])} | {ll:.3f} |")
    scenes = [s for s in SCENES if any(s in r["scene"] for r in results.values())]
    lines += ["", "| model | " + " | ".join(scenes) + " |", "|" + "---|" * (len(scenes) + 1)]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(_pct(r["scene"].get(s, {}).get("accuracy")) for s in scenes) + " |")
    return "\n".join(lines)


def _savefig(fig, path):
    def write(tmp):
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")

    atomic_write(path, write)


def plot_confusion(metrics: dict, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.array(metrics["confusion"], np.float64)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(SCENES)), SCENES, rotation=60, ha="right")
    ax.set_yticks(range(len(SCENES)), SCENES)
    for i in range(len(SCENES)):
        for j in range(len(SCENES)):
            if cm[i, j]:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    _savefig(fig, path)
    plt.close(fig)


def plot_devices(results: dict[str, dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devs = [d for d in DEVICES if any(d in r["device"] for r in results.values())]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(results))
    for k, (name, r) in enumerate(results.items()):
        vals = [100 * (r["device"].get(d, {}).get("accuracy") or 0) for d in devs]
        ax.bar(np.arange(len(devs)) + k * width - 0.4 + width / 2, vals, width, label=name)
    ax.set_xticks(range(len(devs)), [d.upper() for d in devs])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    _savefig(fig, path)
    plt.close(fig)


def write_report(results: dict[str, dict], out_dir: str, stem: str = "evaluation", title: str = "") -> dict:
    """Write ``<stem>.json``, ``<stem>.md``, a confusion matrix per model and a per-device bar chart."""
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, f"{stem}.json"), results)
    files = {"json": f"{stem}.json", "markdown": f"{stem}.md", "devices_png": f"{stem}_devices.png"}
    md = [f"# {title or stem}", "", markdown_tables(results), ""]
    for name, r in results.items():
        png = f"{stem}_confusion_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('_')}.png"
        plot_confusion(r, os.path.join(out_dir, png), f"{title} {name}".strip())
        md.append(f"![confusion {name}]({png})")
        files[f"confusion_{name}"] = png
    plot_devices(results, os.path.join(out_dir, files["devices_png"]), title or stem)
    md.append(f"![per-device accuracy]({files['devices_png']})")
    atomic_write_text(os.path.join(out_dir, files["markdown"]), "\n".join(md) + "\n")
    return files
