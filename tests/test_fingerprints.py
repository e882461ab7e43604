"""Every task's fingerprint, parameter by parameter: a significant parameter changes it, an
insignificant one (Beam options, --tpu, the root) does not.

The fingerprint names a task's output directory, so a significant parameter missing from it
would hand a stale output to a run that asked for something else (for example PrepareSplits
without allow_missing), and an insignificant one in it would retrain for nothing. Computed
without running anything: the demo data's and the trainings' fingerprints need no files.
"""

import inspect
import os
import shutil

import pytest

import pipeline
from pipeline import cache, data_tasks, eval_tasks, report_tasks, split_tasks, train_tasks

#: Every parameter of every task: an alternative value and whether it must change the
#: fingerprint. A new parameter fails test_every_parameter_is_classified until added here.
CHANGES = {
    "root": ("ROOT2", False),
    "data_dir": ("DATA", True),
    "split": ("frac20.seed1", True),
    "allow_missing": (True, True),
    "demo": ({"image_size": 16}, True),
    "beam_args": ("--direct_num_workers=2 --direct_running_mode=multi_processing", False),
    "preset": ("smoke", True),
    "hparams": ('"weight_decay": 0.001', True),
    "supervised_hparams": ('"learning_rate": {"base_lr": 0.2}', True),
    "fixmatch_hparams": ('"uratio": 3', True),
    "tpu": ("grpc://10.0.0.2:8470", False),
    "seed": (1, True),
    "image_size": (16, True),
    "train_per_class": (5, True),
    "val_per_class": (2, True),
    "num_classes": (3, True),
}
#: Spellings of the same request: each pair must share a fingerprint.
SAME = {
    "split": ("fixmatch_10pct.1", "imagenet128116.1"),
    "hparams": ("", '{"weight_decay": 0.0003}'),  # the default, spelled out
    "fixmatch_hparams": ('"uratio": 3', '{"uratio": 3}'),
}


def cached_tasks():
    """Every concrete CachedTask the pipeline package defines (one per Luigi family)."""
    found = {}
    for module in (data_tasks, split_tasks, train_tasks, eval_tasks, report_tasks):
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, cache.CachedTask) and obj.stage_name
                    and not name.startswith("_") and obj.__module__ == module.__name__):
                found[name] = obj
    return found


TASKS = cached_tasks()


def test_every_task_is_covered():
    assert pipeline  # the package import registers every family
    assert sorted(TASKS) == sorted([
        "DemoData", "ImageFolder", "PrepareSplits", "TrainSupervised", "TrainFixMatch",
        "EvaluateSupervised", "EvaluateFixMatch", "ExportSupervised", "ExportFixMatch",
        "Report"])


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_parameter_is_classified(name):
    for param, obj in TASKS[name].get_params():
        assert param in CHANGES, f"{name}.{param}: say in CHANGES whether it is significant"
        if param not in ("data_dir", "root"):  # see the ImageFolder test for data_dir
            assert obj.significant == CHANGES[param][1], f"{name}.{param}"


@pytest.fixture
def data(tmp_path):
    """A tiny image-folder tree: ImageFolder fingerprints its listing, never its images."""
    path = tmp_path / "data"
    for rel in ("train/a/1.jpg", "train/b/2.jpg", "val/a/3.jpg"):
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(b"not decoded")
    return str(path)


def base_params(task_cls, tmp_path, data):
    params = {"root": str(tmp_path / "root")}
    if task_cls is data_tasks.ImageFolder:
        params["data_dir"] = data
    return params


def alternative(param, tmp_path, data):
    value = CHANGES[param][0]
    return {"ROOT2": str(tmp_path / "root2"), "DATA": data}.get(value, value) \
        if isinstance(value, str) else value


@pytest.mark.parametrize("name", sorted(TASKS))
def test_each_significant_parameter_changes_the_fingerprint_and_no_other(name, tmp_path,
                                                                         data):
    task_cls = TASKS[name]
    base = base_params(task_cls, tmp_path, data)
    reference = task_cls(**base).fingerprint
    for param, _ in task_cls.get_params():
        if task_cls is data_tasks.ImageFolder and param == "data_dir":
            continue  # the listing, not the path: test_image_folder_fingerprints_content
        changed = task_cls(**dict(base, **{param: alternative(param, tmp_path, data)}))
        if CHANGES[param][1]:
            assert changed.fingerprint != reference, f"{name}.{param} left it unchanged"
        else:
            assert changed.fingerprint == reference, f"{name}.{param} changed it"
    for param, (one, two) in SAME.items():
        if param in dict(task_cls.get_params()):
            assert (task_cls(**dict(base, **{param: one})).fingerprint
                    == task_cls(**dict(base, **{param: two})).fingerprint), f"{name}.{param}"


def test_image_folder_fingerprints_content_not_path(tmp_path, data):
    """Moved files keep their outputs; a changed file reruns everything downstream."""
    moved = str(tmp_path / "moved")
    shutil.copytree(data, moved, copy_function=shutil.copy2)  # same sizes and mtimes
    root = str(tmp_path / "root")
    fp = data_tasks.ImageFolder(root=root, data_dir=data).fingerprint
    assert data_tasks.ImageFolder(root=root, data_dir=moved).fingerprint == fp
    with open(os.path.join(moved, "train", "a", "1.jpg"), "ab") as f:
        f.write(b"!")
    cache.refresh_fingerprints()  # Luigi reuses the task object of equal parameters
    assert data_tasks.ImageFolder(root=root, data_dir=moved).fingerprint != fp
