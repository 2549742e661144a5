"""Step 6 (beyond the course): the main families of unsupervised domain adaptation, GTA5 -> Cityscapes, in the
harness and recipe of steps 4/5: AdaptSegNet single- and multi-level (output-space adversarial), ADVENT (MinEnt,
AdvEnt, both: entropy), FDA (Fourier style transfer) and DACS (self-training with a mean teacher and ClassMix),
for BiSeNet or DeepLabV2 (MODEL). Each method's iteration lives in the module named for it (utils/adaptation.py,
utils/advent.py, utils/fda.py, utils/dacs.py); this script builds its parts and hands the iteration to the loop.

AdaptSegNet's own setting (DeepLabV2-R101 from its initialisation file, 41.4 single-level, 42.4 multi-level):
    python step6_uda_methods.py --MODEL=deeplabv2 --PRETRAINED=DeepLab_resnet_pretrained_init-f81d91e8.pth \
        --VARIANTS=source_only,adv_single,adv_multilevel --BATCH_SIZE=2 --EPOCHS=7 \
        --GTA5_ROOT=/data/GTA5 --CITYSCAPES_ROOT=/data/Cityscapes

Real data:  python step6_uda_methods.py --GTA5_ROOT=/data/GTA5 --CITYSCAPES_ROOT=/data/Cityscapes
Demo:       python step6_uda_methods.py --demo     (synthetic world)
Study:      python study.py --ROWS=methods   (these variants beside step 4/5's, over seeds)
Every constant below can be overridden with --KEY=value; --help lists them.
"""
from __future__ import annotations

# CONFIG ------------------------------------------------------------------------------------------------
RUNS_DIR = "runs"                      # where run folders go (relative to the current directory)
RUN_NAME = "step6_uda_methods"         # folder under RUNS_DIR, one subfolder per variant; --demo: "-demo"
GTA5_ROOT = "data/GTA5"                # GTA5 root (labelled source): images/ and labels/
GTA5_LABEL_FORMAT = "auto"             # auto | labelIds | color | trainIds (greyscale needs a value)
GTA5_VAL_FRACTION = 0.1                # GTA5 share held out, as in steps 3 and 4/5
GTA5_SPLIT_SEED = 0                    # chooses the held-out share: equal to steps 3 and 4/5
CITYSCAPES_ROOT = "data/Cityscapes"    # Cityscapes root: train split unlabelled target, val for evaluation
TRAIN_SIZE = (720, 1280)               # (H, W) GTA5 source images are resized to
TARGET_SIZE = (512, 1024)              # (H, W) Cityscapes target training images are resized to
EVAL_SIZE = (512, 1024)                # (H, W) the network's input for evaluation, or "native" (the image's own)
EVAL_LABELS = "resized"                # resized (course: labels nearest-resized to EVAL_SIZE) | full (official)
TRAIN_IMAGES = 0                       # train on N images spread over the split (0: all), for quick runs
SOURCE_AUGMENT = {"hflip": 0.5, "color_jitter": 0.5, "blur": 0.5}  # step 4/5's set, on source images
NUM_CLASSES = 19                       # Cityscapes train classes
MODEL = "bisenet"                      # bisenet (ResNet18 context path) | deeplabv2 (ResNet101)
PRETRAINED = "imagenet"                # imagenet (torchvision) | none | a weights file (e.g. AdaptSegNet's init)
EPOCHS = 50                            # passes over the GTA5 training set
BATCH_SIZE = 8                         # source (and target) images per iteration (>= 2)
LR = 2.5e-2                            # SGD base learning rate, poly schedule (power 0.9), BiSeNet
DEEPLAB_LR = 2.5e-4                    # the same for MODEL=deeplabv2 (AdaptSegNet's; its classifiers at 10x)
MOMENTUM = 0.9                         # SGD momentum
WEIGHT_DECAY = 1e-4                    # L2 weight decay, BiSeNet
DEEPLAB_WEIGHT_DECAY = 5e-4            # the same for MODEL=deeplabv2 (AdaptSegNet's)
AUX_WEIGHT = 1.0                       # weight of each of BiSeNet's two auxiliary losses
LOW_SEG_WEIGHT = 0.1                   # DeepLabV2 multi-level: segmentation loss weight of the layer3 output
LAMBDA_ADV_LOW = 0.0002                # multi-level: adversarial weight on the lower output (main: LAMBDA_ADV)
LAMBDA_ENT = 0.001                     # MinEnt: weight of the target's normalised entropy (ADVENT)
LAMBDA_ADV = 0.001                     # AdaptSegNet, AdvEnt: weight of the adversarial loss on the main output
DISC_LR = 1e-4                         # discriminators' Adam learning rate, own poly schedule
DISC_BETAS = (0.9, 0.99)               # discriminators' Adam betas
FDA_BETA = 0.01                        # FDA: low-frequency window, a fraction of min(H, W) (paper: 0.01)
FDA_BETA_SIZE = (512, 1024)            # (H, W) FDA_BETA is meant at (the paper's crops); scaled to TRAIN_SIZE
FDA_ENT_WEIGHT = 0.005                 # FDA: weight of the robust entropy term on the target
FDA_ETA = 2.0                          # FDA: the entropy penalty's exponent
DACS_ALPHA = 0.99                      # DACS: the teacher's EMA rate
DACS_THRESHOLD = 0.968                 # DACS: teacher confidence counted toward the pseudo-label weight
DACS_TEACHER = "train"                 # DACS teacher's BatchNorm: train (target batch statistics, DACS's) | eval
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
VARIANTS = {                           # variant -> method and its terms
    "source_only": {"method": "source_only"},
    "adv_single": {"method": "adaptsegnet", "multi_level": False},
    "adv_multilevel": {"method": "adaptsegnet", "multi_level": True},
    "minent": {"method": "advent", "entropy": True, "discriminator": False},
    "advent": {"method": "advent", "entropy": False, "discriminator": True},
    "advent_minent": {"method": "advent", "entropy": True, "discriminator": True},
    "fda": {"method": "fda"},
    "dacs": {"method": "dacs"},
}

