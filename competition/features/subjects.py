"""Estimate who is who when a dataset has no subject ids: cluster clips by what identifies a person and
not their emotion, and write the work directory's subjects file (competition.data.subjects).

    python -m competition.features.subjects --data DIR [--workdir W] [--modalities face_identity,scene[,speaker]]
                                            [--threshold auto|X] [--jobs N] [--task eri|va|expr] [--force]

Identity features only (face descriptor, room, voice on request), never emotion features; each modality
dropped with its reason when alone it cannot group folds; the face decides the pairs that have one; complete
linkage cut where the mean silhouette is highest; above MAX_EXACT clips a sample chooses the cut and the
rest join it, BLOCK distances at a time. How it works, step by step: docs/SUBJECTS.md "How the estimate works".
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from competition.core.log import command, parse_and_log

# `speaker` is not a default: on every corpus with known people here its groups followed the emotion or
# found nobody (EmoDB, the embedded set; acted speech in issue 23). --modalities adds it.
MODALITIES: tuple[str, ...] = ("face_identity", "scene")
# Euclidean distance as trained, and the network's own same-person distance (dlib's documented face
# verification threshold): a modality whose median pair is closer sees one person.
SAME_PERSON: dict[str, float] = {"face_identity": 0.6}
# Such a modality is embedded on SAMPLE clips first, and no further when their median is below its rule by
# MARGIN: it could not group folds (docs/SUBJECTS.md, "How the estimate works", 3).
SAMPLE, MARGIN = 40, 0.1
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
# Above MAX_EXACT clips a sample of that many is clustered exactly and the rest joins it (cluster_blocks).
# All pairs at once: 9 s CPU and 0.3 GB at 2,000 clips, 43 s and 0.85 GB at 4,000, 165 s and 1.7 GB at
# 6,000 (grows as n^2 to n^3); the sampled path costs about its sample (docs/BENCHMARKS.md).
MAX_EXACT = 4000
BLOCK = 2 ** 24  # distances held at once by the blockwise steps (128 MB in float64)


# ---------------------------------------------------------------- distances

def _pairwise(a: np.ndarray, b: np.ndarray, euclidean: bool) -> np.ndarray:
    if euclidean:
        return np.sqrt(np.maximum((a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None] - 2 * a @ b.T, 0.0))
    return np.clip(1.0 - a @ b.T, 0.0, 2.0)


@dataclass
class Modality:
    """One modality's distances between any two sets of clips (`block`), over the median distance between
    distinct clips of a reference set (all of them, or the sample above MAX_EXACT)."""
    z: np.ndarray       # (n, D) rows as _pairwise takes them, NaN where the clip has none
    have: np.ndarray
    euclidean: bool
    median: float = float("nan")

    @classmethod
    def of(cls, x: np.ndarray, euclidean: bool = False, ref: np.ndarray | None = None) -> "Modality":
        x = np.asarray(x, np.float64)
        have = np.isfinite(x).all(1)
        z = np.full_like(x, np.nan)
        z[have] = r = x[have]
        if len(r) and not euclidean:  # cosine: rows standardised per dimension, then scaled to unit length
            sd = r.std(0)
            r = (r - r.mean(0)) / np.where(sd > 1e-8, sd, 1.0)
            z[have] = r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)
        m = cls(z, have, euclidean)
        ref = np.flatnonzero(have) if ref is None else ref[have[ref]]
        if len(ref) > 1:
            m.median = float(np.median(_pairwise(z[ref], z[ref], euclidean)[np.triu_indices(len(ref), 1)]))
        return m

    def block(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """(len(i), len(j)) float32 distances over the median (about 1 for unrelated clips), 0 between a
        clip and itself, NaN where either clip has none."""
        out = np.full((len(i), len(j)), np.nan, np.float32)
        hi, hj = self.have[i], self.have[j]
        if hi.any() and hj.any():
            a = self.z[i[hi]]  # i == j: one operand twice, numpy's symmetric product (bits as before blocks)
            d = _pairwise(a, a if np.array_equal(i, j) else self.z[j[hj]], self.euclidean)
            d[i[hi][:, None] == j[hj][None]] = 0.0
            out[np.ix_(hi, hj)] = d / (self.median if self.median > 1e-12 else 1.0)
        return out


@dataclass
class Fused:
    """Distances between any two sets of clips over all modalities (Modality.block)."""
    modalities: dict[str, Modality]
    fill: float | None = None  # pairs with no modality in common: the first block's largest distance, >= 1

    def __call__(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Mean over modalities of the distances both clips have; pairs that both have PRIMARY take its
        distance instead. Accumulated one modality at a time (no stacked copy)."""
        total = np.zeros((len(i), len(j)))
        count = np.zeros(total.shape, np.int8)
        for d in (m.block(i, j) for name, m in self.modalities.items() if name != PRIMARY):
            known = np.isfinite(d)
            total += np.where(known, d, 0.0)
            count += known
        fused, finite = total / np.maximum(count, 1), count > 0
        if PRIMARY in self.modalities:
            d = self.modalities[PRIMARY].block(i, j)
            known = np.isfinite(d)
            fused[known] = d[known]
            finite |= known
        if self.fill is None:
            self.fill = max(float(fused[finite].max()) if finite.any() else 1.0, 1.0)
        fused[~finite] = self.fill
        fused[i[:, None] == j[None]] = 0.0
        return fused


