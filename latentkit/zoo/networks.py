"""The paper's three networks (AlexNet, VGG16, ResNet50) at the ``quick`` and ``paper`` presets.

``build_model`` builds them, :func:`classifier_layer` (= :func:`latentkit.modules.last_layer`) returns
the layer the paper prunes, and :func:`feature_extractor` the network up to its input (the
penultimate features), so that ``logits == classifier(features)``. See :mod:`latentkit.zoo`.

Examples
--------
>>> from latentkit.zoo.networks import build_model
>>> from latentkit.modules import last_layer
>>> model = build_model('alexnet', num_classes=10)
>>> last_layer(model)[1].out_features
10
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._validation import check_choice, check_int, check_positive
from ..modules import last_layer
from ..options import NETWORKS, PRESETS

__all__ = [
    "QUICK_WIDTH",
    "build_model",
    "classifier_layer",
    "feature_extractor",
    "PenultimateFeatures",
    "imagenet_weights_path",
    "NETWORK_DESCRIPTIONS",
    "describe_network",
]

#: Default width factor per network at quick scale (channels are multiplied by it).
QUICK_WIDTH = {"alexnet": 0.125, "vgg16": 0.125, "resnet50": 0.125}

#: The last classifier layer ``(qualified name, module)``: the layer the paper prunes
#: (``"classifier.6"`` for AlexNet/VGG16, ``"fc"`` for ResNet50, the last ``nn.Linear`` of any other
#: module). One function with :func:`latentkit.modules.last_layer`.
classifier_layer = last_layer

#: What each network is at each preset, for the chapters' prose. The quick entries are templates:
#: :func:`describe_network` fills ``{channels}`` from the width and ``{inputs}`` from the built model.
NETWORK_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "quick": {
        "alexnet": (
            "AlexNet's layout with every channel count {channels} and a stem for 32-pixel "
            "images (the pruned layer has {inputs} inputs)"
        ),
        "vgg16": (
            "VGG16 with batch normalisation, every channel count {channels} and global average "
            "pooling before its three fully connected layers (the pruned layer has {inputs} inputs)"
        ),
        "resnet50": (
            "torchvision's ResNet built from bottleneck blocks with one block per stage, channel "
            "counts {channels} (so `fc` has {inputs} inputs instead of 2048) and a 3x3 stem for "
            "32-pixel images"
        ),
    },
    "paper": {
        "alexnet": (
            "torchvision's AlexNet at 224 px with a new head for the data set's classes (the "
            "pruned layer `classifier.6` has 4096 inputs)"
        ),
        "vgg16": (
            "torchvision's VGG16 without batch normalisation, as in the reference code, at 224 px "
            "with a new head (the pruned layer `classifier.6` has 4096 inputs)"
        ),
        "resnet50": (
            "torchvision's ResNet50 at 224 px with a new head (the pruned layer `fc` has 2048 inputs)"
        ),
    },
}


def describe_network(name: str, preset: str = "quick", width: float | None = None) -> str:
    """What network ``name`` is at ``preset``, as a phrase for prose (:data:`NETWORK_DESCRIPTIONS`).

    At the quick preset the channel multiplier ``width`` (default :data:`QUICK_WIDTH`) and the
    pruned layer's inputs ``F`` are read from the network itself (:func:`build_model`), so the
    phrase follows a config's ``width``; the paper networks are torchvision's at 224 px.

    Parameters
    ----------
    name : {"alexnet", "vgg16", "resnet50"}
    preset : {"quick", "paper"}
    width : float, optional
        The quick networks' channel multiplier (a config's ``width`` entry for ``name``).

    Raises
    ------
    ValueError
        For an unknown ``name`` or ``preset``, naming the allowed values, or a ``width``
        :func:`build_model` rejects.

    Examples
    --------
    >>> describe_network("resnet50", "paper")[:24]
    "torchvision's ResNet50 a"
    >>> "divided by 4" in describe_network("alexnet", width=0.25)
    True
    """
    check_choice(name, "network", NETWORKS)
    check_choice(preset, "preset", PRESETS)
    text = NETWORK_DESCRIPTIONS[preset][name]
    if preset != "quick":
        return text
    w = QUICK_WIDTH[name] if width is None else width
    inputs = classifier_layer(build_model(name, 10, scale=preset, width=w, seed=0))[1].in_features
    divisor = 1.0 / float(w)
    channels = f"divided by {divisor:.0f}" if divisor == round(divisor) else f"multiplied by {w:g}"
    return text.format(channels=channels, inputs=inputs)


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
    weights: str | None = None,
    width: float | None = None,
    *,
    allow_download: bool = False,
    seed: int | None = None,
    resnet_layers: Sequence[int] = (1, 1, 1, 1),
    vgg_batch_norm: bool = True,
    dropout: float | None = None,
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
    check_choice(scale, "scale", PRESETS)
    if weights is not None:
        check_choice(weights, "weights", ("imagenet",))
        if scale != "paper":
            raise ValueError(
                "weights='imagenet' needs scale='paper' (the quick networks are narrowed and "
                "have no pretrained weights); use weights=None at quick scale"
            )
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
    model.latentkit_info = {
        "name": name,
        "scale": scale,
        "num_classes": num_classes,
        "width": width,
        "weights": weights,
        "input_size": 224 if scale == "paper" else 32,
    }
    return model


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
        captured: list[torch.Tensor] = []

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
