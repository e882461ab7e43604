"""Install fixmatch-pipeline: `pip install -e '.[test]'` (add `dataflow` for Google Cloud).

The same file is the `--setup_file` that Dataflow workers install from, so the
split lists must travel as package data (see MANIFEST.in).
"""

from setuptools import find_packages, setup

setup(
    name="fixmatch-pipeline",
    version="0.1.0",
    description="FixMatch semi-supervised ImageNet training as a pipeline of cached stages",
    python_requires=">=3.10",
    packages=find_packages(include=["fixmatch", "fixmatch.*", "stages", "stages.*",
                                    "pipeline", "pipeline.*"]),
    package_data={"fixmatch.split_lists": ["data/*/*.txt"]},
    include_package_data=True,
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.0,<4",
        "apache-beam[tfrecord]>=2.60,<3",
        "google-crc32c>=1.5",
        "luigi>=3.5,<4",
        "absl-py>=2.0",
        "pillow>=10.0",
        "numpy>=1.26",
        # TensorFlow 2.21 no longer installs TensorBoard: `tensorboard --logdir runs` and its
        # event loader (tests) need it.
        "tensorboard>=2.20",
        "matplotlib>=3.7",  # the report's plot and the confusion matrix (headless Agg backend)
    ],
    extras_require={
        # The Dataflow client too: a test builds the split job for DataflowRunner (dry run).
        "test": ["pytest>=8", "build>=1.0", "apache-beam[gcp]>=2.60,<3"],
        "dataflow": ["apache-beam[gcp]>=2.60,<3"],
    },
)
