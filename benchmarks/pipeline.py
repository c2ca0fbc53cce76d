"""Input-pipeline throughput: clips/s for decode+resample+log-mel, cold (no cache) and warm (cache).

    python benchmarks/pipeline.py [--clips N] [--out benchmarks/RESULTS.md]

Generates a synthetic TAU22-layout dataset in a temporary folder, then times
(1) building the waveform cache (decode 24-bit 44.1 kHz WAV + resample to 32 kHz),
(2) one pass of the evaluation pipeline over the warm cache (STFT + mel + log),
(3) one pass of the training pipeline with every augmentation on (DIR, roll,
    mask, Freq-MixStyle, mixup).
"""
import argparse
import datetime
import os
import platform
import shutil
import tempfile
import time

from tfasc.config import load_config
from tfasc.train import Trainer

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=6, help="segments per location of the synthetic dataset")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
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
        rows = [
            ("decode + resample into the cache (cold)", cold),
            ("log-mel from the warm cache (evaluation pipeline)", warm),
            ("training pipeline, all augmentations on (warm)", aug),
        ]
        text = [
            "## Input pipeline (benchmarks/pipeline.py)",
            "",
            f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}",
            f"- date: {datetime.date.today().isoformat()}",
            f"- command: `python benchmarks/pipeline.py --segments {args.segments}`",
            f"- clips: {n} training clips of 1 s (24-bit 44.1 kHz WAV -> 32 kHz, 256 mel x 64 frames), batch {cfg.train.batch_size}",
            "",
            "| stage | clips/s |",
            "|---|---|",
        ] + [f"| {name} | {v:,.0f} |" for name, v in rows]
        print("\n".join(text))
        _update(args.out, "## Input pipeline", "\n".join(text))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _update(path, heading, section):
    """Replace the section that starts with ``heading`` in RESULTS.md (or append it)."""
    old = open(path).read() if os.path.isfile(path) else "# Benchmark results\n"
    parts = old.split("\n## ")
    kept = [parts[0]] + ["## " + p for p in parts[1:] if not ("## " + p).startswith(heading)]
    with open(path, "w") as fh:
        fh.write("\n".join(p.rstrip("\n") + "\n" for p in kept) + "\n" + section + "\n")


if __name__ == "__main__":
    main()
