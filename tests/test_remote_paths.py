"""gs:// code paths without a network: TensorFlow's in-memory ram:// file system has the same
tf.io.gfile API, so training, resume, evaluation and export on ram:// run what gs:// would."""

import json
import os

import pytest

from fixmatch import fs
from fixtures.split_dirs import write_split


@pytest.fixture(scope="module")
def remote_split(tmp_path_factory):
    local = write_split(tmp_path_factory.mktemp("split") / "tiny")
    url = f"ram://remote-{os.getpid()}/splits/tiny"
    fs.copy_tree(local, url)
    return url


def test_train_resume_evaluate_and_export_on_ram(remote_split, capsys):
    from stages import evaluate, export, train_supervised
    base = f"ram://remote-{os.getpid()}"
    model_dir, published = f"{base}/model", f"{base}/published"
    hparams = '"run": {"max_steps": 4}, "num_epochs": 2'
    first = train_supervised.run(data=remote_split, model_dir=model_dir, preset="smoke",
                                 hparams=hparams)
    assert first["steps"] == 4 and fs.exists(f"{model_dir}/checkpoint-4.index")
    # The rerun of a finished run restores its checkpoint from ram:// and trains nothing.
    lines = []
    again = train_supervised.run(data=remote_split, model_dir=model_dir, preset="smoke",
                                 hparams=hparams, publish_dir=published, log=lines.append)
    assert any(line.startswith("restored") and "(step 4)" in line for line in lines), lines
    assert again["steps_this_run"] == 0 and again["top1"] == first["top1"]
    assert json.loads(fs.read_text(f"{published}/metrics.json"))["steps"] == 4
    result = evaluate.run(model=published, data=remote_split, out=f"{base}/eval")
    assert result["count"] == 12 and fs.exists(f"{base}/eval/evaluation.json")
    exported = export.run(model=published, data=remote_split, out=f"{base}/export")
    assert fs.exists(f"{base}/export/saved_model/saved_model.pb"), exported


def test_predict_reads_the_model_and_the_images_from_urls(remote_split, tmp_path):
    """predict on ram:// (a directory argument, a glob, a missing file and a file that is no
    image) gives what it gives on local copies of the same model and files. The directory is
    flat: ram:// lists no subdirectories (GCS does; `fs.files_under` walks them)."""
    import io

    import numpy as np
    from PIL import Image

    from stages import export, predict, train_supervised
    base = f"ram://predict-{os.getpid()}"
    train_supervised.run(data=remote_split, model_dir=f"{base}/model", preset="smoke",
                         hparams='"run": {"max_steps": 2}', publish_dir=f"{base}/published")
    export.run(model=f"{base}/published", data=remote_split, out=f"{base}/export")
    rng = np.random.default_rng(0)
    for name in ("images/a.png", "images/b.png", "more/c.png"):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)).save(buf, "PNG")
        fs.write_bytes(f"{base}/{name}", buf.getvalue())
    fs.write_bytes(f"{base}/images/notes.txt", b"not an image")

    def classify(root):
        errors = []
        args = [f"{root}/images", f"{root}/more/*.png", f"{root}/missing.png"]
        summary = predict.run(model=f"{root}/export", files=predict.expand(args),
                              emit=lambda result: None, errors=errors.append)
        return summary, errors

    remote, remote_errors = classify(base)
    assert remote["classified"] == 3 and remote["failed"] == 2, remote_errors
    assert [os.path.basename(r["file"]) for r in remote["results"]] == ["a.png", "b.png", "c.png"]
    assert len(remote_errors) == 2 and "notes.txt" in remote_errors[0]
    assert "missing.png" in remote_errors[1]
    local_root = str(tmp_path)
    for part in ("export", "images", "more"):
        fs.copy_tree(f"{base}/{part}", f"{local_root}/{part}")
    local, _ = classify(local_root)
    assert [r["top"] for r in local["results"]] == [r["top"] for r in remote["results"]]