CHOICES = {"GTA5_LABEL_FORMAT": ("auto", "labelIds", "color", "trainIds"), "MODEL": ("bisenet", "deeplabv2"),
           "EVAL_SIZE": ("native",), "EVAL_LABELS": ("resized", "full"), "SYNTHETIC_WORLD": ("default", "tiny"),
           "DACS_TEACHER": ("train", "eval"), "BN_STATS": ("train", "frozen")}
BOUNDS = {"EVAL_EVERY": 1, "NUM_CLASSES": 1, "TRAIN_IMAGES": 0, "ADABN_IMAGES": 0, "LR": 0, "DEEPLAB_LR": 0,
          "MOMENTUM": 0, "WEIGHT_DECAY": 0, "DEEPLAB_WEIGHT_DECAY": 0, "AUX_WEIGHT": 0, "LOW_SEG_WEIGHT": 0,
          "LAMBDA_ADV_LOW": 0, "LAMBDA_ENT": 0, "DACS_ALPHA": 0, "DACS_THRESHOLD": 0, "LAMBDA_ADV": 0, "DISC_LR": 0,
          "FDA_BETA": 0, "FDA_ENT_WEIGHT": 0, "FDA_ETA": 0,
          "GTA5_VAL_FRACTION": 0}  # lower bounds: a value below is refused before anything runs
DEMO = {"TRAIN_SIZE": (96, 192), "TARGET_SIZE": (96, 192), "EVAL_SIZE": (96, 192), "PRETRAINED": "none",
        "EPOCHS": 2, "TRAIN_IMAGES": 80, "BATCH_SIZE": 8, "LR": 5e-2, "EVAL_EVERY": 2, "LATENCY_ITERS": 3,
        "VARIANTS": "adv_multilevel,minent,fda,dacs"}

# The adaptation study's recipe (study.py), step 4/5's: its rows start from step 3's augmented run (INIT_FROM,
# passed by study.py) and train 4 more epochs.
STUDY = {"TRAIN_SIZE": (80, 160), "TARGET_SIZE": (80, 160), "EVAL_SIZE": (80, 160), "PRETRAINED": "none",
         "BATCH_SIZE": 4, "TRAIN_IMAGES": 300, "EPOCHS": 4, "EVAL_EVERY": 4, "FLOPS_SIZE": (80, 160),
         "LATENCY_SIZE": (80, 160), "LATENCY_ITERS": 3}

