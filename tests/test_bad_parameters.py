"""Bad parameters for every stage program and the Luigi chain: a non-zero exit, one error line
naming the key or path (and what to do), and nothing written under the output location.

The stage programs run in-process through their `main(argv)` (the same code as the command
line); the Luigi cases run the real `luigi` command with the repository's luigi.cfg.
"""

import importlib
import os
import subprocess
import sys

import pytest

from fixtures.split_dirs import write_split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS_BAD = [
    ('"learnin_rate": {"base_lr": 0.1}', "unknown hparam 'learnin_rate'; did you mean"),
    ('"learning_rate": {"base_lr": "fast"}', "hparam 'learning_rate.base_lr' must be number"),
    ('"run": {"per_worker_batch_size": 0}', "hparam 'run.per_worker_batch_size' must be"),
    ('"weight_decay": -1', "hparam 'weight_decay' must be"),
    ('{"num_epochs": ', "--hparams is not valid JSON"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A split, an empty directory, a finished smoke run, and the output root under test."""
    base = tmp_path_factory.mktemp("world")
    split = write_split(base / "split", unlabeled_per_class=4)
    (base / "empty").mkdir()
    other = base / "other_run"
    from stages import train_supervised
    train_supervised.run(data=split, model_dir=str(other), preset="smoke",
                         hparams='"run": {"max_steps": 1}')
    return {"split": split, "empty": str(base / "empty"), "other_run": str(other),
            "image": str(base / "split" / "classes.txt")}


def cases():
    train = [("--hparams", h, needle) for h, needle in HPARAMS_BAD] + [
        ("--preset", "demoo", "flag --preset=demoo: value should be one of"),
        ("--data", "{missing}", "{missing}"),
        ("--data", "{empty}", "{empty}"),
        ("--model_dir", "{other_run}", "holds a run with different hparams"),
        ("--steps_per_run", "zero", "--steps_per_run"),
    ]
    out = [("train_supervised", ["--data", "{split}", "--model_dir", "{out}/m", "--preset",
                                 "smoke"], flag, value, needle) for flag, value, needle in train]
    out += [("train_fixmatch", ["--data", "{split}", "--model_dir", "{out}/m", "--preset",
                                "smoke"], flag, value, needle) for flag, value, needle in train]
    out += [
        ("train_fixmatch", ["--data", "{split}", "--model_dir", "{out}/m", "--preset", "smoke"],
         "--dataset", "imagenet999.1", "imagenet999.1"),
        ("train_fixmatch", ["--data", "{split}", "--model_dir", "{out}/m"],
         "--preset", "imagenet", "FixMatch needs a strong augmentation"),
        ("train_fixmatch", ["--data", "{split}", "--model_dir", "{out}/m", "--preset", "smoke"],
         "--hparams", '"fixmatch": {"confidence": 1.5}', "hparam 'fixmatch.confidence'"),
        ("demo_data", ["--out", "{out}/d"], "--seed", "-1", "seed"),
        ("demo_data", ["--out", "{out}/d"], "--image_size", "4", "image_size"),
        ("demo_data", ["--out", "{out}/d"], "--num_classes", "11", "num_classes"),
        ("demo_data", ["--out", "{out}/d"], "--train_per_class", "many", "--train_per_class"),
        ("prepare_splits", ["--output", "{out}/s", "--split", "frac10.seed1"],
         "--input", "{missing}", "{missing}"),
        ("prepare_splits", ["--output", "{out}/s", "--split", "frac10.seed1"],
         "--input", "{empty}", "{empty}"),
        ("prepare_splits", ["--output", "{out}/s", "--input", "{empty}"],
         "--split", "frac10.seedX", "unknown split name 'frac10.seedX'"),
        ("evaluate", ["--data", "{split}", "--out", "{out}/e"], "--model", "{missing}",
         "{missing}"),
        ("evaluate", ["--model", "{other_run}", "--out", "{out}/e"], "--data", "{empty}",
         "{empty}"),
        ("evaluate", ["--model", "{other_run}", "--data", "{split}", "--out", "{out}/e"],
         "--weights", "best", "--weights"),
        ("evaluate", ["--model", "{other_run}", "--data", "{split}", "--out", "{out}/e"],
         "--batch_size", "0", "batch_size"),
        ("export", ["--data", "{split}", "--out", "{out}/x"], "--model", "{empty}", "{empty}"),
        ("predict", ["{image}"], "--model", "{missing}", "{missing}"),
        ("predict", ["--model", "{other_run}", "{image}"], "--top", "0", "--top"),
        ("report", ["--fixmatch", "{other_run}", "--supervised_eval", "{empty}",
                    "--fixmatch_eval", "{empty}", "--out", "{out}/r"],
         "--supervised", "{missing}", "{missing}"),
    ]
    return out


@pytest.mark.parametrize("program,base,flag,value,needle", cases(),
                         ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None)
def test_bad_parameter_is_one_line_and_nothing_is_written(world, tmp_path, capsys, program,
                                                          base, flag, value, needle):
    names = dict(world, out=str(tmp_path / "out"), missing=str(tmp_path / "no" / "such"))

    def fill(text):
        for key, path in names.items():
            text = text.replace("{" + key + "}", path)
        return text

    argv = [program] + [fill(a) for a in base] + [flag, fill(value)]
    module = importlib.import_module(f"stages.{program}")
    code = module.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and err, argv
    assert err[-1].startswith(f"{program}: error: "), err[-3:]
    assert fill(needle) in err[-1], err[-1]
    assert not os.path.exists(names["out"]), os.listdir(names["out"])


LUIGI_BAD = [
    ("--preset", "demoo", "unknown preset 'demoo'; did you mean 'demo'?"),
    ("--hparams", '"learnin_rate": {}', "unknown hparam 'learnin_rate'"),
    ("--fixmatch-hparams", '"fixmatch": {"confidence": 2}', "hparam 'fixmatch.confidence'"),
    ("--split", "frac10.seedX", "unknown split name 'frac10.seedX'"),
    ("--supervised-hparams", "{bad", "--supervised-hparams is not valid JSON"),
    ("--data-dir", "/no/such/dir", "data_dir '/no/such/dir' does not exist"),
]


@pytest.mark.parametrize("flag,value,needle", LUIGI_BAD, ids=[c[0] for c in LUIGI_BAD])
def test_bad_luigi_parameter_fails_before_any_work(tmp_path, flag, value, needle):
    root = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline", "FullRun",
                           "--root", str(root), "--local-scheduler", flag, value],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("pipeline: error: ")]
    assert lines and needle in lines[0], proc.stderr[-3000:]
    assert not root.exists()
