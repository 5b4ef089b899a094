"""Estimated subjects against the truth: ARI, purity, cluster counts and the label-association diagnostic
(do the clusters follow the emotion instead of the person?) per set of features.

    python bench/subjects_estimation.py [--workdir /tmp/subjects_bench] [--synth DIR] [--n 240]
                                        [--emodb ../shared/data/emodb] [--skip synth|emodb] [--jobs 1]

- synth: the embedded synthetic set (generated into WORKDIR/synth unless --synth is given); truth `Subject`
  in synth_truth.csv. Identity modalities through the normal extractors, and `mfcc_stats` as the
  emotion-laden contrast.
- emodb: the real speech corpus (speaker = first 2 characters of the file name, emotion = 6th); `speaker`
  and `mfcc_stats` run by the registry straight on the wav files (no importer needed), cached in WORKDIR.
Every row clusters with `estimate_subjects(..., threshold="auto")`: no number of subjects is given.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from competition.features.registry import ClipMedia, FeatureError, get_extractor  # noqa: E402
from competition.features.subjects import estimate_subjects  # noqa: E402

EMODB_EMOTIONS = "WLEAFTN"  # anger boredom disgust fear happiness sadness neutral


def purity(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(purity: share of clips in their cluster's majority subject, inverse purity: share of clips in
    their subject's majority cluster). Singletons give purity 1; one big cluster gives inverse purity 1."""
    ct = pd.crosstab(pred, truth).to_numpy()
    return ct.max(1).sum() / ct.sum(), ct.max(0).sum() / ct.sum()


def score_row(name: str, truth: np.ndarray, est, per_clip_s: float | None = None) -> dict:
    pred = est.table["subject"].to_numpy()
    p, ip = purity(truth, pred)
    la = est.diagnostics.get("label_association", {})
    return {"features": name, "ARI": round(adjusted_rand_score(truth, pred), 3),
            "AMI_subject": round(adjusted_mutual_info_score(truth, pred), 3), "purity": round(p, 3),
            "inv_purity": round(ip, 3), "clusters": est.diagnostics["n_clusters"], "true": len(set(truth)),
            "threshold": round(est.threshold, 3),
            "AMI_emotion": la.get("ami_dominant_emotion"), "AMI_emotion_perm": la.get("ami_permutation_mean"),
            "follows_labels": la.get("follows_labels"),
            "mean_conf": est.diagnostics["mean_confidence"]}


def truth_row(name: str, truth: np.ndarray, labels: np.ndarray) -> dict:
    """The label association of the true subjects themselves: what a perfect estimate would show."""
    from competition.features.subjects import label_association
    lab = np.isfinite(labels).all(1)
    codes = pd.factorize(truth)[0]
    la = label_association(codes[lab], labels[lab])
    return {"features": name, "ARI": 1.0, "AMI_subject": 1.0, "purity": 1.0, "inv_purity": 1.0,
            "clusters": len(set(truth)), "true": len(set(truth)), "threshold": None,
            "AMI_emotion": la["ami_dominant_emotion"], "AMI_emotion_perm": la["ami_permutation_mean"],
            "follows_labels": la["follows_labels"], "mean_conf": None}


def markdown(df: pd.DataFrame) -> str:
    cells = [[("" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)) for v in row]
             for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


# ---------------------------------------------------------------- synthetic set

def bench_synth(data: Path, workdir: Path, n: int, jobs: int) -> list[dict]:
    from competition.data.contract import load_dataset
    from competition.features.subjects import load_embeddings
    if not (data / "data_info.csv").exists():
        from competition.data.synth import generate
        generate(data, n=n, seed=0, jobs=jobs)
    ds = load_dataset(data)
    truth_df = pd.read_csv(data / "synth_truth.csv", dtype=str).set_index("File_ID")
    truth = truth_df.loc[[f"[{i}]" for i in ds.ids], "Subject"].to_numpy()
    labels = np.full((len(ds.ids), len(ds.emotions)), np.nan)
    pos = {c: i for i, c in enumerate(ds.ids)}
    labels[[pos[c] for c in ds.labelled_ids]] = ds.labels(ds.labelled_ids)
    t0 = time.perf_counter()
    emb = load_embeddings(ds, ["speaker", "face_identity", "scene", "mfcc_stats"], workdir / "features", jobs,
                          progress=False)
    print(f"synth: features in {time.perf_counter() - t0:.0f} s; coverage "
          + ", ".join(f"{k} {np.isfinite(v).all(1).mean():.2f}" for k, v in emb.items()))
    rows = [truth_row("true subjects", truth, labels)]
    for combo in (["speaker"], ["face_identity"], ["scene"], ["face_identity", "scene"],
                  ["speaker", "face_identity", "scene"], ["mfcc_stats"]):
        est = estimate_subjects(ds.ids, {m: emb[m] for m in combo if m in emb}, "auto", labels, per_modality=False)
        rows.append(score_row("+".join(combo), truth, est))
    return rows


