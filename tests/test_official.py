"""The official Cityscapes tools (cityscapesScripts) agree with the project.

What passing proves:

- The class table: all 35 labels (34 label ids and license plate, -1) have the official name, id, train id,
  category, instance and ignore flags and colour; the project's ignore (train id 255) is exactly the official
  ``ignoreInEval``; the label id -> train id lookup the datasets decode with and the train id -> label id
  lookup ``predict.py --format labelIds`` writes with equal the official ones for every id.
- Scoring: the files ``predict.py --format labelIds`` writes, found by the official file matcher and scored by
  the official ``evalPixelLevelSemanticLabeling``, give the same mIoU and the same IoU for every class (NaN for
  the same classes) as the project's own evaluation (``utils.engine.confusion_matrix`` on ``Cityscapes(...,
  full_labels=True)``) of the same checkpoint at the same input size, on the real sample and on the synthetic
  world's val split. An input prepared otherwise than evaluation prepares it, a prediction at another
  resolution, or an IoU or mean defined otherwise (say classes absent from both counted as 0) breaks equality.
- The id mappings end to end: predict.py writing the project's own decoded ground truth scores exactly 100 on
  every class with the official tool, so a wrong entry in either mapping for any class present fails.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import predict
from datasets import Cityscapes
from datasets.labels import ID_TO_TRAINID, TRAINID_TO_ID
from models import BiSeNet
from utils.checkpoint import atomic_save
from utils.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, PALETTE, TABLE
from utils.data import make_loader
from utils.engine import Env, confusion_matrix
from utils.fast import CHANNELS_LAST, inference_model

official = pytest.importorskip(
    "cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling",
    reason="cityscapesscripts (the official Cityscapes tools, a test dependency in requirements.txt) is not "
           "installed")
from cityscapesscripts.helpers import labels as official_labels  # noqa: E402

CPU = torch.device("cpu")
# (dataset root below the fixture, network input size): each about half its images' size, so that the
# logits are upsampled to the full-resolution label as in the official protocol.
CASES = {"real_sample": ("cityscapes_sample", (64, 128)), "synthetic_world": ("Cityscapes", (32, 64))}


@pytest.fixture(params=list(CASES))
def case(request) -> tuple[Path, tuple[int, int]]:
    folder, size = CASES[request.param]
    base = request.getfixturevalue("fixtures_dir" if request.param == "real_sample" else "tiny_world")
    return base / folder, size


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised BiSeNet saved as the step scripts save checkpoints, so predict.py rebuilds it."""
    torch.manual_seed(0)
    model = BiSeNet(num_classes=19)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    atomic_save({"trainer": {"model": model.state_dict(), "optimizer": {}, "global_it": 0},
                 "state": {"epoch": 1}, "rng": {}, "config": {"SEED": 0}, "model_spec": model.spec,
                 "variant": "default"}, path)
    return path


def predict_label_ids(checkpoint: Path, root: Path, size: tuple[int, int], out: Path) -> None:
    predict.main(["--checkpoint", str(checkpoint), "--input", str(root / "leftImg8bit" / "val"), "--out", str(out),
                  "--format", "labelIds", "--size", f"{size[0]},{size[1]}", "--device", "cpu", "--amp", "off"])


