"""Step 2a: DeepLabV2 (ResNet101, ASPP) trained on Cityscapes train, evaluated on Cityscapes val.

Real data:  python step2a_deeplab_cityscapes.py --CITYSCAPES_ROOT=/data/Cityscapes
Demo:       python step2a_deeplab_cityscapes.py --demo     (the built-in synthetic world, any machine)
Every constant below can be overridden with --KEY=value; --help lists them.
"""
from __future__ import annotations

# CONFIG ------------------------------------------------------------------------------------------------
RUNS_DIR = "runs"                      # where run folders go (relative to the current directory)
RUN_NAME = "step2a_deeplabv2"          # this run's folder under RUNS_DIR; --demo appends "-demo"
CITYSCAPES_ROOT = "data/Cityscapes"    # Cityscapes root: leftImg8bit/ (or images/) and gtFine/
LABEL_SOURCE = "auto"                  # auto | labelIds | labelTrainIds (auto: trainIds when present)
TRAIN_SIZE = (512, 1024)               # (H, W) training images are resized to
EVAL_SIZE = (512, 1024)                # (H, W) the network's input for evaluation, or "native" (the image's own)
EVAL_LABELS = "resized"                # resized (course: labels nearest-resized to EVAL_SIZE) | full (official)
TRAIN_IMAGES = 0                       # train on N images spread over the split (0: all), for quick runs
VAL_IMAGES = 0                         # evaluate on N val images spread over the split (0: all)
NUM_CLASSES = 19                       # Cityscapes train classes
PRETRAINED = "DeepLab_resnet_pretrained_imagenet.pth"  # ImageNet backbone: a weights file (this one) | imagenet | none
BN_MODE = "reference"                  # pretrained BatchNorm: reference (affine frozen, batch stats) | frozen
EPOCHS = 50                            # passes over the training set
BATCH_SIZE = 2                         # images per iteration
LR = 2.5e-4                            # base learning rate (classifier 10x), poly schedule, power 0.9
OPTIMIZER = "sgd"                      # sgd | adam (Adam uses BETAS; published runs report both)
LOSS = "ce"                            # ce | ohem (cross-entropy over the hard pixels) | focal
MOMENTUM = 0.9                         # SGD momentum
BETAS = (0.9, 0.99)                    # Adam betas
WEIGHT_DECAY = 5e-4                    # L2 weight decay
EVAL_EVERY = 5                         # evaluate on val every N epochs (and after the last)
NUM_WORKERS = -1                       # data-loader workers; -1 sizes them to the machine
SEED = 42                              # seeds weights, sample order and augmentation
DEVICE = "auto"                        # auto | cpu | cuda | cuda:N
AMP = "auto"                           # auto | bf16 | fp16 | off (auto: bf16 where native, fp16 on older GPUs)
DETERMINISTIC = False                  # deterministic algorithms (slower; warn-only on CUDA)
INIT_FROM = None                       # checkpoint to start the weights from (e.g. runs/X/best.pt)
EVAL_ONLY = False                      # evaluate INIT_FROM (unset: this run's own best.pt), no training
CHECKPOINT_MINUTES = 10.0              # save last.pt this often inside an epoch (0: epoch ends only)
OVERWRITE = False                      # replace an existing run of this name with another config
FLOPS_SIZE = (512, 1024)               # (H, W) at which FLOPs are counted (fvcore, multiply-adds)
LATENCY_SIZE = (512, 1024)             # (H, W) at which latency is measured, batch 1
LATENCY_ITERS = 50                     # timed forward passes for the latency figure
COMPILE = "auto"                       # latency path: auto (GPU: torch.compile reduce-overhead) | off | cudagraph
SYNTHETIC_DIR = "data/synthetic"       # where --demo finds (or generates) the synthetic world
SYNTHETIC_WORLD = "default"            # default | tiny: which synthetic world --demo uses

CHOICES = {"LABEL_SOURCE": ("auto", "labelIds", "labelTrainIds"), "BN_MODE": ("reference", "frozen"),
           "OPTIMIZER": ("sgd", "adam"), "LOSS": ("ce", "ohem", "focal"), "EVAL_SIZE": ("native",),
           "EVAL_LABELS": ("resized", "full"), "SYNTHETIC_WORLD": ("default", "tiny")}
BOUNDS = {"EVAL_EVERY": 1, "NUM_CLASSES": 1, "TRAIN_IMAGES": 0, "VAL_IMAGES": 0, "LR": 0, "MOMENTUM": 0,
          "WEIGHT_DECAY": 0}  # lower bounds: a value below is refused before anything runs
