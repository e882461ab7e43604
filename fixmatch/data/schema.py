"""The TFRecord contract between the split stage and the training pipelines.

Keys follow the ImageNet/TFDS conventions so that the records are readable by
other tools, but labels are always 0-based here (the `imagenet_to_gcs` input is
1-based and is converted when the split is built).
"""

ENCODED = "image/encoded"
FORMAT = "image/format"
FILENAME = "image/filename"
LABEL = "image/class/label"
SYNSET = "image/class/synset"
HEIGHT = "image/height"
WIDTH = "image/width"

#: The three record sets of a split directory, in file-name prefix form.
LABELED, UNLABELED, VALIDATION = "labeled", "unlabeled", "validation"
SETS = (LABELED, UNLABELED, VALIDATION)


def shard_glob(split_dir: str, set_name: str) -> str:
    """Glob matching every shard of one set, e.g. ``DIR/labeled.tfrecord-*``."""
    return f"{split_dir.rstrip('/')}/{set_name}.tfrecord-*"


def make_example(*, encoded: bytes, filename: str, label: int, synset: str,
                 height: int, width: int) -> bytes:
    """Serialized tf.train.Example for one RGB JPEG image."""
    import tensorflow as tf  # deferred: Beam workers import this module lazily

    def _bytes(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def _int(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))

    features = {
        ENCODED: _bytes(encoded),
        FORMAT: _bytes(b"JPEG"),
        FILENAME: _bytes(filename.encode("utf-8")),
        LABEL: _int(label),
        SYNSET: _bytes(synset.encode("utf-8")),
        HEIGHT: _int(height),
        WIDTH: _int(width),
    }
    return tf.train.Example(
        features=tf.train.Features(feature=features)).SerializeToString(deterministic=True)


def parse_spec():
    """Feature spec for tf.io.parse_single_example / parse_example."""
    import tensorflow as tf

    return {
        ENCODED: tf.io.FixedLenFeature([], tf.string),
        FORMAT: tf.io.FixedLenFeature([], tf.string, default_value="JPEG"),
        FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
        LABEL: tf.io.FixedLenFeature([], tf.int64),
        SYNSET: tf.io.FixedLenFeature([], tf.string, default_value=""),
        HEIGHT: tf.io.FixedLenFeature([], tf.int64, default_value=0),
        WIDTH: tf.io.FixedLenFeature([], tf.int64, default_value=0),
    }


def parse_example(serialized: bytes) -> dict:
    """Decode one serialized Example into python values (for tests and tools)."""
    import tensorflow as tf

    ex = tf.train.Example.FromString(serialized)
    f = ex.features.feature
    return {
        ENCODED: f[ENCODED].bytes_list.value[0],
        FORMAT: f[FORMAT].bytes_list.value[0].decode(),
        FILENAME: f[FILENAME].bytes_list.value[0].decode(),
        LABEL: int(f[LABEL].int64_list.value[0]),
        SYNSET: f[SYNSET].bytes_list.value[0].decode(),
        HEIGHT: int(f[HEIGHT].int64_list.value[0]),
        WIDTH: int(f[WIDTH].int64_list.value[0]),
    }
