"""Steps 3a/3b: BiSeNet trained on GTA5 (synthetic), evaluated on Cityscapes (real), with an ablation of
data augmentations applied to the source images.

Real data:  python step3a3b_gta_to_cityscapes.py --GTA5_ROOT=/data/GTA5 --CITYSCAPES_ROOT=/data/Cityscapes
Demo:       python step3a3b_gta_to_cityscapes.py --demo     (synthetic world; --VARIANTS=all for the grid)
Study:      python study.py      (make study: this script at its STUDY setting, --study, over seeds)
Every constant below can be overridden with --KEY=value; --help lists them.
"""
from __future__ import annotations

# CONFIG ------------------------------------------------------------------------------------------------
RUNS_DIR = "runs"                      # where run folders go (relative to the current directory)
RUN_NAME = "step3_gta_to_cityscapes"   # folder under RUNS_DIR, one subfolder per variant; --demo: "-demo"
GTA5_ROOT = "data/GTA5"                # GTA5 root: images/ and labels/
GTA5_LABEL_FORMAT = "auto"             # auto | labelIds | color | trainIds (greyscale needs a value)
GTA5_VAL_FRACTION = 0.1                # held-out GTA5 share for the in-domain reference (0: none)
GTA5_SPLIT_SEED = 0                    # chooses the held-out share; the same in step 4/5, whatever SEED is
CITYSCAPES_ROOT = "data/Cityscapes"    # Cityscapes root: leftImg8bit/ (or images/) and gtFine/
TRAIN_SIZE = (720, 1280)               # (H, W) GTA5 training images are resized to
TARGET_SIZE = (512, 1024)              # (H, W) Cityscapes train images are resized to for AdaBN (labels unread)
EVAL_SIZE = (512, 1024)                # (H, W) the network's input for evaluation, or "native" (the image's own)
EVAL_LABELS = "resized"                # resized (course: labels nearest-resized to EVAL_SIZE) | full (official)
TRAIN_IMAGES = 0                       # train on N images spread over the split (0: all), for quick runs
NUM_CLASSES = 19                       # Cityscapes train classes
PRETRAINED = "imagenet"                # imagenet (torchvision ResNet18) | none | a weights file, for the context path
EPOCHS = 50                            # passes over the GTA5 training split
BATCH_SIZE = 8                         # images per iteration (>= 2: BatchNorm on pooled 1x1 maps)
LR = 2.5e-2                            # base learning rate, poly schedule (power 0.9) per iteration
MOMENTUM = 0.9                         # SGD momentum
WEIGHT_DECAY = 1e-4                    # L2 weight decay
AUX_WEIGHT = 1.0                       # weight of each of the two auxiliary losses
ADABN = False                          # after training: BatchNorm statistics re-estimated on target images (AdaBN)
ADABN_IMAGES = 0                       # Cityscapes train images AdaBN reads, spread over the split (0: all)
EVAL_EVERY = 5                         # evaluate on Cityscapes val every N epochs (and after the last)
NUM_WORKERS = -1                       # data-loader workers; -1 sizes them to the machine
SEED = 42                              # seeds weights, sample order and augmentation
DEVICE = "auto"                        # auto | cpu | cuda | cuda:N
AMP = "auto"                           # auto | bf16 | fp16 | off (auto: bf16 where native, fp16 on older GPUs)
DETERMINISTIC = False                  # deterministic algorithms (slower; warn-only on CUDA)
INIT_FROM = None                       # checkpoint to start the weights from
EVAL_ONLY = False                      # evaluate INIT_FROM (unset: this run's own best.pt), no training
CHECKPOINT_MINUTES = 10.0              # save last.pt this often inside an epoch (0: epoch ends only)
OVERWRITE = False                      # replace existing runs of this name with another config
FLOPS_SIZE = (512, 1024)               # (H, W) at which FLOPs are counted (fvcore, multiply-adds)
LATENCY_SIZE = (512, 1024)             # (H, W) at which latency is measured, batch 1
LATENCY_ITERS = 50                     # timed forward passes for the latency figure
COMPILE = "auto"                       # latency path: auto (GPU: torch.compile reduce-overhead) | off | cudagraph
SYNTHETIC_DIR = "data/synthetic"       # where --demo finds (or generates) the synthetic world
SYNTHETIC_WORLD = "default"            # default | tiny: which synthetic world --demo uses
VARIANTS = {                           # variant -> augmentation: probability (source images only)
    "none": {},
    "flip": {"hflip": 0.5},
    "jitter": {"color_jitter": 0.5},
    "blur": {"blur": 0.5},
    "scale_crop": {"scale_crop": 0.5},
    "flip_jitter_blur": {"hflip": 0.5, "color_jitter": 0.5, "blur": 0.5},
    "full": {"hflip": 0.5, "color_jitter": 0.5, "blur": 0.5, "scale_crop": 0.5},
}

