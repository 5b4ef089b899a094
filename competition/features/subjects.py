"""Estimate who is who when a dataset has no subject ids: cluster clips by what identifies a person and
not their emotion, and write the work directory's subjects file (competition.data.subjects).

    python -m competition.features.subjects --data DIR [--workdir W] [--modalities speaker,face_identity,scene]
                                            [--threshold auto|X] [--jobs N] [--task eri|va|expr] [--force]

1. Identity features (extractors in competition.features): `speaker` (GE2E speaker-verification
   embedding), `face_identity` (mean aligned face over the clip), `scene` (background, person masked).
   Emotion features (MFCC statistics, expression, ...) are deliberately not used: clusters of them
   follow the emotion (issue 13; bench/subjects_estimation.py shows it on EmoDB).
2. Per modality: standardise each dimension over the clips that have it, cosine distance, divided by
   the median distance between clips (so every modality puts unrelated clips near 1).
3. Fuse: per pair of clips, the mean over the modalities both clips have. A clip missing a modality
   (silence, no face) is placed by the others; a pair with none in common gets the largest distance.
4. Average-linkage agglomerative clustering cut at a distance threshold, not a number of subjects.
   `--threshold auto` cuts between each pair of consecutive merge heights of the dendrogram and keeps
   the cut with the highest mean silhouette (precomputed fused distances; ties: the lowest cut).
   No labels are read and every step is deterministic.
5. Confidence per clip: its silhouette clipped to [0, 1], times the share of modalities it has.
   A clip alone in its cluster (silhouette 0) has confidence 0.

Diagnostics (`subjects_estimate.json` beside subjects.csv): threshold, cluster count, coverage per
modality, each modality clustered alone, and the label association: on Train/Val, the adjusted mutual
information between clusters and the dominant emotion and the share of label variance between clusters
(eta^2), each against the same for 200 random permutations of the cluster labels. When clusters explain
the labels beyond chance, they look like emotions rather than people and a warning is printed. Whether
estimated subjects help at all is decided by nested CV downstream, never assumed here.

Memory is O(n^2): a float32 distance matrix per modality plus the float64 fused one and scipy's condensed
copy (10k clips: 0.4 GB per modality, 0.8 GB fused, 0.4 GB condensed).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from competition.core.log import add_log_arguments, command, setup_logging

MODALITIES: tuple[str, ...] = ("speaker", "face_identity", "scene")
N_PERMUTATIONS = 200
# Clusters "follow the label" when their AMI with the dominant emotion is above every permutation's
# (p < 1/(N_PERMUTATIONS+1)) and above this absolute level (true speakers on EmoDB: 0.00).
AMI_WARNING = 0.05
DIAGNOSTICS = "subjects_estimate.json"


# ---------------------------------------------------------------- distances

def modality_distances(x: np.ndarray) -> np.ndarray:
    """(n, D) embeddings with NaN rows where the clip has none -> (n, n) cosine distances of the
    standardised rows over the median distance between distinct clips; NaN where either clip is missing."""
    x = np.asarray(x, np.float64)
    have = np.isfinite(x).all(1)
    out = np.full((len(x), len(x)), np.nan, np.float32)
    if have.sum() == 0:
        return out
    z = x[have]
    sd = z.std(0)
    z = (z - z.mean(0)) / np.where(sd > 1e-8, sd, 1.0)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    d = np.clip(1.0 - z @ z.T, 0.0, 2.0)
    np.fill_diagonal(d, 0.0)
    if len(d) > 1:
        med = np.median(d[np.triu_indices(len(d), 1)])
        d /= med if med > 1e-12 else 1.0
    out[np.ix_(have, have)] = d
    return out


def fuse(dists: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean over modalities of the pairwise distances both clips have -> (fused (n, n), modalities per
    clip (n,)). Pairs with no modality in common get the largest fused distance. Accumulated one
    modality at a time (no stacked copy: memory is the n x n matrices themselves)."""
    n = len(dists[0])
    total = np.zeros((n, n), np.float64)
    count = np.zeros((n, n), np.int8)
    per_clip = np.zeros(n, int)
    for d in dists:
        known = np.isfinite(d)
        total += np.where(known, d, 0.0)
        count += known
        per_clip += np.isfinite(np.diagonal(d))
    finite = count > 0
    fused = total / np.maximum(count, 1)
    fill = float(fused[finite].max()) if finite.any() else 1.0
    fused[~finite] = max(fill, 1.0)
    np.fill_diagonal(fused, 0.0)
    return fused, per_clip


# ---------------------------------------------------------------- clustering

def linkage(d: np.ndarray) -> np.ndarray:
    from scipy.cluster.hierarchy import linkage as _linkage
    from scipy.spatial.distance import squareform
    return _linkage(squareform(d, checks=False), method="average")


