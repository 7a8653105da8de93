import math

import pytest
import torch
from torch import nn

from latentgen.flows import CouplingMLP, RealNVP, soft_clamp
from latentgen.nets import ConvDecoder, ConvEncoder, PatchGAN, PreActBlock, ResNetDecoder, ResNetEncoder


@pytest.mark.parametrize("c, s", [(1, 28), (3, 32), (1, 8)])
def test_conv_autoencoder_shapes(c, s):
    enc, dec = ConvEncoder(c, s, 10, width=8, hidden=32), ConvDecoder(5, c, s, width=8, hidden=32, out_activation="tanh")
    x = torch.rand(3, c, s, s)
    out = dec(enc(x)[:, :5])
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1


def test_networks_reject_bad_inputs():
    with pytest.raises(ValueError, match="3 channel"):
        ConvEncoder(3, 32, 4)(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="must be 32x32"):
        ResNetEncoder(3, 32, 4, widths=(8, 8))(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\[batch, 6\]"):
        ResNetDecoder(6, 3, 32, widths=(8, 8))(torch.rand(2, 5))
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvDecoder(4, 1, 30)
    with pytest.raises(ValueError, match="output activation"):
        ConvDecoder(4, 1, 28, out_activation="relu")


def test_resnet_roundtrip_shapes_and_patchgan_grid():
    enc, dec = ResNetEncoder(3, 64, 8, widths=(8, 16, 16), blocks=1), ResNetDecoder(4, 3, 64, widths=(16, 16, 8), blocks=1)
    assert dec(enc(torch.rand(2, 3, 64, 64))[:, :4]).shape == (2, 3, 64, 64)
    assert PatchGAN(3)(torch.rand(2, 3, 256, 256)).shape == (2, 1, 32, 32)
    assert PatchGAN(1, channels=(8, 1), strides=(2, 1))(torch.rand(2, 1, 16, 16)).shape == (2, 1, 8, 8)


def test_preact_block_gradient_reaches_input():
    b = PreActBlock(4, 8, "down")
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    b(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def _randomised(flow, std=0.3):
    torch.manual_seed(1)
    for m in flow.modules():
        if isinstance(m, CouplingMLP):
            nn.init.normal_(m[-1].weight, 0, std); nn.init.normal_(m[-1].bias, 0, std)
    return flow.eval()


@pytest.mark.parametrize("dim, ctx", [(2, 0), (5, 0), (6, 4)])
def test_flow_inverse_and_logdet_against_autograd(dim, ctx):
    f = _randomised(RealNVP(dim, n_blocks=3, hidden=16, context_dim=ctx))
    z = torch.randn(4, dim) * 2
    c = torch.randn(4, ctx) if ctx else None
    u, ld = f.inverse(z, c)
    z2, ld_fwd = f.transform(u, c)
    assert torch.allclose(z2, z, atol=1e-5) and torch.allclose(ld, -ld_fwd, atol=1e-5)
    for i in range(4):
        ci = None if c is None else c[i:i + 1]
        J = torch.autograd.functional.jacobian(lambda v: f.inverse(v[None], ci)[0][0], z[i])
        assert torch.allclose(ld[i], torch.linalg.slogdet(J).logabsdet, atol=1e-4)
    # log_prob is the base density at u plus the log-determinant (change of variables)
    base = -0.5 * (u ** 2).sum(1) - 0.5 * dim * math.log(2 * math.pi)
    assert torch.allclose(f.log_prob(z, c), base + ld, atol=1e-5)


def test_flow_density_integrates_to_one():
    f = _randomised(RealNVP(2, n_blocks=2, hidden=8))
    g = torch.linspace(-12, 12, 481)
    with torch.no_grad():
        mass = f.log_prob(torch.cartesian_prod(g, g)).exp().sum() * (g[1] - g[0]) ** 2
    assert abs(mass.item() - 1) < 0.01


def test_flow_starts_as_identity_and_clamps_scale():
    f = RealNVP(4, hidden=8).eval()
    z = torch.randn(3, 4)
    assert torch.allclose(f.log_prob(z), torch.distributions.Normal(0, 1).log_prob(z).sum(1), atol=1e-5)
    assert soft_clamp(torch.tensor(1e6), 2.0).item() < 2.0 and soft_clamp(torch.tensor(-1e6), 2.0).item() > -2.0


def test_conditional_flow_depends_on_context_and_checks_it():
    f = _randomised(RealNVP(3, n_blocks=2, hidden=8, context_dim=2))
    z = torch.randn(5, 3)
    with torch.no_grad():
        assert not torch.allclose(f.log_prob(z, torch.zeros(5, 2)), f.log_prob(z, torch.ones(5, 2)))
        assert f.sample(context=torch.zeros(7, 2)).shape == (7, 3)
    with pytest.raises(ValueError, match="conditional"):
        f.log_prob(z)
    with pytest.raises(ValueError, match="rows"):
        f.sample(3, context=torch.zeros(5, 2))
