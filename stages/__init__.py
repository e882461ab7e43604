"""The stage programs: each a CLI (`python -m stages.<name> --help`) and a `run(...)` function."""

from fixmatch import tf_env

tf_env.apply_defaults()  # before any program imports TensorFlow