# ---------------------------------------------------------------- clustering

def linkage(d: np.ndarray) -> np.ndarray:
    from scipy.cluster.hierarchy import linkage as _linkage
    from scipy.spatial.distance import squareform
    return _linkage(squareform(d, checks=False), method="complete")


def _by_first_appearance(raw: np.ndarray) -> np.ndarray:
    _, first, inv = np.unique(raw, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inv]


def cut(z: np.ndarray, threshold: float) -> np.ndarray:
    """Cluster labels 0..k-1 (numbered by first appearance) of the dendrogram cut at `threshold`."""
    from scipy.cluster.hierarchy import fcluster
    return _by_first_appearance(fcluster(z, t=threshold, criterion="distance"))


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


def _rows(n: int, width: int):
    """Consecutive row ranges of 0..n-1 whose blocks of `width` columns hold about BLOCK distances."""
    step = max(1, BLOCK // max(width, 1))
    return (np.arange(a, min(a + step, n)) for a in range(0, n, step))


def _members(labels: np.ndarray):
    """(k, n) sparse indicator of each clip's group: `members @ d` sums the columns of d per group."""
    from scipy.sparse import csr_matrix
    return csr_matrix((np.ones(len(labels)), (labels, np.arange(len(labels)))))


def silhouettes(cols_of, labels: np.ndarray) -> np.ndarray:
    """Per clip silhouette as sklearn's silhouette_samples (0 alone in a group), from `cols_of(rows)`: the
    (n, len(rows)) distances of every clip to those, BLOCK distances at a time."""
    n, members = len(labels), _members(labels)
    sizes = np.bincount(labels).astype(np.float64)
    out = np.zeros(n)
    for rows in _rows(n, n):
        sums = members @ cols_of(rows)  # (k, len(rows)): each group's summed distance to these clips
        own = (labels[rows], np.arange(len(rows)))
        intra, sums[own] = sums[own], np.inf
        inter = (sums / sizes[:, None]).min(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            intra /= sizes[labels[rows]] - 1
            out[rows] = np.nan_to_num((inter - intra) / np.maximum(intra, inter))
    return out


def auto_threshold(d: np.ndarray, z: np.ndarray | None = None, max_candidates: int = 200) -> tuple[float, list]:
    """(threshold, [(threshold, n_clusters, silhouette), ...]): of the cuts between consecutive merge heights
    (at most `max_candidates`, evenly spaced), the one with the highest mean silhouette (ties: the lowest cut),
    degenerate or not (why: docs/SUBJECTS.md, "How the estimate works")."""
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
            curve.append((float(mids[i]), k, float(silhouettes(lambda r: d[:, r[0]:r[-1] + 1], labels).mean())))
    if not curve:
        return float(h[-1]) + 1e-9, []
    best = max(range(len(curve)), key=lambda j: (round(curve[j][2], 12), -curve[j][0]))
    return curve[best][0], curve


def cluster(d: np.ndarray, threshold: str | float = "auto") -> tuple[np.ndarray, float, list]:
    """(labels, threshold, silhouette curve) of the complete-linkage dendrogram of `d`."""
    if len(d) < 2:
        return np.zeros(len(d), int), 0.0, []
    z = linkage(d)
    t, curve = auto_threshold(d, z) if threshold == "auto" else (float(threshold), [])
    return cut(z, t), t, curve


def sample(n: int, seed: int = 0, k: int | None = None) -> np.ndarray:
    """A fixed random k of n clips (default: the MAX_EXACT clustered exactly when there are more)."""
    return np.sort(np.random.default_rng(seed).choice(n, k or MAX_EXACT, replace=False))


def cluster_blocks(dist, n: int, threshold: str | float = "auto", seed: int = 0
                   ) -> tuple[np.ndarray, float, list, dict]:
    """cluster() of the n clips whose distances `dist(i, j)` gives a block at a time. Up to MAX_EXACT
    clips, exactly. Above: a sample (`sample`) exactly, which chooses the cut t; every other clip joins
    the sampled group whose farthest member is nearest when that is within t (the merge complete linkage
    would make), and the clips that join none are clustered among themselves at t in the same way.
    Returns (labels, t, the sample's silhouette curve, how many clips were sampled / joined / left)."""
    every = np.arange(n)
    if n <= MAX_EXACT:
        return (*cluster(dist(every, every), threshold), {})
    chosen = sample(n, seed)
    labels = np.full(n, -1)
    labels[chosen], t, curve = cluster(dist(chosen, chosen), threshold)
    order, sizes = np.argsort(labels[chosen], kind="stable"), np.bincount(labels[chosen])
    rest = np.setdiff1d(every, chosen)
    for r in _rows(len(rest), len(chosen)):
        far = np.maximum.reduceat(dist(chosen[order], rest[r]), np.cumsum(sizes) - sizes, axis=0)
        best = far.argmin(0)
        labels[rest[r]] = np.where(far[best, np.arange(len(r))] <= t, best, -1)
    left = np.flatnonzero(labels < 0)
    if len(left):
        labels[left] = cluster_blocks(lambda i, j: dist(left[i], left[j]), len(left), t, seed)[0] + sizes.size
    return _by_first_appearance(labels), t, curve, {"sampled": len(chosen), "joined": n - len(chosen) - len(left),
                                                    "clustered_apart": len(left)}


def confidence(cols_of, labels: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """Per clip: silhouette clipped to [0, 1] (0 alone in a cluster) times `coverage` in [0, 1];
    `cols_of` as for silhouettes."""
    k = int(labels.max()) + 1 if len(labels) else 0
    if not 2 <= k <= len(labels) - 1:
        s = np.zeros(len(labels)) if k != 1 else np.ones(len(labels))
    else:
        s = silhouettes(cols_of, labels)
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


def _alone(m: Modality, min_groups: int, y: np.ndarray | None, labelled: np.ndarray, seed: int
           ) -> dict[str, Any]:
    """One modality clustered alone over the clips that have it (_cluster_report)."""
    sel, coverage = np.flatnonzero(m.have), round(float(m.have.mean()), 4)
    if len(sel) < 3:
        return {"coverage": coverage, "degenerate": "fewer than 3 clips have it"}
    lab, t, _, _ = cluster_blocks(lambda i, j: m.block(sel[i], sel[j]), len(sel), "auto", seed)
    return {"coverage": coverage, "threshold": round(t, 6),
            **_cluster_report(lab, None if y is None else y[sel], labelled[sel], seed, min_groups)}


def estimate_subjects(ids: Sequence[str], embeddings: dict[str, np.ndarray], threshold: str | float = "auto",
                      labels: np.ndarray | None = None, seed: int = 0, min_groups: int = MIN_GROUPS
                      ) -> Estimate:
    """Cluster clips `ids` by their identity embeddings ({modality: (n, D) with NaN rows for clips that
    have none}). `labels` (n, E), NaN rows for unlabelled clips, are used only for the diagnostics.

    Steps: docs/SUBJECTS.md, "How the estimate works". `diagnostics["usable"]` is False, with the `reason`,
    when the groups are degenerate or follow the labels, or every modality is dropped-worthy: such an
    estimate must not group folds."""
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
    ref = None if n <= MAX_EXACT else sample(n, seed)  # the median distance over the sampled clips' pairs
    dists = {name: Modality.of(x, name in SAME_PERSON, ref) for name, x in embeddings.items()}
    why_alone = {name: "" if not m.median < SAME_PERSON.get(name, 0.0) else
                 f"most clip pairs are one person by its own rule (median distance {m.median:.3f} < "
                 f"{SAME_PERSON[name]})" for name, m in dists.items()}
    alone: dict[str, dict[str, Any]] = {}
    if len(dists) > 1:  # each clustered alone: one that cannot group folds is dropped while another can
        for name, m in dists.items():
            alone[name] = _alone(m, min_groups, y, labelled, seed)
            why_alone[name] = alone[name]["degenerate"] = why_alone[name] or alone[name]["degenerate"]
    bad = [name for name, why in why_alone.items() if why]
    all_bad = len(bad) == len(dists)
    if not all_bad:
        for name in bad:
            dropped[name] = f"alone it cannot group folds: {why_alone[name]}"
            del dists[name]
    primary, fused, every = dists.get(PRIMARY), Fused(dists), np.arange(n)
    has = np.stack([m.have for m in dists.values()])
    # a clip no modality describes is its own subject, outside the clustering: at the largest distance
    # from every clip, a few such clips would make the best-silhouette cut "them vs everyone" (lfw: 4 of 3,052)
    seen, clusters = np.flatnonzero(has.any(0)), np.zeros(n, int)
    if n <= MAX_EXACT:  # the whole matrix, once
        d = fused(every, every)
        (clusters[seen], t, curve), sampled = cluster(d[np.ix_(seen, seen)], threshold), {}
        cols_of = lambda r: d[:, r[0]:r[-1] + 1]  # noqa: E731
    else:
        clusters[seen], t, curve, sampled = cluster_blocks(lambda i, j: fused(seen[i], seen[j]), len(seen),
                                                           threshold, seed)
        cols_of = lambda r: fused(every, r)  # noqa: E731
    unseen = np.setdiff1d(every, seen)
    clusters[unseen] = (clusters[seen].max() + 1 if len(seen) else 0) + np.arange(len(unseen))
    coverage = has.mean(0) if primary is None else np.where(primary.have, 1.0, has.mean(0))
    conf = confidence(cols_of, clusters, coverage)
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
        **report, **sampled,
        "silhouette_curve": [[round(a, 5), k, round(s, 5)] for a, k, s in curve],
    }
    if alone:
        diag["per_modality"] = alone
    return Estimate(table, diag)


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
                    ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Extract (resumably) and load one (n, D) matrix per modality over dataset.ids, NaN rows where a clip
    failed extraction (its reason is in the store's failures.csv); and the modalities dropped on a sample
    (SAMPLE, MARGIN), with the reason."""
    from competition.features.registry import FeatureError
    from competition.features.store import FeatureStore, extract_one, pooled_matrix
    out, dropped, ids = {}, {}, list(dataset.ids)
    for name in modalities:
        store = FeatureStore.for_spec(root, name)
        if name in SAME_PERSON and len(ids) > SAMPLE:
            first, median = [ids[i] for i in sample(len(ids), k=SAMPLE)], np.nan
            extract_one(dataset, name, root, first, jobs=jobs, progress=progress)
            with suppress(FeatureError):  # no clip of the sample has one: all are embedded
                median = Modality.of(pooled_matrix(name, root, first), name in SAME_PERSON).median
            if median < SAME_PERSON[name] - MARGIN:
                dropped[name] = (f"most clip pairs of a sample of {SAMPLE} clips are one person by its own rule "
                                 f"(median distance {median:.3f} < {SAME_PERSON[name]}): not embedded further")
                continue
        report = extract_one(dataset, name, root, ids, jobs=jobs, progress=progress)
        try:
            out[name] = pooled_matrix(name, root, ids)
        except FeatureError:
            warnings.warn(f"modality {name!r}: no clip could be embedded (see {store.dir / 'failures.csv'})")
            continue
        if progress:
            print(f"{name}: {len(ids) - report.failed} of {len(ids)} clips embedded -> {store.dir}")
    return out, dropped


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
    emb, dropped = load_embeddings(dataset, modalities, wd.features, jobs, progress)
    if not emb:
        raise ValueError(f"no modality of {list(modalities)} could be embedded for any clip of {dataset.root}"
                         + "".join(f"; {name}: {why}" for name, why in dropped.items()))
    labels = None
    if hasattr(dataset, "emotions") and dataset.labelled_ids:
        labels = np.full((len(dataset.ids), len(dataset.emotions)), np.nan)
        pos = {c: i for i, c in enumerate(dataset.ids)}
        labels[[pos[c] for c in dataset.labelled_ids]] = dataset.labels(dataset.labelled_ids)
    est = estimate_subjects(dataset.ids, emb, threshold, labels)
    est.diagnostics["dropped"].update(dropped)
    why = None if est.diagnostics["usable"] else est.diagnostics["reason"]
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
    ap.add_argument("--threshold", default="auto", type=lambda v: v if v == "auto" else float(v),
                    help="'auto' or a fused distance (about 1 = unrelated clips)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--force", action="store_true", help="replace a subjects file of given (not estimated) subjects")
    add_dataset_arguments(ap)
    a = parse_and_log(ap, argv)
    modalities = [m.strip() for m in a.modalities.split(",") if m.strip()]
    _, wd, dataset = open_dataset(a, check_media=False)
    given = given_sources(wd.subjects)
    if given and not a.force:
        ap.error(f"{wd.subjects} holds given subjects ({', '.join(given)}); estimating would replace them. "
                 "Use --force, or another --workdir")
    try:
        est, why, _ = estimate_into(dataset.units, wd, modalities, a.threshold, a.jobs, not a.no_progress)
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
