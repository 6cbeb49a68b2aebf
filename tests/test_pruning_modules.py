"""latentkit.modules (the one home of prunable layers, the last layer and the effective weight) and
the pruning registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from latentkit import modules as M
from latentkit import pruning as P
from latentkit.options import PRUNING_METHODS


def test_prunable_types_include_every_convolution():
    model = nn.Sequential(
        nn.Conv1d(2, 3, 3),
        nn.Conv2d(3, 3, 1),
        nn.Conv3d(3, 3, 1),
        nn.ConvTranspose2d(3, 3, 1),
        nn.BatchNorm2d(3),
        nn.Linear(3, 2),
        nn.Embedding(4, 2),
    )
    names = [n for n, _ in M.prunable_layers(model)]
    assert names == ["0", "1", "2", "3", "5"]
    # pruning's layers="all" and patterns' tables use the same list
    assert [n for n, _ in P.select_layers(model, "all")] == names
    assert P.prunable_layers is M.prunable_layers


def test_prune_all_handles_conv1d_and_conv3d():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Conv3d(4, 4, 1), nn.Linear(4, 2))
    res = P.prune(model, "lowest", 0.5, layers="all")
    assert list(res.masks) == ["0", "1", "2"]
    for _, mod in M.prunable_layers(model):
        assert int((mod.weight_mask == 0).sum()) == round(0.5 * mod.weight_orig.numel())


def test_last_layer_is_the_classifier_and_one_function():
    from latentkit import zoo

    assert zoo.classifier_layer is M.last_layer
    assert P.last_layer is M.last_layer
    seq = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert M.last_layer(seq) == ("2", seq[2])
    with pytest.raises(ValueError, match="no nn.Linear"):
        M.last_layer(nn.Sequential(nn.Conv2d(1, 1, 1)))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        M.last_layer("resnet")


def test_effective_weight_pruned_plain_and_parametrized():
    torch.manual_seed(0)
    lin = nn.Linear(4, 3)
    assert torch.equal(M.effective_weight(lin), lin.weight.detach())
    torch_prune.l1_unstructured(lin, "weight", amount=0.5)
    with torch.no_grad():
        lin.weight_orig.add_(1.0)  # in place, no forward pass
    assert torch.equal(M.effective_weight(lin), (lin.weight_orig * lin.weight_mask).detach())
    assert P.effective_weight is M.effective_weight
    par = nn.Linear(4, 3)
    torch.nn.utils.parametrize.register_parametrization(par, "weight", nn.Identity())
    assert torch.equal(M.effective_weight(par), par.weight.detach())
    with pytest.raises(TypeError, match="has no weight"):
        M.effective_weight(nn.ReLU())
    with pytest.raises(TypeError, match="torch.nn.Module"):
        M.effective_weight(torch.ones(2))


def test_registry_covers_the_vocabulary_and_methods_tuple_is_gone():
    assert tuple(P.REGISTRY) == PRUNING_METHODS
    assert not hasattr(P, "METHODS")
    with pytest.raises(ValueError, match="unknown method 'magnitude'"):
        P.prune(nn.Linear(3, 2), "magnitude", 0.5)
