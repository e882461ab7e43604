"""The whole chain rehearsed on an ImageNet-shaped input: wall time, CPU time and peak memory
of every stage, at a chosen fraction of ImageNet's size.

    python bench/scale.py --fraction 0.01 --work /data/scale     # 13k files, minutes
    python bench/scale.py --fraction 0.1 --work /data/scale      # 133k files
    python bench/scale.py --fraction 1 --work /data/scale        # 1.33M files (~6 GB tree)

The input is bench/imagenet_tree.py's tree (1,000 synset folders; real ImageNet train names
of the shipped split lists completed with generated ones; the real 50,000 validation names;
tiny 32x32 JPEGs, so building is fast and the costs that grow with the number of files show).
Each stage runs as its own `luigi --module pipeline ... --local-scheduler` command (as a user
runs it), on one cache root per fraction, in this order:

  fingerprint       the input listing every `luigi` command computes (pipeline/data_tasks.py)
  split <name>      PrepareSplits for simclr_1pct, simclr_10pct and fixmatch_10pct.1
                    (--allow_missing below full size: a subset lacks some listed names)
  train <program>   a few steps of each training with the `imagenet` preset at 224 px
                    (ResNet-50, uratio 5; --batch per worker; bfloat16 as the preset says;
                    its end-of-run evaluation capped by run.eval_examples, --train_eval)
  evaluate/export/report  on the whole validation set, as FullRun does
  rerun ...         a no-change rerun of FullRun and of Evaluate alone (what a user waits
                    for before anything happens)

Columns: wall s, CPU s (user + system of the whole process tree), peak RSS in MiB of the
`luigi` process and of the whole tree (Beam's worker processes, the local scheduler).
`--json FILE` appends the rows; docs/scale.md holds the measured tables. The first line names
the CPU and the oneDNN setting (bench/machine.py); say how loaded the machine was.
"""

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench import imagenet_tree, machine, procs  # noqa: E402

SPLITS = ("simclr_1pct", "simclr_10pct", "fixmatch_10pct.1")
TRAIN_SPLIT = "fixmatch_10pct.1"  # the chain's split: the reference's first 10% fold


def chain_flags(args, data, root):
    """FullRun's flags for this rehearsal; every single-stage command takes the same ones."""
    hparams = {"run": {"max_steps": args.steps, "steps_per_run": args.steps,
                       "per_worker_batch_size": args.batch,
                       "per_worker_eval_batch_size": args.eval_batch,
                       "eval_examples": args.train_eval}}
    flags = ["--root", root, "--data-dir", data, "--split", TRAIN_SPLIT, "--preset", "imagenet",
             "--hparams", json.dumps(hparams)]
    return flags + (["--allow-missing"] if args.fraction < 1 else [])


# The reference's FixMatch recipe names its strong augmentation (the preset keeps the
# reference's default, noop, which FixMatch refuses); tasks of the FixMatch run take this flag.
FIXMATCH_FLAGS = ["--fixmatch-hparams", json.dumps({"augment": {"type": "randaugment"}})]


def stages(args, data, root):
    """(name, command, what it handles) in the order a FullRun would meet them."""
    luigi = [sys.executable, "-m", "luigi", "--module", "pipeline"]
    chain = chain_flags(args, data, root)
    missing = ["--allow-missing"] if args.fraction < 1 else []
    out = [("fingerprint", [sys.executable, "-c", "import sys; from pipeline import data_tasks; "
                            "print(data_tasks.listing_fingerprint(sys.argv[1]))", data], "")]
    for split in SPLITS:
        out.append((f"split {split}", luigi + ["PrepareSplits", "--local-scheduler", "--root",
                                               root, "--data-dir", data, "--split", split]
                    + missing, "Beam, local runner"))
    fixmatch = chain + FIXMATCH_FLAGS
    out.append(("train supervised", luigi + ["TrainSupervised", "--local-scheduler"] + chain,
                f"{args.steps} steps, batch {args.batch}/worker"))
    out.append(("train fixmatch", luigi + ["TrainFixMatch", "--local-scheduler"] + fixmatch,
                f"{args.steps} steps, batch {args.batch}+{5 * args.batch}x2/worker"))
    out.append(("evaluate supervised", luigi + ["EvaluateSupervised", "--local-scheduler"]
                + chain, "whole validation set"))
    out.append(("evaluate fixmatch", luigi + ["EvaluateFixMatch", "--local-scheduler"]
                + fixmatch, "whole validation set"))
    out.append(("export fixmatch", luigi + ["ExportFixMatch", "--local-scheduler"] + fixmatch, ""))
    out.append(("report", luigi + ["Report", "--local-scheduler"] + fixmatch, ""))
    out.append(("rerun FullRun", luigi + ["FullRun", "--local-scheduler"] + fixmatch,
                "no change"))
    out.append(("rerun Evaluate", luigi + ["EvaluateFixMatch", "--local-scheduler"] + fixmatch,
                "no change"))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fraction", type=float, default=0.01,
                        help="share of ImageNet's 1,281,167 + 50,000 images (0 < f <= 1)")
    parser.add_argument("--work", required=True, help="holds the trees (inet-<f>/, reused) "
                        "and the cache roots (runs-<f>/, reused: delete it to measure again)")
    parser.add_argument("--steps", type=int, default=2, help="training steps of each program")
    parser.add_argument("--batch", type=int, default=2, help="labeled images per step and "
                        "worker (FixMatch adds uratio 5 x as many unlabeled, two views each)")
    parser.add_argument("--eval_batch", type=int, default=64, help="evaluation batch")
    parser.add_argument("--train_eval", type=int, default=256, help="validation images of the "
                        "trainings' own end-of-run evaluation (run.eval_examples)")
    parser.add_argument("--only", default="", help="comma-separated stage names to run "
                        "(default all), e.g. 'fingerprint,rerun FullRun'")
    parser.add_argument("--json", default="", help="append the rows to this JSON-lines file")
    args = parser.parse_args(argv)
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction must be in (0, 1], got {args.fraction}")
    data = os.path.join(args.work, f"inet-{args.fraction:g}")
    root = os.path.join(args.work, f"runs-{args.fraction:g}")
    print(machine.header(), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at start",
          flush=True)
    start = time.perf_counter()
    counts = imagenet_tree.build(data, args.fraction)
    print(f"tree {data}: {counts} ({time.perf_counter() - start:.0f} s)", flush=True)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    env = dict(os.environ, PYTHONPATH=REPO)
    print(f"\n{'stage':<26} {'wall s':>8} {'CPU s':>8} {'RSS MiB':>8} {'tree MiB':>8}  note",
          flush=True)
    for name, cmd, note in stages(args, data, root):
        if only and name not in only:
            continue
        run = procs.run_measured(cmd, cwd=REPO, env=env)
        print(f"{name:<26} {run['wall']:8.1f} {run['cpu']:8.1f} {run['rss_main']:8.0f} "
              f"{run['rss_tree']:8.0f}  {note}", flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps({"fraction": args.fraction, "stage": name,
                                    "files": counts["train"] + counts["val"], "note": note,
                                    "load": os.getloadavg()[0],
                                    **{k: run[k] for k in ("wall", "cpu", "rss_main",
                                                           "rss_tree", "returncode")}}) + "\n")
        if run["returncode"]:
            sys.exit(f"stage {name!r} failed (exit {run['returncode']}):\n"
                     f"{' '.join(cmd)}\n{run['stderr'][-4000:]}")


if __name__ == "__main__":
    main()
