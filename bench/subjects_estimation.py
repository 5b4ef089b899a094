"""Estimated subjects against the truth: ARI, cluster counts, whether the estimator calls the estimate
usable, how many same-person clip pairs 5 folds grouped by it would still split (leak), and the
label-association diagnostic, per corpus, set of identity features and cut rule.

    python bench/subjects_estimation.py [--workdir /tmp/subjects_bench] [--corpus NAME=DIR ...]
                                        [--synth DIR] [--emodb ../shared/data/emodb] [--skip synth emodb]
                                        [--jobs 1]

- corpus NAME=DIR: a Hume-layout dataset made by competition.data.importer with the true people in
  DIR/import_truth.csv (`Subject`), e.g. the real face corpora under /work/corpora. Face identity, the
  mean face and the scene through the normal extractors, cached in WORKDIR/NAME.
- synth: the embedded synthetic set (generated into WORKDIR/synth unless --synth is given); truth in
  synth_truth.csv. Every subject there is the same real face (skimage's astronaut) tinted, mirrored and
  rolled: a face-recognition network rightly sees one person.
- emodb: the real speech corpus (speaker = first 2 characters of the file name, emotion = 6th); `speaker`
  and `mfcc_stats` run by the registry straight on the wav files, cached in WORKDIR.

Cut rules, none given a number of people:
- auto: the estimator as shipped (competition.features.subjects.estimate_subjects, threshold "auto").
- fixed T: average linkage on the raw face descriptors cut at Euclidean distance T (dlib's documented
  same-person threshold for single faces is 0.6). Scored leave-one-corpus-out too: T chosen on the
  other face corpora (best mean ARI), applied to the held-out one.
- cw T: dlib's Chinese-whispers graph clustering with edges below T (dlib's face clustering example: 0.5).
- gap: the cut in the widest gap between consecutive merge heights (the estimator's normalised distances).
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
from competition.features.subjects import (SAME_PERSON, Modality, cut, estimate_subjects,  # noqa: E402
                                           label_association, linkage)

EMODB_EMOTIONS = "WLEAFTN"  # anger boredom disgust fear happiness sadness neutral
FIXED = (0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def leak(truth: np.ndarray, groups: np.ndarray, k: int = 5) -> float:
    """Share of same-person clip pairs that 5 folds made of `groups` put in different folds (largest
    group first into the smallest fold, as GroupKFold). Ungrouped clips: about 0.8."""
    _, g = np.unique(groups, return_inverse=True)
    sizes = np.bincount(g)
    fold_of_group, load = np.zeros(len(sizes), int), np.zeros(k)
    for j in np.argsort(-sizes, kind="stable"):
        fold_of_group[j] = int(np.argmin(load))
        load[fold_of_group[j]] += sizes[j]
    fold = fold_of_group[g]
    same = np.equal.outer(truth, truth)
    np.fill_diagonal(same, False)
    return float((same & np.not_equal.outer(fold, fold)).sum() / max(same.sum(), 1))


def score(corpus: str, features: str, rule: str, truth: np.ndarray, pred: np.ndarray, labels: np.ndarray | None,
          usable: bool | None = None, reason: str = "") -> dict:
    sizes = np.unique(pred, return_counts=True)[1]
    row = {"corpus": corpus, "features": features, "rule": rule, "ARI": round(adjusted_rand_score(truth, pred), 3),
           "AMI_subject": round(adjusted_mutual_info_score(truth, pred), 3), "clusters": len(sizes),
           "true": len(set(truth)), "largest": int(sizes.max()), "singletons": int((sizes == 1).sum()),
           "usable": usable, "reason": reason, "leak": round(leak(truth, pred), 3),
           "leak_none": round(leak(truth, np.arange(len(truth))), 3)}
    if labels is not None:
        lab = np.isfinite(labels).all(1)
        la = label_association(pd.factorize(pred)[0][lab], labels[lab], n_perm=50)
        row.update(AMI_emotion=la["ami_dominant_emotion"], follows_labels=la["follows_labels"])
    return row


def markdown(df: pd.DataFrame) -> str:
    cells = [[("" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)) for v in row]
             for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


# ---------------------------------------------------------------- rules

def gap_cut(d: np.ndarray) -> np.ndarray:
    z = linkage(d)
    h = z[:, 2]
    i = int(np.argmax(np.diff(h)))
    return cut(z, float((h[i] + h[i + 1]) / 2))


def rule_rows(corpus: str, ids: list[str], emb: dict[str, np.ndarray], truth: np.ndarray,
              labels: np.ndarray | None, combos: list[list[str]]) -> list[dict]:
    rows = []
    for combo in combos:
        if not all(m in emb for m in combo):
            continue
        name = "+".join(combo)
        est = estimate_subjects(ids, {m: emb[m] for m in combo}, "auto", labels)
        d = est.diagnostics
        pred = est.table["subject"].to_numpy()
        rows.append(score(corpus, name, "auto", truth, pred, labels, d["usable"], d["reason"]))
        if len(combo) == 1 and np.isfinite(emb[combo[0]]).all():
            every = np.arange(len(ids))
            dm = Modality.of(emb[combo[0]], combo[0] in SAME_PERSON).block(every, every)
            rows.append(score(corpus, name, "gap", truth, gap_cut(dm), labels))
    x = emb.get("face_identity")
    if x is not None:  # over the clips with a face (all but 4 of 3,052 on lfw_expressions)
        has = np.isfinite(x).all(1)
        x, truth, labels = x[has].astype(np.float64), truth[has], None if labels is None else labels[has]
        import dlib
        from scipy.cluster.hierarchy import fcluster, linkage as sp_linkage
        z = sp_linkage(x, "average")
        for t in FIXED:
            rows.append(score(corpus, "face_identity", f"fixed {t}", truth, fcluster(z, t, "distance"), labels))
        for t in (0.4, 0.5):
            cw = np.array(dlib.chinese_whispers_clustering([dlib.vector(v.tolist()) for v in x], t))
            rows.append(score(corpus, "face_identity", f"cw {t}", truth, cw, labels))
    return rows


def loco(table: pd.DataFrame) -> list[dict]:
    """The fixed cut chosen on the other real face corpora (best mean ARI), scored on each held-out one
    (not the synthetic set: its one face is one person at every cut)."""
    fixed = table[table["rule"].str.startswith("fixed") & (table["corpus"] != "synth")]
    corpora = sorted(set(fixed["corpus"]))
    rows = []
    for held in corpora:
        other = fixed[fixed["corpus"] != held].groupby("rule")["ARI"].mean()
        if other.empty:
            continue
        chosen = other.idxmax()
        got = fixed[(fixed["corpus"] == held) & (fixed["rule"] == chosen)].iloc[0].to_dict()
        rows.append({**got, "rule": f"fixed, chosen on the others: {chosen.split()[1]}"})
    return rows


# ---------------------------------------------------------------- datasets

def dataset_embeddings(root: Path, workdir: Path, modalities: list[str], truth_file: str, jobs: int):
    from competition.data.contract import load_dataset
    from competition.features.subjects import load_embeddings
    ds = load_dataset(root)
    truth_df = pd.read_csv(root / truth_file, dtype=str, keep_default_na=False).set_index("File_ID")
    truth = truth_df.loc[[f"[{i}]" for i in ds.ids], "Subject"].to_numpy()
    labels = np.full((len(ds.ids), len(ds.emotions)), np.nan)
    pos = {c: i for i, c in enumerate(ds.ids)}
    labels[[pos[c] for c in ds.labelled_ids]] = ds.labels(ds.labelled_ids)
    t0 = time.perf_counter()
    emb, _ = load_embeddings(ds, modalities, workdir / "features", jobs, progress=False)
    print(f"{root.name}: features in {time.perf_counter() - t0:.0f} s; coverage "
          + ", ".join(f"{k} {np.isfinite(v).all(1).mean():.2f}" for k, v in emb.items()))
    return list(ds.ids), emb, truth, labels


FACE_COMBOS = [["face_identity"], ["scene"], ["face_identity", "scene"]]


def bench_corpus(name: str, root: Path, workdir: Path, jobs: int) -> list[dict]:
    ids, emb, truth, labels = dataset_embeddings(root, workdir / name, ["face_identity", "scene"],
                                                 "import_truth.csv", jobs)
    return rule_rows(name, ids, emb, truth, labels, FACE_COMBOS)


def bench_synth(data: Path, workdir: Path, n: int, jobs: int) -> list[dict]:
    if not (data / "data_info.csv").exists():
        from competition.data.synth import generate
        generate(data, n=n, seed=0, jobs=jobs)
    ids, emb, truth, labels = dataset_embeddings(data, workdir / "synth", ["face_identity", "scene", "speaker"],
                                                 "synth_truth.csv", jobs)
    combos = FACE_COMBOS + [["speaker"], ["face_identity", "speaker", "scene"]]
    return rule_rows("synth", ids, emb, truth, labels, combos)


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
    labels = np.eye(len(EMODB_EMOTIONS))[[EMODB_EMOTIONS.index(i[5]) for i in ids]]
    return rule_rows("emodb", ids, emb, truth, labels, [["speaker"], ["mfcc_stats"], ["speaker", "mfcc_stats"]])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/subjects_bench"))
    ap.add_argument("--corpus", nargs="*", default=[], metavar="NAME=DIR",
                    help="real face corpora with import_truth.csv")
    ap.add_argument("--synth", type=Path, default=None, help="synthetic dataset (default: WORKDIR/synth, generated)")
    ap.add_argument("--n", type=int, default=240, help="clips of the generated synthetic set")
    ap.add_argument("--emodb", type=Path, default=REPO.parent / "shared" / "data" / "emodb")
    ap.add_argument("--skip", nargs="*", default=[], choices=["synth", "emodb"])
    ap.add_argument("--jobs", type=int, default=1)
    a = ap.parse_args(argv)
    a.workdir.mkdir(parents=True, exist_ok=True)
    runs = [(name, lambda n=name, r=root: bench_corpus(n, Path(r), a.workdir, a.jobs))
            for name, root in (c.split("=", 1) for c in a.corpus)]
    if "synth" not in a.skip:
        runs.append(("synth", lambda: bench_synth(a.synth or a.workdir / "synth_data", a.workdir, a.n, a.jobs)))
    if "emodb" not in a.skip:
        runs.append(("emodb", lambda: bench_emodb(a.emodb / "wav", a.workdir)))
    rows = []
    for name, fn in runs:
        t0 = time.perf_counter()
        rows += fn()
        print(f"{name}: {time.perf_counter() - t0:.0f} s")
    table = pd.DataFrame(rows)
    table = pd.concat([table, pd.DataFrame(loco(table))], ignore_index=True)
    table.to_csv(a.workdir / "subjects_estimation.csv", index=False)
    print(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
