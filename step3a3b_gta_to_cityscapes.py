"""Steps 3a/3b: BiSeNet trained on GTA5 (synthetic), evaluated on Cityscapes (real), with an ablation of
data augmentations applied to the source images.

Real data:  python step3a3b_gta_to_cityscapes.py --GTA5_ROOT=/data/GTA5 --CITYSCAPES_ROOT=/data/Cityscapes
Demo:       python step3a3b_gta_to_cityscapes.py --demo     (synthetic world; --VARIANTS=all for the grid)
Every constant below can be overridden with --KEY=value; --help lists them.
"""
from __future__ import annotations

# CONFIG ------------------------------------------------------------------------------------------------
RUNS_DIR = "runs"                      # where run folders go (relative to the current directory)
RUN_NAME = "step3_gta_to_cityscapes"   # folder under RUNS_DIR, one subfolder per variant; --demo: "-demo"
GTA5_ROOT = "data/GTA5"                # GTA5 root: images/ and labels/
GTA5_LABEL_FORMAT = "auto"             # auto | labelIds | color | trainIds (greyscale needs a value)
GTA5_VAL_FRACTION = 0.1                # held-out GTA5 share for the in-domain reference (0: none)
CITYSCAPES_ROOT = "data/Cityscapes"    # Cityscapes root: leftImg8bit/ (or images/) and gtFine/
TRAIN_SIZE = (720, 1280)               # (H, W) GTA5 training images are resized to
EVAL_SIZE = (512, 1024)                # (H, W) Cityscapes evaluation resolution, or "native"
TRAIN_IMAGES = 0                       # train on N images spread over the split (0: all), for quick runs
NUM_CLASSES = 19                       # Cityscapes train classes
PRETRAINED = True                      # ImageNet weights for the ResNet18 context path (torchvision)
EPOCHS = 50                            # passes over the GTA5 training split
BATCH_SIZE = 8                         # images per iteration (>= 2: BatchNorm on pooled 1x1 maps)
LR = 2.5e-2                            # base learning rate, poly schedule (power 0.9) per iteration
MOMENTUM = 0.9                         # SGD momentum
WEIGHT_DECAY = 1e-4                    # L2 weight decay
AUX_WEIGHT = 1.0                       # weight of each of the two auxiliary losses
EVAL_EVERY = 5                         # evaluate on Cityscapes val every N epochs (and after the last)
NUM_WORKERS = -1                       # data-loader workers; -1 sizes them to the machine
SEED = 42                              # seeds weights, sample order and augmentation
DEVICE = "auto"                        # auto | cpu | cuda | cuda:N
AMP = "auto"                           # auto | bf16 | fp16 | off (auto: SPEC policy per device)
DETERMINISTIC = False                  # deterministic algorithms (slower; warn-only on CUDA)
INIT_FROM = None                       # checkpoint to start the weights from
EVAL_ONLY = False                      # evaluate INIT_FROM only, no training
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
           "EVAL_SIZE": ("native",), "SYNTHETIC_WORLD": ("default", "tiny")}
DEMO = {"TRAIN_SIZE": (96, 192), "EVAL_SIZE": (96, 192), "PRETRAINED": False, "EPOCHS": 2,
        "TRAIN_IMAGES": 128, "BATCH_SIZE": 8, "LR": 5e-2, "EVAL_EVERY": 2, "LATENCY_ITERS": 3, "VARIANTS": "none,full"}


def main(argv: list[str] | None = None) -> dict:
    from utils.config import load_config

    cfg = load_config(globals(), argv)

    # BUILD -------------------------------------------------------------------------------------------
    from datasets import GTA5, Cityscapes
    from datasets.transforms import build_augmentation
    from models import BiSeNet
    from utils.data import dataset_root
    from utils.experiment import run_experiment
    from utils.report import summarize_variants

    gta_root, synthetic = dataset_root(cfg, "GTA5_ROOT", "GTA5")
    city_root, _ = dataset_root(cfg, "CITYSCAPES_ROOT", "Cityscapes")
    split = dict(label_format=cfg.GTA5_LABEL_FORMAT, val_fraction=cfg.GTA5_VAL_FRACTION, split_seed=cfg.SEED)
    eval_size = None if cfg.EVAL_SIZE == "native" else cfg.EVAL_SIZE
    val_set = Cityscapes(city_root, "val", size=eval_size)
    extra = {"gta5_val": GTA5(gta_root, "val", size=cfg.TRAIN_SIZE, **split)} if cfg.GTA5_VAL_FRACTION > 0 else {}

    def build_model():
        return BiSeNet(num_classes=cfg.NUM_CLASSES, context_path="resnet18", pretrained=cfg.PRETRAINED)

    # TRAIN, EVALUATE (one run per variant) -----------------------------------------------------------
    results = []
    for name, augment in cfg.VARIANTS.items():
        train_set = GTA5(gta_root, "train" if extra else "all", size=cfg.TRAIN_SIZE,
                         transform=build_augmentation(augment, crop_size=cfg.TRAIN_SIZE), **split)
        results.append(run_experiment(
            cfg, step="3a3b", model_name="bisenet", build_model=build_model, train_set=train_set,
            val_set=val_set, train_domain="gta5", eval_domain="cityscapes", synthetic=synthetic,
            variant=name, variant_spec=augment, extra_evals=extra))

    # REPORT ------------------------------------------------------------------------------------------
    summary = summarize_variants(cfg, results, baseline="none", title="Step 3: GTA5 -> Cityscapes, augmentations")
    return {"variants": {r["variant"]: r for r in results}, "summary": summary}


if __name__ == "__main__":
    from utils.config import run_main

    run_main(main)
