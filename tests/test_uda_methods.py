"""ADVENT (MinEnt, AdvEnt) and FDA against hand computations on tiny tensors, and step 6's variants end to end."""
from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from models import FCDiscriminator
from utils.adaptation import Level
from utils.advent import advent_iteration, entropy_loss, entropy_map, self_information
from utils.engine import Env, make_optimizer
from utils.fda import amplitude_swap, fda_source_to_target, robust_entropy, window_size
from utils.losses import SegLosses, build_seg_loss

from test_adversarial import TinySeg
from test_steps import tiny_args

CPU = Env(torch.device("cpu"), None, False)


def _logits(*probs: float) -> torch.Tensor:
    """(1, C, 1, 1) logits of the given class probabilities."""
    return torch.tensor(probs, dtype=torch.float64).log().view(1, -1, 1, 1)


def test_normalised_entropy_and_self_information_by_hand():
    p = (0.7, 0.1, 0.1, 0.1)
    x = _logits(*p)
    by_hand = -(0.7 * math.log(0.7) + 3 * 0.1 * math.log(0.1)) / math.log(4)
    assert entropy_map(x).item() == pytest.approx(by_hand, rel=1e-6)
    info = self_information(x).flatten().tolist()
    assert info == pytest.approx([-q * math.log(q) / math.log(4) for q in p], rel=1e-6)
    assert entropy_map(torch.zeros(1, 19, 1, 1)).item() == pytest.approx(1.0)  # uniform
    assert entropy_map(_logits(1 - 1e-12, 1e-12 / 3, 1e-12 / 3, 1e-12 / 3)).item() < 1e-9  # certain
    # the loss averages the map over every pixel of the batch
    batch = torch.cat([x, torch.zeros(1, 4, 1, 1, dtype=torch.float64)]).expand(2, 4, 2, 3)
    assert entropy_loss(batch).item() == pytest.approx((by_hand + 1.0) / 2, rel=1e-6)


def test_fda_robust_entropy_by_hand():
    x = _logits(0.7, 0.1, 0.1, 0.1)
    ent = -(0.7 * math.log(0.7) + 0.3 * math.log(0.1)) / math.log(4)
    assert robust_entropy(x, 2.0).item() == pytest.approx((ent ** 2 + 1e-8) ** 2, rel=1e-5)


def _advent_parts(with_disc: bool):
    torch.manual_seed(0)
    model, disc = TinySeg(), (FCDiscriminator(num_classes=19, ndf=8) if with_disc else None)
    g = torch.Generator().manual_seed(1)
    src = (torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g),
           torch.randint(0, 19, (2, 32, 32), generator=g))
    tgt = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g)
    opts = (make_optimizer("sgd", model.param_groups(), 0.1, momentum=0.0, weight_decay=0.0),
            torch.optim.Adam(disc.parameters(), lr=1e-4) if disc is not None else None)
    return model, disc, src, tgt, opts


def test_minent_step_is_source_loss_plus_weighted_entropy():
    """MinEnt alone (no discriminator): one SGD step equals a hand-written step on seg + lambda_ent * entropy."""
    model, _, src, tgt, opts = _advent_parts(False)
    ref = TinySeg()
    ref.load_state_dict(model.state_dict())
    logs = advent_iteration(model, opts[0], SegLosses(build_seg_loss("ce")), src, tgt, CPU, lambda_ent=0.5)
    assert {"loss_seg", "loss_ent"} <= set(logs) and "loss_adv" not in logs

    ref.train()
    seg = torch.nn.functional.cross_entropy(ref(src[0])[0], src[1], ignore_index=255)
    ent = entropy_loss(ref(tgt)[0])
    assert logs["loss_ent"] == pytest.approx(ent.item(), rel=1e-5)
    (seg + 0.5 * ent).backward()
    for p_ref, p in zip(ref.parameters(), model.parameters()):
        torch.testing.assert_close(p, p_ref - 0.1 * p_ref.grad, rtol=1e-5, atol=1e-7)


