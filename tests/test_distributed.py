"""Several processes under torchrun (CPU, Gloo): step scripts run unchanged, shard training and evaluation,
agree on the run's status, and only rank 0 writes; the reduced confusion matrix, a DDP iteration and AdaBN's
statistics equal their single-process counterparts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from tests.test_steps import RESULT_KEYS, tiny_args

ROOT = Path(__file__).resolve().parents[1]

# Ranks other than 0 run the script under an audit hook that fails on any write below the watched folders.
LAUNCH = textwrap.dedent('''
    import os, runpy, sys
    watched = [os.path.realpath(p) for p in os.environ["NO_WRITE_BELOW"].split(os.pathsep)]

    def _watched(path):
        if isinstance(path, int):
            return False
        path = os.path.realpath(os.fsdecode(path))
        return any(path == w or path.startswith(w + os.sep) for w in watched)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(
                flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
            paths = [path] if writes else []
        elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree", "os.unlink"):
            paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
        else:
            return
        bad = [p for p in paths if _watched(p)]
        if bad:
            os.write(2, f"FORBIDDEN WRITE by rank {os.environ['RANK']}: {event} {bad[0]}\\n".encode())
            raise RuntimeError(f"rank {os.environ['RANK']} wrote {bad[0]}")

    if os.environ["RANK"] != "0":
        sys.addaudithook(hook)
    script, *sys.argv[1:] = sys.argv[1:]
    sys.argv[0] = script
    runpy.run_path(script, run_name="__main__")
''')


def torchrun(tmp_path: Path, script: str, args: list[str], no_write_below: list[Path], nproc: int = 2,
             timeout: int = 240) -> subprocess.CompletedProcess:
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCH)
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT),
               NO_WRITE_BELOW=os.pathsep.join(str(p) for p in no_write_below))
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone",
           str(launcher), str(ROOT / script), *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def check_results(r: dict, step: str, iterations: int) -> None:
    missing = [k for k in RESULT_KEYS if k not in r]
    assert not missing, f"results.json lacks {missing}"
    assert r["step"] == step and r["device"] == "cpu" and r["synthetic"] is True
    assert r["iterations"] == iterations
    assert 0 <= r["miou"] <= 100 and 0 <= r["pixel_acc"] <= 100 and len(r["per_class_iou"]) == 19
    assert r["params_m"] > 1 and r["flops_g"] > 0 and r["latency_ms"] > 0


def test_step2b_under_torchrun_shards_training_and_only_rank0_writes(tiny_world, tmp_path):
    runs = tmp_path / "runs"
    args = tiny_args(tiny_world, runs)
    out = torchrun(tmp_path, "step2b_bisenet_cityscapes.py", args, [runs, tiny_world])
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert "FORBIDDEN WRITE" not in log
    run_dir = runs / "step2b_bisenet-demo"
    results = json.loads((run_dir / "results.json").read_text())
    # 12 training images in 2 shards of 6, batch 6 per process: 1 iteration (2 in a single process)
    check_results(results, "2b", iterations=1)
    for name in ("last.pt", "best.pt", "config.json", "log.txt", "metrics.csv", "curves.png"):
        assert (run_dir / name).is_file(), name
    assert out.stdout.count("1 epochs, 1 iterations") == 1  # only rank 0 prints the results

    # the DDP checkpoint is a plain single-process one
    from models import BiSeNet
    BiSeNet(num_classes=19, pretrained=False).load_weights(run_dir / "best.pt")

    # both ranks see the finished run and exit without training again
    again = torchrun(tmp_path, "step2b_bisenet_cityscapes.py", args, [runs, tiny_world])
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert again.stdout.count("already finished") == 1


def test_adversarial_iteration_under_torchrun(tiny_world, tmp_path):
    runs = tmp_path / "runs"
    args = tiny_args(tiny_world, runs, "--VARIANTS=adv_ce_sgd", "--BATCH_SIZE=3", "--TARGET_SIZE=32,64")
    out = torchrun(tmp_path, "step4_5_adversarial.py", args, [runs, tiny_world])
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert "FORBIDDEN WRITE" not in log
    root = runs / "step4_5_adversarial-demo"
    check_results(json.loads((root / "adv_ce_sgd" / "results.json").read_text()), "4_5", iterations=2)
    rows = (root / "adv_ce_sgd" / "metrics.csv").read_text().splitlines()
    assert "loss_adv" in rows[0] and len(rows) == 3  # header + 2 iterations, written by rank 0 alone
    assert (root / "summary.md").is_file()


# What each rank checks; the test reads its findings back.
WORKER = textwrap.dedent('''
    import json, sys
    import torch, torch.nn as nn, torch.nn.functional as F
    from models import FCDiscriminator
    from utils import distributed
    from utils.data import make_loader
    from utils.adaptation import Level, adversarial_iteration
    from utils.engine import Env, TrainState, confusion_matrix, make_optimizer, train_iteration
    from utils.losses import SegLosses, build_seg_loss
    from utils.metrics import ConfusionMatrix

    distributed.init(torch.device("cpu"))
    rank, world = distributed.rank(), distributed.world()
    env = Env(torch.device("cpu"), None, False, rank=rank, world=world)
    found = {"rank": rank, "world": world}

    # 1. matrices of disjoint shards, summed, equal the matrix of all the data
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randint(0, 19, (7, 8, 8), generator=g), torch.randint(0, 19, (7, 8, 8), generator=g)
    target[0, :3] = 255
    cm = ConfusionMatrix()
    for i in range(rank, 7, world):
        cm.update(pred=pred[i], target=target[i])
    cm.reduce_from_all_processes()
    found["cm"] = cm.mat.tolist()

    # 2. sharded evaluation of 7 images (uneven shards, uneven batch counts): image i is all class i
    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return 7
        def __getitem__(self, i):
            return torch.full((3, 4, 4), i, dtype=torch.uint8), torch.full((4, 4), i, dtype=torch.int64)

    class Echo(nn.Module):  # predicts the class written in the image
        def forward(self, x):
            return F.one_hot(x[:, 0].long(), 19).permute(0, 3, 1, 2).float()

    loader = make_loader(Images(), 3, train=False, seed=0, device=env.device, num_workers=0, rank=rank, world=world)
    found["eval_batches"] = len(loader)
    found["eval_cm"] = confusion_matrix(Echo(), loader, env, 19, progress=False).mat.tolist()

    # 3. DDP iterations on the same batch on every rank equal single-process ones (a backward pass that
    #    skips the auxiliary head, a discriminator frozen then trained, two iterations)
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.head, self.aux = nn.Conv2d(8, 19, 1), nn.Conv2d(8, 19, 1)
        def forward(self, x):
            f = F.relu(self.bn(self.conv(x.float() / 255)))
            return (self.head(f), self.aux(f), None) if self.training else self.head(f)
        def param_groups(self):
            return [{"params": list(self.parameters()), "lr_mult": 1.0}]

    g = torch.Generator().manual_seed(1)
    src = (torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g),
           torch.randint(0, 19, (2, 32, 32), generator=g))
    tgt = (torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g), None)

    seg_loss = SegLosses(build_seg_loss("ce"))

    def build(adversarial, ddp):
        """A segmentation net (and discriminator), their optimizers, and the iteration that trains them."""
        torch.manual_seed(0)
        model, disc = TwoHeads(), FCDiscriminator(num_classes=19, ndf=4)
        optimizer = make_optimizer("sgd", model.param_groups(), 0.1, momentum=0.9)
        d_optimizer = torch.optim.Adam(disc.parameters(), lr=1e-2)
        net = distributed.wrap(model, env.device, find_unused_parameters=adversarial) if ddp else model
        d_net = distributed.wrap(disc, env.device) if ddp and adversarial else disc
        if adversarial:
            state = TrainState(env, model=net, optimizer=optimizer, discriminator=d_net, disc_optimizer=d_optimizer)
            levels = [Level("main", 0, d_net, d_optimizer, 0.5)]
            return state, lambda: adversarial_iteration(net, optimizer, seg_loss, src, tgt[0], env, levels)
        return TrainState(env, model=net, optimizer=optimizer), lambda: train_iteration(net, optimizer, seg_loss,
                                                                                          src, env)

    for name, adversarial in (("seg", False), ("adv", True)):
        (ref, ref_it), (ddp, ddp_it) = build(adversarial, False), build(adversarial, True)
        found[name + "_wrapped"] = type(ddp.model).__name__
        for _ in range(2):
            ref_it()
            ddp_it()
        keys = ("model", "discriminator") if adversarial else ("model",)
        diffs = [float((a - b).abs().max()) for k in keys
                 for a, b in zip(ref.state_dict()[k].values(), ddp.state_dict()[k].values()) if a.is_floating_point()]
        found[name + "_max_diff"] = max(diffs)
        found[name + "_keys"] = sorted(ddp.state_dict()["model"]) == sorted(ref.state_dict()["model"])

    # 4. AdaBN: every rank's images count (9 images: 4 per rank, the ninth dropped); the statistics equal the hand
    #    average of the per-batch statistics over all ranks' batches
    from utils.adabn import adabn_loader, reestimate_bn_statistics

    g = torch.Generator().manual_seed(2)
    images = torch.randint(0, 256, (9, 3, 8, 8), dtype=torch.uint8, generator=g)

    class Nine(torch.utils.data.Dataset):
        def __len__(self):
            return 9
        def __getitem__(self, i):
            return images[i], torch.zeros(8, 8, dtype=torch.int64)

    torch.manual_seed(0)
    net = TwoHeads()
    found["adabn_images"] = reestimate_bn_statistics(net, adabn_loader(Nine(), 0, 2, env, seed=0, num_workers=0),
                                                     env, progress=False)
    with torch.no_grad():
        feats = [net.conv(images[list(b)].float() / 255) for b in ((0, 2), (4, 6), (1, 3), (5, 7))]
    mean = torch.stack([x.mean(dim=(0, 2, 3)) for x in feats]).mean(0)
    var = torch.stack([x.var(dim=(0, 2, 3)) for x in feats]).mean(0)
    found["adabn_diff"] = max(float((net.bn.running_mean - mean).abs().max()),
                              float((net.bn.running_var - var).abs().max()))
    with open(f"{sys.argv[1]}/rank{rank}.json", "w") as f:
        json.dump(found, f)
''')


def test_reduction_sharded_eval_and_ddp_iterations_match_single_process(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                          str(worker), str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    found = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]

    from utils.metrics import ConfusionMatrix
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randint(0, 19, (7, 8, 8), generator=g), torch.randint(0, 19, (7, 8, 8), generator=g)
    target[0, :3] = 255
    full = ConfusionMatrix()
    full.update(pred=pred, target=target)
    for f in found:
        assert f["world"] == 2
        assert f["cm"] == full.mat.tolist()
        eval_cm = torch.tensor(f["eval_cm"])
        # 7 images of 16 pixels, each counted exactly once (a padded sampler would count image 0 twice)
        assert eval_cm.diagonal()[:7].tolist() == [16] * 7 and int(eval_cm.sum()) == 7 * 16
        assert f["seg_wrapped"] == f["adv_wrapped"] == "DistributedDataParallel"
        assert f["seg_keys"] and f["adv_keys"]  # checkpoints hold the unwrapped module's keys
        assert f["seg_max_diff"] < 1e-5, f["seg_max_diff"]
        assert f["adv_max_diff"] < 1e-5, f["adv_max_diff"]
    assert sorted(f["eval_batches"] for f in found) == [1, 2]  # 4 and 3 images in batches of 3
    assert all(f["adabn_images"] == 8 and f["adabn_diff"] < 1e-5 for f in found), found


def test_single_process_needs_no_process_group():
    from utils import distributed
    assert not distributed.is_initialized() and distributed.rank() == 0 and distributed.world() == 1
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(model, torch.device("cpu")) is model and distributed.unwrap(model) is model
    assert distributed.broadcast_object({"a": 1}) == {"a": 1} and distributed.any_rank_max(3) == 3
