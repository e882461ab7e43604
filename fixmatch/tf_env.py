"""TensorFlow's process settings of the programs and the pipeline, set before it is imported.

- TF_CPP_MIN_LOG_LEVEL=1: TensorFlow's C++ INFO lines (oneDNN, CPU features) drown the
  programs' own progress output; warnings and errors still show.
- TF_ENABLE_ONEDNN_OPTS=1 on x86-64: TensorFlow turns its oneDNN kernels on by default only on
  CPUs with AVX-512 VNNI/BF16, AVX-VNNI or AMX; on the others (AVX2-only cloud CPUs) training
  steps are much slower without them (docs/performance.md). Not on ARM, where TensorFlow's
  default depends on the core type.
A value the user set wins; TensorFlow reads both once, at its first import.
"""

import os
import platform


def apply_defaults(environ=None) -> None:
    environ = os.environ if environ is None else environ
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if platform.machine().lower() in ("x86_64", "amd64"):
        environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