def test_advent_discriminator_judges_self_information_maps(monkeypatch):
    model, disc, src, tgt, opts = _advent_parts(True)
    seen = []
    real_forward = FCDiscriminator.forward
    monkeypatch.setattr(FCDiscriminator, "forward", lambda self, x: seen.append(x.detach().clone())
                        or real_forward(self, x))
    model_before = TinySeg()
    model_before.load_state_dict(model.state_dict())
    logs = advent_iteration(model, opts[0], SegLosses(build_seg_loss("ce")), src, tgt, CPU, lambda_ent=0.0,
                            level=Level("main", 0, disc, opts[1], 0.001))
    assert {"loss_adv", "loss_d", "d_acc_source", "d_acc_target"} <= set(logs) and "loss_ent" not in logs
    model_before.train()
    with torch.no_grad():
        want_tgt = self_information(model_before(tgt)[0])
        want_src = self_information(model_before(src[0])[0])
    # the generator's call on the target, then the discriminator's own on source and target
    assert len(seen) == 3
    for got, want in zip(seen, (want_tgt, want_src, want_tgt)):
        torch.testing.assert_close(got, want.float(), rtol=1e-5, atol=1e-6)


def test_fda_window_sizes():
    assert window_size(0.01, (512, 1024)) == 5
    assert window_size(0.01, (80, 160)) == 0  # the paper's beta at the study's size: an empty window
    assert window_size(0.01, (80, 160), reference=(512, 1024)) == 1  # scaled: the lowest frequency
    assert window_size(0.05, (384, 768), reference=(512, 1024)) == 19  # 25 * 384 / 512 = 18.75
    assert window_size(0.0, (80, 160), reference=(512, 1024)) == 0


def test_fda_beta_zero_returns_the_source_and_the_swap_keeps_its_phase():
    g = torch.Generator().manual_seed(0)
    src = torch.randint(0, 256, (2, 3, 16, 24), dtype=torch.uint8, generator=g)
    tgt = torch.randint(0, 256, (2, 3, 16, 24), dtype=torch.uint8, generator=g)
    assert torch.equal(fda_source_to_target(src, tgt, window_size(0.0, (16, 24))), src)

    s, t = src.double(), tgt.double()
    out = amplitude_swap(s, t, 3)
    fs, ft, fo = torch.fft.fft2(s), torch.fft.fft2(t), torch.fft.fft2(out)
    k = torch.fft.fftfreq(16, 1 / 16).abs()[:, None], torch.fft.fftfreq(24, 1 / 24).abs()[None, :]
    low = (k[0] < 3) & (k[1] < 3)
    torch.testing.assert_close(fo.abs()[..., low], ft.abs()[..., low])  # the target's low-frequency amplitude
    torch.testing.assert_close(fo.abs()[..., ~low], fs.abs()[..., ~low])  # the source's elsewhere
    phase_diff = torch.remainder(fo.angle() - fs.angle() + math.pi, 2 * math.pi) - math.pi
    assert phase_diff.abs().max() < 1e-6  # the source's phase everywhere

    # b = 1 swaps the DC term alone: each channel takes the target's mean, the rest is the source's
    dc = amplitude_swap(s, t, 1)
    torch.testing.assert_close(dc.mean(dim=(-2, -1)), t.mean(dim=(-2, -1)))
    torch.testing.assert_close(dc - dc.mean(dim=(-2, -1), keepdim=True), s - s.mean(dim=(-2, -1), keepdim=True))