def cut(z: np.ndarray, threshold: float) -> np.ndarray:
    """Cluster labels 0..k-1 (numbered by first appearance) of the dendrogram cut at `threshold`."""
    from scipy.cluster.hierarchy import fcluster
    raw = fcluster(z, t=threshold, criterion="distance")
    _, first, inv = np.unique(raw, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[inv]


def auto_threshold(d: np.ndarray, z: np.ndarray | None = None, max_candidates: int = 200) -> tuple[float, list]:
    """(threshold, [(threshold, n_clusters, silhouette), ...]): the cut between consecutive merge heights
    with the highest mean silhouette; ties go to the lowest cut. At most `max_candidates` cuts, evenly
    spaced over the merge order."""
    from sklearn.metrics import silhouette_score
    n = len(d)
    if n < 3:
        return 0.0, []
    z = linkage(d) if z is None else z
    h = z[:, 2]
    mids = (h[:-1] + h[1:]) / 2  # between merge i and i+1: n-1-(i+1) clusters
    keep = np.flatnonzero(h[1:] > h[:-1])  # equal heights cannot be separated
    if len(keep) > max_candidates:
        keep = keep[np.unique(np.linspace(0, len(keep) - 1, max_candidates).round().astype(int))]
    curve = []
    for i in keep:
        labels = cut(z, float(mids[i]))
        k = int(labels.max()) + 1
        if 2 <= k <= n - 1:
            curve.append((float(mids[i]), k, float(silhouette_score(d, labels, metric="precomputed"))))
    if not curve:
        return float(h[-1]) + 1e-9, []
    best = max(range(len(curve)), key=lambda j: (round(curve[j][2], 12), -curve[j][0]))
    return curve[best][0], curve


def confidence(d: np.ndarray, labels: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """Per clip: silhouette clipped to [0, 1] (0 alone in a cluster) times `coverage` in [0, 1]."""
    from sklearn.metrics import silhouette_samples
    k = int(labels.max()) + 1 if len(labels) else 0
    if not 2 <= k <= len(labels) - 1:
        s = np.zeros(len(labels)) if k != 1 else np.ones(len(labels))
    else:
        s = silhouette_samples(d, labels, metric="precomputed")
    return np.clip(s, 0.0, 1.0) * coverage


# ---------------------------------------------------------------- diagnostics

def label_association(clusters: np.ndarray, y: np.ndarray, n_perm: int = N_PERMUTATIONS, seed: int = 0
                      ) -> dict[str, Any]:
    """How much the clusters explain the labels y (n, E) of labelled clips, against random permutations
    of the cluster labels: AMI with the dominant emotion and the mean between-cluster share of each
    emotion's variance (eta^2). `follows_labels` when the AMI beats every permutation and AMI_WARNING."""
    from sklearn.metrics import adjusted_mutual_info_score
    clusters = np.asarray(clusters)
    y = np.asarray(y, np.float64)
    dominant = y.argmax(1)
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(clusters) for _ in range(n_perm)]
    ami = float(adjusted_mutual_info_score(dominant, clusters))
    ami_perm = np.array([adjusted_mutual_info_score(dominant, p) for p in perms])
    eta = _eta2(clusters, y)
    eta_perm = np.array([_eta2(p, y) for p in perms])
    p_ami = float((1 + (ami_perm >= ami).sum()) / (1 + n_perm))
    return {"n_labelled": int(len(y)), "ami_dominant_emotion": round(ami, 4),
            "ami_permutation_mean": round(float(ami_perm.mean()), 4),
            "ami_permutation_p99": round(float(np.percentile(ami_perm, 99)), 4), "ami_p_value": round(p_ami, 4),
            "eta2_labels": round(eta, 4), "eta2_permutation_mean": round(float(eta_perm.mean()), 4),
            "eta2_p_value": round(float((1 + (eta_perm >= eta).sum()) / (1 + n_perm)), 4),
            "follows_labels": bool(ami > AMI_WARNING and p_ami <= 1.0 / (1 + n_perm) + 1e-12)}


def _eta2(clusters: np.ndarray, y: np.ndarray) -> float:
    """Mean over label columns of between-cluster sum of squares / total sum of squares."""
    _, inv = np.unique(clusters, return_inverse=True)
    counts = np.bincount(inv).astype(np.float64)
    centred = y - y.mean(0)
    sums = np.stack([np.bincount(inv, weights=centred[:, j]) for j in range(y.shape[1])], 1)
    between = (sums ** 2 / counts[:, None]).sum(0)
    total = (centred ** 2).sum(0)
    ok = total > 1e-12
    return float((between[ok] / total[ok]).mean()) if ok.any() else 0.0


# ---------------------------------------------------------------- estimation

@dataclass
class Estimate:
    table: pd.DataFrame                # File_ID (as given), subject, confidence
    threshold: float
    diagnostics: dict[str, Any] = field(default_factory=dict)


def _cluster_report(d: np.ndarray, labels: np.ndarray, y: np.ndarray | None, labelled: np.ndarray,
                    seed: int) -> dict[str, Any]:
    sizes = np.bincount(labels)
    out: dict[str, Any] = {"n_clusters": int(len(sizes)), "singletons": int((sizes == 1).sum()),
                           "largest": int(sizes.max()) if len(sizes) else 0}
    if y is not None and labelled.sum() >= 3:
        out["label_association"] = label_association(labels[labelled], y[labelled], seed=seed)
    return out


def _constant(x: np.ndarray) -> bool:
    """True when the clips that have this modality all have the same embedding (nothing to cluster)."""
    rows = np.asarray(x, np.float64)[np.isfinite(x).all(1)]
    return len(rows) > 1 and bool(np.all(rows.max(0) - rows.min(0) <= 1e-6 * (1 + np.abs(rows).max())))


def estimate_subjects(ids: Sequence[str], embeddings: dict[str, np.ndarray], threshold: str | float = "auto",
                      labels: np.ndarray | None = None, seed: int = 0, per_modality: bool = True) -> Estimate:
    """Cluster clips `ids` by their identity embeddings ({modality: (n, D) with NaN rows for clips that
    have none}). `labels` (n, E), NaN rows for unlabelled clips, are used only for the diagnostics."""
    ids = list(ids)
    n = len(ids)
    if not embeddings:
        raise ValueError("no modality to estimate subjects from")
    for name, x in embeddings.items():
        if len(x) != n:
            raise ValueError(f"modality {name!r}: {len(x)} rows for {n} clips")
    dropped = {name: "the same for every clip (e.g. placeholder videos)" for name, x in embeddings.items()
               if _constant(x)}
    embeddings = {name: x for name, x in embeddings.items() if name not in dropped}
    if not embeddings:
        raise ValueError(f"no modality tells clips apart: {dropped}")
    dists = {name: modality_distances(x) for name, x in embeddings.items()}
    d, have = fuse(list(dists.values()))
    z = linkage(d) if n >= 2 else None
    if threshold == "auto":
        t, curve = auto_threshold(d, z)
    else:
        t, curve = float(threshold), []
    clusters = cut(z, t) if z is not None else np.zeros(n, int)
    conf = confidence(d, clusters, have / len(embeddings))
    y = None if labels is None else np.asarray(labels, np.float64)
    labelled = np.zeros(n, bool) if y is None else np.isfinite(y).all(1)
    width = max(3, len(str(int(clusters.max()) + 1))) if n else 3
    table = pd.DataFrame({"File_ID": ids, "subject": [f"E{c + 1:0{width}d}" for c in clusters],
                          "confidence": np.round(conf, 4)})
    diag: dict[str, Any] = {
        "modalities": list(embeddings), "threshold": round(float(t), 6),
        "threshold_rule": "auto: max mean silhouette over cuts between merge heights" if threshold == "auto"
        else "given", "n_clips": n,
        "coverage": {name: round(float(np.isfinite(x).all(1).mean()), 4) for name, x in embeddings.items()},
        "dropped": dropped,
        "clips_without_any_modality": int((have == 0).sum()),
        "mean_confidence": round(float(conf.mean()), 4) if n else 0.0,
        **_cluster_report(d, clusters, y, labelled, seed),
        "silhouette_curve": [[round(a, 5), k, round(s, 5)] for a, k, s in curve],
    }
    if per_modality and len(embeddings) > 1:
        diag["per_modality"] = {}
        for name, dm in dists.items():
            sel = np.isfinite(np.diagonal(dm))
            if sel.sum() < 3:
                diag["per_modality"][name] = {"coverage": round(float(sel.mean()), 4)}
                continue
            sub = dm[np.ix_(sel, sel)]
            tm, _ = auto_threshold(sub)
            lab = cut(linkage(sub), tm)
            diag["per_modality"][name] = {"coverage": round(float(sel.mean()), 4), "threshold": round(tm, 6),
                                          **_cluster_report(sub, lab, None if y is None else y[sel],
                                                            labelled[sel], seed)}
    return Estimate(table, float(t), diag)


def warnings_of(diag: dict[str, Any]) -> list[str]:
    """Human-readable warnings from the diagnostics (clusters that follow the labels, low coverage)."""
    out = []
    la = diag.get("label_association")
    if la and la["follows_labels"]:
        out.append(f"estimated subjects look like emotions rather than people: AMI with the dominant emotion "
                   f"{la['ami_dominant_emotion']} (permutations: {la['ami_permutation_mean']}, p={la['ami_p_value']});"
                   " prefer given subjects, or check which modality follows the labels in per_modality")
    for name, pm in diag.get("per_modality", {}).items():
        la = pm.get("label_association")
        if la and la["follows_labels"]:
            out.append(f"modality {name!r} alone clusters by emotion (AMI {la['ami_dominant_emotion']})")
    for name, why in diag.get("dropped", {}).items():
        out.append(f"modality {name!r} dropped: {why}")
    for name, cov in diag.get("coverage", {}).items():
        if cov < 0.5:
            out.append(f"modality {name!r} is available for only {cov:.0%} of the clips")
    return out


# ---------------------------------------------------------------- features of a dataset

def load_embeddings(dataset, modalities: Sequence[str], root: Path, jobs: int = 1, progress: bool = True
                    ) -> dict[str, np.ndarray]:
    """Extract (resumably) and load one (n, D) matrix per modality over dataset.ids; NaN rows where a
    clip failed extraction (its reason is in the store's failures.csv)."""
    from competition.features.store import FeatureStore, extract_one
    out = {}
    for name in modalities:
        report = extract_one(dataset, name, root, jobs=jobs, progress=progress)
        store = FeatureStore.for_spec(root, name)
        rows = [store.load(c) for c in dataset.ids]
        dim = next((len(r.x) for r in rows if r is not None), 0)
        if dim == 0:
            warnings.warn(f"modality {name!r}: no clip could be embedded (see {store.dir / 'failures.csv'})")
            continue
        out[name] = np.stack([r.x if r is not None else np.full(dim, np.nan, np.float32) for r in rows])
        print(f"{name}: {len(rows) - report.failed} of {len(rows)} clips embedded -> {store.dir}")
    return out


def _given_sources(path: Path) -> list[str]:
    """Sources of an existing subjects file that are not estimates (which a new estimate may replace)."""
    if not path.exists():
        return []
    sources = pd.read_csv(path, dtype=str, keep_default_na=False).get("source", pd.Series(dtype=str))
    return sorted({s for s in sources if not s.startswith("estimated:")})


@command
def main(argv: list[str] | None = None) -> int:
    from competition.data.subjects import write_subjects
    from competition.core.io import write_json
    from competition.data.task import add_dataset_arguments, open_dataset

    ap = argparse.ArgumentParser(prog="python -m competition.features.subjects", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modalities", default=",".join(MODALITIES),
                    help=f"comma-separated identity extractors (default {','.join(MODALITIES)})")
    ap.add_argument("--threshold", default="auto", help="'auto' or a fused distance (about 1 = unrelated clips)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--force", action="store_true", help="replace a subjects file of given (not estimated) subjects")
    add_dataset_arguments(ap)
    add_log_arguments(ap)
    a = ap.parse_args(argv)
    setup_logging(a)
    modalities = [m.strip() for m in a.modalities.split(",") if m.strip()]
    if a.threshold != "auto":
        try:
            a.threshold = float(a.threshold)
        except ValueError:
            ap.error(f"--threshold must be 'auto' or a number, got {a.threshold!r}")
    _, wd, dataset = open_dataset(a, check_media=False)
    dataset = dataset.units
    given = _given_sources(wd.subjects)
    if given and not a.force:
        ap.error(f"{wd.subjects} holds given subjects ({', '.join(given)}); estimating would replace them. "
                 "Use --force, or another --workdir")
    emb = load_embeddings(dataset, modalities, wd.features, a.jobs, not a.no_progress)
    if not emb:
        print("no modality could be embedded for any clip: no subjects estimated", file=sys.stderr)
        return 1
    labels = None
    if hasattr(dataset, "emotions") and dataset.labelled_ids:
        labels = np.full((len(dataset.ids), len(dataset.emotions)), np.nan)
        pos = {c: i for i, c in enumerate(dataset.ids)}
        labels[[pos[c] for c in dataset.labelled_ids]] = dataset.labels(dataset.labelled_ids)
    est = estimate_subjects(dataset.ids, emb, a.threshold, labels)
    source = "estimated:" + "+".join(est.diagnostics["modalities"])
    write_subjects(wd.subjects, est.table, source, dataset)
    write_json(wd.subjects.with_name(DIAGNOSTICS), est.diagnostics)
    d = est.diagnostics
    print(f"wrote {wd.subjects}: {d['n_clusters']} estimated subjects over {d['n_clips']} clips "
          f"(threshold {d['threshold']:.4f}, mean confidence {d['mean_confidence']}) from {'+'.join(d['modalities'])}; "
          f"diagnostics {wd.subjects.with_name(DIAGNOSTICS)}")
    la = d.get("label_association")
    if la:
        print(f"label association: AMI with the dominant emotion {la['ami_dominant_emotion']} "
              f"(permutations {la['ami_permutation_mean']}, p={la['ami_p_value']}); eta^2 {la['eta2_labels']} "
              f"(permutations {la['eta2_permutation_mean']})")
    for w in warnings_of(d):
        print(f"WARNING: {w}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
