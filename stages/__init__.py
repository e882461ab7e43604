"""The stage programs: each a CLI (`python -m stages.<name> --help`) and a `run(...)` function.

TensorFlow's C++ INFO lines (oneDNN, CPU features) drown the programs' own progress output;
warnings and errors still show. An explicit setting by the user wins.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
