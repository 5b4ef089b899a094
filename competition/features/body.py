"""Body keypoints (the role of seed 003's OpenPose 2-D skeletons, every 0.5 s): MediaPipe BlazePose's
`pose_landmark_full.tflite`, shipped in the mediapipe 0.10.14 wheel (installed `--no-deps`, never
imported), run with ai-edge-litert on the whole padded frame. Why this model: docs/FEATURES.md."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from competition.features.registry import ClipMedia, FeatureError, FeatureOutput, register_extractor, wheel_file

N_KEYPOINTS = 33
_INPUT = 256


def default_model_path() -> Path:
    return wheel_file("mediapipe", "modules", "pose_landmark", "pose_landmark_full.tflite",
                      install="`pip install --no-deps mediapipe==0.10.14`, or pass model_path=")


@functools.lru_cache(maxsize=2)
def _interpreter(path: str):
    from ai_edge_litert.interpreter import Interpreter
    if not Path(path).is_file():
        raise FeatureError(f"body pose model {path} not found")
    interp = Interpreter(model_path=path)
    interp.allocate_tensors()
    outs = {tuple(d["shape"]): d["index"] for d in interp.get_output_details()}
    return interp, outs[(1, 5 * 39)], outs[(1, 1)]


def body_keypoints(frames: np.ndarray, model_path: str | Path | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, 100): 33 x (x, y, visibility) in frame fractions, then presence."""
    import cv2
    interp, lm_index, presence_index = _interpreter(str(model_path or default_model_path()))
    inp = interp.get_input_details()[0]["index"]
    rows = []
    for frame in frames:
        h, w = frame.shape[:2]
        side = max(h, w)
        px, py = (side - w) // 2, (side - h) // 2
        square = cv2.copyMakeBorder(frame, py, side - h - py, px, side - w - px, cv2.BORDER_CONSTANT, value=0)
        x = cv2.resize(square, (_INPUT, _INPUT), interpolation=cv2.INTER_AREA).astype(np.float32)[None] / 255.0
        interp.set_tensor(inp, x)
        interp.invoke()
        lm = interp.get_tensor(lm_index).reshape(39, 5)[:N_KEYPOINTS]
        presence = float(interp.get_tensor(presence_index).ravel()[0])  # already a probability
        xs = (lm[:, 0] / _INPUT * side - px) / w
        ys = (lm[:, 1] / _INPUT * side - py) / h
        vis = 1.0 / (1.0 + np.exp(-lm[:, 3]))
        rows.append(np.concatenate([np.stack([xs, ys, vis], 1).ravel(), [presence]]))
    return np.asarray(rows, np.float32)


@register_extractor("body_pose", kind="sequence",
                    defaults={"scheme": "step", "step": 0.5, "n": 32, "every": 30, "max_side": 640,
                              "model_path": ""}, modality="body")
def body_pose(clip: ClipMedia, scheme: str, step: float, n: int, every: int, max_side: int,
              model_path: str) -> FeatureOutput:
    """BlazePose 33 body keypoints per sampled frame (T, 100), every 0.5 s by default (seed 003)."""
    from competition.features.video import read_sampled
    vf = read_sampled(clip.mp4, scheme, step=step, n=n, every=every, max_side=max_side)
    x = body_keypoints(vf.frames, model_path or None)
    return FeatureOutput(x=x, t=vf.times.astype(np.float32), mask=x[:, -1] >= 0.5,
                         info={"frames": len(x), "presence_rate": round(float((x[:, -1] >= 0.5).mean()), 4)})
