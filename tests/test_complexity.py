import json
import subprocess
import sys

import pytest

from conftest import shared_path
from tfasc.complexity import budget_verdict, keras_summary, tflite_complexity
from tfasc.keras import tf
from tfasc.models.dsflexinet import build_dsflexinet


def test_dcase2022_baseline_published_figures():
    with open(shared_path("reference", "dcase2022_task1_baseline.tflite"), "rb") as fh:
        c = tflite_complexity(fh.read())
    assert c["macs"] == 29_234_920
    assert c["param_bytes"] == 46_512
    fc = [r for r in c["ops"] if r["op"] == "FULLY_CONNECTED"]
    # NeSsi counts the first Dense on its un-reshaped [1, 2, 1, 32] input: 32 x 100
    assert fc[0]["macs"] == 3_200 and fc[0]["true_macs"] == 6_400


@pytest.mark.parametrize("variant", ["sm1", "sm2", "sm3", "sm4"])
@pytest.mark.parametrize("norm", ["rn", "bn"])
def test_keras_and_tflite_counts_agree(variant, norm):
    model = build_dsflexinet((256, 64, 1), variant, norm)
    tfl = tflite_complexity(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    assert keras_summary(model)["macs"] == tfl["macs"]


def test_budget_verdict():
    assert budget_verdict(127_931, 22_787_024)["within_budget"]
    v = budget_verdict(200_000, 31_000_000)
    assert not v["within_budget"] and "128 KB" in v["verdict"] and "30 M" in v["verdict"]
    assert budget_verdict(100_000, 200_000_000, clip_seconds=10.0)["within_budget"]  # 20 M per second


def test_summary_cli_json():
    out = subprocess.run([sys.executable, "-m", "tfasc.cli", "summary", "configs/sm2.yaml", "--json"],
                         capture_output=True, text=True, check=True).stdout
    s = json.loads(out[out.index("{"):])
    assert s["params"] == 31_327 and s["param_bytes_int8"] == 31_327 and s["trainable_params"] < s["params"]
    assert s["budget"]["within_budget"]
