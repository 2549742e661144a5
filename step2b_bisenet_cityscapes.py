"""Step 2b: BiSeNet (ResNet18 context path) trained on Cityscapes train, evaluated on Cityscapes val.

Real data:  python step2b_bisenet_cityscapes.py --CITYSCAPES_ROOT=/data/Cityscapes
Demo:       python step2b_bisenet_cityscapes.py --demo      (the built-in synthetic world, any machine)
Study:      python study.py      (make study: this script at its STUDY setting, --study, over seeds)
Every constant below can be overridden with --KEY=value; --help lists them.
"""
from __future__ import annotations

# CONFIG ------------------------------------------------------------------------------------------------
RUNS_DIR = "runs"                      # where run folders go (relative to the current directory)
RUN_NAME = "step2b_bisenet"            # this run's folder under RUNS_DIR; --demo appends "-demo"
CITYSCAPES_ROOT = "data/Cityscapes"    # Cityscapes root: leftImg8bit/ (or images/) and gtFine/
LABEL_SOURCE = "auto"                  # auto | labelIds | labelTrainIds (auto: trainIds when present)
TRAIN_SIZE = (512, 1024)               # (H, W) training images are resized to
EVAL_SIZE = (512, 1024)                # (H, W) the network's input for evaluation, or "native" (the image's own)
EVAL_LABELS = "resized"                # resized (course: labels nearest-resized to EVAL_SIZE) | full (official)
TRAIN_IMAGES = 0                       # train on N images spread over the split (0: all), for quick runs
NUM_CLASSES = 19                       # Cityscapes train classes
CONTEXT_PATH = "resnet18"              # resnet18 | resnet101 context path backbone
PRETRAINED = "imagenet"                # imagenet (torchvision ResNet) | none | a weights file, for the context path
EPOCHS = 50                            # passes over the training set
BATCH_SIZE = 8                         # images per iteration (>= 2: BatchNorm on pooled 1x1 maps)
LR = 2.5e-2                            # base learning rate, poly schedule (power 0.9) per iteration
OPTIMIZER = "sgd"                      # sgd | adam (Adam uses BETAS; published runs report both)
LOSS = "ce"                            # ce | ohem (cross-entropy over the hard pixels) | focal
MOMENTUM = 0.9                         # SGD momentum
BETAS = (0.9, 0.99)                    # Adam betas
WEIGHT_DECAY = 1e-4                    # L2 weight decay
AUX_WEIGHT = 1.0                       # weight of each of the two auxiliary losses
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

CHOICES = {"LABEL_SOURCE": ("auto", "labelIds", "labelTrainIds"), "CONTEXT_PATH": ("resnet18", "resnet101"),
           "OPTIMIZER": ("sgd", "adam"), "LOSS": ("ce", "ohem", "focal"), "EVAL_SIZE": ("native",),
           "EVAL_LABELS": ("resized", "full"), "SYNTHETIC_WORLD": ("default", "tiny")}
BOUNDS = {"EVAL_EVERY": 1, "NUM_CLASSES": 1, "TRAIN_IMAGES": 0, "LR": 0, "MOMENTUM": 0, "WEIGHT_DECAY": 0,
          "AUX_WEIGHT": 0}  # lower bounds: a value below is refused before anything runs
# From random weights on a CPU: Adam and OHEM learn the thin and rare classes sooner than SGD and plain
# cross-entropy (docs/demo_tuning.md).
DEMO = {"TRAIN_SIZE": (80, 160), "EVAL_SIZE": (80, 160), "PRETRAINED": "none", "EPOCHS": 7,
        "BATCH_SIZE": 4, "OPTIMIZER": "adam", "LR": 5e-3, "LOSS": "ohem", "EVAL_EVERY": 7, "LATENCY_ITERS": 3}

# The adaptation study (study.py, make study): one recipe for every row, from random weights; the source
# sets hold as many images as the target's train split, so an epoch is as many iterations everywhere.
STUDY = {"TRAIN_SIZE": (80, 160), "EVAL_SIZE": (80, 160), "PRETRAINED": "none", "BATCH_SIZE": 4,
         "EPOCHS": 8, "EVAL_EVERY": 8, "FLOPS_SIZE": (80, 160), "LATENCY_SIZE": (80, 160),
         "LATENCY_ITERS": 3}


def main(argv: list[str] | None = None) -> dict:
    from utils.config import load_config

    cfg = load_config(globals(), argv)

    # BUILD -------------------------------------------------------------------------------------------
    from pathlib import Path

    from datasets import Cityscapes
    from datasets.prepare import use_prepared_for_demo
    from datasets.synthetic import demo_world
    from models import BiSeNet, pretrained_arg
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
    val_set = Cityscapes(root, "val", size=None if cfg.EVAL_SIZE == "native" else cfg.EVAL_SIZE,
                         label_source=cfg.LABEL_SOURCE, full_labels=cfg.EVAL_LABELS == "full")
    run = Run(cfg)
    if run.start() == "finished":
        return show_stored_results(run)
    if cfg.demo:
        use_prepared_for_demo(all_train, images_read=cfg.EPOCHS * len(train_set))

    seed_everything(cfg.SEED)
    model = BiSeNet(num_classes=cfg.NUM_CLASSES, context_path=cfg.CONTEXT_PATH,
                    pretrained=pretrained_arg(cfg.PRETRAINED))
    if cfg.INIT_FROM and run.status == "new":
        model.load_weights(cfg.INIT_FROM)
    net = env.place(model)  # on the device; a DDP wrapper under torchrun
    optimizer = make_optimizer(cfg.OPTIMIZER, model.param_groups(), cfg.LR, momentum=cfg.MOMENTUM,
                               weight_decay=cfg.WEIGHT_DECAY, betas=cfg.BETAS)
    seg_loss = SegLosses(build_seg_loss(cfg.LOSS), aux_weight=cfg.AUX_WEIGHT)
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
    about = {"step": "2b", "model": "bisenet", "train_domain": "cityscapes", "eval_domain": "cityscapes"}
    return record_results(run, env, model, trained, about, val_set)


if __name__ == "__main__":
    from utils.config import run_main

    run_main(main)