def test_step6_every_variant_trains_and_a_stopped_run_resumes(tiny_world, tmp_path, monkeypatch, capsys):
    """Every variant trains 2 epochs of 2 iterations; AdaptSegNet multi-level (two discriminators), AdvEnt+MinEnt
    and DACS (its teacher) stopped in their second epoch resume from their checkpoint and end where the
    uninterrupted runs end."""
    import utils.adaptation
    import utils.advent
    import utils.dacs
    import utils.results
    from step6_uda_methods import VARIANTS, main

    monkeypatch.setattr(utils.results, "_plot", lambda *a, **k: None)  # each run's pictures: test_plots.py's job
    args = ["--TARGET_SIZE=32,64", "--EPOCHS=2", "--DETERMINISTIC=true", "--FDA_BETA=0.05"]
    ref = {}
    for variant in VARIANTS:  # one at a time, each one's checkpoints dropped: eight runs' at once fill a small disk
        ref.update(main(tiny_args(tiny_world, tmp_path / "ref", f"--VARIANTS={variant}", *args))["variants"])
        shutil.rmtree(tmp_path / "ref" / "step6_uda_methods-demo" / variant)
    assert set(ref) == set(VARIANTS)
    for name, r in ref.items():
        assert r["step"] == "6" and r["iterations"] == 4 and 0 <= r["miou"] <= 100, name
    history = {n: r["history"][-1] for n, r in ref.items()}
    assert "loss_ent" in history["minent"] and "loss_adv" not in history["minent"]
    assert "loss_adv" in history["advent"] and "loss_ent" not in history["advent"]
    assert {"loss_adv", "loss_ent", "d_acc_source"} <= set(history["advent_minent"])
    assert "loss_ent" in history["fda"] and "loss_adv" not in history["fda"]
    assert {"loss_adv_low", "loss_d_low"} <= set(history["adv_multilevel"])
    assert "loss_adv_low" not in history["adv_single"]
    assert {"loss_mix", "pseudo_weight"} <= set(history["dacs"])

    stopped = tiny_args(tiny_world, tmp_path / "stopped", "--VARIANTS=adv_multilevel,advent_minent,dacs", *args)
    calls = {"n": 0}
    for module, name in ((utils.adaptation, "adversarial_iteration"), (utils.advent, "advent_iteration"),
                         (utils.dacs, "dacs_iteration")):
        real = getattr(module, name)

        def stopping(*a, _real=real, **kw):
            calls["n"] += 1
            if calls["n"] == 3:  # the first iteration of epoch 2, after epoch 1's checkpoint
                calls["n"] = 0
                raise KeyboardInterrupt
            return _real(*a, **kw)

        monkeypatch.setattr(module, name, stopping)
        with pytest.raises(KeyboardInterrupt):
            main(stopped)
        monkeypatch.setattr(module, name, real)
    capsys.readouterr()
    resumed = main(stopped)["variants"]
    assert "resuming" in capsys.readouterr().out
    for name in ("adv_multilevel", "advent_minent", "dacs"):
        assert resumed[name]["iterations"] == 4
        assert resumed[name]["miou"] == ref[name]["miou"], name
        assert resumed[name]["per_class_iou"] == ref[name]["per_class_iou"], name
        saved = json.loads((tmp_path / "stopped" / "step6_uda_methods-demo" / name / "results.json").read_text())
        assert saved["miou"] == resumed[name]["miou"]


class TwoLevelSeg(torch.nn.Module):
    """A main and a lower output, as a multi-level network returns them in training mode."""

    def __init__(self):
        super().__init__()
        self.main, self.low = torch.nn.Conv2d(3, 19, 3, padding=1), torch.nn.Conv2d(3, 19, 1)

    def forward(self, x):
        x = x.float() / 255
        return (self.main(x), self.low(x), None) if self.training else self.main(x)

    def param_groups(self):
        return [{"params": list(self.parameters()), "lr_mult": 1.0, "name": "all"}]


