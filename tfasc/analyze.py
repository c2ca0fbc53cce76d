"""Seed 001's analysis figures: accuracy vs the heated-up softmax temperature T, and
the PCA of the global-average-pooling embeddings of the test clips for each T.

The run's recipe is retrained once per temperature into ``<run>/analyze/T<T>/``
(float training only; finished models are reused), so the curve compares like with like.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from tfasc.config import apply_overrides, config_from_dict, save_config, to_dict
from tfasc.data.tau import SCENES
from tfasc.io import atomic_write_text, write_json

log = logging.getLogger(__name__)


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projection on the first two principal components and their explained-variance ratios."""
    x = np.asarray(x, np.float64)
    x = x - x.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    var = s**2 / max(1e-12, np.sum(s**2))
    return x @ vt[:2].T, var[:2]


def embedding_layer(model):
    """The global-average-pooling output (DS-FlexiNet, CNN5), else the layer before the softmax."""
    names = [layer.name for layer in model.layers]
    if "global_pool_flatten" in names:
        return model.get_layer("global_pool_flatten")
    return model.layers[-2]


def analyze_temperature(run, temperatures, overrides=()) -> str:
    from tfasc.evaluate import _savefig, compute_metrics
    from tfasc.keras import keras
    from tfasc.train import Trainer, set_determinism

    out = run.path("analyze")
    rows, points = [], {}
    for T in temperatures:
        data = to_dict(run.cfg)
        data["name"] = f"{run.cfg.name}_T{T:g}"
        data["model"]["temperature"] = float(T)
        data["qat"]["enabled"] = data["export"]["enabled"] = False
        cfg = config_from_dict(apply_overrides(data, overrides))
        t = Trainer(cfg, os.path.join(out, f"T{T:g}"))
        save_config(cfg, t.path("config.yaml"))
        set_determinism(cfg.seed, cfg.train.deterministic)
        log.info("analyze: training at T = %g", T)
        model = t.train_float()
        recs = t.cache("test").records
        m = compute_metrics(t.predict(model), recs)
        emb = t.predict(keras.Model(model.input, embedding_layer(model).output))
        proj, var = pca_2d(emb)
        points[T] = (proj, np.array([r.label for r in recs]))
        rows.append({"temperature": float(T), "accuracy": m["overall"]["accuracy"], "log_loss": m["overall"]["log_loss"],
                     "device": {d: v["accuracy"] for d, v in m["device"].items()}, "pca_explained": var.tolist()})
    write_json(os.path.join(out, "temperature.json"), rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["temperature"] for r in rows], [100 * r["accuracy"] for r in rows], "o-")
    ax.set_xlabel("softmax temperature T")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{run.cfg.name}: accuracy vs temperature")
    ax.grid(alpha=0.3)
    _savefig(fig, os.path.join(out, "accuracy_vs_temperature.png"))
    plt.close(fig)

    n = len(points)
    cols = min(4, n)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(3.2 * cols, 3.2 * ((n + cols - 1) // cols)), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (T, (proj, labels)) in zip(axes.flat, points.items()):
        for c in range(len(SCENES)):
            sel = labels == c
            ax.scatter(proj[sel, 0], proj[sel, 1], s=4, color=cmap(c), label=SCENES[c])
        ax.set_title(f"T = {T:g}")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=5, markerscale=2, loc="best")
    fig.suptitle("PCA of the global-average-pooling embeddings (test clips, coloured by scene)", y=1.03)
    _savefig(fig, os.path.join(out, "embeddings_pca.png"))
    plt.close(fig)

    md = ["# Accuracy vs heated-up softmax temperature", "", "| T | accuracy | log loss | PCA variance (PC1, PC2) |",
          "|---|---|---|---|"]
    md += [f"| {r['temperature']:g} | {100 * r['accuracy']:.2f} | {r['log_loss']:.3f} | "
           f"{r['pca_explained'][0]:.2f}, {r['pca_explained'][1]:.2f} |" for r in rows]
    md += ["", "![accuracy vs T](accuracy_vs_temperature.png)", "", "![PCA](embeddings_pca.png)", ""]
    path = os.path.join(out, "temperature.md")
    atomic_write_text(path, "\n".join(md))
    return path
