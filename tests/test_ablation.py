import json
import os

import pytest

from tfasc.ablation import load_ablation
from tfasc.cli import main
from tfasc.config import ConfigError, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_shipped_ablations_expand_to_valid_configs():
    for name, n in (("dsflexinet_table5.yaml", 4), ("cnn5_table2.yaml", 6)):
        ab = load_ablation(os.path.join(ROOT, "configs", "ablations", name))
        rows = ab.expanded()
        assert len(rows) == n
        for r in rows:  # every row resolves to a valid config
            load_config(ab.base, [*ab.set, *r.set])
    rows = load_ablation(os.path.join(ROOT, "configs", "ablations", "dsflexinet_table5.yaml")).expanded()
    assert [r.name for r in rows] == ["BN + FMS + DIR", "BN + FMS + ADIR", "RN + FMS + DIR", "RN + FMS + ADIR"]
    cfg = load_config(load_ablation(os.path.join(ROOT, "configs", "ablations", "dsflexinet_table5.yaml")).base,
                      ["model.norm=bn", "augment.dir.adir=true"])
    assert cfg.model.norm == "bn" and cfg.augment.dir.adir


def test_ablation_file_errors(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("base: ../configs/demo.yaml\nrows:\n  - {name: x, sett: [a=1]}\n")
    with pytest.raises(ConfigError, match=r"a\.yaml: rows\[0\]\.sett: unknown key"):
        load_ablation(str(p))
    p.write_text("rows:\n  - {name: x}\n  - {name: x}\n")
    with pytest.raises(ConfigError, match="unique name"):
        load_ablation(str(p))


def test_ablation_runner_prints_the_table(tiny_dataset, tmp_path, capsys):
    p = tmp_path / "ab.yaml"
    p.write_text(f"title: tiny\nbase: {os.path.join(ROOT, 'configs', 'demo.yaml')}\n"
                 f"set: [data.root={tiny_dataset}, data.cache_dir={tmp_path / 'cache'}, data.val_fraction=0.5, "
                 "train.epochs=1, train.batch_size=16, augment.dir.p=0.0, qat.enabled=false, export.enabled=false]\n"
                 "rows:\n  - {name: BN, set: [model.norm=bn]}\n  - {name: RN, set: [model.norm=rn]}\n")
    out = tmp_path / "out"
    assert main(["ablate", str(p), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| BN |" in text and "| RN |" in text and "| S6 |" in text  # rows and all nine devices
    res = json.load(open(out / "ablation.json"))["results"]
    assert set(res) == {"BN", "RN"}
    assert load_config(str(out / "BN" / "config.yaml")).model.norm == "bn"
    assert (out / "ablation_devices.png").stat().st_size > 1000