def test_multilevel_weights_reach_their_outputs():
    """AdaptSegNet multi-level: one SGD step equals a hand-written step on seg(main) + aux_weight * seg(low)
    + 0.001 * adv(main via D_main) + 0.0002 * adv(low via D_low); each discriminator sees its own output."""
    import copy

    import torch.nn.functional as F

    from utils.adaptation import Level, adversarial_iteration

    torch.manual_seed(0)
    model, d_main, d_low = TwoLevelSeg(), FCDiscriminator(19, ndf=8), FCDiscriminator(19, ndf=8)
    ref, ref_main, ref_low = copy.deepcopy(model), copy.deepcopy(d_main), copy.deepcopy(d_low)
    g = torch.Generator().manual_seed(1)
    src = (torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g),
           torch.randint(0, 19, (2, 32, 32), generator=g))
    tgt = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g)
    opt = make_optimizer("sgd", model.param_groups(), 0.1, momentum=0.0, weight_decay=0.0)
    d_opts = [torch.optim.Adam(d.parameters(), lr=1e-4) for d in (d_main, d_low)]
    levels = [Level("main", 0, d_main, d_opts[0], 0.001), Level("low", 1, d_low, d_opts[1], 0.0002)]
    logs = adversarial_iteration(model, opt, SegLosses(build_seg_loss("ce"), aux_weight=0.1), src, tgt, CPU, levels)
    assert {"loss_adv", "loss_adv_low", "loss_d", "loss_d_low", "d_acc_source_low", "loss_aux16"} <= set(logs)

    ref.train()
    ref_main.requires_grad_(False)
    ref_low.requires_grad_(False)
    s_main, s_low, _ = ref(src[0])
    t_main, t_low, _ = ref(tgt)
    bce = F.binary_cross_entropy_with_logits
    adv_main = bce(ref_main(F.softmax(t_main, 1)), torch.zeros(2, 1, 1, 1))
    adv_low = bce(ref_low(F.softmax(t_low, 1)), torch.zeros(2, 1, 1, 1))
    assert logs["loss_adv"] == pytest.approx(adv_main.item(), rel=1e-5)
    assert logs["loss_adv_low"] == pytest.approx(adv_low.item(), rel=1e-5)
    total = (F.cross_entropy(s_main, src[1]) + 0.1 * F.cross_entropy(s_low, src[1]) + 0.001 * adv_main
             + 0.0002 * adv_low)
    total.backward()
    for p_ref, p in zip(ref.parameters(), model.parameters()):
        torch.testing.assert_close(p, p_ref - 0.1 * p_ref.grad, rtol=1e-5, atol=1e-8)
    # each discriminator trained on its own level: the lower one's step moved it, from its own loss
    assert any(not torch.equal(a, b) for a, b in zip(d_low.parameters(), ref_low.parameters()))


