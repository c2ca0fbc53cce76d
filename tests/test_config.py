import os

import pytest

from tfasc.config import Config, ConfigError, load_config, to_dict, config_from_dict, replace

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs")


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(CONFIGS) if f.endswith(".yaml")))
def test_shipped_configs_load(name):
    cfg = load_config(os.path.join(CONFIGS, name))
    assert isinstance(cfg, Config)
    assert config_from_dict(to_dict(cfg)) == cfg  # the saved form round-trips


def test_sm_configs_inherit_common():
    sm3 = load_config(os.path.join(CONFIGS, "sm3.yaml"))
    assert sm3.model.variant == "sm3" and sm3.name == "sm3"
    assert sm3.features.hop_length == 500 and sm3.features.sample_rate == 32000  # from common.yaml


def test_unknown_key_names_file_and_dotted_path(tmp_path):
    p = write(tmp_path, "bad.yaml", "train:\n  optimizer:\n    learning_rate: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "bad.yaml" in msg and "train.optimizer.learning_rate" in msg and "unknown key" in msg
    assert "lr" in msg  # the expected keys are listed


@pytest.mark.parametrize("text,message", [
    ("train:\n  optimizer:\n    lr: fast\n", r"train\.optimizer\.lr: expected a number, got 'fast'"),
    ("augment:\n  dir:\n    p: 1.5\n", r"augment\.dir\.p: expected a value <= 1.0, got 1.5"),
    ("model:\n  variant: sm9\n", r"model\.variant: expected one of"),
    ("train:\n  epochs: true\n", r"train\.epochs: expected an integer"),
])
def test_wrong_type_and_range(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, "t.yaml", text))


def test_malformed_yaml_names_file(tmp_path):
    p = write(tmp_path, "broken.yaml", "train: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: malformed YAML"):
        load_config(p)


def test_base_chain_and_overrides(tmp_path):
    write(tmp_path, "a.yaml", "train:\n  epochs: 7\n  batch_size: 16\n")
    p = write(tmp_path, "b.yaml", "base: a.yaml\ntrain:\n  epochs: 9\n")
    cfg = load_config(p)
    assert (cfg.train.epochs, cfg.train.batch_size) == (9, 16)
    cfg = load_config(p, ["train.epochs=3", "train.optimizer.lr=0.5", "augment.dir.devices=[a, b]"])
    assert cfg.train.epochs == 3 and cfg.train.optimizer.lr == 0.5 and cfg.augment.dir.devices == ("a", "b")
    with pytest.raises(ConfigError, match=r"train\.epoch: unknown key"):
        load_config(p, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(p, ["train.epochs"])


def test_circular_base(tmp_path):
    write(tmp_path, "x.yaml", "base: y.yaml\n")
    p = write(tmp_path, "y.yaml", "base: x.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(p)


def test_config_is_frozen_and_replace():
    cfg = Config()
    with pytest.raises(Exception):
        cfg.seed = 3
    assert replace(cfg, **{"train.epochs": 3}).train.epochs == 3 and cfg.train.epochs != 3
