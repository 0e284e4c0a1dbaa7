"""I3D as a LiteRT (TFLite) flat buffer: built-in ops only, float32, float16 weights or full-integer int8.

The file takes one clip of a fixed shape, (1, frames, 224, 224, channels) in [-1, 1] (LiteRT has no
dynamic time axis the way ONNX has), and is converted from :func:`i3d.runtime.litert_network.litert_network`'s
2D rewrite of the network, so LiteRT's built-in ops run it alone (no Flex delegate). ``fp16`` stores the
weights as float16 (computed in float32); ``int8`` quantises every op, the input and the output to int8
(per-channel weights), calibrated on representative clips: the windows ``classify --precision int8``
calibrates OpenVINO on (:mod:`i3d.runtime.quantize`), cut to the file's frames, with the output's int8
range then widened (:data:`OUTPUT_HEADROOM`). ``model.json`` beside the file says what a program running
it needs: input shape and range, quantisation, class names, frames.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from i3d.errors import OptionError
from i3d.streams import Stream

PRECISIONS = ("fp32", "fp16", "int8")
TOLERANCES = {"fp32": 1e-4, "fp16": 5e-2, "int8": 4.0}
"""The largest absolute difference from the tool's network a LiteRT file may show on the sample's logits
(about 15 at the top), by precision, with the same top-1 class required too: float32 is float rounding;
fp16 and int8 leave room over what they measured on the cricket sample (fp16 0.014 at 64 frames and
0.015 at 16; int8 calibrated on the sample 0.78 and 0.99, on another video 1.94 at 16 frames)."""
DEFAULT_FRAMES = 64
OUTPUT_HEADROOM = 2.0
"""How many times its calibrated range an int8 file's logits may span: calibration clips (the cricket
sample by default) do not show the network's most confident answers, and logits past the calibrated
range would clip to one value, a tie for the top-1 (measured: 2 of 11 devset windows without it)."""


def calibration_clips(stream: Stream, frames: int, folder: os.PathLike | None = None) -> list[np.ndarray]:
    """The int8 calibration clips (1, frames, 224, 224, C): the windows :mod:`i3d.runtime.quantize` calibrates
    OpenVINO's int8 on (the sample's, or up to its limit from the videos in ``folder``), their first
    ``frames`` frames. OptionError when ``frames`` is longer than those windows."""
    from i3d.runtime.quantize import CALIBRATION_FRAMES, calibration_for, sample_windows, video_windows

    if frames > CALIBRATION_FRAMES:
        raise OptionError("frames", f"is {frames}; int8 is calibrated on {CALIBRATION_FRAMES}-frame windows, so "
                                    f"export int8 with --frames {CALIBRATION_FRAMES} or fewer")
    calibration = calibration_for(stream, None if folder is None else os.fspath(folder))
    windows = video_windows(calibration) if calibration.videos else sample_windows(calibration)
    return [np.ascontiguousarray(window[:, :frames], np.float32) for window in windows]


def convert(model, frames: int, precision: str, calibration: Sequence[np.ndarray] = ()) -> bytes:
    """The LiteRT flat buffer of ``model`` (a Keras I3D, weights loaded) for clips of ``frames`` frames."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from i3d.interrupts import keep_interrupts
    from i3d.runtime.litert_network import litert_network

    rewritten = litert_network(model, frames)
    [clip] = rewritten.inputs
    spec = tf.TensorSpec(tuple(clip.shape), tf.float32, name="clip")
    forward = tf.function(lambda clip: rewritten(clip, training=False), input_signature=[spec])
    # the weights as constants: a function holding variables converts to LiteRT variable ops (or, without
    # the model beside it, through the converter's deprecated path)
    frozen = convert_variables_to_constants_v2(forward.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], rewritten)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        if not calibration:
            raise ValueError("int8 needs calibration clips")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([clip] for clip in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    with keep_interrupts(), warnings.catch_warnings():
        # int8 input and output are quantised with the calibrated range: no statistics to give
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        converted = converter.convert()
    return with_headroom(converted, OUTPUT_HEADROOM) if precision == "int8" else converted


def with_headroom(flatbuffer: bytes, factor: float) -> bytes:
    """``flatbuffer`` (an int8 file) with the int8 range of its output widened ``factor`` times above its
    low end: the output tensor and those it is read off unchanged (reshapes, means) back to the layer
    computing it (the logits' convolution, a head's dense layer). Each kernel rescales from its tensors'
    scales, so this is the quantisation a wider calibration would have chosen. A file whose output is
    not so made (the features, pooled) is returned as it is."""
    # TensorFlow's own flat buffer reader and writer (the converter's tools; LiteRT ships no writer)
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    [graph] = model.subgraphs
    made_by = {tensor: op for op in graph.operators for tensor in op.outputs}
    passing = {schema.BuiltinOperator.RESHAPE, schema.BuiltinOperator.MEAN, schema.BuiltinOperator.SQUEEZE}
    computing = {schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.FULLY_CONNECTED}
    chain, tensor = [], graph.outputs[0]
    while tensor in made_by:
        chain.append(tensor)
        op = made_by[tensor]
        code = model.operatorCodes[op.opcodeIndex]
        kind = max(code.builtinCode, code.deprecatedBuiltinCode)
        if kind in computing:
            break
        if kind not in passing:
            return flatbuffer
        tensor = op.inputs[0]
    else:
        return flatbuffer
    for index in chain:
        quantisation = graph.tensors[index].quantization
        [scale], [zero_point] = quantisation.scale, quantisation.zeroPoint
        low = (-128 - zero_point) * scale
        quantisation.scale = [scale * factor]
        quantisation.zeroPoint = [int(round(-128 - low / (scale * factor)))]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _quantisation(detail: dict) -> dict | None:
    scale, zero_point = detail["quantization"]
    return {"scale": float(scale), "zero_point": int(zero_point)} if scale else None


def litert_runner(path: str | os.PathLike, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A function running the LiteRT file at ``path``: float32 clip (1, T, 224, 224, C) -> float32 output;
    an int8 file's input is quantised and its output dequantised with the file's own parameters."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=os.fspath(path), num_threads=threads)
    interpreter.allocate_tensors()
    [given], [wanted] = interpreter.get_input_details(), interpreter.get_output_details()
    into, out_of = _quantisation(given), _quantisation(wanted)

    def run(clip: np.ndarray) -> np.ndarray:
        clip = np.asarray(clip, np.float32)
        if into is not None:
            info = np.iinfo(given["dtype"])
            clip = np.clip(np.round(clip / into["scale"]) + into["zero_point"], info.min, info.max)
        interpreter.set_tensor(given["index"], np.ascontiguousarray(clip.astype(given["dtype"])))
        interpreter.invoke()
        out = interpreter.get_tensor(wanted["index"])
        if out_of is not None:
            out = (out.astype(np.float32) - out_of["zero_point"]) * out_of["scale"]
        return np.array(out, np.float32)

    return run


def litert_details(path: str | os.PathLike) -> dict:
    """The file's input and output as LiteRT reads them: shape, type and (int8) quantisation."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=os.fspath(path))
    [given], [wanted] = interpreter.get_input_details(), interpreter.get_output_details()
    return {key: {"shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
                  "quantization": _quantisation(detail)} for key, detail in (("input", given), ("output", wanted))}

