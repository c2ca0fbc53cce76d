"""Complexity accounting: Keras-side per-layer tables and a NeSsi-compatible TFLite counter.

MACs follow the convention the DCASE low-complexity challenges published with
(NeSsi): conv ``n*oh*ow*oc*kh*kw*ic``; depthwise ``n*c*oh*ow*kh*kw``; max/avg
pooling ``output elements * window``; fully connected ``n * last input dim *
outputs``; MEAN ``input elements``; ADD ``(inputs - 1) * output elements``.
Parameter size is the bytes of the constant tensors (int8 weights, int32 biases).

On the Keras side a BatchNormalization that directly follows a convolution or
dense layer costs nothing (it is folded at export); elsewhere it costs one MAC
per element. ResidualNorm lowers to two MEANs over its input and two ADDs
(the epsilon per channel, the residual sum per element).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DCASE_MAX_PARAM_BYTES = 128 * 1024  # 128 KB of int8 parameters
DCASE_MAX_MACS = 30_000_000  # per 1-s clip


@dataclass
class LayerCost:
    name: str
    kind: str
    output_shape: tuple
    params: int
    trainable_params: int
    macs: int


def _prod(shape) -> int:
    return int(np.prod([d for d in shape if d is not None]))


def _out_shape(layer):
    s = layer.output_shape
    return tuple(s[0] if isinstance(s, list) else s)


def keras_costs(model) -> list[LayerCost]:
    """Per-layer params and MACs of a Keras functional model (batch size 1)."""
    from tfasc.keras import keras
    from tfasc.models.layers import ResidualNorm

    L = keras.layers
    rows = []
    for layer in model.layers:
        out = _out_shape(layer)
        n_out = _prod(out[1:])
        macs = 0
        kind = type(layer).__name__
        if isinstance(layer, L.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            macs = n_out * kh * kw
        elif isinstance(layer, L.Conv2D):
            kh, kw = layer.kernel_size
            cin = layer.input_shape[-1]
            macs = n_out * kh * kw * cin // layer.groups
        elif isinstance(layer, L.Dense):
            macs = layer.input_shape[-1] * layer.units
        elif isinstance(layer, (L.AveragePooling2D, L.MaxPooling2D)):
            macs = n_out * int(np.prod(layer.pool_size))
        elif isinstance(layer, (L.GlobalAveragePooling2D,)):
            macs = _prod(layer.input_shape[1:])
        elif isinstance(layer, L.BatchNormalization):
            inbound = layer._inbound_nodes[0].inbound_layers
            folded = isinstance(inbound, (L.Conv2D, L.DepthwiseConv2D, L.Dense))
            macs = 0 if folded else n_out
        elif isinstance(layer, L.Add):
            macs = (len(layer.input_shape) - 1) * n_out
        elif isinstance(layer, ResidualNorm):
            macs = 2 * n_out + n_out + out[-1]
        params = layer.count_params()
        trainable = int(sum(_prod(w.shape) for w in layer.trainable_weights))
        rows.append(LayerCost(layer.name, kind, out, params, trainable, int(macs)))
    return rows


def keras_summary(model) -> dict:
    rows = keras_costs(model)
    params = sum(r.params for r in rows)
    return {
        "model": model.name,
        "input_shape": list(model.input_shape[1:]),
        "params": params,
        "trainable_params": sum(r.trainable_params for r in rows),
        "macs": sum(r.macs for r in rows),
        "param_bytes_float32": 4 * params,
        "param_bytes_int8": params,
        "layers": [asdict(r) for r in rows],
    }


def budget_verdict(params_int8_bytes: int, macs: int, clip_seconds: float = 1.0) -> dict:
    """DCASE 2022-24 Task 1 limits: <= 128 KB int8 parameters, <= 30 M MACs per 1-s clip."""
    macs_per_second = macs / clip_seconds
    ok_size = params_int8_bytes <= DCASE_MAX_PARAM_BYTES
    ok_macs = macs_per_second <= DCASE_MAX_MACS
    return {
        "param_bytes_int8": params_int8_bytes,
        "max_param_bytes": DCASE_MAX_PARAM_BYTES,
        "macs_per_1s": int(macs_per_second),
        "max_macs_per_1s": DCASE_MAX_MACS,
        "within_budget": bool(ok_size and ok_macs),
        "verdict": "PASS: within the DCASE budget"
        if ok_size and ok_macs
        else "FAIL: exceeds the DCASE budget ("
        + ", ".join(
            s
            for s, bad in (
                (f"{params_int8_bytes / 1024:.1f} KB > 128 KB parameters", not ok_size),
                (f"{macs_per_second / 1e6:.2f} M > 30 M MACs per second", not ok_macs),
            )
            if bad
        )
        + ")",
    }


def format_table(summary: dict) -> str:
    lines = [f"{'layer':40s} {'type':22s} {'output':>18s} {'params':>9s} {'MACs':>12s}"]
    for r in summary["layers"]:
        shape = "x".join(str(d) for d in r["output_shape"][1:])
        lines.append(f"{r['name']:40s} {r['kind']:22s} {shape:>18s} {r['params']:9,d} {r['macs']:12,d}")
    lines.append(
        f"{'total':40s} {'':22s} {'':>18s} {summary['params']:9,d} {summary['macs']:12,d}"
        f"\ntrainable params: {summary['trainable_params']:,}   float32: {summary['param_bytes_float32'] / 1024:.2f} KB"
        f"   int8: {summary['param_bytes_int8'] / 1024:.2f} KB"
    )
    return "\n".join(lines)


# ------------------------------------------------------------------ TFLite counter
def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def builtin_names() -> dict[int, str]:
    s = _schema()
    return {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}


def op_names(model) -> list[str]:
    """The builtin name of every operator of the first subgraph, in order (``CUSTOM:<code>`` otherwise)."""
    names = builtin_names()
    out = []
    for op in model.subgraphs[0].operators:
        oc = model.operatorCodes[op.opcodeIndex]
        out.append(names.get(max(oc.builtinCode, oc.deprecatedBuiltinCode), f"CUSTOM:{oc.customCode}"))
    return out


def read_tflite(data: bytes):
    """The flatbuffer as the generated object API (``ModelT``)."""
    return _schema().ModelT.InitFromPackedBuf(bytearray(data), 0)


def tflite_complexity(data: bytes) -> dict:
    """NeSsi-compatible MACs and parameter bytes of a TFLite model (first subgraph)."""
    model = read_tflite(data)
    sg = model.subgraphs[0]
    rows = []
    total = true_total = 0
    for op, name in zip(sg.operators, op_names(model)):
        ins = [list(sg.tensors[i].shape) if i >= 0 else None for i in op.inputs]
        out = list(sg.tensors[op.outputs[0]].shape)
        n_out = _prod(out)
        macs = 0
        true_macs = None
        if name == "CONV_2D":
            oc_, kh, kw, ic = ins[1]
            macs = n_out * kh * kw * ic
        elif name == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = ins[1]
            macs = n_out * kh * kw
        elif name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            opt = op.builtinOptions
            macs = n_out * opt.filterWidth * opt.filterHeight
        elif name == "FULLY_CONNECTED":
            units = ins[1][0]
            macs = ins[0][0] * ins[0][-1] * units
            true_macs = _prod(ins[0]) * units  # every input row times the weight matrix
        elif name == "MEAN":
            macs = _prod(ins[0])
        elif name == "ADD":
            macs = (len(ins) - 1) * n_out
        true_macs = macs if true_macs is None else true_macs
        total += macs
        true_total += true_macs
        rows.append({"op": name, "output_shape": out, "macs": int(macs), "true_macs": int(true_macs)})
    const_bytes = 0
    for t in sg.tensors:
        buf = model.buffers[t.buffer]
        if buf.data is not None and len(buf.data):
            const_bytes += len(buf.data)
        elif getattr(buf, "size", 0):  # large models keep buffers outside the flatbuffer
            const_bytes += int(buf.size)
    return {
        "macs": int(total),
        "true_macs": int(true_total),
        "param_bytes": int(const_bytes),
        "ops": rows,
        "input_shape": [list(sg.tensors[i].shape) for i in sg.inputs],
    }


def format_tflite(c: dict) -> str:
    lines = [f"{'op':22s} {'output':>18s} {'MACs (NeSsi)':>14s} {'true MACs':>12s}"]
    for r in c["ops"]:
        shape = "x".join(str(d) for d in r["output_shape"])
        note = "" if r["true_macs"] == r["macs"] else "  <- NeSsi differs"
        lines.append(f"{r['op']:22s} {shape:>18s} {r['macs']:14,d} {r['true_macs']:12,d}{note}")
    lines.append(f"{'total':22s} {'':>18s} {c['macs']:14,d} {c['true_macs']:12,d}")
    lines.append(f"parameter bytes (constant tensors): {c['param_bytes']:,}")
    return "\n".join(lines)
