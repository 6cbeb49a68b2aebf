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
* ``"standin10"`` -- real data that ships offline: scikit-learn's handwritten
  digits (1797 images of 8x8 pixels, 10 classes), upsampled bilinearly to
  32x32, replicated to 3 channels, standardised, split 80/20 per class with a
  fixed seed.
* ``"standin100"`` -- **synthetic**: no real 100-class 3x32x32 data ships with an
  installed package, so this is a seeded, learnable generator with CIFAR100's
  shape (20 super-classes x 5 classes): noisy coloured gratings whose
  orientation and frequency encode the super-class and whose two colours
  encode the class, with random phase (translation), jitter, a smooth nuisance
  field and pixel noise.  Classes of one super-class resemble each other, so a
  small CNN learns it well above chance (1 %) but not perfectly.  It is **not**
  natural images: captions must say so.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validation import check_choice, check_int, check_positive

__all__ = [
    "NETWORKS",
    "DATASETS",
    "SCALES",
    "QUICK_WIDTH",
    "build_model",
    "classifier_layer",
    "feature_extractor",
    "PenultimateFeatures",
    "imagenet_weights_path",
    "load_dataset",
    "dataset_num_classes",
    "default_data_root",
    "TensorImageDataset",
]

NETWORKS = ("alexnet", "vgg16", "resnet50")
DATASETS = ("cifar10", "cifar100", "standin10", "standin100")
SCALES = ("quick", "paper")

#: Default width factor per network at quick scale (channels are multiplied by it).
QUICK_WIDTH = {"alexnet": 0.125, "vgg16": 0.125, "resnet50": 0.125}

_NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "standin10": 10, "standin100": 100}

# Statistics used by the reference transforms (ImageNet, because the networks are ImageNet-pretrained).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Per-channel statistics of the CIFAR training sets (used at quick scale, trained from scratch).
CIFAR_MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
CIFAR_STD = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}


# --------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------
def _ch(channels: int, width: float) -> int:
    """Channel count ``channels * width`` rounded, at least 4."""
    return max(4, int(round(channels * width)))


def _torchvision_weights(name: str):
    import torchvision.models as tvm

    # The legacy ``pretrained=True`` that the reference code uses maps to IMAGENET1K_V1 for all three.
    return {
        "alexnet": tvm.AlexNet_Weights.IMAGENET1K_V1,
        "vgg16": tvm.VGG16_Weights.IMAGENET1K_V1,
        "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V1,
    }[name]


def imagenet_weights_path(name: str) -> Path:
    """Where torch's hub cache keeps the ImageNet weights of ``name``.

    ``<torch.hub.get_dir()>/checkpoints/<file name of the weights URL>``, e.g.
    ``~/.cache/torch/hub/checkpoints/alexnet-owt-7be5be79.pth`` (``$TORCH_HOME``
    moves it).
    """
    check_choice(name, "network", NETWORKS)
    url = _torchvision_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _load_imagenet_weights(model: nn.Module, name: str, allow_download: bool) -> None:
    enum = _torchvision_weights(name)
    path = imagenet_weights_path(name)
    if not path.exists() and not allow_download:
        raise FileNotFoundError(
            f"ImageNet weights for {name} not found: expected the file {path} (torch hub cache, "
            f"set by $TORCH_HOME). Fix: pass allow_download=True to download {enum.url} once, or copy "
            f"that file to {path}, or use weights=None to train from scratch."
        )
    state = enum.get_state_dict(progress=False, check_hash=True)
    model.load_state_dict(state)


