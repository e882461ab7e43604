"""Luigi tasks of the pipeline: `luigi --module pipeline <Task> --local-scheduler [--root DIR]`.

Every output lives at ROOT/<stage>/<fingerprint>/ (see pipeline/cache.py). ROOT comes from
luigi.cfg `[pipeline] root` (default ./runs) or `--root`. Luigi finds tasks by importing this
package, so it imports every task module, one line each, after filling in the `[retcode]`
exit codes the user's Luigi configuration does not set (pipeline/errors.py).
"""

from fixmatch import tf_env

tf_env.apply_defaults()  # before any task imports TensorFlow

from pipeline import cache  # noqa: F401
from pipeline import errors  # noqa: E402

errors.apply_retcode_defaults()

from pipeline import data_tasks  # noqa: F401
from pipeline import split_tasks  # noqa: F401
from pipeline import train_tasks  # noqa: F401
from pipeline import eval_tasks  # noqa: F401
from pipeline import report_tasks  # noqa: F401