CHOICES = {"GTA5_LABEL_FORMAT": ("auto", "labelIds", "color", "trainIds"),
           "EVAL_SIZE": ("native",), "EVAL_LABELS": ("resized", "full"), "SYNTHETIC_WORLD": ("default", "tiny")}
BOUNDS = {"EVAL_EVERY": 1, "NUM_CLASSES": 1, "TRAIN_IMAGES": 0, "ADABN_IMAGES": 0, "LR": 0, "MOMENTUM": 0,
          "WEIGHT_DECAY": 0,
          "AUX_WEIGHT": 0, "GTA5_VAL_FRACTION": 0}  # lower bounds: a value below is refused before anything runs
DEMO = {"TRAIN_SIZE": (96, 192), "TARGET_SIZE": (96, 192), "EVAL_SIZE": (96, 192), "PRETRAINED": "none",
        "EPOCHS": 2, "TRAIN_IMAGES": 80, "BATCH_SIZE": 8, "LR": 5e-2, "EVAL_EVERY": 2, "LATENCY_ITERS": 3,
        "VARIANTS": "none,full"}

# The adaptation study's recipe (study.py; step 2b's STUDY says why); TRAIN_IMAGES: as many images as the
# target's train split.
STUDY = {"TRAIN_SIZE": (80, 160), "TARGET_SIZE": (80, 160), "EVAL_SIZE": (80, 160), "PRETRAINED": "none",
         "BATCH_SIZE": 4,
         "TRAIN_IMAGES": 300, "EPOCHS": 8, "EVAL_EVERY": 8, "FLOPS_SIZE": (80, 160), "LATENCY_SIZE": (80, 160),
         "LATENCY_ITERS": 3}


