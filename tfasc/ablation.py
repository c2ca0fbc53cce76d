"""Ablation studies: one base config, rows of overrides, one table.

An ablation file (``configs/ablations/*.yaml``) names a base config, overrides shared by
every row, and its rows: explicit ``rows`` and/or a ``grid`` whose axes are multiplied
out (each axis a list of ``{name, set}``; a grid row's name joins the axes' names).
``tfasc ablate FILE`` trains every row with the one trainer into ``OUT/<row>/`` (finished
rows are reused, an interrupted one resumes) and prints the per-device table in the
layout of seed 000 Table V / seed 001 Table 2, also written as ``ablation.{md,json}`` with
a per-device bar chart.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import re
from dataclasses import dataclass

import yaml

from tfasc.config import ConfigError, _f, _from_dict, load_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AblationRow:
    name: str = _f("", doc="row label in the table")
    set: tuple = _f((), doc="overrides of this row, e.g. [model.norm=bn]")


@dataclass(frozen=True)
class AblationConfig:
    title: str = _f("ablation")
    base: str = _f("demo.yaml", doc="base config, relative to this file's folder")
    set: tuple = _f((), doc="overrides shared by every row")
    rows: tuple = _f((), item=AblationRow)
    grid: tuple = _f((), doc="axes, each a list of {name, set}; their product is appended to rows")

    def expanded(self) -> list[AblationRow]:
        rows = list(self.rows)
        if self.grid:
            axes = []
            for i, axis in enumerate(self.grid):
                if not isinstance(axis, (list, tuple)) or not axis:
                    raise ConfigError(f"grid[{i}]: expected a non-empty list of {{name, set}} entries")
                axes.append([_from_dict(AblationRow, dict(e), f"grid[{i}][{j}]") for j, e in enumerate(axis)])
            for combo in itertools.product(*axes):
                rows.append(AblationRow(" + ".join(r.name for r in combo if r.name), tuple(s for r in combo for s in r.set)))
        names = [r.name for r in rows]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup or "" in names:
            raise ConfigError(f"rows: every row needs a unique name; duplicates or empty: {dup or ['']}")
        return rows


def load_ablation(path: str) -> AblationConfig:
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: ablation file not found")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        cfg = _from_dict(AblationConfig, data)
        cfg.expanded()
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: malformed YAML: {e}") from None
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    base = os.path.join(os.path.dirname(os.path.abspath(path)), cfg.base)
    return dataclasses.replace(cfg, base=base)


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def run_ablation(path: str, out: str, overrides=()) -> tuple[str, dict]:
    """Train every row (reusing finished ones); returns the Markdown table and the results."""
    from tfasc.evaluate import markdown_tables, plot_devices
    from tfasc.io import atomic_write_text, write_json
    from tfasc.train import Trainer

    ab = load_ablation(path)
    rows = ab.expanded()
    results = {}
    for k, row in enumerate(rows, start=1):
        cfg = load_config(ab.base, [*ab.set, *row.set, *overrides, f"name={slug(row.name)}"])
        log.info("ablation %s: row %d/%d %r", ab.title, k, len(rows), row.name)
        res = Trainer(cfg, os.path.join(out, slug(row.name))).run()
        results[row.name] = res.get("int8_tflm", res["float"]) if cfg.export.enabled else res["float"]
    table = markdown_tables(results)
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "ablation.json"), {"title": ab.title, "file": os.path.abspath(path), "results": results})
    plot_devices(results, os.path.join(out, "ablation_devices.png"), ab.title)
    atomic_write_text(os.path.join(out, "ablation.md"), f"# {ab.title}\n\n{table}\n\n![per device](ablation_devices.png)\n")
    return f"{ab.title}\n\n{table}", results