# The methods a variant may name (a table the script reads, not a setting: it sits below the tables).
METHODS = ("source_only", "adaptsegnet", "advent", "fda", "dacs")


def main(argv: list[str] | None = None) -> dict:
    from utils.config import load_config

    cfg = load_config(globals(), argv)

    # BUILD -------------------------------------------------------------------------------------------
    from pathlib import Path

    import torch

    from datasets import GTA5, Cityscapes
    from datasets.prepare import use_prepared_for_demo
    from datasets.synthetic import demo_world
    from datasets.transforms import build_augmentation
    from models import BiSeNet, DeepLabV2, FCDiscriminator, pretrained_arg
    from utils.adabn import adabn_loader, adapt_and_evaluate
    from utils.adaptation import Level, adversarial_iteration
    from utils.advent import advent_iteration
    from utils.dacs import dacs_iteration, make_teacher
    from utils.data import BatchStream, limit
    from utils.engine import TrainState, fit, make_optimizer, seed_everything, setup_env, train_iteration
    from utils.errors import ConfigError
    from utils.fda import fda_iteration, window_size
    from utils.losses import SegLosses, build_seg_loss
    from utils.report import summarize_variants
    from utils.results import record_results, show_stored_results
    from utils.runs import Run
    from utils.schedule import set_poly_lr

    unknown = {v.get("method") for v in cfg.VARIANTS.values()} - set(METHODS)
    if unknown:
        raise ConfigError(f"VARIANTS: unknown method(s) {sorted(unknown, key=str)}; each variant's method is one of "
                          f"{', '.join(METHODS)}")
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
    fda_b = window_size(cfg.FDA_BETA, cfg.TRAIN_SIZE, reference=cfg.FDA_BETA_SIZE)
    about = {"step": "6", "model": cfg.MODEL, "train_domain": "gta5", "eval_domain": "cityscapes"}

    # TRAIN, EVALUATE (one run per variant: its method and terms) -------------------------------------
    results = []
    for name, v in cfg.VARIANTS.items():
        # The teacher's mode is part of a DACS run's identity (runs made before DACS_TEACHER existed used eval).
        spec = {**v, "teacher": cfg.DACS_TEACHER} if v["method"] == "dacs" else v
        run = Run(cfg, variant=name, variant_spec=spec, eval_run=cfg.ADABN)
        if run.start() == "finished":
            results.append(show_stored_results(run))
            continue
        reads_target = v["method"] != "source_only"
        if cfg.demo:
            use_prepared_for_demo(all_source, images_read=cfg.EPOCHS * len(source))
            if reads_target:  # as many target images are read as source ones
                use_prepared_for_demo(target, images_read=cfg.EPOCHS * len(source))

        seed_everything(cfg.SEED)
        multi_level = bool(v.get("multi_level"))
        if cfg.MODEL == "deeplabv2":  # multi-level: a second ASPP on layer3, AdaptSegNet's lower output
            model = DeepLabV2(num_classes=cfg.NUM_CLASSES, pretrained=pretrained_arg(cfg.PRETRAINED),
                              multi_level=multi_level)
        else:  # BiSeNet's lower output is its 1/16 auxiliary head, trained with AUX_WEIGHT in every variant
            model = BiSeNet(num_classes=cfg.NUM_CLASSES, context_path="resnet18",
                            pretrained=pretrained_arg(cfg.PRETRAINED))
        if cfg.INIT_FROM and run.status == "new":  # e.g. from the source-only run
            model.load_weights(cfg.INIT_FROM, missing_ok=("low_classifier.",) if multi_level else ())
        model.freeze_bn_statistics(cfg.BN_STATS == "frozen")  # before the DACS teacher copies the model
        net = env.place(model, find_unused_parameters=reads_target)  # target forwards skip the aux heads
        deeplab = cfg.MODEL == "deeplabv2"
        lr = cfg.DEEPLAB_LR if deeplab else cfg.LR
        optimizer = make_optimizer("sgd", model.param_groups(), lr, momentum=cfg.MOMENTUM,
                                   weight_decay=cfg.DEEPLAB_WEIGHT_DECAY if deeplab else cfg.WEIGHT_DECAY)
        aux_weight = cfg.LOW_SEG_WEIGHT if deeplab else cfg.AUX_WEIGHT
        seg_loss = SegLosses(build_seg_loss("ce"), aux_weight=aux_weight)
        parts = {"model": net, "optimizer": optimizer}
        levels = []  # the outputs a discriminator judges: the main one, and for multi-level the lower one
        if v["method"] == "adaptsegnet" or v.get("discriminator"):
            weights = {"main": cfg.LAMBDA_ADV, **({"low": cfg.LAMBDA_ADV_LOW} if multi_level else {})}
            for output, (level_name, weight) in enumerate(weights.items()):
                disc = env.place(FCDiscriminator(num_classes=cfg.NUM_CLASSES), channels_last=False)
                d_opt = make_optimizer("adam", [{"params": disc.parameters()}], cfg.DISC_LR, betas=cfg.DISC_BETAS)
                levels.append(Level(level_name, output, disc, d_opt, weight))
                parts.update({f"discriminator{levels[-1].suffix}": disc, f"disc_optimizer{levels[-1].suffix}": d_opt})
        teacher = None
        if v["method"] == "dacs":  # the EMA teacher is part of the state a resumed run needs
            teacher = parts["teacher"] = make_teacher(model, train_mode=cfg.DACS_TEACHER == "train")
        target_batches = None
        if reads_target:
            target_batches = BatchStream(env.loader(target, cfg.BATCH_SIZE, train=True, seed=cfg.SEED,
                                                    num_workers=cfg.NUM_WORKERS, stream=1))

        def iteration(batch, it: int) -> dict:  # runs inside fit below: it sees this variant's objects
            lr_now = set_poly_lr(optimizer, lr, it, max_iter)
            if v["method"] == "source_only":
                return {**train_iteration(net, optimizer, seg_loss, batch, env), "lr": lr_now}
            target_images = target_batches.batch(it)[0]
            for level in levels:
                set_poly_lr(level.optimizer, cfg.DISC_LR, it, max_iter)
            if v["method"] == "adaptsegnet":
                logs = adversarial_iteration(net, optimizer, seg_loss, batch, target_images, env, levels)
            elif v["method"] == "advent":
                logs = advent_iteration(net, optimizer, seg_loss, batch, target_images, env,
                                        lambda_ent=cfg.LAMBDA_ENT if v.get("entropy") else 0.0,
                                        level=levels[0] if levels else None)
            elif v["method"] == "fda":
                logs = fda_iteration(net, optimizer, seg_loss, batch, target_images, env, fda_b,
                                     cfg.FDA_ENT_WEIGHT, cfg.FDA_ETA)
            else:  # ClassMix's classes from an RNG of (seed, iteration): a resumed run draws what it would have
                mix_rng = torch.Generator().manual_seed(cfg.SEED * 1_000_003 + it)
                logs = dacs_iteration(net, teacher, optimizer, seg_loss, batch, target_images, env, it,
                                      alpha=cfg.DACS_ALPHA, threshold=cfg.DACS_THRESHOLD, generator=mix_rng)
            return {**logs, "lr": lr_now}

        trained = fit(TrainState(env, **parts), iteration, run, source_loader, val_loader,
                      epochs=cfg.EPOCHS, eval_every=cfg.EVAL_EVERY, checkpoint_minutes=cfg.CHECKPOINT_MINUTES)
        if cfg.ADABN:
            trained = adapt_and_evaluate(model, adabn_images, val_loader, env, run, trained)
        results.append(record_results(run, env, model, trained, about, val_set))

    # REPORT ------------------------------------------------------------------------------------------
    note = (f"EVAL_ONLY: every variant evaluated INIT_FROM={cfg.INIT_FROM}, not its own training."
            if cfg.EVAL_ONLY and cfg.INIT_FROM else None)
    baseline = "source_only" if "source_only" in cfg.VARIANTS else None
    summary = summarize_variants(Path(cfg.RUNS_DIR) / cfg.RUN_NAME, results, baseline=baseline, note=note,
                                 title="Step 6: AdaptSegNet, ADVENT, FDA and DACS (GTA5 -> Cityscapes)")
    return {"variants": {r["variant"]: r for r in results}, "summary": summary}


if __name__ == "__main__":
    from utils.config import run_main

    run_main(main)
