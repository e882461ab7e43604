"""bench/demo_compare.py --summarize: the table, mean +- sd and mean curve of finished runs,
pooled over several --work directories, from their metrics.json and history.jsonl."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(work, seed, top1, curve):
    run = work / f"fixmatch-{seed}"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({
        "top1": top1, "top5": 0.9, "steps": 1000, "train_time_s": 60.0 * seed, "mask_rate": 0.25,
        "pseudo_label_accuracy": 0.8, "pseudo_top_class_share": 0.2}))
    rows = [{"step": step, "seconds": 30.0, "test": {"ema_accuracy": acc},
             "train": {"mask": 0.1, "pseudo_label_accuracy": 0.5}}
            for step, acc in zip((500, 1000), curve)]
    (run / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_summarize_pools_runs_of_several_work_dirs(tmp_path):
    _run(tmp_path / "a", 1, 0.50, (0.30, 0.50))
    _run(tmp_path / "b", 2, 0.60, (0.40, 0.60))
    _run(tmp_path / "b", 10, 0.70, (0.50, 0.70))
    out = subprocess.run([sys.executable, "bench/demo_compare.py", "--summarize",
                          str(tmp_path / "a"), str(tmp_path / "b")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()
            if line.startswith("fixmatch ") and "curve" not in line]
    assert [(r[1], r[2], r[5]) for r in rows] == [("1", "50.0", "60"), ("2", "60.0", "120"),
                                                  ("10", "70.0", "600")]
    assert rows[0][-3:] == ["0.250", "0.800", "0.20"]
    assert "fixmatch: top-1 60.0 +- 10.0 (min 50.0, max 70.0) over 3 runs" in out.stdout
    assert "500: 40.0 (0.5 min) mask 0.10 pseudo 0.50 | 1000: 60.0 (1.0 min)" in out.stdout


def test_summarize_of_an_empty_dir_says_so(tmp_path):
    out = subprocess.run([sys.executable, "bench/demo_compare.py", "--summarize", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "no finished runs" in out.stderr
