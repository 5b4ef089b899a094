"""Does face geometry add to face appearance on real labelled faces? Ridge on pooled features, 5 folds
grouped by the true person, mean Pearson r over the emotion columns (the toolkit's metric), per corpus.

    python bench/face_geometry.py --corpus NAME=DIR [NAME=DIR ...] [--workdir /tmp/face_geometry] [--jobs 1]

Corpora are Hume-layout datasets made by competition.data.importer with the true people and every clip's
labels (Test too) in DIR/import_truth.csv, e.g. the real face corpora under /work/corpora, or the embedded
synthetic set (its Train/Val clips, people from synth_truth.csv). Features come
from the normal extractors (pooled like the toolkit's pooled models: mean and std over real frames),
cached in WORKDIR/NAME; Ridge's alpha is chosen inside each training fold (RidgeCV, grouped by person).
Feature sets: HOG alone, HOG + `landmark_geometry` (dlib's 68 points), the geometry alone. At commit
867a1ee `landmark_geometry` still read the detector's 5 points and the 68-point version was
`face_landmarks`: docs/RESULTS_REAL.md compares the two with this script as it was there.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from competition.data.contract import load_dataset  # noqa: E402
from competition.features.store import extract_one, pooled_matrix  # noqa: E402

SETS = {"hog": ["hog"], "hog + landmark_geometry": ["hog", "landmark_geometry"],
        "landmark_geometry": ["landmark_geometry"]}


def grouped_ridge_pcc(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5) -> float:
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    oof = np.zeros_like(y)
    for tr, te in GroupKFold(folds).split(x, y, groups):
        inner = list(GroupKFold(4).split(x[tr], y[tr], groups[tr]))
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 5, 13), cv=inner))
        oof[te] = model.fit(x[tr], y[tr]).predict(x[te])
    r = [np.corrcoef(oof[:, j], y[:, j])[0, 1] for j in range(y.shape[1]) if y[:, j].std() > 0]
    return float(np.mean(r))


def bench(name: str, root: Path, workdir: Path, jobs: int) -> list[dict]:
    ds = load_dataset(root)
    synth = not (root / "import_truth.csv").exists()
    truth = pd.read_csv(root / ("synth_truth.csv" if synth else "import_truth.csv"), dtype=str,
                        keep_default_na=False).set_index("File_ID")
    ids = list(ds.labelled_ids if synth else ds.ids)
    rows = truth.loc[[f"[{i}]" for i in ids]]
    y = ds.labels(ids) if synth else rows[list(ds.emotions)].astype(float).to_numpy()
    groups = rows["Subject"].to_numpy()
    feats = {}
    for f in sorted({f for s in SETS.values() for f in s}):
        extract_one(ds, f, workdir / "features", ids=ids, jobs=jobs, progress=False)
        feats[f] = np.nan_to_num(pooled_matrix(f, workdir / "features", ids))
    out = []
    for label, names in SETS.items():
        x = np.concatenate([feats[f] for f in names], 1)
        out.append({"corpus": name, "clips": len(y), "people": len(set(groups)), "features": label,
                    "dims": x.shape[1], "mean PCC": round(grouped_ridge_pcc(x, y, groups), 4)})
        print(out[-1], flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", nargs="+", required=True, metavar="NAME=DIR")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/face_geometry"))
    ap.add_argument("--jobs", type=int, default=1)
    a = ap.parse_args(argv)
    rows = []
    for spec in a.corpus:
        name, root = spec.split("=", 1)
        rows += bench(name, Path(root), a.workdir / name, a.jobs)
    table = pd.DataFrame(rows).pivot_table(index="features", columns="corpus", values="mean PCC", sort=False)
    print("| features | " + " | ".join(table.columns) + " |\n|---|" + "---|" * len(table.columns))
    for label, r in table.iterrows():
        print(f"| {label} | " + " | ".join(f"{v:.3f}" for v in r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
