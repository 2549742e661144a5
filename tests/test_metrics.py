"""ConfusionMatrix: hand-computed IoUs, ignore handling, accumulation, device placement, table."""
from __future__ import annotations

import math
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

from utils.classes import CLASS_NAMES
from utils.metrics import ConfusionMatrix

# 5 classes. Counted (target, pred) pairs: (0,0) (0,1) (1,1) (1,1) (2,1) (0,3).
# The three pixels with target 255 (preds 4, 0, 2) and the one with target 7 (out of range) are skipped.
TARGET = torch.tensor([[[0, 0, 1, 255, 7], [1, 2, 0, 255, 255]]])
PRED = torch.tensor([[[0, 1, 1, 4, 4], [1, 1, 3, 0, 2]]])
# By hand:  class 0: TP 1, GT 3, pred 1 -> union 3 -> 33.33 %
#           class 1: TP 2, GT 2, pred 4 -> union 4 -> 50 %
#           class 2: TP 0, GT 1, pred 0 -> 0 %
#           class 3: TP 0, GT 0, pred 1 (predicted, not in GT) -> 0 %
#           class 4: absent from GT and from the counted predictions -> NaN
#           mIoU = (33.33 + 50 + 0 + 0) / 4 = 20.83 %; pixel acc = 3 correct / 6 counted = 50 %
EXPECTED_IOU = [100 / 3, 50.0, 0.0, 0.0]
EXPECTED_MIOU = 125 / 6
EXPECTED_ACC = 50.0


def test_hand_computed_example():
    cm = ConfusionMatrix(num_classes=5)
    cm.update(pred=PRED, target=TARGET)
    expected_mat = torch.zeros(5, 5, dtype=torch.int64)
    expected_mat[0, 0] = expected_mat[0, 1] = expected_mat[0, 3] = expected_mat[2, 1] = 1
    expected_mat[1, 1] = 2
    assert torch.equal(cm.mat, expected_mat)

    res = cm.compute()
    ious = res["per_class_iou"]
    assert list(ious) == ["0", "1", "2", "3", "4"]
    for name, want in zip("0123", EXPECTED_IOU):
        assert ious[name] == pytest.approx(want)
    assert math.isnan(ious["4"])
    assert res["miou"] == pytest.approx(EXPECTED_MIOU)
    assert res["pixel_acc"] == pytest.approx(EXPECTED_ACC)
    assert all(type(v) is float for v in [res["miou"], res["pixel_acc"], *ious.values()])


def test_accumulation_equals_one_update_of_concatenation():
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 19, (4, 16, 24), generator=g)
    t[torch.rand(t.shape, generator=g) < 0.2] = 255
    p = torch.randint(0, 19, (4, 16, 24), generator=g)
    p[t < 5] = t[t < 5]  # some agreement so IoUs are not all ~0

    a = ConfusionMatrix()
    a.update(pred=p[:1], target=t[:1])
    a.update(pred=p[1:], target=t[1:])
    b = ConfusionMatrix()
    b.update(pred=p, target=t)
    assert torch.equal(a.mat, b.mat)
    assert a.compute() == b.compute()

    # An independent per-pixel count of the same matrix.
    keep = t != 255
    ref = torch.zeros(19, 19, dtype=torch.int64)
    ref.index_put_((t[keep], p[keep]), torch.ones(int(keep.sum()), dtype=torch.int64), accumulate=True)
    assert torch.equal(a.mat, ref)
    # mIoU from one matrix is not the mean of per-batch mIoUs (the trap this class exists to avoid).
    per_batch = []
    for i in range(4):
        c = ConfusionMatrix()
        c.update(pred=p[i], target=t[i])
        per_batch.append(c.compute()["miou"])
    assert a.compute()["miou"] != pytest.approx(sum(per_batch) / 4, abs=1e-6)


def test_reset_and_empty():
    cm = ConfusionMatrix(num_classes=3)
    cm.update(pred=torch.tensor([0, 1]), target=torch.tensor([0, 2]))
    assert cm.mat.sum() == 2
    cm.reset()
    assert cm.mat.sum() == 0
    res = cm.compute()
    assert math.isnan(res["miou"]) and math.isnan(res["pixel_acc"])
    assert all(math.isnan(v) for v in res["per_class_iou"].values())
    cm.update(pred=torch.full((4,), 1), target=torch.full((4,), 255))  # all ignored: nothing counted
    assert cm.mat.sum() == 0


def test_names_default_and_custom():
    assert list(ConfusionMatrix().compute()["per_class_iou"]) == list(CLASS_NAMES)
    assert list(ConfusionMatrix(num_classes=2, class_names=["a", "b"]).compute()["per_class_iou"]) == ["a", "b"]
    with pytest.raises(ValueError):
        ConfusionMatrix(num_classes=2, class_names=["a"])


def test_bad_inputs_are_clear():
    cm = ConfusionMatrix(num_classes=3)
    with pytest.raises(ValueError, match="shapes differ"):
        cm.update(pred=torch.zeros(2, 3, dtype=torch.long), target=torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="argmax"):
        cm.update(pred=torch.zeros(2, 3), target=torch.zeros(2, 3, dtype=torch.long))
    # Negative targets and out-of-range predictions are skipped, not a crash.
    cm.update(pred=torch.tensor([0, 5, 1]), target=torch.tensor([-1, 1, 1]))
    assert cm.mat.sum() == 1 and cm.mat[1, 1] == 1


def test_uint8_labels_and_device_placement():
    cm = ConfusionMatrix(num_classes=5)
    cm.update(pred=PRED.to(torch.uint8), target=TARGET.to(torch.uint8))
    assert cm.mat.dtype == torch.int64
    assert cm.mat.device == TARGET.device
    assert cm.compute()["miou"] == pytest.approx(EXPECTED_MIOU)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_accumulates_on_device():
    cm = ConfusionMatrix(num_classes=5)
    cm.update(pred=PRED.cuda(), target=TARGET.cuda())
    assert cm.mat.device.type == "cuda" and cm.mat.dtype == torch.int64
    assert cm.compute()["miou"] == pytest.approx(EXPECTED_MIOU)


def test_str_table():
    cm = ConfusionMatrix()
    t = torch.tensor([[0, 1, 255]])
    cm.update(pred=torch.tensor([[0, 0, 2]]), target=t)
    text = str(cm)
    for name in CLASS_NAMES:
        assert name in text
    road = next(line for line in text.splitlines() if line.startswith("road"))
    assert road.split()[-1] == "50.00"
    sky = next(line for line in text.splitlines() if line.startswith("sky"))
    assert sky.split()[-1] == "-"
    assert "mIoU" in text and "pixel acc" in text


def test_reduce_is_noop_without_distributed_and_sums_with_it(tmp_path):
    cm = ConfusionMatrix(num_classes=5)
    cm.update(pred=PRED, target=TARGET)
    before = cm.mat.clone()
    cm.reduce_from_all_processes()
    assert torch.equal(cm.mat, before)
    if not dist.is_available():
        pytest.skip("torch.distributed not available")
    store = dist.FileStore(str(tmp_path / "store"), 1)
    try:
        dist.init_process_group("gloo", store=store, rank=0, world_size=1, timeout=timedelta(seconds=20))
    except RuntimeError as e:  # e.g. a sandbox whose hostname does not resolve
        pytest.skip(f"gloo process group unavailable here: {e}")
    try:
        cm.reduce_from_all_processes()
        assert torch.equal(cm.mat, before)  # one process: the sum is itself
    finally:
        dist.destroy_process_group()
