"""Model families and the one entry point that builds a model from a config."""
from __future__ import annotations

from tfasc.config import ModelConfig
from tfasc.models.cnn5 import build_cnn5
from tfasc.models.cpresnet import build_cpresnet
from tfasc.models.dsflexinet import DSFLEXINET_SPECS, build_dsflexinet
from tfasc.models.layers import CUSTOM_OBJECTS, HeatedSoftmax, ResidualNorm


def build_model(cfg: ModelConfig, input_shape):
    if cfg.name == "dsflexinet":
        return build_dsflexinet(input_shape, cfg.variant, cfg.norm, cfg.num_classes, cfg.temperature)
    if cfg.name == "cnn5":
        return build_cnn5(input_shape, cfg.num_classes, cfg.temperature)
    if cfg.name == "cpresnet":
        return build_cpresnet(input_shape, cfg.width, cfg.depth, cfg.rho, cfg.num_classes, cfg.temperature)
    raise ValueError(f"model.name: unknown model {cfg.name!r}")


__all__ = ["build_model", "CUSTOM_OBJECTS", "HeatedSoftmax", "ResidualNorm", "DSFLEXINET_SPECS"]