def main(argv: list[str] | None = None) -> dict:
    from utils.config import load_config

    cfg = load_config(globals(), argv)

    # BUILD -------------------------------------------------------------------------------------------
    from pathlib import Path

    from datasets import GTA5, Cityscapes
    from datasets.prepare import use_prepared_for_demo
    from datasets.synthetic import demo_world
    from datasets.transforms import build_augmentation
    from models import BiSeNet, pretrained_arg
    from utils.adabn import adabn_loader, adapt_and_evaluate
    from utils.data import limit
    from utils.engine import (TrainState, confusion_matrix, fit, make_optimizer, seed_everything, setup_env,
                              train_iteration)
    from utils.losses import SegLosses, build_seg_loss
    from utils.report import summarize_variants
    from utils.results import record_results, show_stored_results
    from utils.runs import Run
    from utils.schedule import set_poly_lr

    env = setup_env(cfg.DEVICE, cfg.AMP, cfg.DETERMINISTIC)
    world = demo_world(cfg.SYNTHETIC_DIR, cfg.SYNTHETIC_WORLD) if cfg.demo else None
    gta_root = world / "GTA5" if world else Path(cfg.GTA5_ROOT)
    city_root = world / "Cityscapes" if world else Path(cfg.CITYSCAPES_ROOT)
    # One GTA5 split for steps 3 and 4/5 (GTA5_SPLIT_SEED): both train on the same images, and the held-out part
    # measures the in-domain figure beside the target's.
    split = dict(label_format=cfg.GTA5_LABEL_FORMAT, val_fraction=cfg.GTA5_VAL_FRACTION,
                 split_seed=cfg.GTA5_SPLIT_SEED)
    held_out = {"gta5_val": GTA5(gta_root, "val", size=cfg.TRAIN_SIZE, **split)} if cfg.GTA5_VAL_FRACTION > 0 else {}
    val_set = Cityscapes(city_root, "val", size=None if cfg.EVAL_SIZE == "native" else cfg.EVAL_SIZE,
                         full_labels=cfg.EVAL_LABELS == "full")
    val_loader = env.loader(val_set, cfg.BATCH_SIZE, train=False, seed=cfg.SEED, num_workers=cfg.NUM_WORKERS)
    extra_loaders = {name: env.loader(ds, cfg.BATCH_SIZE, train=False, seed=cfg.SEED, num_workers=cfg.NUM_WORKERS)
                     for name, ds in held_out.items()}
    if cfg.ADABN:  # the target's train images, read by AdaBN alone
        adabn_images = adabn_loader(Cityscapes(city_root, "train", size=cfg.TARGET_SIZE), cfg.ADABN_IMAGES,
                                    cfg.BATCH_SIZE, env, cfg.SEED, cfg.NUM_WORKERS)
    about = {"step": "3a3b", "model": "bisenet", "train_domain": "gta5", "eval_domain": "cityscapes"}

    # TRAIN, EVALUATE (one run per variant: the augmentations of the source images) ------------------------
    results = []
    for name, augment in cfg.VARIANTS.items():
        all_train = GTA5(gta_root, "train" if held_out else "all", size=cfg.TRAIN_SIZE,
                         transform=build_augmentation(augment, crop_size=cfg.TRAIN_SIZE), **split)
        train_set = limit(all_train, cfg.TRAIN_IMAGES)
        run = Run(cfg, variant=name, variant_spec=augment, eval_run=cfg.ADABN)
        if run.start() == "finished":
            results.append(show_stored_results(run))
            continue
        if cfg.demo:
            use_prepared_for_demo(all_train, images_read=cfg.EPOCHS * len(train_set))

        seed_everything(cfg.SEED)
        model = BiSeNet(num_classes=cfg.NUM_CLASSES, context_path="resnet18",
                        pretrained=pretrained_arg(cfg.PRETRAINED))
        if cfg.INIT_FROM and run.status == "new":
            model.load_weights(cfg.INIT_FROM)
        net = env.place(model)  # on the device; a DDP wrapper under torchrun
        optimizer = make_optimizer("sgd", model.param_groups(), cfg.LR, momentum=cfg.MOMENTUM,
                                   weight_decay=cfg.WEIGHT_DECAY)
        seg_loss = SegLosses(build_seg_loss("ce"), aux_weight=cfg.AUX_WEIGHT)
        train_loader = env.loader(train_set, cfg.BATCH_SIZE, train=True, seed=cfg.SEED, num_workers=cfg.NUM_WORKERS)
        max_iter = cfg.EPOCHS * len(train_loader)

        def iteration(batch, it: int) -> dict:  # runs inside fit below: it sees this variant's objects
            lr = set_poly_lr(optimizer, cfg.LR, it, max_iter)
            return {**train_iteration(net, optimizer, seg_loss, batch, env), "lr": lr}

        trained = fit(TrainState(env, model=net, optimizer=optimizer), iteration, run, train_loader, val_loader,
                      epochs=cfg.EPOCHS, eval_every=cfg.EVAL_EVERY, checkpoint_minutes=cfg.CHECKPOINT_MINUTES)
        extra = {n: confusion_matrix(model, loader, env, progress=env.is_main, desc=n).compute()
                 for n, loader in extra_loaders.items()}  # in-domain figures of the model as trained
        if cfg.ADABN:
            trained = adapt_and_evaluate(model, adabn_images, val_loader, env, run, trained)
        results.append(record_results(run, env, model, trained, about, val_set, extra))

    # REPORT ------------------------------------------------------------------------------------------
    summary = summarize_variants(Path(cfg.RUNS_DIR) / cfg.RUN_NAME, results, baseline="none",
                                 title="Step 3: GTA5 -> Cityscapes, augmentations")
    return {"variants": {r["variant"]: r for r in results}, "summary": summary}


if __name__ == "__main__":
    from utils.config import run_main

    run_main(main)
