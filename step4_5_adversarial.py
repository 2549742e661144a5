"""Steps 4 and 5: adversarial output-space domain adaptation (AdaptSegNet, single level) for BiSeNet
GTA5 -> Cityscapes, then Focal loss in place of cross-entropy and Adam in place of SGD.

Real data:  python step4_5_adversarial.py --GTA5_ROOT=/data/GTA5 --CITYSCAPES_ROOT=/data/Cityscapes
Demo:       python step4_5_adversarial.py --demo     (synthetic world; --VARIANTS=all for the grid)
Study:      python study.py      (make study: this script at its STUDY setting, --study, over seeds)
Every constant below can be overridden with --KEY=value; --help lists them.
"""
from __future__ import annotations

# CONFIG ------------------------------------------------------------------------------------------------
RUNS_DIR = "runs"                      # where run folders go (relative to the current directory)
RUN_NAME = "step4_5_adversarial"       # folder under RUNS_DIR, one subfolder per variant; --demo: "-demo"
GTA5_ROOT = "data/GTA5"                # GTA5 root (labelled source): images/ and labels/
GTA5_LABEL_FORMAT = "auto"             # auto | labelIds | color | trainIds (greyscale needs a value)
GTA5_VAL_FRACTION = 0.1                # GTA5 share held out, as in step 3 (0: train on all of it)
GTA5_SPLIT_SEED = 0                    # chooses the held-out share: equal to step 3's, so both train on one set
CITYSCAPES_ROOT = "data/Cityscapes"    # Cityscapes root: train split unlabelled target, val for evaluation
TRAIN_SIZE = (720, 1280)               # (H, W) GTA5 source images are resized to
TARGET_SIZE = (512, 1024)              # (H, W) Cityscapes target training images are resized to
EVAL_SIZE = (512, 1024)                # (H, W) the network's input for evaluation, or "native" (the image's own)
EVAL_LABELS = "resized"                # resized (course: labels nearest-resized to EVAL_SIZE) | full (official)
TRAIN_IMAGES = 0                       # train on N images spread over the split (0: all), for quick runs
SOURCE_AUGMENT = {"hflip": 0.5, "color_jitter": 0.5, "blur": 0.5}  # best step-3 set, on source images
NUM_CLASSES = 19                       # Cityscapes train classes
PRETRAINED = "imagenet"                # imagenet (torchvision ResNet18) | none | a weights file, for the context path
EPOCHS = 50                            # passes over the GTA5 training set
BATCH_SIZE = 8                         # source (and target) images per iteration (>= 2)
LR = 2.5e-2                            # SGD base learning rate, poly schedule (power 0.9)
ADAM_LR = 2.5e-4                       # Adam base learning rate for the segmentation net, poly schedule
MOMENTUM = 0.9                         # SGD momentum
BETAS = (0.9, 0.99)                    # Adam betas for the segmentation net
WEIGHT_DECAY = 1e-4                    # L2 weight decay
AUX_WEIGHT = 1.0                       # weight of each of BiSeNet's two auxiliary losses
FOCAL_GAMMA = 2.0                      # Focal loss focusing parameter
LAMBDA_ADV = 0.001                     # weight of the adversarial loss on target outputs
DISC_LR = 1e-4                         # discriminator Adam learning rate, own poly schedule
DISC_BETAS = (0.9, 0.99)               # discriminator Adam betas
BN_STATS = "train"                     # BatchNorm statistics while adapting: train (every batch moves them) | frozen
ADABN = False                          # after training: BatchNorm statistics re-estimated on target images (AdaBN)
ADABN_IMAGES = 0                       # target train images AdaBN reads, spread over the split (0: all)
EVAL_EVERY = 5                         # evaluate on Cityscapes val every N epochs (and after the last)
NUM_WORKERS = -1                       # data-loader workers; -1 sizes them to the machine
SEED = 42                              # seeds weights, sample order and augmentation
DEVICE = "auto"                        # auto | cpu | cuda | cuda:N
AMP = "auto"                           # auto | bf16 | fp16 | off (auto: bf16 where native, fp16 on older GPUs)
DETERMINISTIC = False                  # deterministic algorithms (slower; warn-only on CUDA)
INIT_FROM = None                       # checkpoint every variant starts from (e.g. a source-only run's last.pt)
EVAL_ONLY = False                      # evaluate INIT_FROM (unset: this run's own best.pt), no training
CHECKPOINT_MINUTES = 10.0              # save last.pt this often inside an epoch (0: epoch ends only)
OVERWRITE = False                      # replace existing runs of this name with another config
FLOPS_SIZE = (512, 1024)               # (H, W) at which FLOPs are counted (fvcore, multiply-adds)
LATENCY_SIZE = (512, 1024)             # (H, W) at which latency is measured, batch 1
LATENCY_ITERS = 50                     # timed forward passes for the latency figure
COMPILE = "auto"                       # latency path: auto (GPU: torch.compile reduce-overhead) | off | cudagraph
SYNTHETIC_DIR = "data/synthetic"       # where --demo finds (or generates) the synthetic world
SYNTHETIC_WORLD = "default"            # default | tiny: which synthetic world --demo uses
VARIANTS = {                           # variant -> adversarial?, segmentation loss, optimizer [, lambda_adv]
    "source_only": {"adversarial": False, "loss": "ce", "optimizer": "sgd"},
    # The control: target batches pass through the network (its BatchNorm statistics) and the discriminator
    # trains, but no adversarial gradient reaches the network.
    "target_bn": {"adversarial": True, "loss": "ce", "optimizer": "sgd", "lambda_adv": 0.0},
    "adv_ce_sgd": {"adversarial": True, "loss": "ce", "optimizer": "sgd"},
    "adv_focal_sgd": {"adversarial": True, "loss": "focal", "optimizer": "sgd"},
    "adv_ce_adam": {"adversarial": True, "loss": "ce", "optimizer": "adam"},
    "adv_focal_adam": {"adversarial": True, "loss": "focal", "optimizer": "adam"},
}

