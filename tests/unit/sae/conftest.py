"""Shared SAE test helpers: planted sparse dictionaries and quickly trained SAEs."""

from __future__ import annotations

import pytest
import torch


def planted(d: int = 32, n_atoms: int = 64, p: float = 4 / 64, seed: int = 0):
    """A unit-norm dictionary ``[n_atoms, d]`` and an infinite iterator of sparse mixtures of its atoms."""
    gen = torch.Generator().manual_seed(seed)
    atoms = torch.randn(n_atoms, d, generator=gen)
    atoms /= atoms.norm(dim=-1, keepdim=True)

    def batches(bs: int = 1024):
        while True:
            on = (torch.rand(bs, n_atoms, generator=gen) < p).float()
            yield (on * (torch.rand(bs, n_atoms, generator=gen) + 0.5)) @ atoms + 0.3

    return atoms, batches


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny SAEs run ~10x faster on one thread when the cores are shared; restored afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def make_planted():
    """The :func:`planted` factory."""
    return planted


@pytest.fixture(scope="session")
def planted_data():
    """(atoms, batches) of the default planted dictionary."""
    return planted()
