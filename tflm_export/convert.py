"""Full-integer TFLite conversion with refusal of anything TFLM cannot run in int8."""
from __future__ import annotations

import numpy as np

from tfasc.complexity import op_names, read_tflite

# Builtin ops the TFLM interpreter registers (tflite_micro MicroMutableOpResolver Add* names).
TFLM_OPS = {
    "ADD": "AddAdd", "AVERAGE_POOL_2D": "AddAveragePool2D", "CONV_2D": "AddConv2D",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "FULLY_CONNECTED": "AddFullyConnected",
    "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean", "MUL": "AddMul", "SUB": "AddSub",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "RSQRT": "AddRsqrt", "RESHAPE": "AddReshape",
    "SOFTMAX": "AddSoftmax", "QUANTIZE": "AddQuantize", "DEQUANTIZE": "AddDequantize",
    "RELU": "AddRelu", "RELU6": "AddRelu6", "LOGISTIC": "AddLogistic", "PAD": "AddPad",
    "CONCATENATION": "AddConcatenation", "STRIDED_SLICE": "AddStridedSlice", "TRANSPOSE": "AddTranspose",
}
INT_TYPES = {9: "int8", 2: "int32", 7: "int16", 4: "int64"}  # TensorType values
TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8", 10: "float64"}


class ExportError(ValueError):
    """The model cannot be deployed as it is (float ops, unsupported ops, budgets)."""


def op_list(data: bytes) -> list[str]:
    """The distinct builtin ops of a model, in first-use order."""
    return list(dict.fromkeys(op_names(read_tflite(data))))


def check_int8(data: bytes) -> None:
    """Raise ExportError naming every float tensor and every op TFLM cannot run."""
    model = read_tflite(data)
    sg = model.subgraphs[0]
    problems = []
    for k, (op, n) in enumerate(zip(sg.operators, op_names(model))):
        if n not in TFLM_OPS:
            problems.append(f"op #{k} {n} is not supported by TFLM")
        for i in list(op.inputs) + list(op.outputs):
            if i >= 0 and sg.tensors[i].type not in INT_TYPES:
                t = sg.tensors[i]
                problems.append(f"op #{k} {n}: tensor '{t.name.decode()}' is {TYPE_NAMES.get(t.type, t.type)}, not integer")
    if problems:
        raise ExportError("the int8 model is not deployable:\n  " + "\n  ".join(problems))


def convert_int8(model, representative: np.ndarray) -> bytes:
    """Full-integer conversion (int8 input and output) of a (QAT) Keras model."""
    from tfasc.keras import tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([representative[i : i + 1].astype(np.float32)] for i in range(len(representative)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    data = conv.convert()
    check_int8(data)
    return data
