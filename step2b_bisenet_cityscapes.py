"""Step 2b: BiSeNet (ResNet18 context path) trained on Cityscapes train, evaluated on Cityscapes val.

Real data:  python step2b_bisenet_cityscapes.py --CITYSCAPES_ROOT=/data/Cityscapes
Demo:       python step2b_bisenet_cityscapes.py --demo      (the built-in synthetic world, any machine)
Every constant below can be overridden with --KEY=value; --help lists them.
"""
from __future__ import annotations

# CONFIG ------------------------------------------------------------------------------------------------
RUNS_DIR = "runs"                      # where run folders go (relative to the current directory)
RUN_NAME = "step2b_bisenet"            # this run's folder under RUNS_DIR; --demo appends "-demo"
CITYSCAPES_ROOT = "data/Cityscapes"    # Cityscapes root: leftImg8bit/ (or images/) and gtFine/
LABEL_SOURCE = "auto"                  # auto | labelIds | labelTrainIds (auto: trainIds when present)
TRAIN_SIZE = (512, 1024)               # (H, W) training images are resized to
EVAL_SIZE = (512, 1024)                # (H, W) evaluation resolution, or "native" (logits to full label)
TRAIN_IMAGES = 0                       # train on N images spread over the split (0: all), for quick runs
NUM_CLASSES = 19                       # Cityscapes train classes
CONTEXT_PATH = "resnet18"              # resnet18 | resnet101 context path backbone
PRETRAINED = True                      # ImageNet weights for the context path (torchvision)
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
AMP = "auto"                           # auto | bf16 | fp16 | off (auto: SPEC policy per device)
DETERMINISTIC = False                  # deterministic algorithms (slower; warn-only on CUDA)
INIT_FROM = None                       # checkpoint to start the weights from (e.g. runs/X/best.pt)
EVAL_ONLY = False                      # evaluate INIT_FROM only, no training
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
           "SYNTHETIC_WORLD": ("default", "tiny")}
# From random weights in ~3 minutes of a 2-core CPU (525 iterations of ~0.33 s at 80x160): Adam and OHEM
# learn the thin and rare classes sooner than SGD and plain cross-entropy (docs/demo_tuning.md).
DEMO = {"TRAIN_SIZE": (80, 160), "EVAL_SIZE": (80, 160), "PRETRAINED": False, "EPOCHS": 7,
        "BATCH_SIZE": 4, "OPTIMIZER": "adam", "LR": 5e-3, "LOSS": "ohem", "EVAL_EVERY": 7, "LATENCY_ITERS": 3}


def main(argv: list[str] | None = None) -> dict:
    from utils.config import load_config

    cfg = load_config(globals(), argv)

    # BUILD -------------------------------------------------------------------------------------------
    from datasets import Cityscapes
    from models import BiSeNet
    from utils.data import dataset_root
    from utils.experiment import run_experiment

    root, synthetic = dataset_root(cfg, "CITYSCAPES_ROOT", "Cityscapes")
    eval_size = None if cfg.EVAL_SIZE == "native" else cfg.EVAL_SIZE
    train_set = Cityscapes(root, "train", size=cfg.TRAIN_SIZE, label_source=cfg.LABEL_SOURCE)
    val_set = Cityscapes(root, "val", size=eval_size, label_source=cfg.LABEL_SOURCE)

    def build_model():
        return BiSeNet(num_classes=cfg.NUM_CLASSES, context_path=cfg.CONTEXT_PATH, pretrained=cfg.PRETRAINED)

    # TRAIN, EVALUATE, REPORT -------------------------------------------------------------------------
    return run_experiment(cfg, step="2b", model_name="bisenet", build_model=build_model, train_set=train_set,
                          val_set=val_set, train_domain="cityscapes", eval_domain="cityscapes",
                          synthetic=synthetic, optimizer=cfg.OPTIMIZER, loss=cfg.LOSS)


if __name__ == "__main__":
    from utils.config import run_main

    run_main(main)