# DeepLabV2-R101 costs 15x BiSeNet: on a CPU the demo only shows that it trains end to end.
DEMO = {"TRAIN_SIZE": (64, 128), "EVAL_SIZE": (64, 128), "PRETRAINED": "none", "EPOCHS": 1, "TRAIN_IMAGES": 8,
        "VAL_IMAGES": 10, "BATCH_SIZE": 2, "LR": 1e-3, "LATENCY_SIZE": (128, 256), "LATENCY_ITERS": 3}


def main(argv: list[str] | None = None) -> dict:
    from utils.config import load_config

    cfg = load_config(globals(), argv)

    # BUILD -------------------------------------------------------------------------------------------
    from pathlib import Path

    from datasets import Cityscapes
    from datasets.prepare import use_prepared_for_demo
    from datasets.synthetic import demo_world
    from models import DeepLabV2, pretrained_arg
    from utils.data import limit
    from utils.engine import TrainState, fit, make_optimizer, seed_everything, setup_env, train_iteration
    from utils.losses import SegLosses, build_seg_loss
    from utils.results import record_results, show_stored_results
    from utils.runs import Run
    from utils.schedule import set_poly_lr

    env = setup_env(cfg.DEVICE, cfg.AMP, cfg.DETERMINISTIC)
    root = demo_world(cfg.SYNTHETIC_DIR, cfg.SYNTHETIC_WORLD) / "Cityscapes" if cfg.demo else Path(cfg.CITYSCAPES_ROOT)
    all_train = Cityscapes(root, "train", size=cfg.TRAIN_SIZE, label_source=cfg.LABEL_SOURCE)
    train_set = limit(all_train, cfg.TRAIN_IMAGES)
    val_set = limit(Cityscapes(root, "val", size=None if cfg.EVAL_SIZE == "native" else cfg.EVAL_SIZE,
                               label_source=cfg.LABEL_SOURCE, full_labels=cfg.EVAL_LABELS == "full"), cfg.VAL_IMAGES)
    run = Run(cfg)
    if run.start() == "finished":
        return show_stored_results(run)
    if cfg.demo:
        use_prepared_for_demo(all_train, images_read=cfg.EPOCHS * len(train_set))

    seed_everything(cfg.SEED)
    pretrained = pretrained_arg(cfg.PRETRAINED)  # from scratch BatchNorm trains fully, whatever BN_MODE says
    model = DeepLabV2(num_classes=cfg.NUM_CLASSES, pretrained=pretrained, bn_mode=cfg.BN_MODE if pretrained else None)
    if cfg.INIT_FROM and run.status == "new":
        model.load_weights(cfg.INIT_FROM)
    net = env.place(model)  # on the device; a DDP wrapper under torchrun
    # The classifier learns at 10x the backbone's rate (its group's lr_mult).
    optimizer = make_optimizer(cfg.OPTIMIZER, model.param_groups(), cfg.LR, momentum=cfg.MOMENTUM,
                               weight_decay=cfg.WEIGHT_DECAY, betas=cfg.BETAS)
    seg_loss = SegLosses(build_seg_loss(cfg.LOSS))
    train_loader = env.loader(train_set, cfg.BATCH_SIZE, train=True, seed=cfg.SEED, num_workers=cfg.NUM_WORKERS)
    val_loader = env.loader(val_set, cfg.BATCH_SIZE, train=False, seed=cfg.SEED, num_workers=cfg.NUM_WORKERS)

    # TRAIN -------------------------------------------------------------------------------------------
    max_iter = cfg.EPOCHS * len(train_loader)

    def iteration(batch, it: int) -> dict:
        lr = set_poly_lr(optimizer, cfg.LR, it, max_iter)
        return {**train_iteration(net, optimizer, seg_loss, batch, env), "lr": lr}

    trained = fit(TrainState(env, model=net, optimizer=optimizer), iteration, run, train_loader, val_loader,
                  epochs=cfg.EPOCHS, eval_every=cfg.EVAL_EVERY, checkpoint_minutes=cfg.CHECKPOINT_MINUTES)

    # EVALUATE, REPORT --------------------------------------------------------------------------------
    about = {"step": "2a", "model": "deeplabv2", "train_domain": "cityscapes", "eval_domain": "cityscapes"}
    return record_results(run, env, model, trained, about, val_set)


if __name__ == "__main__":
    from utils.config import run_main

    run_main(main)