CHOICES = {"GTA5_LABEL_FORMAT": ("auto", "labelIds", "color", "trainIds"),
           "EVAL_SIZE": ("native",), "EVAL_LABELS": ("resized", "full"), "SYNTHETIC_WORLD": ("default", "tiny"),
           "BN_STATS": ("train", "frozen")}
BOUNDS = {"EVAL_EVERY": 1, "NUM_CLASSES": 1, "TRAIN_IMAGES": 0, "ADABN_IMAGES": 0, "LR": 0, "ADAM_LR": 0, "MOMENTUM": 0,
          "WEIGHT_DECAY": 0, "AUX_WEIGHT": 0, "FOCAL_GAMMA": 0, "LAMBDA_ADV": 0,
          "DISC_LR": 0, "GTA5_VAL_FRACTION": 0}  # lower bounds: a value below is refused before anything runs
# Adversarial iterations cost twice a source-only one (target forward/backward, discriminator).
DEMO = {"TRAIN_SIZE": (96, 192), "TARGET_SIZE": (96, 192), "EVAL_SIZE": (96, 192), "PRETRAINED": "none",
        "EPOCHS": 2, "TRAIN_IMAGES": 80, "BATCH_SIZE": 8, "LR": 5e-2, "ADAM_LR": 1e-3, "EVAL_EVERY": 2,
        "LATENCY_ITERS": 3, "VARIANTS": "source_only,adv_ce_sgd,adv_focal_adam"}

# The adaptation study's recipe (study.py): its rows start from step 3's augmented run (INIT_FROM, passed by
# study.py) and train 4 more epochs.
STUDY = {"TRAIN_SIZE": (80, 160), "TARGET_SIZE": (80, 160), "EVAL_SIZE": (80, 160), "PRETRAINED": "none",
         "BATCH_SIZE": 4, "TRAIN_IMAGES": 300, "EPOCHS": 4, "EVAL_EVERY": 4, "FLOPS_SIZE": (80, 160),
         "LATENCY_SIZE": (80, 160), "LATENCY_ITERS": 3}


