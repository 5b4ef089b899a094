"""Subject normalisation measured: real speech (EmoDB) and the embedded synthetic set.

    python bench/real_speech.py speech   [--workdir W] [--src ../shared/data/emodb/wav] [--sequence]
                                         [--estimated FILE]
    python bench/real_speech.py embedded [--workdir W] [--exp EXP ...]

speech: imports the corpus with `competition.data.importer --preset emodb` (2 Test and 2 Val speakers of 10
held out, speakers written to W/subjects.csv), writes speaker-grouped 5-fold folds from that file, and runs
every fold of the audio models (ridge and RBF SVR on eGeMAPS + MFCC statistics; with --sequence also the TE
sequence model on eGeMAPS LLDs) three ways: no normalisation, features standardised within the given
speaker (`subject_norm: true`), and within estimated speakers (a subjects file from --estimated, in a
second work directory W/estimated sharing W's features and folds; skipped with the reason when absent).
Then `make_submission.py --blend best` over each library, so nested CV decides what ships.
Prints OOF mean PCC (speaker-grouped CV over the 8 Train+Val speakers) and the held-out-speaker Test score
(fold-averaged Test predictions against the importer's import_truth.csv, which the pipeline never reads).

embedded: on the embedded set in W (made by scripts/prepare.sh; subjects from synth_truth.csv's Subject via
`competition.data.subjects --csv`), the default experiments without and with `subject_norm: true`, then
the default blend's nested score without subject-aware options (--no-subjects, plain experiments) and with
them (both variants in the library, per-subject post-processing a candidate).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from competition import folds as folds_cli  # noqa: E402
from competition.pipeline.config import default_experiments, load_config  # noqa: E402
from competition.data import importer, subjects as subjects_cli  # noqa: E402
from competition.data.contract import load_dataset, normalise_id  # noqa: E402
from competition import submission  # noqa: E402
from competition.pipeline.experiment import read_predictions  # noqa: E402
from competition.folds import n_folds_of, read_folds  # noqa: E402
from competition.core.io import read_json  # noqa: E402
from competition.core.metrics import mean_pcc  # noqa: E402
from competition.core.paths import Workdir  # noqa: E402
from competition.pipeline.run_fold import run_fold  # noqa: E402

EMODB = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "emodb" / "wav"
SPEECH_MODELS = {  # name -> (config, overrides)
    "ridge": ("ridge_audio", []),
    "svr": ("ridge_audio", ["model=svr", "params={C: 1.0, epsilon: 0.05}"]),
}
SEQUENCE_MODELS = {"te_lld": ("te", ["features=[egemaps_lld]", "params.modalities={frames: egemaps_lld}"])}
VARIANTS = {"none": [], "given": ["subject_norm=true"]}


def run_experiment(base: str, overrides: list[str], name: str, ds, wd: Workdir) -> dict:
    """Every fold of one config through the toolkit's run_fold; its metrics.json."""
    cfg = load_config(base, [*overrides, f"name={name}"])
    for k in range(n_folds_of(read_folds(wd.folds, ds))):
        run_fold(cfg, k, ds, wd, jobs=2, progress=False, no_wandb=True)
    return read_json(wd.experiment(name) / "metrics.json")


def held_out_score(wd: Workdir, name: str, ds, truth: pd.DataFrame) -> float:
    test = read_predictions(wd.experiment(name) / "test.csv", ds.targets)
    return mean_pcc(test.loc[ds.test_ids].to_numpy(), truth.loc[ds.test_ids, ds.targets].to_numpy(float))


def blend_best(wd: Workdir, ds, exps: list[str], name: str, no_subjects: bool = False) -> dict:
    argv = ["--blend", "best", "--data", str(ds.root), "--workdir", str(wd.root), "--name", name,
            "--no-wandb", "--exp", *exps] + (["--no-subjects"] if no_subjects else [])
    submission.make(argv)
    return read_json(wd.submissions / f"{name}.json")


def describe(card: dict) -> str:
    return (f"nested {card['nested_oof_mean_pcc']:.4f} (in-sample {card['in_sample_oof_mean_pcc']:.4f}), "
            f"{card['method']}, post {card['post']}, members {', '.join(card['members'])}")