def _quick_resnet(num_classes: int, width: float, layers: Sequence[int]) -> nn.Module:
    from torchvision.models.resnet import Bottleneck, ResNet

    class SmallInputResNet(ResNet):
        """torchvision ``ResNet`` (Bottleneck blocks) narrowed by ``width``, stem for 32 px input.

        Uses torchvision's ``_make_layer``, ``Bottleneck`` and ``forward`` unchanged; only the
        channel counts (``64 * width`` ... ``512 * width`` planes) and the stem (3x3 convolution,
        stride 1, no max-pool) differ from ``torchvision.models.resnet50``.
        """

        def __init__(self) -> None:
            nn.Module.__init__(self)
            norm = nn.BatchNorm2d
            self._norm_layer = norm
            self.inplanes = _ch(64, width)
            self.dilation = 1
            self.groups = 1
            self.base_width = 64
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
            self.bn1 = norm(self.inplanes)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.Identity()
            self.layer1 = self._make_layer(Bottleneck, _ch(64, width), layers[0])
            self.layer2 = self._make_layer(Bottleneck, _ch(128, width), layers[1], stride=2)
            self.layer3 = self._make_layer(Bottleneck, _ch(256, width), layers[2], stride=2)
            self.layer4 = self._make_layer(Bottleneck, _ch(512, width), layers[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(_ch(512, width) * Bottleneck.expansion, num_classes)
            for m in self.modules():  # torchvision's initialisation
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

    return SmallInputResNet()


def _quick_vgg16(num_classes: int, width: float, batch_norm: bool, dropout: float) -> nn.Module:
    from torchvision.models.vgg import VGG, cfgs, make_layers

    cfg = [v if v == "M" else _ch(int(v), width) for v in cfgs["D"]]  # "D" = VGG16
    # Construct the VGG shell on the meta device (its 25088x4096 classifier would cost seconds
    # to initialise) and give it real, narrowed parts.
    with torch.device("meta"):
        model = VGG(nn.Sequential(), num_classes=num_classes, init_weights=False, dropout=dropout)
    model.features = make_layers(cfg, batch_norm=batch_norm)
    for m in model.features.modules():  # torchvision VGG's initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    # 32 px -> five max-pools -> 1x1: pool globally instead of replicating to 7x7.
    model.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    hidden = _ch(4096, width)
    last_conv = cfg[-2]
    model.classifier = nn.Sequential(
        nn.Linear(last_conv, hidden),
        nn.ReLU(True),
        nn.Dropout(p=dropout),
        nn.Linear(hidden, hidden),
        nn.ReLU(True),
        nn.Dropout(p=dropout),
        nn.Linear(hidden, num_classes),
    )
    # The classifier keeps PyTorch's default Linear initialisation (as AlexNet does): torchvision
    # VGG's N(0, 0.01) shrinks the signal by ~0.2 per 512-wide layer, and the narrow net then
    # stays at chance on 100 classes for many epochs.
    return model


def _quick_alexnet(num_classes: int, width: float, dropout: float) -> nn.Module:
    from torchvision.models.alexnet import AlexNet

    with torch.device("meta"):  # shell only: every part is replaced below by a real, narrowed one
        model = AlexNet(num_classes=num_classes, dropout=dropout)
    c1, c2, c3, c4, c5 = (_ch(c, width) for c in (64, 192, 384, 256, 256))
    # AlexNet's five convolutions and three max-pools; first convolution 5x5 stride 1 for 32 px
    # (torchvision: 11x11 stride 4 for 224 px). 32 -> 15 -> 7 -> 3.
    model.features = nn.Sequential(
        nn.Conv2d(3, c1, kernel_size=5, stride=1, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(c1, c2, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(c2, c3, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c3, c4, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c4, c5, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )
    model.avgpool = nn.AdaptiveAvgPool2d((3, 3))
    hidden = _ch(4096, width)
    model.classifier = nn.Sequential(
        nn.Dropout(p=dropout),
        nn.Linear(c5 * 3 * 3, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )
    # He initialisation (AlexNet has no BatchNorm): with PyTorch's default (variance 1/(3 fan_in))
    # the signal shrinks ~2.4x per layer and the narrow net needs many epochs to leave chance level.
    # As in Krizhevsky et al. (2012), the biases of convolutions 2, 4, 5 and of the hidden linear
    # layers start positive (0.1 here, 1 there) so that few narrow ReLU layers start dead: with
    # zero biases some seeds stay below 40 % on the digits for 8 epochs.
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    for m in (convs[1], convs[3], convs[4], model.classifier[1], model.classifier[4]):
        nn.init.constant_(m.bias, 0.1)
    # Small output layer (N(0, 0.01), as torchvision's VGG): with He-initialised logits the
    # 100-class training stayed at chance for some seeds; with this, 4 of 4 seeds reach 92-97 %
    # on standin100 in 12 epochs.
    nn.init.normal_(model.classifier[6].weight, 0.0, 0.01)
    nn.init.zeros_(model.classifier[6].bias)
    return model


def build_model(
    name: str,
    num_classes: int,
    scale: str = "quick",
    weights: Optional[str] = None,
    width: Optional[float] = None,
    *,
    allow_download: bool = False,
    seed: Optional[int] = None,
    resnet_layers: Sequence[int] = (1, 1, 1, 1),
    vgg_batch_norm: bool = True,
    dropout: Optional[float] = None,
) -> nn.Module:
    """Build one of the paper's three networks with a ``num_classes``-way head.

    Parameters
    ----------
    name : {"alexnet", "vgg16", "resnet50"}
    num_classes : int
        Output size ``C`` of the last layer (``Linear(F, C)``; ``F`` = 4096 for
        AlexNet/VGG16 and 2048 for ResNet50 at paper scale, ``F * width``-ish at quick scale).
    scale : {"quick", "paper"}
        ``"paper"``: torchvision's model, head replaced, 224 px input.
        ``"quick"``: same architecture narrowed by ``width`` with a 32 px stem.
    weights : None or "imagenet"
        ``"imagenet"`` (paper scale only) loads torchvision's ``IMAGENET1K_V1``
        weights from ``torch.hub.get_dir()/checkpoints`` before the head is
        replaced; if the file is missing and ``allow_download`` is false a
        ``FileNotFoundError`` names the expected path.
    width : float, optional
        Channel multiplier at quick scale (default :data:`QUICK_WIDTH`); must be
        ``None`` or 1 at paper scale.
    allow_download : bool
        Permit torchvision to download missing ImageNet weights.
    seed : int, optional
        Seed for the random initialisation (the global RNG state is restored afterwards).
    resnet_layers : sequence of 4 ints
        Bottleneck blocks per stage of the quick ResNet50 (paper scale: (3, 4, 6, 3)).
    vgg_batch_norm : bool
        Quick VGG16 with BatchNorm after each convolution (trains from scratch in
        seconds; the paper-scale VGG16 has none, as in the reference).
    dropout : float, optional
        Dropout probability of the AlexNet/VGG16 classifiers (default 0.5 at paper
        scale as in torchvision, 0.0 at quick scale: with 512-unit hidden layers and a
        few epochs on small data, dropout 0.5 keeps the narrow AlexNet at chance).

    Returns
    -------
    torch.nn.Module
        Input ``(N, 3, H, W)`` with ``H = W = 224`` (paper) or 32 (quick); output ``(N, C)`` logits.
    """
    check_choice(name, "network", NETWORKS)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    check_choice(scale, "scale", SCALES)
    if weights is not None:
        check_choice(weights, "weights", ("imagenet",))
        if scale != "paper":
            raise ValueError("weights='imagenet' needs scale='paper' (the quick networks are narrowed and "
                             "have no pretrained weights); use weights=None at quick scale")
    if scale == "paper":
        if width not in (None, 1, 1.0):
            raise ValueError(f"width applies to scale='quick' only; got width={width!r} with scale='paper'")
    else:
        width = QUICK_WIDTH[name] if width is None else check_positive(width, "width")
        if len(tuple(resnet_layers)) != 4:
            raise ValueError(f"resnet_layers must have 4 entries; got {tuple(resnet_layers)}")
        resnet_layers = tuple(check_int(b, "resnet_layers[i]", minimum=1) for b in resnet_layers)
    if dropout is None:
        dropout = 0.5 if scale == "paper" else 0.0
    else:
        dropout = float(dropout)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1); got {dropout!r}")

    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(check_int(seed, "seed", minimum=0))
        if scale == "paper":
            import torchvision.models as tvm

            ctor = {"alexnet": tvm.alexnet, "vgg16": tvm.vgg16, "resnet50": tvm.resnet50}[name]
            model = ctor(weights=None) if name == "resnet50" else ctor(weights=None, dropout=dropout)
            if weights == "imagenet":
                _load_imagenet_weights(model, name, allow_download)
            if name == "resnet50":
                model.fc = nn.Linear(model.fc.in_features, num_classes)
            else:
                model.classifier[6] = nn.Linear(model.classifier[6].in_features, num_classes)
        elif name == "resnet50":
            model = _quick_resnet(num_classes, width, resnet_layers)
        elif name == "vgg16":
            model = _quick_vgg16(num_classes, width, vgg_batch_norm, dropout)
        else:
            model = _quick_alexnet(num_classes, width, dropout)
    if any(t.is_meta for t in list(model.parameters()) + list(model.buffers())):  # pragma: no cover
        raise RuntimeError("internal error: a part of the quick model was left on the meta device")
    model.latentkit_info = {"name": name, "scale": scale, "num_classes": num_classes, "width": width,
                            "weights": weights, "input_size": 224 if scale == "paper" else 32}
    return model


def classifier_layer(model: nn.Module) -> "tuple[str, nn.Linear]":
    """The last classifier layer ``(qualified name, module)``: the layer the paper prunes.

    ``"classifier.6"`` for AlexNet/VGG16, ``"fc"`` for ResNet50 (both scales); for any
    other module, the last ``nn.Linear`` in ``named_modules()`` order.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Module``.
    ValueError
        If it contains no ``nn.Linear``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    for name in ("fc", "classifier.6"):
        try:
            mod = model.get_submodule(name)
        except AttributeError:
            continue
        if isinstance(mod, nn.Linear):
            return name, mod
    last = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            last = (name, mod)
    if last is None:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer")
    return last


class _StopForward(Exception):
    pass


class PenultimateFeatures(nn.Module):
    """``x -> features`` with ``model(x) == classifier(features)`` (the classifier's input).

    Runs ``model`` and captures the input of its :func:`classifier_layer` with a
    forward pre-hook, stopping before the classifier runs; it works for any
    network and keeps whatever mode (train/eval) and parametrisation (pruning
    masks elsewhere) the model has.  Shape ``(N, F)``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.layer_name, self.layer = classifier_layer(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        captured: "list[torch.Tensor]" = []

        def hook(module: nn.Module, args: Any) -> None:
            captured.append(args[0])
            raise _StopForward

        handle = self.layer.register_forward_pre_hook(hook)
        try:
            self.model(x)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"the classifier layer {self.layer_name!r} was not called by the forward pass")
        return captured[0]


def feature_extractor(model: nn.Module) -> PenultimateFeatures:
    """The backbone of ``model`` up to its penultimate features (see :class:`PenultimateFeatures`).

    ``feature_extractor(m)(x) @ W.T + b == m(x)`` where ``(W, b)`` is :func:`classifier_layer`.
    The extractor shares parameters with ``model`` (no copy).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    return PenultimateFeatures(model)


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
class TensorImageDataset(torch.utils.data.TensorDataset):
    """``TensorDataset(images (N, 3, H, W) float32, labels (N,) int64)`` with metadata.

    Attributes: ``images``, ``targets``, ``classes`` (names), ``num_classes``, ``name``,
    ``split``, ``synthetic`` (bool) and ``description`` (a sentence for figure captions).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, classes: Sequence[str], name: str,
                 split: str, synthetic: bool, description: str) -> None:
        super().__init__(images, labels)
        self.images = images
        self.targets = labels
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.name = name
        self.split = split
        self.synthetic = synthetic
        self.description = description

    def __repr__(self) -> str:
        return (f"TensorImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"shape={tuple(self.images.shape[1:])}, classes={self.num_classes}, synthetic={self.synthetic})")


def default_data_root() -> Path:
    """``$LATENTKIT_DATA`` if set, else ``~/.cache/latentkit/data``."""
    return Path(os.environ.get("LATENTKIT_DATA", Path.home() / ".cache" / "latentkit" / "data")).expanduser()


def dataset_num_classes(name: str) -> int:
    """Number of classes of a dataset name (10 or 100)."""
    check_choice(name, "dataset", DATASETS)
    return _NUM_CLASSES[name]


def _cifar_class(name: str):
    import torchvision.datasets as tvd

    return tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100


def _check_cifar_present(name: str, root: Path) -> None:
    cls = _cifar_class(name)
    folder = root / cls.base_folder
    needed = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{name} not found: looked in {folder} and did not find {', '.join(missing)}. "
            f"Fix: call load_dataset({name!r}, ..., root={str(root)!r}, download=True) to download "
            f"{cls.url} (about {'163' if name == 'cifar10' else '161'} MB) once, or extract {cls.filename} "
            f"into {root}, or point root= / $LATENTKIT_DATA at the folder that holds {cls.base_folder}/; "
            f"offline, use the stand-in {'standin10' if name == 'cifar10' else 'standin100'}."
        )


def _cifar(name: str, split: str, root: Path, download: bool, scale: str, augment: bool,
           image_size: Optional[int]) -> torch.utils.data.Dataset:
    import torchvision.transforms as T

    if not download:
        _check_cifar_present(name, root)
    cls = _cifar_class(name)
    train = split == "train"
    if scale == "paper":
        size = 224 if image_size is None else image_size
        if train and augment:
            geo = [T.RandomResizedCrop(size), T.RandomHorizontalFlip()]
        else:
            geo = [T.Resize(size)]
        tf = T.Compose(geo + [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
        ds = cls(root=str(root), train=train, transform=tf, download=download)
        return ds
    # quick: decode once into tensors (no per-item PIL work); 32 px, CIFAR statistics.
    ds = cls(root=str(root), train=train, transform=None, download=download)
    x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(CIFAR_MEAN[name]).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD[name]).view(1, 3, 1, 1)
    x = (x - mean) / std
    if image_size is not None and image_size != 32:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    y = torch.as_tensor(ds.targets, dtype=torch.int64)
    if augment and train:
        warnings.warn("augment=True at quick scale is applied by the training loop (random crop + flip), "
                      "not by the dataset", stacklevel=3)
    return TensorImageDataset(x.contiguous(), y, classes=ds.classes, name=name, split=split, synthetic=False,
                              description=f"{name.upper()} ({split}, 32 px, real images)")


def _standin10(split: str, seed: int) -> TensorImageDataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    y = torch.as_tensor(digits.target, dtype=torch.int64)
    # Stratified seeded 80/20 split: a fixed permutation per class.
    g = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_test = int(round(0.2 * len(idx)))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    idx = torch.sort(torch.cat(train_idx if split == "train" else test_idx)).values
    x = F.interpolate(x[idx].unsqueeze(1), size=(32, 32), mode="bilinear", align_corners=False)
    # Standardise with fixed constants (mean 0.305, std 0.324 of all 1797 upsampled images, rounded)
    # so the two splits share one transform.
    x = ((x - 0.31) / 0.32).expand(-1, 3, -1, -1).contiguous()
    return TensorImageDataset(x, y[idx], classes=[str(c) for c in range(10)], name="standin10", split=split,
                              synthetic=False,
                              description="stand-in for CIFAR10: scikit-learn handwritten digits "
                                          "(real, 8x8 upsampled to 32x32, 3 channels)")


_STANDIN100_STD = 1.2  # approximate pixel std of the noise-1 stand-in; a fixed constant so splits share it


def _smooth_fields(n: int, channels: int, size: int, cutoff: int, g: torch.Generator) -> torch.Tensor:
    """``n`` random smooth fields ``(n, channels, size, size)``, unit variance per field.

    Sum of Fourier modes with integer frequencies ``|k| <= cutoff`` and Gaussian amplitudes
    decaying as ``1 / (1 + |k|)``.
    """
    k = torch.arange(-cutoff, cutoff + 1, dtype=torch.float32)
    kx, ky = torch.meshgrid(k, k, indexing="ij")
    amp = 1.0 / (1.0 + torch.sqrt(kx ** 2 + ky ** 2))
    m = kx.numel()
    coef_re = torch.randn(n, channels, m, generator=g) * amp.flatten()
    coef_im = torch.randn(n, channels, m, generator=g) * amp.flatten()
    t = torch.arange(size, dtype=torch.float32) / size
    px, py = torch.meshgrid(t, t, indexing="ij")
    phase = 2 * math.pi * (kx.flatten()[:, None, None] * px + ky.flatten()[:, None, None] * py)  # (m, H, W)
    f = torch.einsum("ncm,mhw->nchw", coef_re, torch.cos(phase)) + torch.einsum("ncm,mhw->nchw", coef_im,
                                                                                 torch.sin(phase))
    f = f - f.mean(dim=(2, 3), keepdim=True)
    return f / f.flatten(1).std(dim=1).view(n, 1, 1, 1)


def _standin100(split: str, seed: int, per_class: Optional[int], noise: float) -> TensorImageDataset:
    """Synthetic 100-class images: coloured gratings, 20 super-classes x 5 classes.

    Super-class ``s``: grating orientation (10 orientations x 2 spatial frequencies, about 2.5 and
    5 cycles per image). Class ``c`` in ``s``: the grating's colour ``a_c`` and the background
    colour ``b_c`` (Gaussian RGB vectors). Sample: ``b_c + a_c cos(2 pi f <u_theta, p> + phi)`` with
    random phase ``phi`` (translation), jittered orientation (0.08 rad) and frequency (5 %),
    contrast in [0.8, 1.2], plus ``noise`` x (0.7 smooth random field + 0.5 white noise); then
    standardised with one global mean/std. Class prototypes depend on ``seed`` only; the
    samples of the two splits use different seeds.
    """
    size, n_super, n_sub = 32, 20, 5
    n_classes = n_super * n_sub
    g = torch.Generator().manual_seed(10_000 + seed)
    theta_s = (torch.arange(n_super) // 2) * math.pi / 10 + 0.05 * torch.randn(n_super, generator=g)
    freq_s = torch.where(torch.arange(n_super) % 2 == 0, 2.5, 5.0) * (0.9 + 0.2 * torch.rand(n_super, generator=g))
    colour_a = torch.randn(n_classes, 3, generator=g)
    colour_b = 0.5 * torch.randn(n_classes, 3, generator=g)
    n = per_class if per_class is not None else (40 if split == "train" else 10)
    gs = torch.Generator().manual_seed(20_000 + seed + (0 if split == "train" else 1))
    y = torch.arange(n_classes).repeat_interleave(n)
    count = len(y)
    sup = y // n_sub
    theta = theta_s[sup] + 0.08 * torch.randn(count, generator=gs)
    freq = freq_s[sup] * (1 + 0.05 * torch.randn(count, generator=gs))
    phase = 2 * math.pi * torch.rand(count, generator=gs)
    t = torch.arange(size, dtype=torch.float32) / size
    py, px = torch.meshgrid(t, t, indexing="ij")
    proj = px * torch.cos(theta)[:, None, None] + py * torch.sin(theta)[:, None, None]
    wave = torch.cos(2 * math.pi * freq[:, None, None] * proj + phase[:, None, None])
    x = colour_b[y][:, :, None, None] + colour_a[y][:, :, None, None] * wave[:, None]
    contrast = 0.8 + 0.4 * torch.rand(count, 1, 1, 1, generator=gs)
    x = (contrast * x + noise * 0.7 * _smooth_fields(count, 3, size, 2, gs)
         + noise * 0.5 * torch.randn(x.shape, generator=gs))
    x = ((x - 0.0) / _STANDIN100_STD).contiguous()
    classes = [f"s{c // n_sub:02d}_c{c % n_sub}" for c in range(n_classes)]
    return TensorImageDataset(x.float(), y, classes=classes, name="standin100", split=split, synthetic=True,
                              description="stand-in for CIFAR100: SYNTHETIC seeded images, 100 classes in 20 "
                                          "super-classes (noisy coloured gratings)")


def load_dataset(
    name: str,
    split: str,
    root: Union[str, os.PathLike, None] = None,
    download: bool = False,
    scale: str = "quick",
    *,
    augment: Optional[bool] = None,
    image_size: Optional[int] = None,
    max_samples: Optional[int] = None,
    seed: int = 0,
    per_class: Optional[int] = None,
    noise: float = 1.0,
) -> torch.utils.data.Dataset:
    """Load a benchmark dataset split; items are ``(image (3, H, W) float32, label int)``.

    Parameters
    ----------
    name : {"cifar10", "cifar100", "standin10", "standin100"}
    split : {"train", "test"}
    root : path, optional
        Folder holding ``cifar-10-batches-py/`` or ``cifar-100-python/``
        (default :func:`default_data_root`). Ignored by the stand-ins.
    download : bool
        Let torchvision download a missing CIFAR archive into ``root``. Without it a
        missing archive raises ``FileNotFoundError`` naming the folder and files.
    scale : {"quick", "paper"}
        CIFAR at ``"paper"``: torchvision dataset with the reference transforms
        (train ``RandomResizedCrop(224)`` + ``RandomHorizontalFlip``, test ``Resize(224)``,
        then ``ToTensor`` + ImageNet ``Normalize``). ``"quick"``: 32 px tensors,
        standardised with CIFAR's channel statistics (a :class:`TensorImageDataset`).
        The stand-ins are 32 px tensors at both scales (upsample them with ``image_size``).
    augment : bool, optional
        Paper-scale training augmentation (default: on for ``split="train"`` at paper
        scale, off otherwise).
    image_size : int, optional
        Output side length (default 224 at paper scale for CIFAR, else 32).
    max_samples : int, optional
        Keep a seeded random subset of this many items (sorted indices).
    seed : int
        Seed of the stand-ins' split/generator and of ``max_samples``.
    per_class : int, optional
        ``standin100`` only: images per class (default 40 train, 10 test).
    noise : float
        ``standin100`` only: nuisance amplitude (higher = harder).

    Returns
    -------
    torch.utils.data.Dataset
        A :class:`TensorImageDataset` (quick scale, stand-ins) or a torchvision
        ``CIFAR10``/``CIFAR100`` (paper scale) -- possibly wrapped in a ``Subset``.
    """
    check_choice(name, "dataset", DATASETS)
    check_choice(split, "split", ("train", "test"))
    check_choice(scale, "scale", SCALES)
    seed = check_int(seed, "seed", minimum=0)
    if image_size is not None:
        image_size = check_int(image_size, "image_size", minimum=8)
    if per_class is not None:
        per_class = check_int(per_class, "per_class", minimum=1)
    noise = float(noise)
    if not (noise >= 0 and math.isfinite(noise)):
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}")
    if augment is None:
        augment = scale == "paper" and split == "train"
    if name.startswith("cifar"):
        root_path = default_data_root() if root is None else Path(root).expanduser()
        ds = _cifar(name, split, root_path, bool(download), scale, bool(augment), image_size)
    else:
        ds = _standin10(split, seed) if name == "standin10" else _standin100(split, seed, per_class, noise)
        if image_size is not None and image_size != 32:
            x = F.interpolate(ds.images, size=(image_size, image_size), mode="bilinear", align_corners=False)
            ds = TensorImageDataset(x.contiguous(), ds.targets, classes=ds.classes, name=ds.name, split=split,
                                    synthetic=ds.synthetic, description=ds.description)
    if max_samples is not None:
        max_samples = check_int(max_samples, "max_samples", minimum=1)
        if max_samples < len(ds):
            g = torch.Generator().manual_seed(seed)
            idx = torch.sort(torch.randperm(len(ds), generator=g)[:max_samples]).values
            if isinstance(ds, TensorImageDataset):
                ds = TensorImageDataset(ds.images[idx], ds.targets[idx], classes=ds.classes, name=ds.name,
                                        split=split, synthetic=ds.synthetic, description=ds.description)
            else:
                ds = torch.utils.data.Subset(ds, idx.tolist())
    return ds
