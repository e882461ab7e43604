"""Metric sums computed per replica and the ratios reported from them.

Every step/eval function returns a flat dict of SUMS (loss * count, correct
predictions, counts). Sums can be reduced across replicas and accumulated over
a block with one rule (add), which keeps the loop pure; ratios are taken once,
on the host, by `finalize`.
"""

import numpy as np
import tensorflow as tf


def topk_correct(labels, logits, k):
    """Number of examples whose label is among the top-k logits (float32)."""
    k = min(int(k), int(logits.shape[-1]))
    hit = tf.math.in_top_k(targets=tf.cast(labels, tf.int32),
                           predictions=tf.cast(logits, tf.float32), k=k)
    return tf.reduce_sum(tf.cast(hit, tf.float32))


def classification_sums(*, labels, logits, prefix=""):
    """Sums for accuracy/top-5 of one batch: {prefix+"correct", "correct_top5", "count"}."""
    return {
        f"{prefix}correct": topk_correct(labels, logits, 1),
        f"{prefix}correct_top5": topk_correct(labels, logits, 5),
    }


def zeros_like_sums(example: dict) -> dict:
    return {k: tf.zeros_like(v) for k, v in example.items()}


def add_sums(a: dict, b: dict) -> dict:
    return {k: a[k] + b[k] for k in a}


def safe_ratio(num, den) -> float:
    num, den = float(np.asarray(num)), float(np.asarray(den))
    return num / den if den > 0 else float("nan")


def finalize_train(sums: dict, *, num_steps) -> dict:
    """Block averages: losses per example, accuracy over the labeled batches."""
    out = {"loss": safe_ratio(sums["loss_sum"], sums["count"]),
           "accuracy": safe_ratio(sums["correct"], sums["count"])}
    for key, value in sums.items():  # e.g. xe, mask, threshold: means over the block
        if key.endswith("_sum") and key != "loss_sum":
            out[key[:-len("_sum")]] = safe_ratio(value, sums["count"])
    if "pseudo_masked" in sums:  # FixMatch: accuracy of the pseudo-labels that passed
        out["pseudo_label_accuracy"] = safe_ratio(sums["pseudo_correct"], sums["pseudo_masked"])
    if "pseudo_hist" in sums:  # balance: the most frequent pseudo-label class's share
        hist = np.asarray(sums["pseudo_hist"], dtype=np.float64)
        out["pseudo_top_class_share"] = safe_ratio(hist.max(), hist.sum())
    out["steps"] = int(num_steps)
    return out


def pseudo_label_text(train: dict) -> str:
    """The progress line's threshold and balance, e.g. `thr 0.62 [0.41-0.70] top 34%`: the
    threshold in force (block mean; min-max over classes when they differ) and the share of
    the most frequent pseudo-label class. Empty for programs without pseudo-labels."""
    parts = []
    if "threshold" in train:
        parts.append(f"thr {train['threshold']:.2f}")
        if train["threshold_max"] - train["threshold_min"] > 5e-3:
            parts.append(f"[{train['threshold_min']:.2f}-{train['threshold_max']:.2f}]")
    share = train.get("pseudo_top_class_share")
    if share is not None:
        parts.append(f"top {100.0 * share:.0f}%" if np.isfinite(share) else "top n/a")
    return " ".join(parts)


def finalize_eval(sums: dict) -> dict:
    """Top-1/top-5 of the online and EMA models and the online test loss."""
    n = sums["count"]
    return {
        "loss": safe_ratio(sums["loss_sum"], n),
        "accuracy": safe_ratio(sums["correct"], n),
        "accuracy_top5": safe_ratio(sums["correct_top5"], n),
        "ema_accuracy": safe_ratio(sums["ema_correct"], n),
        "ema_accuracy_top5": safe_ratio(sums["ema_correct_top5"], n),
        "count": int(float(np.asarray(n))),
    }
