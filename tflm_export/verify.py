"""Run int8 models in LiteRT (reference kernels) and in the TFLM interpreter; measure the arena."""
from __future__ import annotations

import os
import re
import sys
import tempfile

import numpy as np


def tflm_interpreter(data: bytes):
    """A TFLM interpreter for ``data``, with an arena grown until the model's tensors fit.

    (The Python API's default arena is 10x the model size, too small for large activations.)
    """
    from tflite_micro.python.tflite_micro import runtime as tflm

    for size in (10 * len(data), 8 << 20, 64 << 20, 512 << 20):
        try:
            return tflm.Interpreter.from_bytes(data, arena_size=size)
        except RuntimeError as e:
            last = e
    raise RuntimeError(f"TFLM cannot allocate the model's tensors even in a {512 << 20}-byte arena: {last}")


class Runner:
    """Quantize float features, run one backend, return int8 outputs and dequantized probabilities."""

    def __init__(self, data: bytes, backend: str = "litert"):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.backend = backend
        ref = Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        ref.allocate_tensors()
        self.inp, self.out = ref.get_input_details()[0], ref.get_output_details()[0]
        if backend == "litert":
            self.interp = ref
        elif backend == "tflm":
            self.interp = tflm_interpreter(data)
        else:
            raise ValueError(f"unknown backend {backend!r}; expected litert or tflm")

    def quantize(self, x: np.ndarray) -> np.ndarray:
        s, z = self.inp["quantization"]
        return np.clip(np.round(x / s + z), -128, 127).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        s, z = self.out["quantization"]
        return (q.astype(np.float32) - z) * s

    def run_int8(self, xq: np.ndarray) -> np.ndarray:
        outs = []
        for x in xq:
            x = x[None]
            if self.backend == "litert":
                self.interp.set_tensor(self.inp["index"], x)
                self.interp.invoke()
                outs.append(self.interp.get_tensor(self.out["index"])[0].copy())
            else:
                self.interp.set_input(x, 0)
                self.interp.invoke()
                outs.append(np.array(self.interp.get_output(0))[0].copy())
        return np.stack(outs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.dequantize(self.run_int8(self.quantize(x)))


def arena_bytes(data: bytes) -> int:
    """Total TFLM tensor-arena bytes, read from ``print_allocations()`` on C-level stderr."""
    interp = tflm_interpreter(data)
    fd, path = tempfile.mkstemp()
    saved = os.dup(2)
    sys.stderr.flush()
    os.dup2(fd, 2)
    try:
        interp.print_allocations()
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)
    text = open(path).read()
    os.remove(path)
    m = re.search(r"Arena allocation total (\d+) bytes", text)
    if not m:
        raise RuntimeError(f"could not read the arena size from print_allocations():\n{text[:500]}")
    return int(m.group(1))


def strip_softmax(data: bytes) -> bytes | None:
    """The model with its final SOFTMAX removed (outputs the int8 logits), or None when it has none."""
    import flatbuffers

    from tfasc.complexity import _schema, op_names, read_tflite

    model = read_tflite(data)
    sg = model.subgraphs[0]
    if not sg.operators or op_names(model)[-1] != "SOFTMAX" or list(sg.outputs) != [sg.operators[-1].outputs[0]]:
        return None
    last = sg.operators.pop()
    sg.outputs = [last.inputs[0]]
    b = flatbuffers.Builder(len(data) + 1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _lsb(a: np.ndarray, b: np.ndarray) -> int:
    d = np.abs(a.astype(np.int32) - b.astype(np.int32))
    return int(d.max()) if d.size else 0


def compare_backends(data: bytes, x: np.ndarray) -> dict:
    """TFLM vs LiteRT BUILTIN_REF on the same int8 inputs.

    ``max_lsb_diff_logits`` compares the graph up to the final SOFTMAX (every other op);
    ``max_lsb_diff`` the outputs: TFLM's int8 SOFTMAX uses its own exp lookup table and
    differs from the reference kernel by several LSB on peaked distributions, while the
    arg-max (``top1_agreement``) is what a device acts on.
    """
    ref, micro = Runner(data, "litert"), Runner(data, "tflm")
    xq = ref.quantize(x)
    a, b = ref.run_int8(xq), micro.run_int8(xq)
    out = {"clips": int(len(x)), "max_lsb_diff": _lsb(a, b),
           "top1_agreement": float(np.mean(np.argmax(a, 1) == np.argmax(b, 1)))}
    logits = strip_softmax(data)
    if logits is not None:
        la, lb = Runner(logits, "litert").run_int8(xq), Runner(logits, "tflm").run_int8(xq)
        out["max_lsb_diff_logits"] = _lsb(la, lb)
    return out
