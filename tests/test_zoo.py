"""Tests for latentkit.zoo: the three networks at two scales and the data loaders.

The real CIFAR loader is exercised on a miniature archive written in torchvision's exact on-disk
format (pickled dicts with ``b"data"`` uint8 (N, 3072) and ``b"labels"`` / ``b"fine_labels"``).
torchvision verifies every file's MD5 against constants on the dataset class
(``CIFAR10.train_list`` / ``test_list`` / ``meta``); the miniature files have other checksums, so the
tests monkeypatch those class attributes with the MD5s of the files they wrote. The integrity
check itself still runs unchanged (a corrupted file is still rejected, see
``test_cifar_corrupted_file_rejected``).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from _cifar import _accept_checksums, write_mini_cifar10, write_mini_cifar100
from torch import nn

from latentkit import zoo as B
from latentkit.zoo import (
    NETWORKS,
    build_model,
    classifier_layer,
    feature_extractor,
    imagenet_weights_path,
    load_dataset,
)

torch.set_num_threads(1)


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    md5_10 = write_mini_cifar10(tmp_path)
    md5_100 = write_mini_cifar100(tmp_path)
    _accept_checksums(monkeypatch, torchvision.datasets.CIFAR10, md5_10)
    _accept_checksums(monkeypatch, torchvision.datasets.CIFAR100, md5_100)
    return tmp_path


def _raw_batches(root: Path, files, key: str):
    data, labels = [], []
    for f in files:
        with open(f, "rb") as fh:
            d = pickle.load(fh, encoding="bytes")
        data.append(d[b"data"])
        labels += d[key]
    return np.vstack(data), np.array(labels)


def test_cifar10_quick_matches_raw_pickles(cifar_root):
    folder = cifar_root / "cifar-10-batches-py"
    for split, files in (
        ("train", [folder / f"data_batch_{i}" for i in range(1, 6)]),
        ("test", [folder / "test_batch"]),
    ):
        ds = load_dataset("cifar10", split, root=cifar_root, scale="quick")
        raw, labels = _raw_batches(cifar_root, files, b"labels")
        assert len(ds) == len(raw)
        # Independent decode: (N, 3072) -> (N, 3, 32, 32) in [0, 1], then CIFAR10 normalisation.
        expect = raw.reshape(-1, 3, 32, 32).astype(np.float64) / 255.0
        mean = np.array(B.CIFAR_MEAN["cifar10"]).reshape(1, 3, 1, 1)
        std = np.array(B.CIFAR_STD["cifar10"]).reshape(1, 3, 1, 1)
        expect = (expect - mean) / std
        x, y = ds[3]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        np.testing.assert_allclose(ds.images.numpy(), expect, atol=1e-5)
        np.testing.assert_array_equal(ds.targets.numpy(), labels)
        assert ds.classes[0] == "airplane" and ds.num_classes == 10


def test_cifar100_quick_uses_fine_labels(cifar_root):
    folder = cifar_root / "cifar-100-python"
    ds = load_dataset("cifar100", "train", root=cifar_root)
    raw, labels = _raw_batches(cifar_root, [folder / "train"], b"fine_labels")
    np.testing.assert_array_equal(ds.targets.numpy(), labels)
    assert ds.images.shape == (12, 3, 32, 32)
    assert len(ds.classes) == 100 and ds.classes[5] == "fine5"
    assert len(load_dataset("cifar100", "test", root=cifar_root)) == 7


def test_cifar_paper_scale_reference_transforms(cifar_root):
    import torchvision.transforms as T

    test = load_dataset("cifar10", "test", root=cifar_root, scale="paper")
    assert isinstance(test, torchvision.datasets.CIFAR10)
    x, y = test[0]
    assert x.shape == (3, 224, 224) and isinstance(y, int)
    tf = test.transform.transforms
    assert isinstance(tf[0], T.Resize) and tf[0].size == 224
    assert isinstance(tf[-1], T.Normalize) and tuple(tf[-1].mean) == B.IMAGENET_MEAN
    train = load_dataset("cifar100", "train", root=cifar_root, scale="paper")
    kinds = [type(t) for t in train.transform.transforms]
    assert kinds[:2] == [T.RandomResizedCrop, T.RandomHorizontalFlip]
    assert train.transform.transforms[0].size == (224, 224)
    assert train[0][0].shape == (3, 224, 224)
    # Resize(224) of a 32 px image is a plain bilinear upsampling: check one image independently.
    from PIL import Image

    img = Image.fromarray(test.data[0]).resize((224, 224), Image.BILINEAR)
    ref = (
        torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255
        - torch.tensor(B.IMAGENET_MEAN).view(3, 1, 1)
    ) / torch.tensor(B.IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(x, ref, atol=0.1)  # PIL vs tensor resize differ by antialias rounding only


def test_cifar_missing_without_download(tmp_path):
    for name, folder in (("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")):
        with pytest.raises(FileNotFoundError, match=f"{name} not found: looked in .*{folder}") as info:
            load_dataset(name, "train", root=tmp_path / "nowhere")
        msg = str(info.value)
        assert "download=True" in msg and "LATENTKIT_DATA" in msg and "standin" in msg


def test_cifar_partial_archive_names_missing_file(cifar_root):
    (cifar_root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_dataset("cifar10", "test", root=cifar_root)


def test_cifar_corrupted_file_rejected(cifar_root):
    path = cifar_root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:-5])  # present but checksum wrong -> torchvision refuses
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        load_dataset("cifar10", "test", root=cifar_root)


def test_default_root_from_env(tmp_path, monkeypatch, cifar_root):
    monkeypatch.setenv("LATENTKIT_DATA", str(cifar_root))
    assert B.default_data_root() == cifar_root
    assert len(load_dataset("cifar10", "test")) == 8


def test_max_samples_subset(cifar_root):
    full = load_dataset("cifar10", "train", root=cifar_root)
    sub = load_dataset("cifar10", "train", root=cifar_root, max_samples=10, seed=3)
    assert len(sub) == 10
    # every kept image is one of the full set's images, in order
    idx = [int(torch.nonzero((full.images == im).flatten(1).all(1))[0]) for im in sub.images]
    assert idx == sorted(idx)
    assert torch.equal(sub.targets, full.targets[idx])


# ----------------------------------------------------------------------------- stand-ins
def test_standin10_digits_is_sklearn_digits():
    from sklearn.datasets import load_digits

    tr, te = load_dataset("standin10_digits", "train"), load_dataset("standin10_digits", "test")
    assert len(tr) + len(te) == 1797 and tr.num_classes == 10 and not tr.synthetic
    assert tr.images.shape[1:] == (3, 32, 32) and tr.images.dtype == torch.float32
    assert tr.targets.dtype == torch.int64
    assert set(tr.targets.tolist()) == set(range(10)) == set(te.targets.tolist())
    # stratified 80/20: every class has ~20 % of its images in test
    digits = load_digits()
    for c in range(10):
        n_c = int((digits.target == c).sum())
        assert int((te.targets == c).sum()) == round(0.2 * n_c)
    # The three channels are equal, and every stand-in image is one distinct digit: after undoing
    # the standardisation and 4x4 average pooling back to 8x8, its nearest digit (over all 1797)
    # has the same label, and (almost) no two stand-in images map to the same digit.
    assert torch.equal(tr.images[:, 0], tr.images[:, 1]) and torch.equal(tr.images[:, 1], tr.images[:, 2])
    both = torch.cat([tr.images, te.images])
    labels = torch.cat([tr.targets, te.targets]).numpy()
    pooled = torch.nn.functional.avg_pool2d(both[:, :1] * 0.32 + 0.31, 4)[:, 0].flatten(1).double() * 16
    ref = torch.as_tensor(digits.images.reshape(1797, 64), dtype=torch.float64)
    nearest = torch.cdist(pooled, ref).argmin(1).numpy()
    np.testing.assert_array_equal(digits.target[nearest], labels)
    assert len(set(nearest.tolist())) > 0.99 * 1797  # (a few digits are near-duplicates)


def test_standins_deterministic_and_disjoint_splits():
    for name in ("standin10", "standin100", "standin10_digits"):
        a, b = load_dataset(name, "train"), load_dataset(name, "train")
        assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
        c = load_dataset(name, "train", seed=1)
        assert not torch.equal(a.images, c.images)
        te = load_dataset(name, "test")
        # no test image equals a training image
        d = torch.cdist(te.images.flatten(1)[:50], a.images.flatten(1))
        assert float(d.min()) > 1e-3


def test_standin100_shape_balance_and_learnable_signal():
    tr, te = load_dataset("standin100", "train"), load_dataset("standin100", "test")
    assert tr.synthetic and "SYNTHETIC" in tr.description
    assert tr.images.shape == (4000, 3, 32, 32) and te.images.shape == (2000, 3, 32, 32)
    assert torch.equal(torch.bincount(tr.targets), torch.full((100,), 40))
    assert abs(float(tr.images.std()) - 1) < 0.3 and abs(float(tr.images.mean())) < 0.1
    # Not random labels: a nearest-class-mean classifier on raw pixels (independent, 3 lines)
    # is far above chance (1 %) yet not perfect.
    means = torch.stack([tr.images[tr.targets == c].mean(0) for c in range(100)]).flatten(1)
    acc = float((torch.cdist(te.images.flatten(1), means).argmin(1) == te.targets).float().mean())
    assert 0.2 < acc < 0.95
    # Shuffled labels destroy it (sanity check of the test itself).
    perm = tr.targets[torch.randperm(len(tr.targets), generator=torch.Generator().manual_seed(0))]
    means_r = torch.stack([tr.images[perm == c].mean(0) for c in range(100)]).flatten(1)
    acc_r = float((torch.cdist(te.images.flatten(1), means_r).argmin(1) == te.targets).float().mean())
    assert acc_r < 0.06
    small = load_dataset("standin100", "train", per_class=3, noise=0.0)
    assert len(small) == 300


def test_standin_image_size():
    ds = load_dataset("standin10", "test", image_size=64)
    assert ds.images.shape[1:] == (3, 64, 64)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(name="mnist", split="train"), ValueError, "unknown dataset 'mnist'"),
        (dict(name="standin10", split="val"), ValueError, "unknown split 'val'"),
        (dict(name="standin10", split="train", scale="huge"), ValueError, "unknown scale"),
        (dict(name="standin100", split="train", noise=-1.0), ValueError, "noise must be"),
        (dict(name="standin10", split="train", max_samples=0), ValueError, "max_samples must be >= 1"),
        (dict(name="standin10", split="train", seed=1.5), TypeError, "seed must be an integer"),
    ],
)
def test_load_dataset_validation(kwargs, err, match):
    with pytest.raises(err, match=match):
        load_dataset(**kwargs)


# ----------------------------------------------------------------------------- networks
QUICK_FEATURES = {"alexnet": 512, "vgg16": 512, "resnet50": 256}


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("classes", [10, 100])
def test_quick_models_shapes_and_classifier(name, classes):
    m = build_model(name, classes, seed=0).eval()
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = m(x)
        feats = feature_extractor(m)(x)
    assert logits.shape == (5, classes)
    lname, layer = classifier_layer(m)
    assert lname == ("fc" if name == "resnet50" else "classifier.6")
    assert isinstance(layer, nn.Linear) and layer.out_features == classes
    assert feats.shape == (5, QUICK_FEATURES[name]) == (5, layer.in_features)
    # logits = W f + b, computed independently of the module
    assert torch.allclose(logits, feats @ layer.weight.T + layer.bias, atol=1e-5)


def test_quick_models_are_torchvision_classes():
    from torchvision.models import VGG, AlexNet, ResNet
    from torchvision.models.resnet import Bottleneck

    r = build_model("resnet50", 10)
    assert isinstance(r, ResNet) and isinstance(r.layer1[0], Bottleneck)
    assert r.conv1.kernel_size == (3, 3) and r.conv1.stride == (1, 1) and isinstance(r.maxpool, nn.Identity)
    assert r.fc.in_features == 512 * 4 // 8
    deep = build_model("resnet50", 10, resnet_layers=(3, 4, 6, 3))
    assert [len(deep.layer1), len(deep.layer2), len(deep.layer3), len(deep.layer4)] == [3, 4, 6, 3]
    v = build_model("vgg16", 10)
    assert isinstance(v, VGG) and sum(isinstance(l, nn.Conv2d) for l in v.features) == 13
    assert sum(isinstance(l, nn.Linear) for l in v.classifier) == 3
    a = build_model("alexnet", 10)
    assert isinstance(a, AlexNet) and sum(isinstance(l, nn.Conv2d) for l in a.features) == 5
    wide = build_model("vgg16", 10, width=0.25)
    assert classifier_layer(wide)[1].in_features == 1024


def test_seed_reproducible_and_rng_restored():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = build_model("alexnet", 10, seed=7)
    after = torch.rand(3)
    b = build_model("alexnet", 10, seed=7)
    assert torch.equal(before, after)  # global RNG untouched
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_feature_extractor_shares_parameters_and_train_mode():
    m = build_model("resnet50", 10, seed=0)
    fx = feature_extractor(m)
    assert fx.model is m and fx.layer_name == "fc"
    with torch.no_grad():
        m.fc.weight.mul_(2.0)
    x = torch.randn(2, 3, 32, 32)
    m.eval()
    with torch.no_grad():
        assert torch.allclose(m(x), fx(x) @ m.fc.weight.T + m.fc.bias, atol=1e-5)


def test_classifier_layer_generic_and_errors():
    seq = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    name, layer = classifier_layer(seq)
    assert name == "2" and layer is seq[2]
    with pytest.raises(ValueError, match="no nn.Linear"):
        classifier_layer(nn.Sequential(nn.ReLU()))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        classifier_layer("resnet")


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(name="lenet", num_classes=10), ValueError, "unknown network 'lenet'"),
        (dict(name="alexnet", num_classes=1), ValueError, "num_classes must be >= 2"),
        (dict(name="alexnet", num_classes=10, scale="tiny"), ValueError, "unknown scale"),
        (dict(name="alexnet", num_classes=10, weights="imagenet"), ValueError, "needs scale='paper'"),
        (dict(name="alexnet", num_classes=10, weights="cifar", scale="paper"), ValueError, "unknown weights"),
        (dict(name="vgg16", num_classes=10, scale="paper", width=0.5), ValueError, "width applies to"),
        (dict(name="vgg16", num_classes=10, width=-1.0), ValueError, "width must be a positive"),
        (dict(name="resnet50", num_classes=10, resnet_layers=(1, 1)), ValueError, "4 entries"),
        (dict(name="alexnet", num_classes=10, dropout=1.0), ValueError, "dropout must lie"),
    ],
)
def test_build_model_validation(kwargs, err, match):
    with pytest.raises(err, match=match):
        build_model(**kwargs)


# ----------------------------------------------------------------------------- paper scale
@pytest.mark.slow
@pytest.mark.parametrize("name, features", [("alexnet", 4096), ("vgg16", 4096), ("resnet50", 2048)])
def test_paper_models_heads(name, features):
    m = build_model(name, 100, scale="paper", seed=0).eval()
    lname, layer = classifier_layer(m)
    assert (layer.in_features, layer.out_features) == (features, 100)
    ref = getattr(torchvision.models, name)(weights=None)
    # identical architecture to torchvision apart from the head
    own = {k: v.shape for k, v in m.state_dict().items() if not k.startswith(lname)}
    theirs = {k: v.shape for k, v in ref.state_dict().items() if not k.startswith(lname)}
    assert own == theirs
    if name != "vgg16":  # one 224 px forward (VGG16 costs ~15 GFLOP: skipped to keep the file fast)
        with torch.no_grad():
            assert m(torch.randn(1, 3, 224, 224)).shape == (1, 100)


def test_imagenet_weights_missing_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    path = imagenet_weights_path("alexnet")
    assert path == tmp_path / "th" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    with pytest.raises(FileNotFoundError, match=r"alexnet-owt-7be5be79\.pth") as info:
        build_model("alexnet", 10, scale="paper", weights="imagenet")
    assert "allow_download=True" in str(info.value) and str(path) in str(info.value)


@pytest.mark.slow
def test_imagenet_weights_loaded_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    path = imagenet_weights_path("resnet50")
    assert path.name == "resnet50-0676ba61.pth"
    path.parent.mkdir(parents=True)
    torch.manual_seed(5)
    state = torchvision.models.resnet50(weights=None).state_dict()
    state["conv1.weight"].fill_(0.125)
    torch.save(state, path)
    m = build_model("resnet50", 10, scale="paper", weights="imagenet", seed=0)
    assert torch.equal(m.conv1.weight, torch.full_like(m.conv1.weight, 0.125))
    assert torch.equal(m.layer4[2].bn3.running_var, state["layer4.2.bn3.running_var"])
    assert m.fc.out_features == 10  # head replaced after loading the 1000-class weights
