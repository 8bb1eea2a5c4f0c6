"""Helpers shared by the model test files."""

from __future__ import annotations

import torch


def loss_after_steps(model, x, loss_fn, target, steps):
    """Loss of the first of ``steps`` Adam steps and the loss after them (train mode).

    Every forward pass reseeds the generator, so all of them draw the same dropout masks and the
    two losses differ only by the training.
    """
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    model.train()
    losses = []
    for _ in range(steps):
        torch.manual_seed(123)
        opt.zero_grad()
        loss = loss_fn(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    torch.manual_seed(123)
    with torch.no_grad():
        return losses[0], loss_fn(model(x), target).item()