def official_evaluation(root: Path, predictions: Path) -> dict:
    """The official pixel-level evaluation of ``root``'s val split, each prediction found by its own matcher."""
    args = copy.copy(official.args)  # the module's settings, without changing them for anyone else
    args.cityscapesPath = str(root)
    args.predictionPath = str(predictions)
    args.predictionWalk = None
    args.evalInstLevelScore = False  # needs instanceIds files, which the synthetic world has no use for
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.quiet = True
    ground_truth = sorted(str(p) for p in (root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    assert ground_truth
    found = [official.getPrediction(args, gt) for gt in ground_truth]
    return official.evaluateImgLists(found, ground_truth, args)


def official_train_class_ious(result: dict) -> dict[str, float]:
    """Official IoU per train class in percent; the official scores hold NaN for the ignored labels too."""
    return {name: result["classScores"][name] * 100.0 for name in CLASS_NAMES}


def test_class_table_and_id_mappings_equal_official() -> None:
    ours = [(c.name, c.id, c.train_id, c.category, c.category_id, c.has_instances, c.ignore_in_eval, tuple(c.color))
            for c in TABLE]
    theirs = [(lb.name, lb.id, lb.trainId, lb.category, lb.categoryId, lb.hasInstances, lb.ignoreInEval,
               tuple(lb.color)) for lb in official_labels.labels]
    assert ours == theirs
    assert len([lb for lb in official_labels.labels if lb.id >= 0]) == 34

    # The project decodes to train ids, where ignore is 255; officially a label is scored iff not ignoreInEval.
    for lb in official_labels.labels:
        assert lb.ignoreInEval == (not 0 <= lb.trainId < NUM_CLASSES), lb
    for label_id in range(34):
        lb = official_labels.id2label[label_id]
        expected = IGNORE_INDEX if lb.ignoreInEval else lb.trainId
        assert ID_TO_TRAINID[label_id] == expected, lb
    # License plate (-1) is never drawn into official labelIds files (json2labelImg skips negative ids), so a
    # uint8 file cannot hold it; ids beyond the table, 255 (-1 as uint8) included, decode to ignore.
    assert official_labels.name2label["license plate"].id == -1
    assert (ID_TO_TRAINID[34:] == IGNORE_INDEX).all()

    for train_id in range(NUM_CLASSES):
        lb = official_labels.trainId2label[train_id]
        assert TRAINID_TO_ID[train_id] == lb.id and not lb.ignoreInEval
        assert CLASS_NAMES[train_id] == lb.name and tuple(PALETTE[train_id]) == lb.color
        assert ID_TO_TRAINID[TRAINID_TO_ID[train_id]] == train_id


def test_official_evaluation_equals_project_evaluation(case, checkpoint: Path, tmp_path: Path) -> None:
    root, size = case
    predict_label_ids(checkpoint, root, size, tmp_path / "pred")
    result = official_evaluation(root, tmp_path / "pred")

    # label_source="labelIds": the ground truth the official tool reads (the real sample's labelTrainIds file
    # was downsampled on its own and disagrees with it on 77 border pixels).
    dataset = Cityscapes(root, "val", size=size, label_source="labelIds", full_labels=True)
    loader = make_loader(dataset, 1, train=False, seed=0, device=CPU, num_workers=0)
    # The model exactly as predict.py runs it (BatchNorm folded, channels_last): the comparison is about
    # inputs and scoring, not about float rounding between two forms of one network.
    model = inference_model(predict.load_model(checkpoint, CPU), CPU, channels_last=CHANNELS_LAST["cpu"])
    ours = confusion_matrix(model, loader, Env(CPU, None, False), progress=False).compute()

    theirs = official_train_class_ious(result)
    assert [math.isnan(v) for v in theirs.values()] == [math.isnan(v) for v in ours["per_class_iou"].values()]
    assert sum(not math.isnan(v) for v in theirs.values()) >= 10  # enough classes to tell a wrong average
    for name, iou in ours["per_class_iou"].items():
        if not math.isnan(iou):
            assert iou == pytest.approx(theirs[name], abs=1e-6), name
    assert result["averageScoreClasses"] > 0
    assert ours["miou"] == pytest.approx(result["averageScoreClasses"] * 100.0, abs=1e-6)


def test_ground_truth_written_as_label_ids_scores_100_officially(case, checkpoint: Path, tmp_path: Path,
                                                                  monkeypatch) -> None:
    root, _ = case
    truth = {}
    for image, label in Cityscapes(root, "val", label_source="labelIds"):
        truth[image.permute(1, 2, 0).numpy().tobytes()] = label.numpy().astype(np.uint8)

    def oracle(model, image, device, amp_dtype, size=None):
        return truth[np.ascontiguousarray(image).tobytes()]

    monkeypatch.setattr(predict, "predict", oracle)
    predict.main(["--checkpoint", str(checkpoint), "--input", str(root / "leftImg8bit" / "val"),
                  "--out", str(tmp_path / "pred"), "--format", "labelIds", "--device", "cpu", "--amp", "off"])
    result = official_evaluation(root, tmp_path / "pred")

    scored = {name: v for name, v in official_train_class_ious(result).items() if not math.isnan(v)}
    present = {CLASS_NAMES[t] for label in truth.values() for t in np.unique(label) if t != IGNORE_INDEX}
    assert scored == {name: 100.0 for name in present}
    assert result["averageScoreClasses"] == 1.0
