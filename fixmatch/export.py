"""A trained model as a SavedModel that classifies encoded images, and the loader of one.

The serving signature takes a batch of encoded images (JPEG, PNG, GIF, BMP; any size, grayscale,
RGB or with alpha) as strings and does the evaluation preprocessing inside the graph
(weak.center_from_image: for JPEGs exactly the validation pipeline's path), so a client sends
file bytes and nothing else. Outputs: `probabilities` [N, C], `top5_indices`, `top5_classes`
(names from the split's classes.txt) and `top5_probabilities`, each [N, min(5, C)].
"""

import keras
import tensorflow as tf

from fixmatch.augment import weak
from fixmatch.train import steps

SIGNATURE = "serving_default"
INPUT_NAME = "images"


def export_saved_model(model, *, hp: dict, classes, path: str) -> dict:
    """Writes the SavedModel of `model` to `path`; returns a description of its signature."""
    image_size = hp["input"]["image_size"]
    scale = hp["input"]["scale_and_center"]
    class_names = tf.constant(list(classes))
    k = min(5, len(classes))

    def preprocess(encoded):
        return weak.center_from_image(encoded, image_size=image_size)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)])
    def serve(images):
        pixels = tf.map_fn(preprocess, images, fn_output_signature=tf.TensorSpec(
            [image_size, image_size, 3], tf.uint8))
        inputs = steps.model_inputs({"image": pixels}, scale_and_center=scale)["image"]
        probs = tf.nn.softmax(tf.cast(model(inputs, training=False), tf.float32))
        top = tf.math.top_k(probs, k=k)
        return {"probabilities": probs, "top5_indices": top.indices,
                "top5_classes": tf.gather(class_names, top.indices),
                "top5_probabilities": top.values}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, serve)
    archive.write_out(path, verbose=False)
    return {"signature": SIGNATURE, "input": f"{INPUT_NAME}: string [N] (encoded image bytes)",
            "outputs": {"probabilities": f"float32 [N, {len(classes)}]",
                        "top5_indices": f"int32 [N, {k}]", "top5_classes": f"string [N, {k}]",
                        "top5_probabilities": f"float32 [N, {k}]"},
            "image_size": image_size, "num_classes": len(classes)}


def load_classifier(path: str):
    """fn(list of encoded images) -> dict of numpy outputs, from an exported SavedModel."""
    loaded = tf.saved_model.load(path)
    if SIGNATURE not in loaded.signatures:
        raise ValueError(f"{path} has no {SIGNATURE!r} signature; is it an export of this "
                         "project (python -m stages.export)?")
    serve = loaded.signatures[SIGNATURE]

    def classify(encoded_images):
        out = serve(**{INPUT_NAME: tf.constant(list(encoded_images), tf.string)})
        return {name: value.numpy() for name, value in out.items()}

    classify.saved_model = loaded  # keeps the variables alive
    return classify
