"""Input-pipeline throughput: clips/s for decode+resample+log-mel, cold (no cache) and warm (cache).

    python benchmarks/pipeline.py [--clips N] [--out benchmarks/RESULTS.md]

Generates a synthetic TAU22-layout dataset in a temporary folder, then times
(1) building the waveform cache (decode 24-bit 44.1 kHz WAV + resample to 32 kHz),
(2) one pass of the evaluation pipeline over the warm cache (STFT + mel + log),
(3) one pass of the training pipeline with every augmentation on (DIR, roll,
    mask, Freq-MixStyle, mixup),
(4) the training-step rate of DS-FlexiNet sm2 (batch 256, features already in memory),
    so the pipeline can be compared with what the model consumes.
"""
import argparse
import os
import shutil
import tempfile
import time

import numpy as np
from results import HERE, RESULTS, header, update

from tfasc.config import load_config
from tfasc.train import Trainer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=6, help="segments per location of the synthetic dataset")
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    try:
        from tfasc.data.synth import synthesize

        root = os.path.join(tmp, "demo")
        synthesize(root, 3, 2, args.segments, 0)
        overrides = [f"data.root={root}", f"data.cache_dir={tmp}/cache", "data.val_fraction=0.0"]
        micirp = os.path.join(os.path.dirname(HERE), "..", "shared", "micirp")
        if not os.path.isdir(micirp):
            overrides.append("augment.dir.p=0.0")
        cfg = load_config(os.path.join(os.path.dirname(HERE), "configs", "demo.yaml"),
                          overrides + ["augment.mixup.alpha=0.3", "augment.freq_mixstyle.p=1.0"])
        t = Trainer(cfg, os.path.join(tmp, "run"))
        n = len(t.splits().train)
        t0 = time.perf_counter()
        cache = t.cache("train")
        cold = n / (time.perf_counter() - t0)
        pipe = t.pipeline()
        for _ in pipe.dataset(cache, training=False):  # trace once
            break
        t0 = time.perf_counter()
        for _ in pipe.dataset(cache, training=False):
            pass
        warm = n / (time.perf_counter() - t0)
        ds = pipe.dataset(cache, training=True)
        for _ in ds:
            pass
        t0 = time.perf_counter()
        m = 0
        for x, _ in ds:
            m += int(x.shape[0])
        aug = m / (time.perf_counter() - t0)
        step = sm2_step_rate(t, cache)
        rows = [
            ("decode + resample into the cache (cold)", cold),
            ("log-mel from the warm cache (evaluation pipeline)", warm),
            ("training pipeline, all augmentations on (warm)", aug),
            ("sm2 training steps (batch 256, features in memory)", step),
        ]
        text = header("Input pipeline (benchmarks/pipeline.py)", f"python benchmarks/pipeline.py --segments {args.segments}") + [
            f"- clips: {n} training clips of 1 s (24-bit 44.1 kHz WAV -> 32 kHz, 256 mel x 64 frames), batch {cfg.train.batch_size}",
            "",
            "| stage | clips/s |",
            "|---|---|",
        ] + [f"| {name} | {v:,.0f} |" for name, v in rows] + [
            "", f"The augmented pipeline delivers {aug / step:.2f}x the clips per second that sm2 training consumes here "
            + ("(the pipeline is not the bottleneck)." if aug > step else "(the pipeline is the bottleneck).")]
        print("\n".join(text))
        update(args.out, "## Input pipeline", "\n".join(text))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sm2_step_rate(t, cache, batch=256, steps=6):
    """Clips/s of sm2 train steps on fixed in-memory features (no input pipeline involved)."""
    from tfasc.config import replace
    from tfasc.keras import tf

    x = t.pipeline().features_of(cache)
    reps = int(np.ceil(batch / len(x)))
    xb = tf.constant(np.concatenate([x] * reps)[:batch])
    yb = tf.one_hot(np.arange(batch) % 10, 10)
    t2 = Trainer(replace(t.cfg, **{"model.variant": "sm2"}), t.out)
    model = t2.compile(t2.build_model(), 1)
    model.train_on_batch(xb, yb)  # trace
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(xb, yb)
    return steps * batch / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()
