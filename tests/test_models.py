import pytest
import torch

from liftkd.config import get_profile
from liftkd.measure.metrics import count_parameters
from liftkd.models.presets import build_unet, load_unet


@pytest.fixture
def smoke_unet():
    p = get_profile("smoke")
    return build_unet(p.unet, p.data.resolution, p.data.channels).eval()


def test_unet_forward_shape(smoke_unet):
    x = torch.randn(3, 1, 8, 8)
    assert smoke_unet(x, torch.tensor([1, 500, 999])).sample.shape == x.shape


def test_cpu_preset_size():
    p = get_profile("cpu")
    n = count_parameters(build_unet(p.unet, p.data.resolution, p.data.channels))
    assert 1.5e6 < n < 4e6


@pytest.mark.parametrize("sub", [None, "unet"])
def test_load_pretrained_from_local_folder(tmp_path, smoke_unet, sub):
    target = tmp_path if sub is None else tmp_path / sub
    smoke_unet.save_pretrained(target)
    loaded = load_unet(tmp_path).eval()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10, 900])
    with torch.no_grad():
        assert torch.equal(loaded(x, t).sample, smoke_unet(x, t).sample)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no UNet2DModel"):
        load_unet(tmp_path)


def test_bad_architecture_is_an_error():
    p = get_profile("smoke")
    with pytest.raises(ValueError, match="divisible"):
        build_unet(p.unet, 9, 1)
