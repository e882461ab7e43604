"""fixmatch.data.split_dir: the one split reader, on local paths and on a URL file system."""

import os

import pytest
import tensorflow as tf

from fixmatch import fs
from fixmatch.data import schema
from fixmatch.data.split_dir import SplitDirError, read_split
from fixtures.split_dirs import CLASSES, write_split


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return write_split(tmp_path_factory.mktemp("split") / "tiny", per_class=(2, 1),
                       unlabeled_per_class=3)


def test_reads_classes_counts_and_shards(split):
    s = read_split(split, sets=schema.SETS)
    assert s.path == os.path.abspath(split) and s.name == "tiny"
    assert s.classes == tuple(CLASSES) and s.num_classes == 3
    assert (s.num_labeled, s.num_unlabeled, s.num_validation) == (6, 9, 3)
    assert s.shards[schema.UNLABELED] == (os.path.join(s.path, "unlabeled.tfrecord-00000-of-00001"),)


def test_reads_a_url_file_system_like_a_local_one(split):
    url = "ram://split_dir_test/tiny"
    fs.copy_tree(split, url)
    local, remote = read_split(split, sets=schema.SETS), read_split(url + "/", sets=schema.SETS)
    assert remote.path == url
    assert (remote.classes, remote.counts) == (local.classes, local.counts)
    assert [os.path.basename(p) for p in remote.shards[schema.LABELED]] == [
        os.path.basename(p) for p in local.shards[schema.LABELED]]
    assert tf.io.gfile.exists(remote.shards[schema.LABELED][0])


def test_errors_name_the_directory_and_the_fix(tmp_path, split):
    with pytest.raises(SplitDirError, match="--data is required"):
        read_split("")
    with pytest.raises(SplitDirError, match=r"--eval_data '.*nope' is not a directory"):
        read_split(str(tmp_path / "nope"), flag="--eval_data")
    half = tmp_path / "half"
    half.mkdir()
    with pytest.raises(SplitDirError, match="has no classes.txt or split.json"):
        read_split(str(half))
    (half / "classes.txt").write_text("a\n")
    (half / "split.json").write_text("{not json")
    with pytest.raises(SplitDirError, match="split.json is unreadable"):
        read_split(str(half))
    (half / "split.json").write_text('{"counts": {"labeled": 2, "validation": 1}}')
    with pytest.raises(SplitDirError, match="lists 1 classes; need at least 2"):
        read_split(str(half))
    (half / "classes.txt").write_text("a\nb\n")
    with pytest.raises(SplitDirError, match="no labeled.tfrecord-"):
        read_split(str(half))
    no_unlabeled = write_split(tmp_path / "sup")
    with pytest.raises(SplitDirError, match="has no unlabeled images"):
        read_split(no_unlabeled, sets=schema.SETS)
