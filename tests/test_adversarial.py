"""One adversarial iteration (AdaptSegNet): what it updates, what it never updates, what it never reads."""
from __future__ import annotations

import itertools

import torch
import torch.nn as nn

from models import FCDiscriminator
from utils.engine import Env, Trainer, adversarial_step, make_optimizer
from utils.losses import build_seg_loss


class TinySeg(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 19, 3, padding=1)

    def forward(self, x):
        out = self.conv(x.float() / 255)
        return (out, None, None) if self.training else out

    def param_groups(self):
        return [{"params": list(self.parameters()), "lr_mult": 1.0, "name": "all"}]


def _setup(target_labels_value: int | None = None, seed: int = 0):
    torch.manual_seed(seed)
    model, disc = TinySeg(), FCDiscriminator(num_classes=19, ndf=8)
    g = torch.Generator().manual_seed(1)
    src = (torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g),
           torch.randint(0, 19, (2, 32, 32), generator=g))
    tgt_labels = torch.randint(0, 19, (2, 32, 32), generator=g)
    if target_labels_value is not None:
        tgt_labels.fill_(target_labels_value)
    tgt = (torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g), tgt_labels)
    tr = Trainer(model=model, optimizer=make_optimizer("sgd", model.param_groups(), 0.01),
                 loss_fn=build_seg_loss("ce"), env=Env(torch.device("cpu"), None, False), base_lr=0.01,
                 max_iter=10, discriminator=disc,
                 disc_optimizer=torch.optim.Adam(disc.parameters(), lr=1e-4, betas=(0.9, 0.99)),
                 disc_base_lr=1e-4, lambda_adv=0.001, target_batches=itertools.repeat(tgt))
    return tr, src


def test_adversarial_step_updates_both_networks_and_logs_discriminator_health():
    tr, src = _setup()
    seg0 = [p.detach().clone() for p in tr.model.parameters()]
    d0 = [p.detach().clone() for p in tr.discriminator.parameters()]
    logs = adversarial_step(tr, src)
    assert any(not torch.equal(a, b) for a, b in zip(seg0, tr.model.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, tr.discriminator.parameters()))
    assert {"loss_seg", "loss_adv", "loss_d", "d_acc_source", "d_acc_target"} <= set(logs)
    assert 0 <= logs["d_acc_source"] <= 100 and 0 <= logs["d_acc_target"] <= 100


def test_generator_step_leaves_no_gradient_on_the_discriminator(monkeypatch):
    """The adversarial loss flows through the frozen discriminator into the segmentation net only: the
    discriminator's gradients at its own step come from its source/target loss alone."""
    tr, src = _setup()
    seen = {}
    real_step = tr.disc_optimizer.step

    def spy_step(*a, **kw):
        seen["grads"] = [p.grad.detach().clone() for p in tr.discriminator.parameters()]
        return real_step(*a, **kw)

    monkeypatch.setattr(tr.disc_optimizer, "step", spy_step)
    adversarial_step(tr, src)

    # recompute the discriminator's own loss on the same detached outputs: its gradient must equal what it saw
    tr2, src2 = _setup()
    import torch.nn.functional as F
    tr2.model.train()
    with torch.no_grad():
        s = F.softmax(tr2.model(src2[0])[0], 1)
        t = F.softmax(tr2.model(next(tr2.target_batches)[0])[0], 1)
    d = tr2.discriminator
    ds, dt = d(s), d(t)
    loss = (F.binary_cross_entropy_with_logits(ds, torch.zeros_like(ds))
            + F.binary_cross_entropy_with_logits(dt, torch.ones_like(dt))) / 2
    loss.backward()
    for got, want in zip(seen["grads"], [p.grad for p in d.parameters()]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)


def test_target_labels_are_never_read():
    a, src_a = _setup()
    b, src_b = _setup(target_labels_value=255)
    adversarial_step(a, src_a)
    adversarial_step(b, src_b)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    for pa, pb in zip(a.discriminator.parameters(), b.discriminator.parameters()):
        assert torch.equal(pa, pb)
