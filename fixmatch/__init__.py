"""FixMatch for ImageNet: the library (data, augmentation, models, training, export).

The library never reads command-line flags and never touches Luigi; stages/ and
pipeline/ sit on top of it.
"""

__version__ = "0.1.0"
