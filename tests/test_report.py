"""The report's per-class comparison (stages/report.py) on hand-built evaluations: counts,
the largest gains and losses at many classes, every class at few, the plot."""

import json
import os

import numpy as np
import pytest

from stages import cli, report


def _write(path, name, content):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "w") as f:
        json.dump(content, f)


def _runs(tmp_path, sup_acc, fm_acc, images):
    """Two training outputs and their evaluations with the given per-class accuracies."""
    classes = [f"n{i:08d}" for i in range(len(sup_acc))]
    dirs = {}
    for program, acc in (("supervised", sup_acc), ("fixmatch", fm_acc)):
        run = tmp_path / f"train_{program}"
        _write(run, "metrics.json", {"program": program, "steps": 2})
        _write(run, "hparams.json", {"model": {"name": "resnet18"}})
        right = np.rint(np.asarray(acc) * images).astype(int)
        confusion = np.diag(right) + np.diag(images - right)[:, ::-1]  # the rest: another class
        ev = tmp_path / f"eval_{program}"
        _write(ev, "evaluation.json", {
            "top1": float(right.sum() / images.sum()), "top5": 1.0, "weights": "ema",
            "classes": classes, "per_class_accuracy": [float(a) for a in right / images],
            "confusion": confusion.tolist()})
        dirs[program], dirs[f"{program}_eval"] = str(run), str(ev)
    return dirs


def test_many_classes_list_the_largest_gains_and_losses(tmp_path):
    n = 1000
    rng = np.random.default_rng(0)
    images = rng.integers(40, 60, n)
    sup = np.round(rng.uniform(0, 1, n), 2)
    fm = sup.copy()
    fm[7], fm[900] = 1.0, 0.0  # one large gain, one large loss, some ties
    sup[7], sup[900] = 0.0, 1.0
    fm[:5] = sup[:5]
    fm[100:300] = np.minimum(sup[100:300] + 0.1, 1)
    fm[400:450] = np.maximum(sup[400:450] - 0.1, 0)
    dirs = _runs(tmp_path, sup, fm, images)
    out = tmp_path / "report"
    result = report.run(**dirs, out=str(out))
    table = result["per_class"]
    got_sup, got_fm = np.array(table["supervised"]), np.array(table["fixmatch"])
    assert table["images"] == images.tolist()
    assert table["better"] == int((got_fm > got_sup).sum()) > 150
    assert table["worse"] == int((got_fm < got_sup).sum()) > 30
    assert table["better"] + table["worse"] + table["same"] == n
    md = (out / "report.md").read_text()
    assert f"better on {table['better']:,} of 1,000 classes" in md
    gains = md.split("Largest gains")[1].split("Largest losses")[0]
    losses = md.split("Largest losses")[1]
    gain_rows, loss_rows = ([line for line in part.splitlines() if line.startswith("| n0")]
                            for part in (gains, losses))
    assert len(gain_rows) == len(loss_rows) == report.PER_CLASS_SHOWN
    assert gain_rows[0].startswith("| n00000007 |") and loss_rows[0].startswith("| n00000900 |")
    assert "+100.0" in gains and "-100.0" in losses
    assert "+0.0" not in gains and "+0.0" not in losses  # ties are neither
    assert len(md) < 20_000  # a page, not 1,000 rows
    png = (out / report.PER_CLASS_PLOT).read_bytes()
    assert png.startswith(b"\x89PNG") and b"per-class top-1 of 1,000 classes" in png


def test_few_classes_are_all_listed(tmp_path):
    sup, fm = [0.5, 0.25, 1.0], [0.75, 0.25, 0.5]
    dirs = _runs(tmp_path, sup, fm, np.array([4, 4, 4]))
    result = report.run(**dirs, out=str(tmp_path / "report"))
    assert (result["per_class"]["better"], result["per_class"]["worse"],
            result["per_class"]["same"]) == (1, 1, 1)
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| n00000000 | 4 | 50.0% | 75.0% | +25.0 |" in md
    assert "| n00000002 | 4 | 100.0% | 50.0% | -50.0 |" in md
    assert "Largest gains" not in md


def test_many_classes_with_one_change_list_only_that_class(tmp_path):
    sup = np.zeros(30)
    fm = sup.copy()
    fm[4] = 0.5
    dirs = _runs(tmp_path, sup, fm, np.full(30, 2))
    report.run(**dirs, out=str(tmp_path / "report"))
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Largest gains (1 classes):" in md and "| n00000004 | 2 | 0.0% | 50.0% | +50.0 |" in md
    assert md.split("Largest losses (0 classes):")[1].split("![")[0].strip() == "none"


def test_evaluations_of_different_classes_are_refused(tmp_path):
    dirs = _runs(tmp_path, [0.5, 0.5], [0.5, 0.5], np.array([2, 2]))
    path = os.path.join(dirs["fixmatch_eval"], "evaluation.json")
    ev = json.load(open(path))
    ev["classes"] = ["a", "b"]
    json.dump(ev, open(path, "w"))
    with pytest.raises(cli.StageError, match="different class lists"):
        report.run(**dirs, out=str(tmp_path / "report"))
