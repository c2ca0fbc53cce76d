"""``report.md``: one page per run with everything a person checks.

The resolved config, the complexity table and DCASE budget verdict, per-device
tables for float / int8 LiteRT / int8 TFLM (and teachers), the plots, the
exported files with their sizes, and the phases with their timings.
"""
from __future__ import annotations

import os

import yaml

from tfasc.config import to_dict
from tfasc.io import atomic_write_text


def _size(path: str) -> str:
    n = os.path.getsize(path)
    return f"{n:,} B" if n < 10_000 else f"{n / 1024:,.1f} KiB"


def write_run_report(trainer, results: dict, eval_files: dict) -> str:
    from tfasc.complexity import budget_verdict, format_table, keras_summary
    from tfasc.evaluate import markdown_tables

    cfg, out = trainer.cfg, trainer.out
    lines = [f"# Run report: {cfg.name}", ""]
    model = trainer.build_model()
    s = keras_summary(model)
    verdict = budget_verdict(s["param_bytes_int8"], s["macs"], cfg.data.clip_seconds)
    lines += ["## Model and complexity", "", f"`{model.name}`, input {list(trainer.input_shape)}: "
              f"{s['params']:,} parameters ({s['param_bytes_int8']:,} bytes in int8), {s['macs']:,} MACs per clip.", "",
              f"**DCASE budget:** {verdict['verdict']}", "", "<details><summary>per-layer table</summary>", "",
              "```", format_table(s), "```", "</details>", ""]
    lines += ["## Results (test split)", "", markdown_tables(results), ""]
    lines += [f"![per-device accuracy]({eval_files['devices_png']})", ""]
    lines += [f"[{k}]({v})" for k, v in sorted(eval_files.items()) if k.startswith("confusion_")]
    lines += [""]
    state = trainer.state
    exp = state.get("export")
    if exp:
        from tfasc.complexity import tflite_complexity

        tfl = trainer.path("model_int8.tflite")
        with open(tfl, "rb") as fh:
            c = tflite_complexity(fh.read())
        lines += ["## Export (int8, TensorFlow Lite Micro)", "",
                  f"- `model_int8.tflite`: {_size(tfl)} flash; tensor arena {exp['arena_bytes']:,} bytes measured "
                  f"in the TFLM interpreter; {c['macs']:,} MACs and {c['param_bytes']:,} parameter bytes (NeSsi count)",
                  f"- TFLM vs LiteRT reference kernels: {exp['verification']}", "- C sources for TFLM:"]
        for f in exp.get("files", []):
            p = trainer.path("tflm", f)
            if os.path.isfile(p):
                lines.append(f"  - [`tflm/{f}`](tflm/{f}) ({_size(p)})")
        lines += [""]
    lines += ["## Phases", "", "| phase | details |", "|---|---|"]
    for phase in state.get("done", []):
        info = {k: v for k, v in (state.get(phase) or {}).items() if k not in ("files", "verification")}
        lines.append(f"| {phase} | {', '.join(f'{k}={v}' for k, v in info.items())} |")
    lines += ["", "TensorBoard: `tensorboard --logdir " + os.path.join(out, "tensorboard") + "`", ""]
    lines += ["## Resolved config", "", "```yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False).rstrip(), "```", ""]
    path = trainer.path("report.md")
    atomic_write_text(path, "\n".join(lines))
    return path