def test_deeplabv2_builds_its_layer3_classifier_only_when_asked():
    from models import DeepLabV2, build_model

    plain, multi = DeepLabV2(19), DeepLabV2(19, multi_level=True)
    assert not hasattr(plain, "low_classifier") or plain.low_classifier is None
    assert "multi_level" not in plain.spec and multi.spec["multi_level"] is True
    extra = sum(p.numel() for p in multi.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 4 * (1024 * 19 * 9 + 19)  # four dilated 3x3 convolutions on layer3's 1024 channels
    x = torch.randint(0, 256, (1, 3, 33, 41), dtype=torch.uint8)
    multi.train()
    main, low, none = multi(x)
    assert main.shape == low.shape == (1, 19, 33, 41) and none is None
    assert "low_classifier.branches.0.weight" in build_model(multi.spec).state_dict()
    multi.eval()
    assert multi(x).shape == (1, 19, 33, 41)


def test_ema_teacher_update_by_hand():
    from utils.dacs import ema_update, make_teacher

    student = torch.nn.Linear(2, 1)
    teacher = make_teacher(student)
    with torch.no_grad():
        student.weight.fill_(1.0)
        teacher.weight.fill_(3.0)
    assert ema_update(teacher, student, 0.99, 0) == 0.0  # iteration 0: the teacher becomes the student
    torch.testing.assert_close(teacher.weight, torch.ones(1, 2))
    with torch.no_grad():
        teacher.weight.fill_(3.0)
    assert ema_update(teacher, student, 0.99, 1) == 0.5  # warm-up: min(1 - 1/2, 0.99)
    torch.testing.assert_close(teacher.weight, torch.full((1, 2), 2.0))
    with torch.no_grad():
        teacher.weight.fill_(3.0)
    assert ema_update(teacher, student, 0.99, 10_000) == 0.99
    torch.testing.assert_close(teacher.weight, torch.full((1, 2), 0.99 * 3 + 0.01 * 1))
    assert not any(p.requires_grad for p in teacher.parameters()) and teacher.training  # DACS's mode


def test_classmix_pastes_source_classes_over_pseudo_labels():
    from utils.dacs import classmix, classmix_masks, pseudo_labels

    src_lab = torch.tensor([[[0, 0, 1, 1], [2, 2, 3, 255]]])  # classes 0..3 and an ignored pixel
    masks = classmix_masks(src_lab, torch.Generator().manual_seed(0))
    chosen = src_lab[masks].unique().tolist()
    assert len(chosen) == 2 and 255 not in chosen  # half of the four classes, never the ignored pixel
    assert torch.equal(masks, torch.isin(src_lab, torch.tensor(chosen)))

    src_img = torch.full((1, 3, 2, 4), 200, dtype=torch.uint8)
    tgt_img = torch.full((1, 3, 2, 4), 10, dtype=torch.uint8)
    pseudo = torch.full((1, 2, 4), 7)
    weight = torch.full((1, 2, 4), 0.25)
    img, lab, w = classmix(src_img, src_lab, tgt_img, pseudo, weight, masks)
    assert torch.equal(img, torch.where(masks.unsqueeze(1), src_img, tgt_img))
    assert torch.equal(lab[masks], src_lab[masks]) and (lab[~masks] == 7).all()
    assert (w[masks] == 1).all() and (w[~masks] == 0.25).all()

    class Fixed(torch.nn.Module):  # confident (p > 0.968) on 3 of 4 pixels
        def forward(self, x):
            logits = torch.zeros(1, 19, 2, 2)
            logits[0, 5, :, :] = torch.tensor([[10.0, 10.0], [10.0, 0.5]])
            return logits

    labels, weights = pseudo_labels(Fixed(), torch.zeros(1, 3, 2, 2), CPU, 0.968)
    assert (labels == 5).all() and weights.shape == (1, 2, 2)  # the argmax, confident or not
    assert weights.unique().tolist() == [0.75]


def test_dacs_strong_augmentation_keeps_uint8_and_follows_its_generator():
    from utils.dacs import strong_augment

    x = torch.randint(0, 256, (2, 3, 20, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    outs = [strong_augment(x, torch.Generator().manual_seed(s)) for s in range(12)]
    assert all(o.dtype == torch.uint8 and o.shape == x.shape for o in outs)
    assert any(torch.equal(o, x) for o in outs) and any(not torch.equal(o, x) for o in outs)  # applied by chance
    again = strong_augment(x, torch.Generator().manual_seed(5))
    assert torch.equal(again, outs[5])  # the same draws from the same generator


def test_step6_deeplabv2_multilevel_starts_from_a_single_level_run(tiny_world, tmp_path, monkeypatch):
    """MODEL=deeplabv2: a source-only run, then the multi-level variant started from its last.pt (the layer3
    classifier starts fresh); the lower output carries LOW_SEG_WEIGHT and its own discriminator."""
    import utils.results
    from step6_uda_methods import main

    monkeypatch.setattr(utils.results, "_plot", lambda *a, **k: None)
    args = ["--MODEL=deeplabv2", "--TARGET_SIZE=32,64", "--TRAIN_IMAGES=6"]
    first = main(tiny_args(tiny_world, tmp_path / "a", "--VARIANTS=source_only", *args))["variants"]["source_only"]
    assert first["model"] == "deeplabv2" and first["iterations"] == 1
    start = tmp_path / "a" / "step6_uda_methods-demo" / "source_only" / "last.pt"
    multi = main(tiny_args(tiny_world, tmp_path / "b", "--VARIANTS=adv_multilevel", f"--INIT_FROM={start}",
                           *args))["variants"]["adv_multilevel"]
    logs = multi["history"][-1]
    assert {"loss_seg", "loss_aux16", "loss_adv", "loss_adv_low", "loss_d_low"} <= set(logs)
    assert multi["model_spec"]["multi_level"] is True and 0 <= multi["miou"] <= 100
