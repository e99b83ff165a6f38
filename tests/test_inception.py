"""The Inception FID path: clear errors when pytorch-fid or its weights are missing, and the plumbing
around pytorch-fid checked with a stand-in module (pytorch-fid needs torchvision, absent here)."""

import sys
import types

import numpy as np
import pytest
import torch

from mnistdiff.cli import main
from mnistdiff.evaluation import inception


def test_missing_weights_name_the_url_and_the_flag(tmp_path):
    with pytest.raises(inception.InceptionUnavailable, match="--inception-weights") as err:
        inception.find_weights(tmp_path / "nowhere.pth")
    assert inception.WEIGHTS_URL in str(err.value)


def test_cli_fails_before_sampling_with_one_line(tmp_path, capsys):
    assert main(["fid", "--inception", "--inception-weights", str(tmp_path / "none.pth"), "--n", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Inception FID weights" in err


def test_missing_pytorch_fid_is_a_clear_error(tmp_path, monkeypatch):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "pytorch_fid", None)
    monkeypatch.setitem(sys.modules, "pytorch_fid.inception", None)
    with pytest.raises(inception.InceptionUnavailable, match="pip install pytorch-fid"):
        inception.load_inception(weights)


class FakeInception(torch.nn.Module):
    """Stands in for pytorch-fid's InceptionV3: insists on finding its weights in torch.hub's cache."""

    BLOCK_INDEX_BY_DIM = {2048: 3}

    def __init__(self, blocks):
        super().__init__()
        cached = torch.hub.get_dir() + "/checkpoints/" + inception.WEIGHTS_NAME
        assert open(cached, "rb").read() == b"weights", "would have downloaded"
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):  # (B, 3, H, W) in [0, 1] -> [(B, 2048, 1, 1)]
        assert x.shape[1] == 3 and 0 <= x.min() and x.max() <= 1
        pooled = x.mean((1, 2, 3))[:, None] * self.scale
        return [(pooled * torch.arange(1, 2049)).view(-1, 2048, 1, 1) + torch.randn(len(x), 2048, 1, 1)]


def test_plumbing_with_a_stand_in_pytorch_fid(tmp_path, monkeypatch):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"weights")
    package = types.ModuleType("pytorch_fid")
    monkeypatch.setitem(sys.modules, "pytorch_fid", package)
    monkeypatch.setitem(sys.modules, "pytorch_fid.inception", types.SimpleNamespace(InceptionV3=FakeInception))
    monkeypatch.setitem(sys.modules, "pytorch_fid.fid_score", types.SimpleNamespace(
        calculate_frechet_distance=lambda m1, s1, m2, s2: float(np.abs(m1 - m2).sum())))
    hub_before = torch.hub.get_dir()
    torch.manual_seed(0)
    dark = torch.zeros(30, 1, 28, 28, dtype=torch.uint8)
    bright = torch.full((30, 1, 28, 28), 255, dtype=torch.uint8)
    net = inception.load_inception(inception.find_weights(weights))
    same = inception.inception_fid(net, dark, dark.clone())
    apart = inception.inception_fid(net, bright, dark)
    assert torch.hub.get_dir() == hub_before  # the user's cache setting is put back
    assert apart > 100 * max(same, 1.0)
