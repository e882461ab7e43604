"""Do labels matter on the demo data? Linear softmax on raw pixels vs a small CNN.

    python bench/demo_difficulty.py                      # generates the default set in a temp dir
    python bench/demo_difficulty.py --data /tmp/demo     # or uses an existing image folder

Both models train on 10% of the training labels (stratified, seeded) and on all of them, and
the validation top-1 of each is printed with the CNN - linear gap. The demo set is meant to
sit where semi-supervised learning is worth showing: linear far below the CNN (no pixel
template or colour statistic gives the class away), the CNN good with all labels, and clearly
short of that with 10%. Both models get the same number of optimizer steps in each regime.
CPU only; a few minutes on one core.
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def load_split(root, split):
    """(images uint8 [N, H, W, 3], labels int [N], class names) of an image-folder split."""
    classes = sorted(d for d in os.listdir(os.path.join(root, split))
                     if os.path.isdir(os.path.join(root, split, d)))
    images, labels = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, split, name)
        for fname in sorted(os.listdir(folder)):
            with Image.open(os.path.join(folder, fname)) as im:
                images.append(np.asarray(im.convert("RGB")))
            labels.append(label)
    return np.stack(images), np.asarray(labels), classes


def stratified_subset(labels, fraction, seed):
    """Indices of `fraction` of each class, chosen by a seeded permutation."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.extend(rng.permutation(idx)[:max(1, int(round(fraction * len(idx))))])
    return np.sort(np.asarray(keep))


def linear_model(keras, input_dim, num_classes):
    return keras.Sequential([keras.Input((input_dim,)),
                             keras.layers.Dense(num_classes, kernel_regularizer=keras.regularizers.l2(1e-4))])


def small_cnn(keras, size, num_classes):
    """Three conv blocks (32-64-128) + global pooling: the size the demo preset trains on CPU."""
    layers = keras.layers
    x = inputs = keras.Input((size, size, 3))
    x = layers.RandomFlip("horizontal_and_vertical")(x)
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(x)
    for width in (32, 64, 128):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(128, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes)(x))


def fit_and_score(keras, tf, model, x, y, xv, yv, *, steps, batch, lr, seed):
    """Train for exactly `steps` steps with Adam + cosine decay; return validation top-1."""
    ds = (tf.data.Dataset.from_tensor_slices((x, y)).repeat()
          .shuffle(min(len(x), 4096), seed=seed).batch(batch))
    schedule = keras.optimizers.schedules.CosineDecay(lr, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    epochs = 10
    model.fit(ds, epochs=epochs, steps_per_epoch=max(1, steps // epochs), verbose=0)
    return float(model.evaluate(xv, yv, batch_size=256, verbose=0)[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="existing image folder (train/, val/); default: generate")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed")
    parser.add_argument("--fraction", type=float, default=0.1, help="label fraction of the small regime")
    parser.add_argument("--cnn_size", type=int, default=32,
                        help="CNN input side in pixels (32 = the demo training preset)")
    parser.add_argument("--cnn_steps", type=int, default=1500, help="optimizer steps per CNN run")
    parser.add_argument("--linear_steps", type=int, default=2000, help="optimizer steps per linear run")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    tmp = None
    data = args.data
    if data is None:
        from stages import demo_data
        tmp = tempfile.TemporaryDirectory(prefix="demo_difficulty_")
        data = os.path.join(tmp.name, "demo")
        t0 = time.monotonic()
        demo_data.run(out_dir=data, seed=args.seed)
        print(f"generated default demo set in {time.monotonic() - t0:.1f} s")

    import keras
    import tensorflow as tf
    x, y, classes = load_split(data, "train")
    xv, yv, val_classes = load_split(data, "val")
    assert classes == val_classes, (classes, val_classes)
    print(f"data: {len(x)} train / {len(xv)} val images, {x.shape[1]} px, {len(classes)} classes")

    flat = x.reshape(len(x), -1).astype(np.float32)
    mean, std = flat.mean(0), flat.std(0) + 1e-3
    flat = (flat - mean) / std
    flat_v = (xv.reshape(len(xv), -1).astype(np.float32) - mean) / std
    cnn_x = tf.image.resize(x, (args.cnn_size,) * 2).numpy() if args.cnn_size != x.shape[1] else x
    cnn_xv = tf.image.resize(xv, (args.cnn_size,) * 2).numpy() if args.cnn_size != x.shape[1] else xv
    cnn_x, cnn_xv = cnn_x.astype(np.float32), cnn_xv.astype(np.float32)

    rows = []
    for fraction in (args.fraction, 1.0):
        idx = stratified_subset(y, fraction, args.seed) if fraction < 1 else np.arange(len(y))
        keras.utils.set_random_seed(args.seed)
        t0 = time.monotonic()
        lin = fit_and_score(keras, tf, linear_model(keras, flat.shape[1], len(classes)),
                            flat[idx], y[idx], flat_v, yv, steps=args.linear_steps,
                            batch=args.batch, lr=1e-3, seed=args.seed)
        t_lin = time.monotonic() - t0
        keras.utils.set_random_seed(args.seed)
        t0 = time.monotonic()
        cnn = fit_and_score(keras, tf, small_cnn(keras, args.cnn_size, len(classes)),
                            cnn_x[idx], y[idx], cnn_xv, yv, steps=args.cnn_steps,
                            batch=args.batch, lr=2e-3, seed=args.seed)
        t_cnn = time.monotonic() - t0
        rows.append((fraction, len(idx), lin, cnn, t_lin, t_cnn))
        print(f"  labels {fraction:.0%}: linear {lin:.3f} ({t_lin:.0f} s), "
              f"cnn {cnn:.3f} ({t_cnn:.0f} s)", flush=True)

    print(f"\nval top-1 (chance {1 / len(classes):.3f}), {args.cnn_steps} CNN / "
          f"{args.linear_steps} linear steps, batch {args.batch}")
    print(f"{'labels':>8} {'n':>6} {'linear':>8} {'cnn':>8} {'gap':>8}")
    for fraction, n, lin, cnn, _, _ in rows:
        print(f"{fraction:>8.0%} {n:>6d} {lin:>8.3f} {cnn:>8.3f} {cnn - lin:>+8.3f}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
