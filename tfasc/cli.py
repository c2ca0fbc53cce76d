"""The ``tfasc`` command line: train, summary, complexity, data synth|check."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def _setup_logging():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def cmd_train(args) -> int:
    from tfasc.config import load_config
    from tfasc.train import Trainer

    cfg = load_config(args.config, args.set)
    out = args.out or os.path.join("runs", cfg.name)
    results = Trainer(cfg, out).run()
    acc = results["float"]["overall"]["accuracy"]
    print(f"run directory: {out}\nfloat test accuracy: {100 * acc:.2f} %")
    return 0


def cmd_summary(args) -> int:
    from tfasc.complexity import budget_verdict, format_table, keras_summary
    from tfasc.config import load_config
    from tfasc.features import input_shape
    from tfasc.models import build_model

    cfg = load_config(args.config, args.set)
    model = build_model(cfg.model, input_shape(cfg.features, cfg.data.clip_seconds))
    s = keras_summary(model)
    s["budget"] = budget_verdict(s["param_bytes_int8"], s["macs"], cfg.data.clip_seconds)
    if args.json:
        s.pop("layers")
        print(json.dumps(s, indent=2))
        return 0
    model.summary(line_length=110)
    print(format_table(s))
    print(s["budget"]["verdict"])
    return 0


def cmd_complexity(args) -> int:
    from tfasc.complexity import format_tflite, tflite_complexity

    with open(args.model, "rb") as fh:
        c = tflite_complexity(fh.read())
    if args.json:
        print(json.dumps({k: c[k] for k in ("macs", "true_macs", "param_bytes", "input_shape")}, indent=2))
    else:
        print(format_tflite(c))
    return 0


def cmd_data_synth(args) -> int:
    from tfasc.data.synth import synthesize

    n = synthesize(args.root, args.cities, args.locations, args.segments, args.seed)
    print(f"wrote {n['train']} training and {n['test']} test clips under {args.root}")
    return 0


def cmd_data_check(args) -> int:
    from tfasc.data.audio import check_audio
    from tfasc.data.tau import DEVICES, SCENES, count_table, load_splits

    splits = load_splits(args.root, args.split, args.val_fraction)
    problems = []
    for name, recs in splits.items():
        table = count_table(recs)
        devs = [d for d in DEVICES if d in table]
        print(f"\n{name}: {len(recs)} clips")
        print(f"{'scene':20s}" + "".join(f"{d:>6s}" for d in devs) + f"{'total':>8s}")
        for s in SCENES:
            row = [table[d].get(s, 0) for d in devs]
            print(f"{s:20s}" + "".join(f"{v:6d}" for v in row) + f"{sum(row):8d}")
        if not args.no_audio:
            problems += check_audio(args.root, recs, args.sample_rate, args.clip_seconds)
    if problems:
        print(f"\n{len(problems)} audio problem(s):")
        for p in problems:
            print("  " + p)
        return 1
    if not args.no_audio:
        print("\nall audio files decode with the expected length")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tfasc", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp):
        sp.add_argument("config", help="YAML config")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.epochs=3")

    sp = sub.add_parser("train", help="run the configured phases into a run directory")
    with_config(sp)
    sp.add_argument("--out", help="run directory (default runs/<name>)")
    sp.set_defaults(fn=cmd_train)

    sp = sub.add_parser("summary", help="Keras summary, complexity table and DCASE budget verdict")
    with_config(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_summary)

    sp = sub.add_parser("complexity", help="NeSsi-compatible MACs and parameter bytes of a .tflite")
    sp.add_argument("model")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_complexity)

    data = sub.add_parser("data", help="dataset tools").add_subparsers(dest="data_command", required=True)
    sp = data.add_parser("synth", help="generate the synthetic TAU22-layout demo dataset")
    sp.add_argument("root")
    sp.add_argument("--cities", type=int, default=3)
    sp.add_argument("--locations", type=int, default=2)
    sp.add_argument("--segments", type=int, default=6)
    sp.add_argument("--seed", type=int, default=0)
    sp.set_defaults(fn=cmd_data_synth)
    sp = data.add_parser("check", help="clips per split x device x scene; report missing or unreadable audio")
    sp.add_argument("root")
    sp.add_argument("--split", default="fold1")
    sp.add_argument("--val-fraction", type=float, default=0.0)
    sp.add_argument("--sample-rate", type=int, default=44100)
    sp.add_argument("--clip-seconds", type=float, default=1.0)
    sp.add_argument("--no-audio", action="store_true", help="only count the metadata")
    sp.set_defaults(fn=cmd_data_check)

    args = p.parse_args(argv)
    _setup_logging()
    from tfasc.config import ConfigError
    from tfasc.data.tau import DataError

    try:
        return args.fn(args)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
