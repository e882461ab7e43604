"""Curated mutation testing: does the suite fail on plausible one-line bugs?

    python bench/mutants.py                  # every mutant once, on a copy of HEAD
    python bench/mutants.py --repeat 3       # three runs each (flaky catches show up)
    python bench/mutants.py --only ema_rate,lr_batch --worktree   # the working tree's files
    python bench/mutants.py --list

Each mutant is (id, file, old line, new line, the tests expected to catch it). For each run the
tree is copied into a fresh temporary directory (never the checkout itself: other people run
tests there), the one line is replaced there, and the named tests run in that copy with this
interpreter (`python -m pytest -x`). A mutant is "caught" when pytest reports a failing test
(exit code 1), "MISSED" when the tests pass, and "error" for anything else (collection error,
timeout). A mutant whose old line is not found once in the file is "stale": the code moved on
and the list needs the new line. Why curated and not mutmut: a mutmut pass over the library
would run the suite thousands of times (10 minutes each on 2 cores); these are the bugs an
audit found plausible, each with the test that exists for it.
"""

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

Mutant = collections.namedtuple("Mutant", "id file old new tests what")

M = Mutant
MUTANTS = (
    # --- issue 22: the audit's bugs ------------------------------------------------------------
    M("lr_batch", "fixmatch/train/experiment.py",
      "learning_rate=schedule.schedule_from_hparams(hp, global_batch_size=plan.global_batch,",
      "learning_rate=schedule.schedule_from_hparams(hp, global_batch_size=plan.images_per_step,",
      ["tests/test_train_fixmatch_runs.py::"
       "test_logged_learning_rate_is_base_lr_times_the_labeled_batch_with_warmup_and_decay"],
      "lr scaled by labeled + unlabeled images instead of the labeled batch"),
    M("cta_online_probe", "fixmatch/train/cta_hooks.py",
      "model = probe_model if use_ema_probe or online_model is None else online_model",
      "model = online_model if online_model is not None else probe_model",
      ["tests/test_train_fixmatch_runs.py::test_cta_probes_are_scored_by_the_model_the_hparam_names"],
      "CTA probes always scored by the online model"),
    M("eval_online_weights", "fixmatch/evaluation.py",
      'part = {"ema_model" if used == "ema" else "model": model}',
      'part = {"model": model}',
      ["tests/test_evaluate_export.py::test_restored_weights_are_the_checkpoints_ema_tensors"],
      "evaluation restores the online weights instead of the EMA ones"),
    M("confusion_transposed", "fixmatch/train/steps.py",
      "labels, tf.argmax(ema_logits, axis=-1), num_classes=confusion_classes,",
      "tf.argmax(ema_logits, axis=-1), labels, num_classes=confusion_classes,",
      ["tests/test_evaluate_export.py::test_confusion_rows_are_true_labels_on_a_hand_built_model"],
      "confusion matrix transposed (rows = predictions)"),
    M("bn_biased_variance", "fixmatch/models/batch_norm.py",
      "bessel = count / ops.maximum(count - 1.0, 1.0)", "bessel = 1.0",
      ["tests/test_fidelity.py"], "BN moving variance from the biased batch variance (Keras 3)"),
    M("lr_decay_at_boundary", "fixmatch/train/schedule.py",
      "boundaries = ([float(b) * steps_per_epoch + 1e-6 for b in decay_epochs]",
      "boundaries = ([float(b) * steps_per_epoch - 1e-6 for b in decay_epochs]",
      ["tests/test_fidelity.py", "tests/test_train_schedule.py"],
      "list of lr boundaries decays at the boundary step (epoch >= b)"),
    # --- losses --------------------------------------------------------------------------------
    M("threshold_exclusive", "fixmatch/losses.py",
      "mask = tf.cast(tf.reduce_max(probs, axis=-1) >= confidence, tf.float32)",
      "mask = tf.cast(tf.reduce_max(probs, axis=-1) > confidence, tf.float32)",
      ["tests/test_fixmatch_loss.py"], "confidence threshold exclusive (> instead of >=)"),
    M("xe_sum", "fixmatch/losses.py",
      "xe = tf.reduce_mean(cross_entropy(labels, logits))",
      "xe = tf.reduce_sum(cross_entropy(labels, logits))",
      ["tests/test_losses.py"], "supervised cross-entropy summed over the batch, not averaged"),
    M("replica_scale", "fixmatch/losses.py",
      "return loss / tf.cast(num_replicas, loss.dtype)", "return loss",
      ["tests/test_fixmatch_loss.py", "tests/test_losses.py"],
      "loss not divided by the replica count (gradients summed over replicas)"),
    M("l2_half", "fixmatch/models/resnet.py",
      "return keras.regularizers.L2(self.weight_decay)",
      "return keras.regularizers.L2(self.weight_decay / 2)",
      ["tests/test_models.py"], "weight decay as tf.nn.l2_loss (sum w^2 / 2)"),
    # --- schedule ------------------------------------------------------------------------------
    M("lr_per_128", "fixmatch/train/schedule.py",
      "return base_lr * global_batch_size / 256.0", "return base_lr * global_batch_size / 128.0",
      ["tests/test_train_schedule.py"], "linear scaling rule per 128 images"),
    M("warmup_unnormalised", "fixmatch/train/schedule.py",
      "lr = tf.where(epoch < warmup_epochs, base * epoch / float(warmup_epochs), lr)",
      "lr = tf.where(epoch < warmup_epochs, base * epoch, lr)",
      ["tests/test_train_schedule.py"], "warm-up not divided by its length"),
    M("staircase_round", "fixmatch/train/schedule.py",
      "num_decays = tf.floor(epoch / float(decay_epochs))",
      "num_decays = tf.round(epoch / float(decay_epochs))",
      ["tests/test_train_schedule.py"], "staircase rounds instead of flooring"),
    M("total_steps_floor", "fixmatch/train/schedule.py",
      "steps = int(math.ceil(steps_per_epoch * num_epochs - 1e-6))",
      "steps = int(steps_per_epoch * num_epochs)",
      ["tests/test_train_schedule.py"], "total steps truncated instead of ceil"),
    # --- EMA -----------------------------------------------------------------------------------
    M("ema_rate", "fixmatch/train/ema.py", "rate = 1.0 - decay", "rate = decay",
      ["tests/test_train_ema.py"], "EMA moves by decay instead of 1 - decay"),
    M("ema_trainable_only", "fixmatch/train/steps.py",
      "ema_vars, online_vars = list(ema_model.variables), list(model.variables)",
      "ema_vars, online_vars = (list(ema_model.trainable_variables), "
      "list(model.trainable_variables))",
      ["tests/test_train_ema.py"], "EMA skips the BN moving statistics"),
    M("ema_no_copy", "fixmatch/train/ema.py", "t.assign(s.value)", "t.assign(t.value)",
      ["tests/test_train_ema.py"], "EMA model starts from its own random initialisation"),
    # --- augment level mapping -----------------------------------------------------------------
    M("cta_posterize_offset", "fixmatch/augment/registry.py",
      '("Posterize", _int_of(7.999, offset=1)),', '("Posterize", _int_of(7.999)),',
      ["tests/test_augment_ops.py"], "CTA Posterize keeps 0..7 bits instead of 1..8"),
    M("randaugment_no_sign", "fixmatch/augment/registry.py",
      "return (tf.where(flip, -value, value),)", "return (value,)",
      ["tests/test_augment_ops.py", "tests/test_randaugment.py"],
      "RandAugment geometric ops never negated"),
    M("randaugment_levels", "fixmatch/augment/randaugment.py",
      "levels = tf.cast(steps, tf.float32) / float(self.num_levels)",
      "levels = tf.cast(steps, tf.float32) / float(self.num_levels + 1)",
      ["tests/test_randaugment.py"], "RandAugment levels never reach 1"),
    # --- split selection -----------------------------------------------------------------------
    M("frac_round_down", "fixmatch/splitting/selection.py",
      "k = (Fraction(class_size) * Fraction(percent) / 100 + Fraction(1, 2)).__floor__()",
      "k = (Fraction(class_size) * Fraction(percent) / 100).__floor__()",
      ["tests/test_splitting.py"], "per-class labeled count rounded down"),
    M("frac_ignores_seed", "fixmatch/splitting/selection.py",
      "chosen = set(by_selection[:k])", "chosen = set(range(k))",
      ["tests/test_splitting.py"], "frac split takes the first k in record order (no seed)"),
    # --- cache ---------------------------------------------------------------------------------
    M("fp_drops_allow_missing", "pipeline/split_tasks.py",
      '"allow_missing": bool(self.allow_missing)}', '}',
      ["tests/test_fingerprints.py"], "PrepareSplits' fingerprint leaves out allow_missing"),
    M("manifest_before_copy", "pipeline/cache.py",
      "            fs.copy_tree(tmp_dir, out_dir)\n",
      "            write_text(join(out_dir, MANIFEST), manifest_text)\n"
      "            fs.copy_tree(tmp_dir, out_dir)\n",
      ["tests/test_publish.py::"
       "test_remote_publish_interrupted_partway_is_not_complete_and_is_redone"],
      "remote publish writes manifest.json before the copy"),
    M("fp_without_upstream", "pipeline/cache.py",
      '"params": self.significant_params(), "upstream": self.upstream_fingerprints(),',
      '"params": self.significant_params(), "upstream": None,',
      ["tests/test_cache.py"], "fingerprint ignores upstream outputs"),
    M("fp_insignificant_params", "pipeline/cache.py",
      'if param.significant and name != "root"}', 'if name != "root"}',
      ["tests/test_cache.py"], "worker counts and other insignificant params in the fingerprint"),
    # --- evaluation and export preprocessing ----------------------------------------------------
    M("export_ignores_scaling_hparam", "fixmatch/export.py",
      'inputs = steps.model_inputs({"image": pixels}, scale_and_center=scale)["image"]',
      'inputs = steps.model_inputs({"image": pixels}, scale_and_center=True)["image"]',
      ["tests/test_evaluate_export.py"], "export always scales to [-1, 1] (hparam ignored)"),
    M("center_crop_whole", "fixmatch/augment/weak.py",
      "CENTER_CROP_FRACTION = 0.875", "CENTER_CROP_FRACTION = 1.0",
      ["tests/test_weak.py"], "evaluation crop is the whole image, not 224/256"),
    M("png_bilinear", "fixmatch/augment/weak.py",
      "        resized = tf.image.resize(crop, [image_size, image_size],\n"
      "                                  method=tf.image.ResizeMethod.BICUBIC)\n"
      "        return tf.saturate_cast(resized, tf.uint8)",
      "        resized = tf.image.resize(crop, [image_size, image_size],\n"
      "                                  method=tf.image.ResizeMethod.BILINEAR)\n"
      "        return tf.saturate_cast(resized, tf.uint8)",
      ["tests/test_evaluate_export.py::"
       "test_served_png_gets_the_pixels_of_the_same_image_as_jpeg"],
      "served PNGs resized bilinearly (JPEGs bicubically)"),
    M("per_class_by_prediction", "fixmatch/evaluation.py",
      "per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)",
      "per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=0), 1)",
      ["tests/test_evaluate_export.py::test_confusion_rows_are_true_labels_on_a_hand_built_model"],
      "per-class accuracy divided by predicted counts"),
    M("top5_is_top3", "fixmatch/train/metrics.py",
      'f"{prefix}correct_top5": topk_correct(labels, logits, 5),',
      'f"{prefix}correct_top5": topk_correct(labels, logits, 3),',
      ["tests/test_evaluate_export.py::test_top5_counts_the_label_among_the_five_largest_logits"],
      "top-5 computed as top-3 (invisible with 3 classes)"),
)
del M


