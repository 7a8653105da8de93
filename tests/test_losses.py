import itertools
import math

import pytest
import torch
import torch.distributions as D

from latentgen.losses import (bits_per_dim, discretized_gaussian_log_likelihood, discretized_mix_logistic_log_likelihood,
                              gaussian_kl, gaussian_nll, iwae_bound, sample_discretized_mix_logistic, sigma_star,
                              sigma_vae_nll, softclip)


def test_gaussian_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mu, lv, mp, lp = torch.randn(1, 4), torch.randn(1, 4) * 0.5, torch.randn(1, 4), torch.randn(1, 4) * 0.5
    q, p = D.Normal(mu, (lv / 2).exp()), D.Normal(mp, (lp / 2).exp())
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean()
    assert abs(gaussian_kl(mu, lv, mp, lp).item() - mc.item()) < 0.03


def test_gaussian_kl_standard_prior_closed_form():
    mu, lv = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, math.log(4.0)]])
    expected = 0.5 * ((1 + 1 - 0 - 1) + (4 + 4 - math.log(4) - 1))
    assert abs(gaussian_kl(mu, lv).item() - expected) < 1e-6


def test_gaussian_nll_against_torch():
    x, m, lv = torch.randn(3, 5), torch.randn(3, 5), torch.randn(3, 5)
    assert torch.allclose(gaussian_nll(x, m, lv), -D.Normal(m, (lv / 2).exp()).log_prob(x).sum(1), atol=1e-5)


def test_sigma_star_is_the_argmin_and_clip_holds():
    torch.manual_seed(0)
    x = torch.rand(8, 1, 4, 4); xh = x + 0.1 * torch.randn_like(x)
    s = sigma_star(x, xh)
    f = lambda sig: gaussian_nll(x, xh, 2 * math.log(sig)).sum().item()
    assert f(s.item()) < f(s.item() * 1.05) and f(s.item()) < f(s.item() * 0.95)
    assert softclip(torch.tensor(-100.0), -6.0).item() >= -6.0
    assert torch.isfinite(sigma_vae_nll(x, x)).all()


@pytest.mark.parametrize("mean, log_scale", [(0.0, -3.0), (0.9, -1.0), (-1.5, 0.0)])
def test_discretized_gaussian_sums_to_one(mean, log_scale):
    bins = torch.linspace(-1, 1, 256).view(256, 1)
    p = discretized_gaussian_log_likelihood(bins, torch.tensor(mean), torch.tensor(log_scale)).exp()
    assert abs(p.sum().item() - 1) < 1e-5


def test_discretized_gaussian_approaches_density_times_bin_width():
    x, sigma = torch.tensor([[0.2]]), 0.5
    lp = discretized_gaussian_log_likelihood(x, torch.tensor(0.0), torch.tensor(math.log(sigma)))
    expected = D.Normal(0.0, sigma).log_prob(x).item() + math.log(2 / 255)
    assert abs(lp.item() - expected) < 1e-3


def test_discretized_logistic_mixture_sums_to_one_rgb_with_coefficients():
    torch.manual_seed(3)
    K = 3
    params = (torch.randn(1, K, 1, 1), 0.6 * torch.randn(1, K, 3, 1, 1), torch.randn(1, K, 3, 1, 1) - 1.0,
              torch.tanh(torch.randn(1, K, 3, 1, 1)))
    vals = torch.linspace(-1, 1, 16)
    grid = torch.tensor(list(itertools.product(vals.tolist(), repeat=3))).view(-1, 3, 1, 1)
    p = discretized_mix_logistic_log_likelihood(grid, *(t.expand(len(grid), *t.shape[1:]) for t in params), n_bits=4).exp()
    assert abs(p.sum().item() - 1) < 1e-4


def test_logistic_mixture_sampling_matches_its_likelihood():
    torch.manual_seed(0)
    n = 20000
    lp, m, ls = torch.zeros(n, 1, 1, 1), torch.full((n, 1, 1, 1, 1), -0.4), torch.full((n, 1, 1, 1, 1), -2.5)
    s = sample_discretized_mix_logistic(lp, m, ls)
    assert abs(s.mean().item() + 0.4) < 0.01
    # logistic variance is pi^2 s^2 / 3
    assert abs(s.var().item() - math.pi ** 2 * math.exp(-5.0) / 3) < 0.002


def test_iwae_bound_is_tight_on_a_linear_gaussian():
    torch.manual_seed(0)
    x0 = torch.tensor(0.7)
    exact = D.Normal(0, math.sqrt(2.0)).log_prob(x0).item()
    q = D.Normal(-0.3, 0.6)
    z = q.sample((5000, 500))
    log_w = D.Normal(0, 1).log_prob(z) + D.Normal(z, 1.0).log_prob(x0) - q.log_prob(z)
    elbo, iw = log_w.mean().item(), iwae_bound(log_w).mean().item()
    assert elbo < iw <= exact + 1e-3 and abs(iw - exact) < 5e-3
    assert abs(bits_per_dim(math.log(2) * 10, 10) - 1.0) < 1e-12


def test_sigma_vae_log_sigma_is_soft_clipped_sigma_star():
    from latentgen.losses import sigma_vae_log_sigma
    x = torch.rand(4, 1, 4, 4)
    far = x + 0.5 * torch.randn_like(x)
    t = sigma_star(x, far).log().item()
    # m + softplus(t - m) = t + log(1 + exp(-(t - m))): log sigma* plus a tail that vanishes far above the bound
    assert abs(sigma_vae_log_sigma(x, far).item() - (t + math.log1p(math.exp(-(t + 6))))) < 1e-5
    assert sigma_vae_log_sigma(x, x + 1e-9).item() >= -6.0                                   # never below it
    assert torch.allclose(sigma_vae_nll(x, far), gaussian_nll(x, far, 2 * sigma_vae_log_sigma(x, far)))