def speech(a: argparse.Namespace) -> None:
    wd = Workdir.of(a.workdir)
    data = wd.root / "data" / "emodb"
    importer.main(["--preset", "emodb", "--src", str(a.src), "--out", str(data), "--workdir", str(wd.root)])
    ds = load_dataset(data)
    folds_cli.main(["--data", str(data), "--workdir", str(wd.root), "--groups", "subjects"])
    truth = pd.read_csv(data / importer.TRUTH_CSV, dtype={"File_ID": str})
    truth.index = truth["File_ID"].map(normalise_id)
    est = None
    if a.estimated:
        est = Workdir.of(wd.root / "estimated")
        est.root.mkdir(parents=True, exist_ok=True)
        for d in ("features", "folds"):
            if not (est.root / d).exists():
                os.symlink(wd.root / d, est.root / d)
        if Path(a.estimated).resolve() != est.subjects.resolve():
            shutil.copy(a.estimated, est.subjects)
            shutil.copy(Path(a.estimated).with_suffix(".json"), est.subjects.with_suffix(".json"))
    models = {**SPEECH_MODELS, **(SEQUENCE_MODELS if a.sequence else {})}
    rows, names = [], {"none": [], "given": [], "estimated": []}
    for model, (base, overrides) in models.items():
        for variant, extra in VARIANTS.items():
            name = f"emodb_{model}_{variant}"
            m = run_experiment(base, overrides + extra, name, ds, wd)
            rows.append((model, variant, m["oof_mean_pcc"], held_out_score(wd, name, ds, truth)))
            names[variant].append(name)
        if est is not None:
            name = f"emodb_{model}_estimated"
            m = run_experiment(base, overrides + VARIANTS["given"], name, ds, est)
            rows.append((model, "estimated", m["oof_mean_pcc"], held_out_score(est, name, ds, truth)))
            names["estimated"].append(name)
    print("\nEmoDB, speaker-grouped 5-fold CV over the Train+Val speakers; Test = held-out speakers")
    print(f"{'model':<8} {'normalisation':<14} {'OOF mean PCC':>12} {'held-out Test':>13}")
    for model, variant, oof, test in rows:
        print(f"{model:<8} {variant:<14} {oof:>12.4f} {test:>13.4f}")
    for model in models:
        got = {v: (o, t) for m, v, o, t in rows if m == model}
        print(f"{model}: given - none = OOF {got['given'][0] - got['none'][0]:+.4f}, "
              f"Test {got['given'][1] - got['none'][1]:+.4f}")
    if est is None:
        print("estimated-speaker normalisation: skipped (no --estimated subjects file; the subjects-estimate "
              "command was not available)")
    cards = {"none": blend_best(wd, ds, names["none"], "emodb-none", no_subjects=True),
             "none+given": blend_best(wd, ds, names["none"] + names["given"], "emodb-given")}
    if est is not None:
        for n in names["none"]:  # the plain experiments beside the estimated ones in one library
            if not (est.oof / n).exists():
                est.oof.mkdir(parents=True, exist_ok=True)
                os.symlink(wd.experiment(n), est.oof / n)
        cards["none+estimated"] = blend_best(est, ds, names["none"] + names["estimated"], "emodb-estimated")
    print("\n--blend best (nested CV over the same speaker-grouped folds decides what ships):")
    for lib, card in cards.items():
        where = wd if lib != "none+estimated" else est
        sub = pd.read_csv(where.submissions / card["submission"], dtype={"File_ID": str})
        sub.index = sub["File_ID"].map(normalise_id)
        test = mean_pcc(sub.loc[ds.test_ids, ds.targets].to_numpy(),
                        truth.loc[ds.test_ids, ds.targets].to_numpy(float))
        print(f"  library {lib:<15} {describe(card)}; held-out Test {test:.4f}")


def embedded(a: argparse.Namespace) -> None:
    wd = Workdir.of(a.workdir)
    ds = load_dataset(wd.embedded_data)
    if not wd.subjects.exists():
        subjects_cli.main(["--data", str(ds.root), "--workdir", str(wd.root), "--csv",
                           str(ds.root / "synth_truth.csv"), "--csv-column", "Subject"])
    folds_cli.main(["--data", str(ds.root), "--workdir", str(wd.root), "--groups", "subjects"])
    exps = a.exp or default_experiments("eri")
    rows = []
    for exp in exps:
        plain = run_experiment(exp, [], exp, ds, wd)
        normed = run_experiment(exp, VARIANTS["given"], f"{exp}_sn", ds, wd)
        rows.append((exp, plain["oof_mean_pcc"], normed["oof_mean_pcc"]))
    fold_info = read_json(wd.folds.with_suffix(".json"))
    print(f"\nembedded set ({len(ds.ids)} clips), folds grouped by {fold_info['groups']['source']}")
    print(f"{'experiment':<18} {'OOF none':>9} {'OOF subject_norm':>17}")
    for exp, p, n in rows:
        print(f"{exp:<18} {p:>9.4f} {n:>17.4f}")
    both = exps + [f"{e}_sn" for e in exps]
    cards = {"without subject-aware options": blend_best(wd, ds, exps, "blend-no-subjects", no_subjects=True),
             "per-subject post-processing only": blend_best(wd, ds, exps, "blend-subject-post"),
             "subject_norm members only": blend_best(wd, ds, both, "blend-subject-norm", no_subjects=True),
             "with subject-aware options": blend_best(wd, ds, both, "blend-subjects")}
    print("\ndefault blend (--blend best), nested CV:")
    for what, card in cards.items():
        print(f"  {what:<34} {describe(card)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["speech", "embedded"])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--src", type=Path, default=EMODB)
    ap.add_argument("--sequence", action="store_true", help="speech: also the TE sequence model on LLDs")
    ap.add_argument("--estimated", type=Path, default=None, help="speech: an estimated subjects.csv (+ .json)")
    ap.add_argument("--exp", nargs="*", default=None, help="embedded: experiments (default: the default set)")
    a = ap.parse_args(argv)
    np.seterr(all="ignore")
    speech(a) if a.part == "speech" else embedded(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
