"""int8 latency per clip in LiteRT and TFLM (Python), tensor arena and flash, for sm1-sm4 and the CNN.

    python benchmarks/latency.py [--runs N] [--out benchmarks/RESULTS.md]

Each config's model is built at its input shape, its deploy form converted to int8
(post-training quantization with random representative inputs: latency, arena and
flash do not depend on the weights' values), then timed per clip after one warm-up
call: LiteRT with the BUILTIN_REF kernels (the parity reference), LiteRT with its
default optimized kernels, and the TFLM interpreter. The CNN is measured for its
exported 1-s window (256 x 87) and for the full 10-s input (256 x 862).
"""
import argparse
import os
import time

import numpy as np
from results import RESULTS, header, update

from tfasc.complexity import tflite_complexity
from tfasc.config import load_config, replace
from tfasc.features import input_shape
from tfasc.models import build_model
from tfasc.qat import deploy_model
from tflm_export.convert import convert_int8
from tflm_export.verify import Runner, arena_bytes

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def per_clip(fn, x, runs):
    fn(x[:1])
    t0 = time.perf_counter()
    for i in range(runs):
        fn(x[i % len(x)][None])
    return 1000 * (time.perf_counter() - t0) / runs


def measure(name, cfg, shape, runs, rng):
    model = deploy_model(build_model(cfg.model, shape))
    rep = rng.normal(0, 1, (16, *shape)).astype(np.float32)
    data = convert_int8(model, rep)
    ref, tflm = Runner(data, "litert"), Runner(data, "tflm")
    from ai_edge_litert.interpreter import Interpreter

    opt = Interpreter(model_content=data)
    opt.allocate_tensors()
    i_opt, o_opt = opt.get_input_details()[0]["index"], opt.get_output_details()[0]["index"]

    def run_opt(xq):
        opt.set_tensor(i_opt, xq)
        opt.invoke()
        return opt.get_tensor(o_opt)

    xq = ref.quantize(rep)
    c = tflite_complexity(data)
    return {
        "model": name, "input": "x".join(str(v) for v in shape[:2]), "macs": c["macs"], "flash": len(data),
        "arena": arena_bytes(data),
        "litert_ref_ms": per_clip(ref.run_int8, xq, runs), "litert_opt_ms": per_clip(run_opt, xq, runs),
        "tflm_ms": per_clip(tflm.run_int8, xq, max(2, runs // 4) if c["macs"] > 1e8 else runs),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for v in ("sm1", "sm2", "sm3", "sm4"):
        cfg = load_config(os.path.join(CONFIGS, f"{v}.yaml"))
        rows.append(measure(v, cfg, input_shape(cfg.features, cfg.data.clip_seconds), args.runs, rng))
        print(rows[-1], flush=True)
    cfg = load_config(os.path.join(CONFIGS, "cnn5.yaml"))
    full = input_shape(cfg.features, cfg.data.clip_seconds)
    win = (full[0], cfg.export.window_frames, 1)
    rows.append(measure("cnn5 (1-s window)", cfg, win, args.runs, rng))
    print(rows[-1], flush=True)
    rows.append(measure("cnn5 (full 10 s)", replace(cfg, **{"export.window_frames": 0}), full, args.runs, rng))
    print(rows[-1], flush=True)
    text = header("int8 latency, arena and flash (benchmarks/latency.py)", f"python benchmarks/latency.py --runs {args.runs}") + [
        "- per clip (one invoke), batch 1, after one warm-up call; models in their deploy form (BN/1-T folded), PTQ int8",
        "- LiteRT ref = BUILTIN_REF kernels; LiteRT opt = default optimized kernels; TFLM = tflite_micro Python interpreter "
        "(reference C kernels, x86, not a Cortex-M)",
        "",
        "| model | input | MACs | flash (bytes) | TFLM arena (bytes) | LiteRT ref (ms) | LiteRT opt (ms) | TFLM (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ] + [f"| {r['model']} | {r['input']} | {r['macs']:,} | {r['flash']:,} | {r['arena']:,} | {r['litert_ref_ms']:.2f} | "
         f"{r['litert_opt_ms']:.2f} | {r['tflm_ms']:.2f} |" for r in rows]
    print("\n".join(text))
    update(args.out, "## int8 latency", "\n".join(text))


if __name__ == "__main__":
    main()
