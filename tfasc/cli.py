"""The ``tfasc`` command line: train, evaluate, export, predict, calibrate, analyze, summary, complexity, data."""
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


def _trainer(run_dir: str, *overrides):
    from tfasc.config import replace
    from tfasc.inference import Run
    from tfasc.train import Trainer

    run = Run(run_dir)
    cfg = replace(run.cfg, **dict(overrides)) if overrides else run.cfg
    return Trainer(cfg, run_dir)


def cmd_evaluate(args) -> int:
    backends = ("float", "litert", "tflm") if args.backend == "all" else (args.backend,)
    t = _trainer(args.run, *([("evaluate_tflm", True)] if "tflm" in backends else []))
    data = None
    if set(backends) & {"litert", "tflm"}:
        path = t.path("model_int8.tflite")
        if not os.path.isfile(path):
            from tfasc.inference import RunError

            raise RunError(f"{path}: missing; run `tfasc export {args.run}` first")
        with open(path, "rb") as fh:
            data = fh.read()
    results = t.evaluate(data=data, backends=backends)
    for k, v in results.items():
        print(f"{k:32s} accuracy {100 * v['overall']['accuracy']:6.2f} %  log loss {v['overall']['log_loss']:.3f}")
    print(f"report: {t.path('report.md')}")
    return 0


def cmd_export(args) -> int:
    from tfasc.train import load_model

    t = _trainer(args.run, ("export.enabled", True))
    data = t.int8(load_model(t.path("model.keras")))
    exp = t.state["export"]
    print(f"{t.path('model_int8.tflite')}: {len(data):,} bytes; tensor arena {exp['arena_bytes']:,} bytes (TFLM)")
    for f in exp["files"]:
        print(f"  {t.path('tflm', f)}")
    return 0


def cmd_predict(args) -> int:
    from tfasc.inference import Predictor, Run

    pred = Predictor(Run(args.run), args.backend)
    results = [pred.predict_file(f, args.device) for f in args.files]
    if args.json:
        for r in results:
            if not args.windows:
                r.pop("windows")
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        p = r["probabilities"][r["scene"]]
        print(f"{r['file']}: {r['scene']} ({100 * p:.1f} %, {len(r['windows'])} window(s) of {r['seconds']:.2f} s, {r['backend']})")
        if args.windows:
            for w in r["windows"]:
                print(f"  {w['start_s']:8.2f} s  {w['scene']:20s} {100 * w['probabilities'][w['scene']]:.1f} %")
    return 0


def cmd_calibrate(args) -> int:
    from tfasc.inference import Run, calibrate

    path, n = calibrate(Run(args.run), args.device, args.files, args.out)
    print(f"fitted spectrum correction for device {args.device!r} from {n} window(s) of {len(args.files)} file(s): {path}")
    return 0


def cmd_analyze(args) -> int:
    from tfasc.analyze import analyze_temperature
    from tfasc.inference import Run

    out = analyze_temperature(Run(args.run), args.temperatures, args.set)
    print(f"accuracy vs T and embedding PCA: {out}")
    return 0


def cmd_teachers(args) -> int:
    from tfasc.distill import LogitsStore
    from tfasc.train import load_model

    stores = []
    for run in args.runs:
        t = _trainer(run)
        tid = os.path.basename(os.path.normpath(run))
        print(f"teacher {tid}: logits of every clip of {t.cfg.data.root}")
        stores.append(t.logits_store(load_model(t.path("model.keras")), tid))
    store = LogitsStore.merge(stores)
    store.save(args.out)
    print(f"{args.out}: {len(store.teachers)} teacher(s) x {len(store.filenames)} clips")
    return 0


def cmd_ablate(args) -> int:
    from tfasc.ablation import run_ablation

    out = args.out or os.path.join("runs", "ablation_" + os.path.splitext(os.path.basename(args.ablation))[0])
    table, _ = run_ablation(args.ablation, out, args.set)
    print(table)
    print(f"\nwritten to {os.path.join(out, 'ablation.md')}")
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

    sp = sub.add_parser("evaluate", help="per-device metrics of a run (float, int8 LiteRT, int8 TFLM) and its report")
    sp.add_argument("run", help="run directory")
    sp.add_argument("--backend", choices=("all", "float", "litert", "tflm"), default="all")
    sp.set_defaults(fn=cmd_evaluate)

    sp = sub.add_parser("export", help="QAT (when configured) and int8 TFLite + TFLM C sources for a trained run")
    sp.add_argument("run", help="run directory")
    sp.set_defaults(fn=cmd_export)

    sp = sub.add_parser("predict", help="classify recordings of any length (1-s windows, averaged)")
    sp.add_argument("run", help="run directory")
    sp.add_argument("files", nargs="+", metavar="FILE.wav")
    sp.add_argument("--backend", choices=("float", "litert", "tflm"), default="float")
    sp.add_argument("--device", help="recording device (for spectrum correction); default: the unseen-device policy")
    sp.add_argument("--windows", action="store_true", help="also print every window's prediction")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_predict)

    sp = sub.add_parser("calibrate", help="fit a new device's spectrum correction from a few of its unlabeled recordings")
    sp.add_argument("run", help="run directory")
    sp.add_argument("files", nargs="+", metavar="FILE.wav")
    sp.add_argument("--device", required=True, help="name of the new device")
    sp.add_argument("--out", help="artifact path (default RUN/calibrated/DEVICE.npz)")
    sp.set_defaults(fn=cmd_calibrate)

    sp = sub.add_parser("analyze", help="seed 001 figures: accuracy vs softmax temperature, PCA of the pooled embeddings")
    sp.add_argument("run", help="run directory whose recipe is retrained at each temperature")
    sp.add_argument("--temperatures", type=float, nargs="+", default=[1, 5, 10, 15, 20, 30, 35])
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for the retrained models")
    sp.set_defaults(fn=cmd_analyze)

    sp = sub.add_parser("teachers", help="collect finished teacher runs' logits into one store for distillation")
    sp.add_argument("runs", nargs="+", metavar="RUN", help="teacher run directories (the directory name is the teacher id)")
    sp.add_argument("--out", required=True, help="logits store to write (.npz)")
    sp.set_defaults(fn=cmd_teachers)

    sp = sub.add_parser("ablate", help="train the rows of an ablation file and print the per-device table")
    sp.add_argument("ablation", help="ablation YAML (configs/ablations/)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every row")
    sp.add_argument("--out", help="output directory (default runs/ablation_<file>)")
    sp.set_defaults(fn=cmd_ablate)

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
    from tfasc.distill import StoreError
    from tfasc.inference import RunError
    from tflm_export.convert import ExportError

    try:
        return args.fn(args)
    except (ConfigError, DataError, RunError, StoreError, ExportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
