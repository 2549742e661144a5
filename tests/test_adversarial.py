"""One adversarial iteration (AdaptSegNet): what it updates, what it never updates, what it never reads."""
from __future__ import annotations

import torch
import torch.nn as nn

from models import FCDiscriminator
from utils.adaptation import Level, adversarial_iteration
from utils.engine import Env, make_optimizer
from utils.losses import SegLosses, build_seg_loss


class TinySeg(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 19, 3, padding=1)

    def forward(self, x):
        out = self.conv(x.float() / 255)
        return (out, None, None) if self.training else out

    def param_groups(self):
        return [{"params": list(self.parameters()), "lr_mult": 1.0, "name": "all"}]


class Adversarial:
    """A segmentation net, a discriminator, their optimizers and a source and a target batch."""

    def __init__(self, target_labels_value: int | None = None, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model, self.disc = TinySeg(), FCDiscriminator(num_classes=19, ndf=8)
        g = torch.Generator().manual_seed(1)
        self.src = (torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g),
                    torch.randint(0, 19, (2, 32, 32), generator=g))
        tgt_labels = torch.randint(0, 19, (2, 32, 32), generator=g)
        if target_labels_value is not None:
            tgt_labels.fill_(target_labels_value)
        self.tgt = (torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g), tgt_labels)
        self.optimizers = (make_optimizer("sgd", self.model.param_groups(), 0.01),
                           torch.optim.Adam(self.disc.parameters(), lr=1e-4, betas=(0.9, 0.99)))

    def iteration(self) -> dict:
        level = Level("main", 0, self.disc, self.optimizers[1], 0.001)
        return adversarial_iteration(self.model, self.optimizers[0], SegLosses(build_seg_loss("ce")), self.src,
                                     self.tgt[0], Env(torch.device("cpu"), None, False), [level])


def test_adversarial_iteration_updates_both_networks_and_logs_discriminator_health():
    a = Adversarial()
    seg0 = [p.detach().clone() for p in a.model.parameters()]
    d0 = [p.detach().clone() for p in a.disc.parameters()]
    logs = a.iteration()
    assert any(not torch.equal(x, y) for x, y in zip(seg0, a.model.parameters()))
    assert any(not torch.equal(x, y) for x, y in zip(d0, a.disc.parameters()))
    assert {"loss_seg", "loss_adv", "loss_d", "d_acc_source", "d_acc_target"} <= set(logs)
    assert 0 <= logs["d_acc_source"] <= 100 and 0 <= logs["d_acc_target"] <= 100


def test_generator_step_leaves_no_gradient_on_the_discriminator(monkeypatch):
    """The adversarial loss flows through the frozen discriminator into the segmentation net only: the
    discriminator's gradients at its own step come from its source/target loss alone."""
    a = Adversarial()
    seen = {}
    real_step = a.optimizers[1].step

    def spy_step(*args, **kw):
        seen["grads"] = [p.grad.detach().clone() for p in a.disc.parameters()]
        return real_step(*args, **kw)

    monkeypatch.setattr(a.optimizers[1], "step", spy_step)
    a.iteration()

    # recompute the discriminator's own loss on the same detached outputs: its gradient must equal what it saw
    b = Adversarial()
    import torch.nn.functional as F
    b.model.train()
    with torch.no_grad():
        s = F.softmax(b.model(b.src[0])[0], 1)
        t = F.softmax(b.model(b.tgt[0])[0], 1)
    ds, dt = b.disc(s), b.disc(t)
    loss = (F.binary_cross_entropy_with_logits(ds, torch.zeros_like(ds))
            + F.binary_cross_entropy_with_logits(dt, torch.ones_like(dt))) / 2
    loss.backward()
    for got, want in zip(seen["grads"], [p.grad for p in b.disc.parameters()]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
