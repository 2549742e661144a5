"""Figures saved by runs (PNG, matplotlib, headless): training curves and per-class IoU bars."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # runs on servers without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from utils.classes import CLASS_NAMES, IGNORE_INDEX, PALETTE, colorize  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _read_metrics(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, list[float]] = {}
    for r in rows:
        for k, v in r.items():
            try:
                cols.setdefault(k, []).append(float(v) if v not in ("", None) else math.nan)
            except ValueError:
                continue
    return {k: np.asarray(v) for k, v in cols.items()}


def _smooth(y: np.ndarray, n: int) -> np.ndarray:
    if n <= 1 or len(y) < n:
        return y
    return np.convolve(y, np.ones(n) / n, mode="valid")


def plot_training_curves(metrics_csv: Path, history: list[dict], out: Path) -> Path | None:
    """Losses (and discriminator accuracy when adversarial), learning rate and val mIoU per evaluation."""
    if not Path(metrics_csv).is_file():
        return None
    m = _read_metrics(Path(metrics_csv))
    it = m["global_it"]
    win = max(1, len(it) // 50)
    loss_keys = [k for k in m if k.startswith("loss")]
    has_d = "d_acc_source" in m
    panels = 3 + has_d
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4))
    for k in loss_keys:
        axes[0].plot(it[win - 1:], _smooth(m[k], win), label=k)
    axes[0].set(title="training losses", xlabel="iteration", yscale="log")
    axes[0].legend(fontsize=7)
    axes[1].plot(it, m["lr"])
    axes[1].set(title="learning rate (poly)", xlabel="iteration")
    evals = [(h["epoch"], h["val_miou"]) for h in history if h.get("val_miou") is not None]
    if evals:
        axes[2].plot(*zip(*evals), marker="o")
    axes[2].set(title="val mIoU (%)", xlabel="epoch")
    if has_d:
        axes[3].plot(it[win - 1:], _smooth(m["d_acc_source"], win), label="on source")
        axes[3].plot(it[win - 1:], _smooth(m["d_acc_target"], win), label="on target")
        axes[3].axhline(50, color="grey", lw=0.8, ls="--")
        axes[3].set(title="discriminator accuracy (%)", xlabel="iteration", ylim=(0, 100))
        axes[3].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    return _save(fig, Path(out))


def plot_per_class_iou(results: list[dict], out: Path, title: str = "per-class IoU") -> Path:
    """Grouped bars: one group per class, one bar per result (variant or model)."""
    classes = list(results[0]["per_class_iou"])
    n = len(results)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(8, 0.55 * len(classes) * max(1, n / 2)), 4))
    x = np.arange(len(classes))
    for i, r in enumerate(results):
        vals = [v if v is not None else np.nan for v in r["per_class_iou"].values()]
        miou = r["miou"] if r["miou"] is not None else float("nan")
        ax.bar(x + (i - (n - 1) / 2) * width, vals, width, label=f"{r['variant']} ({miou:.1f})")
    ax.set_xticks(x, classes, rotation=60, ha="right")
    for tick, colour in zip(ax.get_xticklabels(), PALETTE):
        tick.set_color(np.clip(colour / 255 * 0.8, 0, 1))
    ax.set(ylabel="IoU (%)", ylim=(0, 100), title=title)
    ax.legend(fontsize=7, ncol=min(n, 4), title="variant (mIoU)")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, Path(out))


# ------------------------------------------------------------------------------ confusion matrix, examples
ERROR_RGB = np.array([255, 0, 0], dtype=np.uint8)  # wrongly predicted pixel
IGNORE_RGB = np.array([128, 128, 128], dtype=np.uint8)  # void in the ground truth: not scored


def row_normalize(mat) -> np.ndarray:
    """Each ground-truth row divided by its sum (recall per class); rows without pixels become NaN."""
    m = np.asarray(mat.detach().cpu() if hasattr(mat, "detach") else mat, dtype=np.float64)
    sums = m.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sums > 0, m / np.where(sums > 0, sums, 1.0), np.nan)


def plot_confusion_matrix(cm, out: Path, class_names=None, title: str = "confusion matrix") -> Path:
    """Row-normalised confusion matrix (rows: ground truth, columns: prediction), in percent.

    Args:
        cm: a ``utils.metrics.ConfusionMatrix``, or a KxK tensor / array / nested list of pixel counts.
        out: PNG path.
        class_names: one name per class; default: the matrix's own names, else the Cityscapes ones for 19
            classes, else "0", "1", ...
        title: figure title.
    """
    if hasattr(cm, "mat"):
        class_names = class_names or cm.class_names
        cm = cm.mat
    norm = row_normalize(cm) * 100.0
    k = norm.shape[0]
    if norm.ndim != 2 or norm.shape[1] != k:
        raise ValueError(f"a confusion matrix must be square, got shape {norm.shape}")
    if class_names is None:
        class_names = CLASS_NAMES if k == len(CLASS_NAMES) else [str(i) for i in range(k)]
    if len(class_names) != k:
        raise ValueError(f"{len(class_names)} class names given for a {k}x{k} confusion matrix")
    side = min(max(5.0, 0.42 * k + 2.5), 20.0)
    fig, ax = plt.subplots(figsize=(side + 1.2, side), layout="constrained")
    cmap = plt.get_cmap("Blues").with_extremes(bad="#eeeeee")  # grey rows: classes without ground-truth pixels
    im = ax.imshow(np.ma.masked_invalid(norm), cmap=cmap, vmin=0, vmax=100, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="% of the ground-truth class's pixels")
    ticks = np.arange(k)
    ax.set_xticks(ticks, class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(ticks, class_names, fontsize=8)
    if k == len(PALETTE):
        for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
            for tick, colour in zip(labels, PALETTE):
                tick.set_color(np.clip(colour / 255 * 0.8, 0, 1))
    # Only cells worth reading get a number: a 19x19 grid of "0" would bury the confusions that matter.
    for i, j in zip(*np.nonzero(np.nan_to_num(norm) >= 1.0)):
        v = norm[i, j]
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=6.5,
                color="white" if v > 55 else "black")
    ax.set(xlabel="predicted class", ylabel="ground-truth class", title=title)
    return _save_sized(fig, Path(out))


def _save_sized(fig, path: Path, dpi: int = 110) -> Path:
    """Save at exactly the figure's size (layout="constrained" keeps the labels inside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def error_map(image: np.ndarray, target: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """HxWx3 view of the mistakes: the image darkened and grey where right, red where wrong, grey on void.

    Args:
        image: HxWx3 uint8 RGB.
        target: HxW train ids with 255 for void.
        pred: HxW predicted train ids.
    """
    grey = image.astype(np.float32).mean(axis=2, keepdims=True) * 0.45
    out = np.repeat(grey, 3, axis=2).astype(np.uint8)
    ignore = target == IGNORE_INDEX
    out[(pred != target) & ~ignore] = ERROR_RGB
    out[ignore] = IGNORE_RGB
    return out


def _display_size(h: int, w: int, max_size: int) -> tuple[int, int]:
    scale = min(1.0, max_size / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def plot_qualitative(model, dataset, indices: list[int], env, out: Path, max_size: int = 512,
                     title: str | None = None) -> Path:
    """A grid of examples, one row per index: image, ground truth, prediction, errors; a class legend below.

    Args:
        model: a segmentation model (eval forward: NCHW uint8 RGB -> logits at input resolution).
        dataset: yields (3xHxW uint8 image, HxW train ids with 255), e.g. the val set.
        indices: which items to show (e.g. ``utils.data.spread_indices(len(val_set), 4)``).
        env: ``utils.engine.Env`` (device, autocast); None runs on the model's device in fp32.
        out: PNG path.
        max_size: longest side, in pixels, of each panel (larger images are shown downscaled).
        title: figure title.
    """
    import torch
    from matplotlib.patches import Patch

    from utils.ops import resize, resize_image, resize_labels

    if not indices:
        raise ValueError("plot_qualitative needs at least one index")
    rows = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for idx in indices:
                image, target = dataset[idx]
                image = torch.as_tensor(image).as_subclass(torch.Tensor)
                target = torch.as_tensor(target).as_subclass(torch.Tensor).long()
                if env is not None:
                    x = env.images(image[None])
                    with env.autocast():
                        logits = model(x)
                else:
                    logits = model(image[None].to(next(model.parameters()).device))
                if isinstance(logits, (tuple, list)):
                    logits = logits[0]
                logits = resize(logits.float(), target.shape[-2:])
                pred = logits.argmax(1)[0].cpu()
                size = _display_size(*target.shape[-2:], max_size)
                image = resize_image(image[None].float(), size)[0].round().clamp(0, 255).byte()
                target, pred = resize_labels(target, size), resize_labels(pred, size)
                rows.append((idx, image.permute(1, 2, 0).numpy(), target.numpy(), pred.numpy()))
    finally:
        model.train(was_training)

    dpi = 100
    panel_h = max(r[1].shape[0] for r in rows) / dpi
    panel_w = max(r[1].shape[1] for r in rows) / dpi
    fig_w = max(4 * panel_w + 0.4, 6.0)
    n_legend = len(CLASS_NAMES) + 2
    ncol = max(2, min(n_legend, int(fig_w / 1.2)))
    legend_h = 0.25 + 0.18 * math.ceil(n_legend / ncol)
    fig = plt.figure(figsize=(fig_w, len(rows) * (panel_h + 0.45) + legend_h + 0.3 * bool(title)), dpi=dpi,
                     layout="constrained")
    axes = np.asarray(fig.subplots(len(rows), 4, squeeze=False))
    for ax_row, (idx, image, target, pred) in zip(axes, rows):
        scored = target != 255
        wrong = float(((pred != target) & scored).sum() / max(int(scored.sum()), 1) * 100)
        panels = [(image, f"#{idx}: image"), (colorize(target), "ground truth"),
                  (colorize(pred), "prediction"), (error_map(image, target, pred), f"errors: {wrong:.1f}% wrong")]
        for ax, (img, name) in zip(ax_row, panels):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(name, fontsize=9)
            ax.set_axis_off()
    handles = [Patch(color=PALETTE[i] / 255, label=name) for i, name in enumerate(CLASS_NAMES)]
    handles += [Patch(color=ERROR_RGB / 255, label="wrong"), Patch(color=IGNORE_RGB / 255, label="void (not scored)")]
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=7,
               frameon=False, handlelength=1.2, columnspacing=1.0)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save_sized(fig, Path(out), dpi=dpi)


def plot_seed_bars(values: dict[str, list[float]], out: Path, title: str, ylabel: str = "mIoU (%)") -> Path:
    """One bar per row: the mean over seeds, the sample standard deviation as an error bar, each seed a dot."""
    names = list(values)
    means = [float(np.mean(v)) for v in values.values()]
    stds = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in values.values()]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(names) + 1.5), 3.6))
    x = np.arange(len(names))
    ax.bar(x, means, yerr=stds, capsize=4, color="#4c72b0", alpha=0.8)
    for i, v in enumerate(values.values()):
        offsets = np.linspace(-0.15, 0.15, len(v)) if len(v) > 1 else np.zeros(1)
        ax.scatter(x[i] + offsets, v, color="black", s=10, zorder=3)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set(title=title, ylabel=ylabel)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, Path(out))


def plot_discriminator_curves(runs: dict[str, list[Path]], out: Path) -> Path | None:
    """Adversarial training, per row averaged over its seeds' ``metrics.csv``: the discriminator's loss (chance:
    ln 2), the adversarial loss the segmentation network receives, and the discriminator's accuracy."""
    curves = {}
    for name, paths in runs.items():
        metrics = [_read_metrics(p) for p in paths if Path(p).is_file()]
        metrics = [m for m in metrics if "loss_d" in m]
        if metrics:
            n = min(len(m["loss_d"]) for m in metrics)
            curves[name] = {k: np.mean([m[k][:n] for m in metrics], axis=0)
                            for k in ("global_it", "loss_d", "loss_adv", "d_acc_source", "d_acc_target")}
    if not curves:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for name, c in curves.items():
        win = max(1, len(c["global_it"]) // 30)
        it = c["global_it"][win - 1:]
        axes[0].plot(it, _smooth(c["loss_d"], win), label=name)
        axes[1].plot(it, _smooth(c["loss_adv"], win), label=name)
        axes[2].plot(it, _smooth((c["d_acc_source"] + c["d_acc_target"]) / 2, win), label=name)
    axes[0].axhline(math.log(2), color="grey", lw=0.8, ls="--")
    axes[0].set(title="discriminator loss (chance: ln 2)", xlabel="iteration")
    axes[1].set(title="adversarial loss (target called source)", xlabel="iteration")
    axes[2].axhline(50, color="grey", lw=0.8, ls="--")
    axes[2].set(title="discriminator accuracy (%)", xlabel="iteration", ylim=(0, 100))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, Path(out))
