"""What `run.deterministic` costs: training images/s with it on vs off, measured in one run.

Both settings train the same program with the same seed for a few blocks, alternating settings
round by round (fresh process each, so TensorFlow's process-wide op determinism cannot leak),
and the ratio of their steady-state images/s (blocks after the first, which traces) is printed.

    python bench/determinism.py --data runs/prepare_splits/<fp> [--program fixmatch] \\
        [--augment randaugment|cta] [--steps 150] [--rounds 2]

With CTAugment the input pipeline reads the policy's table (a variable), and under op
determinism TensorFlow then also stops prefetching it, so that setting costs more.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import machine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(program, data, model_dir, *, steps, deterministic, augment):
    hp = json.dumps({"run": {"seed": 0, "deterministic": deterministic, "max_steps": steps,
                             "steps_per_run": max(1, steps // 3)},
                     "augment": {"type": augment}})
    proc = subprocess.run([sys.executable, "-m", f"stages.train_{program}", "--data", data,
                           "--model_dir", model_dir, "--preset", "demo", "--hparams", hp],
                          cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if proc.returncode != 0:
        sys.exit(proc.stderr[-3000:])
    return json.loads(proc.stdout)["images_per_sec_steady"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="A finished split directory.")
    parser.add_argument("--program", default="fixmatch", choices=["supervised", "fixmatch"])
    parser.add_argument("--augment", default="randaugment", choices=["randaugment", "cta"],
                        help="The strong augmentation (the demo preset's is randaugment).")
    parser.add_argument("--steps", type=int, default=150, help="Training steps per run.")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(machine.header())
    work = tempfile.mkdtemp(prefix="determinism-")
    speeds = {False: [], True: []}
    for r in range(args.rounds):
        for deterministic in (False, True):
            ips = train(args.program, args.data, os.path.join(work, f"{r}-{deterministic}"),
                        steps=args.steps, deterministic=deterministic, augment=args.augment)
            speeds[deterministic].append(ips)
            print(f"round {r + 1} deterministic={str(deterministic).lower():<5} "
                  f"{ips:8.1f} img/s", flush=True)
    off, on = statistics.median(speeds[False]), statistics.median(speeds[True])
    print(f"{args.program} demo preset, {args.augment}, {args.steps} steps: deterministic "
          f"{on:.1f} img/s vs {off:.1f} img/s off (medians): ratio {on / off:.2f}")


if __name__ == "__main__":
    main()
