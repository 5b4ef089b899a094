import json

from competition.data.contract import load_dataset
from competition.pipeline.results import main
from conftest import write_fake_dataset


def _metrics(oof, name, dataset, mean, seconds):
    d = oof / name
    d.mkdir(parents=True)
    pcc = {"Adoration": mean, "Amusement": mean}
    folds = {str(k): {"mean_pcc": mean, "seconds": {"total": s, "fit": s / 2}} for k, s in enumerate(seconds)}
    (d / "metrics.json").write_text(json.dumps({"experiment": name, "model": "ridge", "oof_mean_pcc": mean,
                                                "oof_pcc": pcc, "folds": folds, "dataset": dataset}))


def test_results_table(tmp_path):
    data = write_fake_dataset(tmp_path / "data", emotions=("Adoration", "Amusement"))
    (data / "synth_truth.json").write_text(json.dumps({"oracle_ceiling": {"mean_pcc": 0.8, "pcc": {}}}))
    fp = load_dataset(data).fingerprint
    _metrics(tmp_path / "oof", "weak", fp, 0.2, [1.0, 3.0])
    _metrics(tmp_path / "oof", "strong", fp, 0.4, [10.0, 10.0])
    _metrics(tmp_path / "oof", "elsewhere", "other-dataset", 0.9, [1.0])
    out = tmp_path / "RESULTS.md"
    main(["--workdir", str(tmp_path), "--data", str(data), "--out", str(out)])
    rows = [ln for ln in out.read_text().splitlines() if ln.startswith("| ")]
    names = [r.split(" | ")[0][2:] for r in rows[1:]]
    assert names == ["*oracle ceiling*", "strong", "weak", "*constant predictor*"]
    strong = rows[2].split(" | ")
    assert strong[2:4] == ["0.400", "50%"] and strong[-2] == "10.0"
    assert "| 0.200 | 25% | 0.200 | 0.200 | 2.0 | 1.0 |" in rows[3]
    assert "elsewhere" in out.read_text().split("Not shown")[1]


def test_regenerating_keeps_the_notes_after_the_marker(tmp_path):
    data = write_fake_dataset(tmp_path / "data", emotions=("Adoration", "Amusement"))
    fp = load_dataset(data).fingerprint
    _metrics(tmp_path / "oof", "weak", fp, 0.2, [1.0])
    out = tmp_path / "RESULTS.md"
    out.write_text("# stale table\n| old | row |\n\n<!-- notes -->\nCommands: keep me.\n")
    args = ["--workdir", str(tmp_path), "--data", str(data), "--out", str(out)]
    main(args)
    _metrics(tmp_path / "oof", "strong", fp, 0.4, [1.0])
    main(args)  # twice: the notes are neither lost nor doubled
    text = out.read_text()
    assert "stale" not in text and "| strong |" in text
    assert text.count("<!-- notes -->") == 1 and text.endswith("<!-- notes -->\nCommands: keep me.\n")