def copy_tree(dest, *, worktree):
    """The repository's files into `dest`: HEAD's (default) or the working tree's."""
    if worktree:
        names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                               check=True, capture_output=True).stdout.decode().split("\0")
        for name in filter(None, names):
            src = os.path.join(ROOT, name)
            if os.path.isfile(src):
                os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
                shutil.copy2(src, os.path.join(dest, name))
        return
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)


def apply(tree, mutant):
    """Replaces the mutant's old text (which must occur exactly once) in the copy."""
    path = os.path.join(tree, mutant.file)
    with open(path) as f:
        text = f.read()
    if text.count(mutant.old) != 1:
        return False
    with open(path, "w") as f:
        f.write(text.replace(mutant.old, mutant.new))
    return True


def run_one(mutant, *, worktree, timeout):
    """(verdict, seconds, last lines of pytest's output) of one run of one mutant."""
    start = time.time()
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.id}-") as tree:
        copy_tree(tree, worktree=worktree)
        if not apply(tree, mutant):
            return "stale", time.time() - start, f"old line not found once in {mutant.file}"
        # PYTHONPATH: the copy's packages win over the editable install's (the checkout), in
        # pytest and in every program a test starts.
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONDONTWRITEBYTECODE="1",
                   PYTHONPATH=tree)
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
               *mutant.tests]
        try:
            proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return "error", time.time() - start, f"timeout after {timeout} s"
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        verdict = {0: "MISSED", 1: "caught"}.get(proc.returncode, "error")
        return verdict, time.time() - start, tail


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated mutant ids (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per mutant")
    parser.add_argument("--worktree", action="store_true",
                        help="copy the working tree's files (uncommitted changes too), not HEAD")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per run")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    args = parser.parse_args()
    known = {m.id: m for m in MUTANTS}
    if args.only:
        unknown = [i for i in args.only.split(",") if i not in known]
        if unknown:
            parser.error(f"unknown mutant ids {unknown}; --list shows them")
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    chosen = [known[i] for i in args.only.split(",")] if args.only else list(MUTANTS)
    if args.list:
        for m in chosen:
            print(f"{m.id:<30} {m.file:<34} {m.what}")
        return 0
    results = {}
    for m in chosen:
        for run in range(1, args.repeat + 1):
            verdict, seconds, tail = run_one(m, worktree=args.worktree, timeout=args.timeout)
            results.setdefault(m.id, []).append(verdict)
            print(f"{m.id:<30} run {run}: {verdict:<7} {seconds:6.0f} s  ({m.what})",
                  flush=True)
            if verdict != "caught":
                print("    " + tail.replace("\n", "\n    "), flush=True)
    print("\nsummary (tests run in a copy of " + ("the working tree" if args.worktree
                                                   else "HEAD") + ")")
    for m in chosen:
        verdicts = results[m.id]
        print(f"{m.id:<30} {verdicts.count('caught')}/{len(verdicts)} caught  "
              f"{' '.join(m.tests)}")
    return 0 if all(v == "caught" for vs in results.values() for v in vs) else 1


if __name__ == "__main__":
    sys.exit(main())