def main(argv: list[str] | None = None) -> dict:
    from utils.config import load_config

    cfg = load_config(globals(), argv)

    # BUILD -------------------------------------------------------------------------------------------
    from pathlib import Path

    from datasets import GTA5, Cityscapes
    from datasets.prepare import use_prepared_for_demo
    from datasets.synthetic import demo_world
    from datasets.transforms import build_augmentation
    from models import BiSeNet, FCDiscriminator, pretrained_arg
    from utils.adabn import adabn_loader, adapt_and_evaluate
    from utils.adaptation import Level, adversarial_iteration
    from utils.data import BatchStream, limit
    from utils.engine import TrainState, fit, make_optimizer, seed_everything, setup_env, train_iteration
    from utils.losses import SegLosses, build_seg_loss
    from utils.report import summarize_variants
    from utils.results import record_results, show_stored_results
    from utils.runs import Run
    from utils.schedule import set_poly_lr

    env = setup_env(cfg.DEVICE, cfg.AMP, cfg.DETERMINISTIC)
    world = demo_world(cfg.SYNTHETIC_DIR, cfg.SYNTHETIC_WORLD) if cfg.demo else None
    gta_root = world / "GTA5" if world else Path(cfg.GTA5_ROOT)
    city_root = world / "Cityscapes" if world else Path(cfg.CITYSCAPES_ROOT)
    all_source = GTA5(gta_root, "train" if cfg.GTA5_VAL_FRACTION > 0 else "all", size=cfg.TRAIN_SIZE,
                      label_format=cfg.GTA5_LABEL_FORMAT, val_fraction=cfg.GTA5_VAL_FRACTION,
                      split_seed=cfg.GTA5_SPLIT_SEED,
                      transform=build_augmentation(cfg.SOURCE_AUGMENT, crop_size=cfg.TRAIN_SIZE))
    source = limit(all_source, cfg.TRAIN_IMAGES)
    target = Cityscapes(city_root, "train", size=cfg.TARGET_SIZE)  # its labels are never read
    val_set = Cityscapes(city_root, "val", size=None if cfg.EVAL_SIZE == "native" else cfg.EVAL_SIZE,
                         full_labels=cfg.EVAL_LABELS == "full")
    source_loader = env.loader(source, cfg.BATCH_SIZE, train=True, seed=cfg.SEED, num_workers=cfg.NUM_WORKERS)
    val_loader = env.loader(val_set, cfg.BATCH_SIZE, train=False, seed=cfg.SEED, num_workers=cfg.NUM_WORKERS)
    adabn_images = adabn_loader(target, cfg.ADABN_IMAGES, cfg.BATCH_SIZE, env, cfg.SEED, cfg.NUM_WORKERS)
    max_iter = cfg.EPOCHS * len(source_loader)
    about = {"step": "4_5", "model": "bisenet", "train_domain": "gta5", "eval_domain": "cityscapes"}

    # TRAIN, EVALUATE (one run per variant: adversarial or not, segmentation loss, optimizer) ------------
    results = []
    for name, v in cfg.VARIANTS.items():
        run = Run(cfg, variant=name, variant_spec=v, eval_run=cfg.ADABN)
        if run.start() == "finished":
            results.append(show_stored_results(run))
            continue
        if cfg.demo:
            use_prepared_for_demo(all_source, images_read=cfg.EPOCHS * len(source))
            if v["adversarial"]:  # as many target images are read as source ones
                use_prepared_for_demo(target, images_read=cfg.EPOCHS * len(source))

        seed_everything(cfg.SEED)
        model = BiSeNet(num_classes=cfg.NUM_CLASSES, context_path="resnet18",
                        pretrained=pretrained_arg(cfg.PRETRAINED))
        if cfg.INIT_FROM and run.status == "new":  # e.g. from the source-only run
            model.load_weights(cfg.INIT_FROM)
        model.freeze_bn_statistics(cfg.BN_STATS == "frozen")
        net = env.place(model, find_unused_parameters=v["adversarial"])  # target forwards skip the aux heads
        lr = cfg.ADAM_LR if v["optimizer"] == "adam" else cfg.LR
        optimizer = make_optimizer(v["optimizer"], model.param_groups(), lr, momentum=cfg.MOMENTUM,
                                   weight_decay=cfg.WEIGHT_DECAY, betas=cfg.BETAS)
        seg_loss = SegLosses(build_seg_loss(v["loss"], gamma=cfg.FOCAL_GAMMA), aux_weight=cfg.AUX_WEIGHT)
        parts = {"model": net, "optimizer": optimizer}
        levels, target_batches = [], None
        if v["adversarial"]:
            # AdaptSegNet's discriminator on the softmax output, Adam with its own poly schedule. It trains in
            # NCHW, the format the published demo figures were measured with (channels_last not measured yet).
            disc = env.place(FCDiscriminator(num_classes=cfg.NUM_CLASSES), channels_last=False)
            d_optimizer = make_optimizer("adam", [{"params": disc.parameters()}], cfg.DISC_LR, betas=cfg.DISC_BETAS)
            parts.update(discriminator=disc, disc_optimizer=d_optimizer)
            levels = [Level("main", 0, disc, d_optimizer, v.get("lambda_adv", cfg.LAMBDA_ADV))]
            target_batches = BatchStream(env.loader(target, cfg.BATCH_SIZE, train=True, seed=cfg.SEED,
                                                    num_workers=cfg.NUM_WORKERS, stream=1))

        def iteration(batch, it: int) -> dict:  # runs inside fit below: it sees this variant's objects
            lr_now = set_poly_lr(optimizer, lr, it, max_iter)
            if not v["adversarial"]:
                return {**train_iteration(net, optimizer, seg_loss, batch, env), "lr": lr_now}
            set_poly_lr(levels[0].optimizer, cfg.DISC_LR, it, max_iter)
            logs = adversarial_iteration(net, optimizer, seg_loss, batch, target_batches.batch(it)[0], env, levels)
            return {**logs, "lr": lr_now}

        trained = fit(TrainState(env, **parts), iteration, run, source_loader, val_loader,
                      epochs=cfg.EPOCHS, eval_every=cfg.EVAL_EVERY, checkpoint_minutes=cfg.CHECKPOINT_MINUTES)
        if cfg.ADABN:
            trained = adapt_and_evaluate(model, adabn_images, val_loader, env, run, trained)
        results.append(record_results(run, env, model, trained, about, val_set))

    # REPORT ------------------------------------------------------------------------------------------
    note = (f"EVAL_ONLY: every variant evaluated INIT_FROM={cfg.INIT_FROM}, not its own training."
            if cfg.EVAL_ONLY and cfg.INIT_FROM else None)
    summary = summarize_variants(Path(cfg.RUNS_DIR) / cfg.RUN_NAME, results, baseline="source_only",
                                 also_vs="adv_ce_sgd", note=note,
                                 title="Steps 4/5: adversarial adaptation, Focal loss, Adam (GTA5 -> Cityscapes)")
    return {"variants": {r["variant"]: r for r in results}, "summary": summary}


if __name__ == "__main__":
    from utils.config import run_main

    run_main(main)
