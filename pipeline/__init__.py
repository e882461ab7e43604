"""Luigi tasks of the pipeline: `luigi --module pipeline <Task> --local-scheduler [--root DIR]`.

Every output lives at ROOT/<stage>/<fingerprint>/ (see pipeline/cache.py). ROOT comes from
luigi.cfg `[pipeline] root` (default ./runs) or `--root`. Luigi finds tasks by importing this
package, so it imports every task module, one line each.
"""

import os

# TensorFlow's C++ INFO lines (oneDNN, CPU features) drown the pipeline's own progress
# output; warnings and errors still show. An explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from pipeline import cache  # noqa: F401
from pipeline import data_tasks  # noqa: F401
from pipeline import split_tasks  # noqa: F401
from pipeline import train_tasks  # noqa: F401
from pipeline import eval_tasks  # noqa: F401
from pipeline import report_tasks  # noqa: F401
