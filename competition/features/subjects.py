"""Estimate who is who when a dataset has no subject ids: cluster clips by what identifies a person and
not their emotion, and write the work directory's subjects file (competition.data.subjects).

    python -m competition.features.subjects --data DIR [--workdir W] [--modalities face_identity,scene[,speaker]]
                                            [--threshold auto|X] [--jobs N] [--task eri|va|expr] [--force]

1. Identity features (extractors in competition.features): `face_identity` (dlib's face-recognition
   descriptor), `speaker` (GE2E speaker-verification embedding), `scene` (background, person masked).
   Never emotion features: their clusters follow the emotion (bench/subjects_estimation.py).
2. Per modality, distances over the median distance between clips (unrelated clips near 1): Euclidean
   on the descriptor for the face (SAME_PERSON), cosine of standardised rows for the others.
3. Each modality alone (with more than one): clustered as in 4; dropped, with the reason, when its groups
   cannot group folds (`degenerate`), follow the labels, or it sees one person (SAME_PERSON).
4. The face decides every pair of clips that both have one (PRIMARY); other pairs take the mean of the
   modalities both have (a clip without a face or sound is placed by the others; none in common: the
   largest distance). Average-linkage clustering cut, with no number of subjects, at the cut between
   consecutive merge heights with the highest mean silhouette among those where no group holds most
   clips and most clips are not alone. Deterministic; labels are read only for the diagnostics.
5. Confidence per clip: its silhouette clipped to [0, 1] (0 alone in its group), times 1 with a face,
   else the share of modalities it has.
Diagnostics (`subjects_estimate.json`): `usable` and `reason` (an unusable estimate must not group
folds: `degenerate`, every modality dropped-worthy, or groups that follow the labels), threshold, groups,
coverage, each modality alone, and the label association (AMI with the dominant emotion and eta^2 on
Train/Val against 200 permutations of the groups). Whether estimated subjects help is decided by nested
CV downstream. Results per corpus and rule: docs/RESULTS_REAL.md "Estimated subjects".

Memory is O(n^2): a float32 distance matrix per modality plus the float64 fused one and scipy's condensed
copy (10k clips: 0.4 GB per modality, 0.8 GB fused, 0.4 GB condensed).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from competition.core.log import add_log_arguments, command, setup_logging

# `speaker` is not a default: on every corpus with known people here its groups followed the emotion or
# found nobody (EmoDB, the embedded set; acted speech in issue 23). --modalities adds it.
MODALITIES: tuple[str, ...] = ("face_identity", "scene")
# Euclidean distance as trained, and the network's own same-person distance (dlib's documented face
# verification threshold): a modality whose median pair is closer sees one person.
SAME_PERSON: dict[str, float] = {"face_identity": 0.6}
PRIMARY = "face_identity"  # decides the pairs that have it: voices and rooms follow emotions and light
# `degenerate`: fewer groups than folds, one group with most clips, or most clips alone (= no grouping)
MIN_GROUPS = 5
MAX_GROUP_SHARE = 0.5
MAX_SINGLETON_SHARE = 0.5
N_PERMUTATIONS = 200
# Groups "follow the labels" when their AMI with the dominant emotion beats every permutation's and this
# level. True people: up to 0.054 (lfw_expressions, news photos: people keep their expression); groups
# made by emotion: 0.24-0.36 (EmoDB's voices, MFCC statistics). docs/RESULTS_REAL.md "Estimated subjects".
AMI_WARNING = 0.15
DIAGNOSTICS = "subjects_estimate.json"


# ---------------------------------------------------------------- distances

def modality_distances(x: np.ndarray, euclidean: bool = False) -> tuple[np.ndarray, float]:
    """(n, D) embeddings with NaN rows where the clip has none -> ((n, n) distances over the median
    distance between distinct clips (so unrelated clips are near 1), NaN where either clip is missing;
    that median). Cosine distances of the rows standardised per dimension, or with `euclidean` Euclidean
    distances of the rows as they are."""
    x = np.asarray(x, np.float64)
    have = np.isfinite(x).all(1)
    out = np.full((len(x), len(x)), np.nan, np.float32)
    med = float("nan")
    if have.sum() == 0:
        return out, med
    z = x[have]
    if euclidean:
        sq = (z ** 2).sum(1)
        d = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * z @ z.T, 0.0))
    else:
        sd = z.std(0)
        z = (z - z.mean(0)) / np.where(sd > 1e-8, sd, 1.0)
        z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        d = np.clip(1.0 - z @ z.T, 0.0, 2.0)
    np.fill_diagonal(d, 0.0)
    if len(d) > 1:
        med = float(np.median(d[np.triu_indices(len(d), 1)]))
        d /= med if med > 1e-12 else 1.0
    out[np.ix_(have, have)] = d
    return out, med


def fuse(dists: Sequence[np.ndarray], primary: np.ndarray | None = None) -> np.ndarray:
    """Mean over modalities of the pairwise distances both clips have; pairs where `primary` is known
    take its distance instead. Pairs with no modality in common get the largest fused distance.
    Accumulated one modality at a time (no stacked copy: memory is the n x n matrices themselves)."""
    n = len(primary) if primary is not None else len(dists[0])
    total = np.zeros((n, n), np.float64)
    count = np.zeros((n, n), np.int8)
    for d in dists:
        known = np.isfinite(d)
        total += np.where(known, d, 0.0)
        count += known
    fused = total / np.maximum(count, 1)
    finite = count > 0
    if primary is not None:
        known = np.isfinite(primary)
        fused[known] = primary[known]
        finite |= known
    fill = float(fused[finite].max()) if finite.any() else 1.0
    fused[~finite] = max(fill, 1.0)
    np.fill_diagonal(fused, 0.0)
    return fused


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


def degenerate(labels: np.ndarray, min_groups: int = MIN_GROUPS) -> str:
    """Why a clustering cannot group folds ('' when it can): too few groups, one group holding most
    clips, or most clips alone."""
    sizes = np.bincount(labels)
    n = len(labels)
    if len(sizes) < min_groups:
        return f"{len(sizes)} group(s), fewer than {min_groups}"
    if sizes.max() > MAX_GROUP_SHARE * n:
        return f"one group holds {sizes.max() / n:.0%} of the clips"
    if (sizes == 1).sum() > MAX_SINGLETON_SHARE * n:
        return f"{(sizes == 1).sum() / n:.0%} of the clips are alone in their group"
    return ""


def auto_threshold(d: np.ndarray, z: np.ndarray | None = None, max_candidates: int = 200) -> tuple[float, list]:
    """(threshold, [(threshold, n_clusters, silhouette), ...]): of the cuts between consecutive merge
    heights, the one with the highest mean silhouette (ties: the lowest cut). The number of groups is not
    constrained, and a cut is not made finer for the folds' sake: when the best cut is degenerate (one
    group holding most clips, say), the data has no better grouping and the estimate is unusable (on every
    corpus measured, docs/RESULTS_REAL.md, the best cut was not degenerate; searching for the best
    non-degenerate one instead turned one person's noise into groups). At most `max_candidates` cuts,
    evenly spaced over the merge order."""
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


def cluster(d: np.ndarray, threshold: str | float = "auto") -> tuple[np.ndarray, float, list]:
    """(labels, threshold, silhouette curve) of the average-linkage dendrogram of `d`."""
    if len(d) < 2:
        return np.zeros(len(d), int), 0.0, []
    z = linkage(d)
    t, curve = auto_threshold(d, z) if threshold == "auto" else (float(threshold), [])
    return cut(z, t), t, curve


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


def _cluster_report(labels: np.ndarray, y: np.ndarray | None, labelled: np.ndarray, seed: int,
                    min_groups: int) -> dict[str, Any]:
    """Group sizes, label association, and why the groups cannot group folds ('' when they can):
    `degenerate`, or they follow the labels."""
    sizes = np.bincount(labels)
    out: dict[str, Any] = {"n_clusters": int(len(sizes)), "singletons": int((sizes == 1).sum()),
                           "largest": int(sizes.max()) if len(sizes) else 0}
    out["degenerate"] = degenerate(labels, min_groups) if len(labels) else "no clips"
    if y is not None and labelled.sum() >= 3:
        la = out["label_association"] = label_association(labels[labelled], y[labelled], seed=seed)
        if la["follows_labels"] and not out["degenerate"]:
            out["degenerate"] = (f"the groups follow the emotion labels (AMI {la['ami_dominant_emotion']} with the "
                                 f"dominant emotion, permutations {la['ami_permutation_mean']}): they are not people")
    return out


def _constant(x: np.ndarray) -> bool:
    """True when the clips that have this modality all have the same embedding (nothing to cluster)."""
    rows = np.asarray(x, np.float64)[np.isfinite(x).all(1)]
    return len(rows) > 1 and bool(np.all(rows.max(0) - rows.min(0) <= 1e-6 * (1 + np.abs(rows).max())))


def _alone(dm: np.ndarray, min_groups: int, y: np.ndarray | None, labelled: np.ndarray, seed: int
           ) -> dict[str, Any]:
    """One modality clustered alone over the clips that have it (_cluster_report)."""
    sel = np.isfinite(np.diagonal(dm))
    if sel.sum() < 3:
        return {"coverage": round(float(sel.mean()), 4), "degenerate": "fewer than 3 clips have it"}
    lab, t, _ = cluster(dm[np.ix_(sel, sel)], "auto")
    return {"coverage": round(float(sel.mean()), 4), "threshold": round(t, 6),
            **_cluster_report(lab, None if y is None else y[sel], labelled[sel], seed, min_groups)}


def estimate_subjects(ids: Sequence[str], embeddings: dict[str, np.ndarray], threshold: str | float = "auto",
                      labels: np.ndarray | None = None, seed: int = 0, min_groups: int = MIN_GROUPS
                      ) -> Estimate:
    """Cluster clips `ids` by their identity embeddings ({modality: (n, D) with NaN rows for clips that
    have none}). `labels` (n, E), NaN rows for unlabelled clips, are used only for the diagnostics.

    With several modalities each is first clustered alone; one whose groups are `degenerate` or follow
    the labels, or that sees one person (SAME_PERSON), is dropped while another is not. PRIMARY, when
    kept, decides every pair of clips that both have it. `diagnostics["usable"]` is False, with the
    `reason`, when the final groups are degenerate or follow the labels (label_association), or every
    modality is dropped-worthy: such an estimate must not group folds."""
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
    y = None if labels is None else np.asarray(labels, np.float64)
    labelled = np.zeros(n, bool) if y is None else np.isfinite(y).all(1)
    dists, why_alone = {}, dict.fromkeys(embeddings, "")
    for name, x in embeddings.items():
        dists[name], median = modality_distances(x, name in SAME_PERSON)
        if median < SAME_PERSON.get(name, 0.0):
            why_alone[name] = (f"most clip pairs are one person by its own rule (median distance {median:.3f}"
                               f" < {SAME_PERSON[name]})")
    alone: dict[str, dict[str, Any]] = {}
    if len(dists) > 1:  # each clustered alone: one that cannot group folds is dropped while another can
        for name, dm in dists.items():
            alone[name] = _alone(dm, min_groups, y, labelled, seed)
            why_alone[name] = alone[name]["degenerate"] = why_alone[name] or alone[name]["degenerate"]
    bad = [name for name, why in why_alone.items() if why]
    all_bad = len(bad) == len(dists)
    if not all_bad:
        for name in bad:
            dropped[name] = f"alone it cannot group folds: {why_alone[name]}"
            del dists[name]
    primary = dists.get(PRIMARY)
    others = [dm for name, dm in dists.items() if name != PRIMARY]
    d = fuse(others, primary)
    has = np.stack([np.isfinite(np.diagonal(dm)) for dm in dists.values()])
    # a clip no modality describes is its own subject, outside the clustering: at the largest distance
    # from every clip, a few such clips would make the best-silhouette cut "them vs everyone" (lfw: 4 of 3,052)
    seen = has.any(0)
    clusters = np.zeros(n, int)
    clusters[seen], t, curve = cluster(d[np.ix_(seen, seen)], threshold)
    clusters[~seen] = (clusters[seen].max() + 1 if seen.any() else 0) + np.arange((~seen).sum())
    coverage = has.mean(0) if primary is None else np.where(np.isfinite(np.diagonal(primary)), 1.0, has.mean(0))
    conf = confidence(d, clusters, coverage)
    report = _cluster_report(clusters, y, labelled, seed, min_groups)
    why = report.pop("degenerate")
    if all_bad:  # the modalities' own reasons come first: they say why the groups are what they are
        why = "; ".join([f"{name}: {why_alone[name]}" for name in bad] + ([why] if why else []))
    width = max(3, len(str(int(clusters.max()) + 1))) if n else 3
    table = pd.DataFrame({"File_ID": ids, "subject": [f"E{c + 1:0{width}d}" for c in clusters],
                          "confidence": np.round(conf, 4)})
    diag: dict[str, Any] = {
        "usable": not why, "reason": why,
        "modalities": list(dists), "primary": PRIMARY if primary is not None else None,
        "threshold": round(float(t), 6),
        "threshold_rule": "auto: the cut with the highest mean silhouette" if threshold == "auto"
        else "given", "n_clips": n,
        "coverage": {name: round(float(np.isfinite(x).all(1).mean()), 4) for name, x in embeddings.items()},
        "dropped": dropped,
        "clips_without_any_modality": int((~has.any(0)).sum()),
        "mean_confidence": round(float(conf.mean()), 4) if n else 0.0,
        **report,
        "silhouette_curve": [[round(a, 5), k, round(s, 5)] for a, k, s in curve],
    }
    if alone:
        diag["per_modality"] = alone
    return Estimate(table, float(t), diag)


def warnings_of(diag: dict[str, Any]) -> list[str]:
    """Human-readable warnings from the diagnostics: why the estimate is unusable, dropped modalities, low
    coverage."""
    out = [] if diag.get("usable", True) else [f"the estimate cannot group folds: {diag['reason']}"]
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
        if progress:
            print(f"{name}: {len(rows) - report.failed} of {len(rows)} clips embedded -> {store.dir}")
    return out


def unusable_reason(diag: dict[str, Any]) -> str | None:
    """Why an estimate must not be used (its diagnostics' `usable` / `reason`; for diagnostics without
    them, clusters that follow the labels), or None."""
    if "usable" in diag:
        return None if diag["usable"] else str(diag.get("reason") or "the estimator says it is unusable")
    la = diag.get("label_association")
    if la and la["follows_labels"]:
        return f"the clusters follow the emotion labels (AMI {la['ami_dominant_emotion']}), not people"
    return None


def estimate_into(dataset, wd, modalities: Sequence[str] | None = None, threshold: str | float = "auto",
                  jobs: int = 1, progress: bool = True) -> tuple[Estimate, str | None, float]:
    """Estimate the subjects of every clip of `dataset` (Test too; labels only for the diagnostics) from
    identity features cached in `wd.features`, write `wd.subjects` when the estimate is usable and the
    diagnostics beside it always; `modalities` default: MODALITIES. Returns (estimate, why it is unusable or
    None, seconds)."""
    from competition.core.io import write_json
    from competition.data.subjects import write_subjects
    t0 = time.perf_counter()
    modalities = list(modalities or MODALITIES)
    emb = load_embeddings(dataset, modalities, wd.features, jobs, progress)
    if not emb:
        raise ValueError(f"no modality of {list(modalities)} could be embedded for any clip of {dataset.root}")
    labels = None
    if hasattr(dataset, "emotions") and dataset.labelled_ids:
        labels = np.full((len(dataset.ids), len(dataset.emotions)), np.nan)
        pos = {c: i for i, c in enumerate(dataset.ids)}
        labels[[pos[c] for c in dataset.labelled_ids]] = dataset.labels(dataset.labelled_ids)
    est = estimate_subjects(dataset.ids, emb, threshold, labels)
    why = unusable_reason(est.diagnostics)
    wd.subjects.parent.mkdir(parents=True, exist_ok=True)
    if why is None:
        write_subjects(wd.subjects, est.table, "estimated:" + "+".join(est.diagnostics["modalities"]), dataset)
    write_json(wd.subjects.with_name(DIAGNOSTICS), {**est.diagnostics, "written": why is None,
                                                    "unusable_reason": why})
    return est, why, time.perf_counter() - t0


@command
def main(argv: list[str] | None = None) -> int:
    from competition.data.subjects import given_sources
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
    given = given_sources(wd.subjects)
    if given and not a.force:
        ap.error(f"{wd.subjects} holds given subjects ({', '.join(given)}); estimating would replace them. "
                 "Use --force, or another --workdir")
    try:
        est, why, _ = estimate_into(dataset, wd, modalities, a.threshold, a.jobs, not a.no_progress)
    except ValueError as exc:
        print(f"{exc}: no subjects estimated", file=sys.stderr)
        return 1
    d = est.diagnostics
    print(f"{'wrote ' + str(wd.subjects) if why is None else 'NOT written (' + why + ')'}: {d['n_clusters']} "
          f"estimated subjects over {d['n_clips']} clips (threshold {d['threshold']:.4f}, mean confidence "
          f"{d['mean_confidence']}) from {'+'.join(d['modalities'])}; diagnostics {wd.subjects.with_name(DIAGNOSTICS)}")
    la = d.get("label_association")
    if la:
        print(f"label association: AMI with the dominant emotion {la['ami_dominant_emotion']} "
              f"(permutations {la['ami_permutation_mean']}, p={la['ami_p_value']}); eta^2 {la['eta2_labels']} "
              f"(permutations {la['eta2_permutation_mean']})")
    for w in warnings_of(d):
        print(f"WARNING: {w}", file=sys.stderr)
    return 0 if why is None else 1


if __name__ == "__main__":
    sys.exit(main())