# ---------------------------------------------------------------- EmoDB

def emodb_features(wav_dir: Path, cache: Path, names: tuple[str, ...] = ("speaker", "mfcc_stats")
                   ) -> tuple[list[str], dict[str, np.ndarray]]:
    files = sorted(wav_dir.glob("*.wav"))
    if not files:
        raise SystemExit(f"{wav_dir}: no wav files")
    ids = [f.stem for f in files]
    out = {}
    for name in names:
        path = cache / f"emodb_{name}.npy"
        if path.exists():
            out[name] = np.load(path)
            continue
        ex = get_extractor(name)
        rows = []
        t0 = time.perf_counter()
        for f in files:
            try:
                rows.append(ex.run(ClipMedia(f.stem, "Train", f.with_suffix(".mp4"), f)).x)
            except FeatureError as exc:
                print(f"{f.name}: {exc}")
                rows.append(None)
        dim = len(next(r for r in rows if r is not None))
        x = np.stack([r if r is not None else np.full(dim, np.nan, np.float32) for r in rows]).astype(np.float32)
        print(f"emodb {name}: {(time.perf_counter() - t0) / len(files) * 1000:.0f} ms per clip")
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, x)
        out[name] = x
    return ids, out


def bench_emodb(wav_dir: Path, workdir: Path) -> list[dict]:
    ids, emb = emodb_features(wav_dir, workdir / "emodb")
    truth = np.array([i[:2] for i in ids])
    emo = np.array([EMODB_EMOTIONS.index(i[5]) for i in ids])
    labels = np.eye(len(EMODB_EMOTIONS))[emo]
    rows = [truth_row("true speakers", truth, labels)]
    for combo in (["speaker"], ["mfcc_stats"], ["speaker", "mfcc_stats"]):
        est = estimate_subjects(ids, {m: emb[m] for m in combo}, "auto", labels, per_modality=False)
        rows.append(score_row("+".join(combo), truth, est))
    # the same speaker embeddings cut at the true number of speakers: is the threshold or the embedding to blame?
    from competition.features.subjects import cut, linkage, modality_distances
    d = modality_distances(emb["speaker"])
    z = linkage(d)
    k = len(set(truth))
    heights = z[:, 2]
    t = float((heights[-k] + heights[-k + 1]) / 2) if k > 1 else float(heights[-1] + 1)
    pred = cut(z, t)
    p, ip = purity(truth, pred)
    from competition.features.subjects import label_association
    la = label_association(pred, labels)
    rows.append({"features": f"speaker, cut at the true k={k}", "ARI": round(adjusted_rand_score(truth, pred), 3),
                 "AMI_subject": round(adjusted_mutual_info_score(truth, pred), 3), "purity": round(p, 3),
                 "inv_purity": round(ip, 3), "clusters": int(pred.max()) + 1, "true": k, "threshold": round(t, 3),
                 "AMI_emotion": la["ami_dominant_emotion"], "AMI_emotion_perm": la["ami_permutation_mean"],
                 "follows_labels": la["follows_labels"], "mean_conf": None})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/subjects_bench"))
    ap.add_argument("--synth", type=Path, default=None, help="synthetic dataset (default: WORKDIR/synth, generated)")
    ap.add_argument("--n", type=int, default=240, help="clips of the generated synthetic set")
    ap.add_argument("--emodb", type=Path, default=REPO.parent.parent / "shared" / "data" / "emodb")
    ap.add_argument("--skip", nargs="*", default=[], choices=["synth", "emodb"])
    ap.add_argument("--jobs", type=int, default=1)
    a = ap.parse_args(argv)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    for name, fn in (("synth", lambda: bench_synth(a.synth or a.workdir / "synth", a.workdir, a.n, a.jobs)),
                     ("emodb", lambda: bench_emodb(a.emodb / "wav", a.workdir))):
        if name in a.skip:
            continue
        t0 = time.perf_counter()
        table = pd.DataFrame(fn())
        print(f"\n## {name} ({time.perf_counter() - t0:.0f} s)\n")
        print(markdown(table))
        table.to_csv(a.workdir / f"subjects_estimation_{name}.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
