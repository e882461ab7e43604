"""Supervised baseline vs FixMatch on one split, over several seeds: mean, spread, every run.

The demo's run-to-run spread is wide, so one run of each proves nothing; this runs both
programs with `run.seed` = 1..N, alternating (so a machine slowing down hits both alike), each
in a fresh process, and prints each run's EMA top-1 and the mean and sample standard deviation.

    python bench/demo_compare.py --data runs/prepare_splits/<fp> [--seeds 5] [--preset demo]
    python bench/demo_compare.py --data DIR --programs fixmatch --first_seed 1 --seeds 5
    python bench/demo_compare.py --data DIR --hparams '"input": {"crop_min_area": 0.35}' \
        --fixmatch_hparams '"fixmatch": {"wu": 1, "confidence": 0.95}'

--data is a finished split (e.g. `luigi --module pipeline PrepareSplits --local-scheduler`
builds the demo's); model dirs go under --work (default: a new temporary directory). At the
end the mean EMA top-1 curve of each program (and FixMatch's mask rate and pseudo-label
accuracy) is printed at every 500 steps, read from each run's history.jsonl.

    python bench/demo_compare.py --summarize WORK [WORK ...]

prints the same table, summary and curves again from finished runs (`<program>-<seed>`
directories under each WORK), e.g. to pool seeds that were run in separate invocations.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from fixmatch import hparams as hparams_lib  # noqa: E402
PROGRAMS = ("supervised", "fixmatch")


def run_one(program, *, data, model_dir, preset, seed, hparams):
    overrides = json.dumps(hparams_lib.merge_overrides(*hparams, {"run": {"seed": seed}}))
    cmd = [sys.executable, "-m", f"stages.train_{program}", "--data", data, "--model_dir",
           model_dir, "--preset", preset, "--hparams", overrides]
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads(proc.stdout)
    metrics["wall_s"] = time.time() - start
    return metrics


def summary(values):
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.1f} +- {100 * sd:.1f} (min {100 * min(values):.1f}, max {100 * max(values):.1f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="A finished split directory.")
    parser.add_argument("--summarize", nargs="+", metavar="WORK",
                        help="Print the table of finished runs under these --work dirs instead.")
    parser.add_argument("--seeds", type=int, default=5, help="Runs per program.")
    parser.add_argument("--first_seed", type=int, default=1, help="Seeds first_seed.. on.")
    parser.add_argument("--programs", default=",".join(PROGRAMS),
                        help="Comma-separated: supervised, fixmatch or both.")
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--hparams", default="", help="Extra overrides for both programs.")
    for program in PROGRAMS:
        parser.add_argument(f"--{program}_hparams", default="",
                            help=f"Extra overrides for the {program} program only.")
    parser.add_argument("--work", default=None, help="Where the model dirs go.")
    args = parser.parse_args()
    if args.summarize:
        return summarize(args.summarize)
    if not args.data:
        parser.error("--data is required (or --summarize WORK ...)")
    programs = [p for p in PROGRAMS if p in args.programs.split(",")]
    if not programs or set(args.programs.split(",")) - set(PROGRAMS):
        parser.error(f"--programs must name some of {PROGRAMS}, got {args.programs!r}")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    work = args.work or tempfile.mkdtemp(prefix="demo_compare-")
    results = {p: [] for p in programs}
    print(f"# {args.seeds} seeds per program, preset {args.preset}, data {args.data}, "
          f"hparams {args.hparams!r}, supervised {args.supervised_hparams!r}, fixmatch "
          f"{args.fixmatch_hparams!r}, work {work}", flush=True)
    print(HEADER, flush=True)
    for seed in seeds:
        for program in programs:
            m = run_one(program, data=args.data, model_dir=os.path.join(work, f"{program}-{seed}"),
                        preset=args.preset, seed=seed,
                        hparams=(args.hparams, getattr(args, f"{program}_hparams")))
            m["history"] = os.path.join(work, f"{program}-{seed}", "history.jsonl")
            results[program].append(m)
            print_row(program, seed, m)
    print_summary(programs, results)


HEADER = ("program     seed  top1(EMA)  top5   steps  train_s  wall_s  mask   pseudo  top")


def print_row(program, seed, m):
    """One run: EMA top-1/top-5, steps, training and process seconds; for FixMatch the last
    block's mask rate (mean weight), pseudo-label accuracy and top-class share."""
    extra = (f"  {m['mask_rate']:.3f}  {m['pseudo_label_accuracy'] or float('nan'):.3f}  "
             f"{m.get('pseudo_top_class_share') or float('nan'):.2f}"
             if program == "fixmatch" else "")
    wall = m.get("wall_s")
    print(f"{program:<10}  {seed:>4}  {100 * m['top1']:8.1f}  {100 * m['top5']:5.1f}  "
          f"{m['steps']:>5}  {m['train_time_s']:7.0f}  "
          f"{'-' if wall is None else format(wall, '6.0f'):>6}{extra}", flush=True)


