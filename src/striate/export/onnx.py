"""ONNX by the dynamo exporter (`torch.onnx.export(..., dynamo=True)`): the graph torch.export
captures, translated to ONNX operators with the batch dimension named, not fixed, and the
metadata in the model's `metadata_props` (one JSON string under the key "striate"). The check and
`load` run it through onnxruntime, the runtime users deploy it with.

An ONNX file is a protobuf: loading it parses messages, nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from typing import Any

import numpy as np
import torch

from striate.errors import ConfigError, DataError
from striate.export.program import batch_dim

METADATA_KEY = "striate"
INPUT_NAME, OUTPUT_NAME = "images", "logits"
OPSET = 18


def _onnx_modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ConfigError(
            f"ONNX export needs the export extra ({e.name} is missing): "
            "pip install 'striate[export]'"
        ) from e
    return onnx, onnxruntime


def build(module: torch.nn.Module, example: torch.Tensor) -> Any:
    """The ONNX ModelProto of `module`, batch dimension dynamic (named "batch")."""
    _onnx_modules()
    quiet = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._export", "torch.export")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(quiet), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                dynamic_shapes=({0: batch_dim()},),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=OPSET,
                verbose=False,
            )
    except ConfigError:
        raise
    except Exception as e:
        text = str(e).strip().splitlines()
        raise ConfigError(
            f"the model cannot be exported to ONNX ({text[0] if text else type(e).__name__}); "
            f"try --format torchscript"
        ) from e
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    return program.model_proto


def serialize(model: Any, metadata_json: str) -> bytes:
    onnx, _ = _onnx_modules()
    model = onnx.ModelProto.FromString(model.SerializeToString())  # a copy: the caller's stays
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {METADATA_KEY: metadata_json})
    return model.SerializeToString()


class OnnxRunner:
    """An onnxruntime session called like the model: float N×C×H×W tensor in, logits out."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.input = session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(torch.as_tensor(x).detach().cpu().float().numpy())
        return torch.from_numpy(self.session.run(None, {self.input: array})[0])


def session(source: str | os.PathLike | bytes, threads: int | None = None) -> Any:
    """An onnxruntime CPU session; `threads` sets its intra-op thread count."""
    _, ort = _onnx_modules()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    where = "the ONNX model" if isinstance(source, bytes) else str(source)
    try:
        model = source if isinstance(source, bytes) else os.fspath(source)
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... kinds
        text = str(e).strip().splitlines()
        raise DataError(
            f"{where} is not a readable ONNX model ({text[0] if text else type(e).__name__})"
        ) from e


def load(source: str | os.PathLike | bytes, threads: int | None = None) -> tuple[OnnxRunner, str]:
    """A runner for the model and its metadata JSON ('' if it has none)."""
    runner = OnnxRunner(session(source, threads))
    meta = runner.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY, "")
    return runner, meta
