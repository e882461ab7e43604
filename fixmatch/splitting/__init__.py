"""Split preparation library: split names, selection, image checks, Beam transforms.

`stages.prepare_splits` is the entry point; this package holds the pieces:
names (what --split means), selection (who is labeled, record order), images
(decode once, convert or reject), sources (input layouts), shards (counts and
assignment), recordio (TFRecord framing with offsets), example_codec
(tf.train.Example bytes without TensorFlow), layout (checks between the passes)
and the Beam transforms of the two passes (plan_transforms, write_transforms).
Beam-dependent modules are imported by the caller, so the
pure parts stay cheap to import.
"""