def summarize(works):
    """The table of finished runs: every `<program>-<seed>/metrics.json` under `works`."""
    results = {p: [] for p in PROGRAMS}
    print(HEADER)
    for program in PROGRAMS:
        for work in works:
            names = [n for n in os.listdir(work) if n.startswith(f"{program}-")
                     and os.path.exists(os.path.join(work, n, "metrics.json"))]
            for name in sorted(names, key=lambda n: int(n.rsplit("-", 1)[1])):
                with open(os.path.join(work, name, "metrics.json")) as f:
                    m = json.load(f)
                m["history"] = os.path.join(work, name, "history.jsonl")
                results[program].append(m)
                print_row(program, int(name.rsplit("-", 1)[1]), m)
    programs = [p for p in PROGRAMS if results[p]]
    if not programs:
        sys.exit(f"no finished runs (<program>-<seed>/metrics.json) under {works}")
    print_summary(programs, results)


def print_summary(programs, results):
    for program in programs:
        print(f"{program}: top-1 {summary([m['top1'] for m in results[program]])} over "
              f"{len(results[program])} runs")
        print_mean_curve(program, [m["history"] for m in results[program]])
    if len(programs) == 2:
        diffs = [f["top1"] - s["top1"]
                 for s, f in zip(results["supervised"], results["fixmatch"])]
        print(f"fixmatch - supervised, same seed: {summary(diffs)}; FixMatch ahead in "
              f"{sum(d > 0 for d in diffs)} of {len(diffs)} seeds")


def print_mean_curve(program, history_files, every=500):
    """Mean over runs of EMA top-1 (and mask / pseudo-label accuracy) at every `every` steps
    and at the end, with the mean minutes of training up to that step."""
    runs = []
    for path in history_files:
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        minutes, points = 0.0, {}
        for row in rows:
            minutes += row["seconds"] / 60
            if row["step"] % every == 0 or row is rows[-1]:
                points[row["step"]] = (minutes, row["test"]["ema_accuracy"],
                                       row["train"].get("mask"),
                                       row["train"].get("pseudo_label_accuracy"))
        runs.append(points)
    steps = sorted(set.intersection(*(set(r) for r in runs)))
    cells = []
    for step in steps:
        values = list(zip(*(r[step] for r in runs)))
        cell = (f"{step}: {100 * statistics.mean(values[1]):.1f}"
                f" ({statistics.mean(values[0]):.1f} min)")
        if values[2][0] is not None:
            cell += f" mask {statistics.mean(values[2]):.2f}"
            pseudo = [v for v in values[3] if v is not None and math.isfinite(v)]
            cell += f" pseudo {statistics.mean(pseudo):.2f}" if pseudo else ""
        cells.append(cell)
    print(f"{program} mean curve (EMA top-1 %): " + " | ".join(cells))


if __name__ == "__main__":
    main()
