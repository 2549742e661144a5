"""Check a Cityscapes and/or GTA5 folder before training on it.

    python -m datasets.check --cityscapes ROOT --gta5 ROOT [--label-format auto] [--max-images 200]

Reports the layout found, image counts per split, image sizes, label format, the class pixel histogram over
a sample, and every problem with the file that has it. Exit status 0 when the data can be trained on, 1 when
it cannot (problems), 2 for wrong command-line arguments. Nothing is written into the dataset folders.
"""
from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
from tqdm import tqdm

from datasets import io, labels
from datasets._base import ignore_share_warning
from datasets.cityscapes import IMAGE_FOLDERS, LABEL_SOURCES, SPLITS, Cityscapes
from datasets.gta5 import LABEL_FORMATS, GTA5
from utils.data import spread_indices
from utils.errors import UserError, name_options

LABEL_MODE_NAMES = {
    "P": "palette PNG (indices = Cityscapes label ids)",
    "RGB": "RGB colour PNG",
    "RGBA": "RGBA colour PNG",
    "L": "greyscale PNG",
}


@dataclass
class Report:
    """What one dataset check found; ``ok`` is False when the data cannot be trained on."""

    name: str
    root: Path
    info: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))
    sampled: int = 0
    checked: int = 0
    worst: tuple[float, Path] = (-1.0, Path())  # the largest share of ignored pixels of one label, and its file

    @property
    def ok(self) -> bool:
        return not self.problems


def _scan(report: Report, dataset: Cityscapes | GTA5, indices: list[int], desc: str, sizes: Counter) -> None:
    """Decode the sampled items, accumulate the class histogram and record every failing file."""
    for i in tqdm(indices, desc=desc, unit="img", disable=None, file=sys.stderr):
        image_path, label_path = dataset.samples[i]
        report.sampled += 1
        try:
            image, label = dataset[i]
        except UserError as e:
            report.problems.append(str(e))
            continue
        report.checked += 1
        sizes[tuple(image.shape[-2:])] += 1
        counts = np.bincount(label.numpy().ravel(), minlength=256)
        report.histogram += counts
        report.worst = max(report.worst, (counts[labels.IGNORE_INDEX] / max(counts.sum(), 1), label_path))
        if counts[: labels.NUM_CLASSES].sum() == 0:
            report.warnings.append(f"{label_path}: every pixel is ignore (255), no pixel of the 19 classes")


def _decoded_line(report: Report, total: int) -> str:
    line = f"decoded {report.checked} of {report.sampled} sampled images ({total} in all)"
    return line + (", --max-images 0 checks all" if report.sampled < total else "")


def _format_sizes(sizes: Counter) -> str:
    return ", ".join(f"{h}x{w} ({n})" for (h, w), n in sizes.most_common())


def _histogram_lines(hist: np.ndarray) -> list[str]:
    total = int(hist.sum())
    if total == 0:
        return ["class pixels: none decoded"]
    lines = ["class pixels over the sample (train id, class, share):"]
    for train_id, name in enumerate(labels.CLASS_NAMES):
        share = 100.0 * hist[train_id] / total
        lines.append(f"  {train_id:>3}  {name:<14} {share:6.2f} %{'  (absent)' if hist[train_id] == 0 else ''}")
    lines.append(f"  255  {'ignore':<14} {100.0 * hist[labels.IGNORE_INDEX] / total:6.2f} %")
    return lines


def _finish(report: Report, sizes: Counter) -> None:
    report.info.append(f"image sizes (HxW, count) in the sample: {_format_sizes(sizes) or 'none'}")
    report.info.extend(_histogram_lines(report.histogram))
    total = int(report.histogram.sum())
    share = report.histogram[labels.IGNORE_INDEX] / total if total else 0.0
    text = ignore_share_warning(share, f"the {report.checked} labels sampled", report.worst[1], report.worst[0])
    if text:
        report.warnings.append(text)


def check_cityscapes(root: str | Path, label_source: str = "auto", max_images: int = 200) -> Report:
    """Check a Cityscapes root (both splits) and decode up to ``max_images`` items (0: all)."""
    report = Report("Cityscapes", Path(root))
    datasets: dict[str, Cityscapes] = {}
    for split in SPLITS:
        try:
            datasets[split] = Cityscapes(root, split=split, label_source=label_source)
        except UserError as e:
            if str(e) not in report.problems:  # a missing root fails both splits the same way
                report.problems.append(str(e))
    if not datasets:
        return report
    first = next(iter(datasets.values()))
    report.info.append(f"layout: {first.layout} ({IMAGE_FOLDERS[first.layout]}/ + gtFine/)")
    total = sum(len(d) for d in datasets.values())
    for split, ds in datasets.items():
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(ds.label_kind_counts.items()))
        report.info.append(f"{split}: {len(ds)} images (label files: {kinds})")
    sizes: Counter = Counter()
    for split, ds in datasets.items():
        k = 0 if max_images <= 0 else max(1, math.ceil(max_images * len(ds) / total))
        _scan(report, ds, spread_indices(len(ds), k), f"cityscapes {split}", sizes)
    report.info.append(_decoded_line(report, total))
    _finish(report, sizes)
    return report


def check_gta5(root: str | Path, label_format: str = "auto", max_images: int = 200) -> Report:
    """Check a GTA5 root and decode up to ``max_images`` items (0: all)."""
    report = Report("GTA5", Path(root))
    try:
        with warnings.catch_warnings():
            # The skip count is reported below, with the skipped files; no need for the warning too.
            warnings.simplefilter("ignore", UserWarning)
            ds = GTA5(root, split="all", label_format=label_format)
    except UserError as e:
        report.problems.append(str(e))
        return report
    report.info.append("layout: images/ + labels/")
    report.info.append(f"all: {len(ds)} images with a label")
    if ds.num_skipped:
        report.warnings.append(
            f"{ds.num_skipped} image(s) have no label file and are skipped: "
            + ", ".join(str(ds.root / "images" / name) for name in ds.skipped[:10])
            + (" ..." if ds.num_skipped > 10 else "")
        )
    indices = spread_indices(len(ds), max_images)
    modes: Counter = Counter()
    resized = []
    for i in indices:
        image_path, label_path = ds.samples[i]
        try:
            mode, label_size = io.peek_mode_and_size(label_path)
            _, image_size = io.peek_mode_and_size(image_path)
        except UserError:
            continue  # decoding below reports the file
        modes[mode] += 1
        if image_size != label_size:
            resized.append(f"{image_path} {image_size[1]}x{image_size[0]} -> {label_size[1]}x{label_size[0]} (WxH)")
    described = ", ".join(f"{LABEL_MODE_NAMES.get(m, m)}: {n}" for m, n in modes.most_common())
    report.info.append(f"label format: {label_format} -> {ds.detected_format}; label files in the sample: {described}")
    if resized:
        report.warnings.append(
            f"{len(resized)} image(s) differ in size from their label and are resized to it: " + "; ".join(resized[:5])
        )
    sizes: Counter = Counter()
    _scan(report, ds, indices, "gta5", sizes)
    report.info.append(_decoded_line(report, len(ds)))
    _finish(report, sizes)
    return report


def print_report(report: Report, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    print(f"== {report.name}: {report.root}", file=out)
    for line in report.info:
        print(line, file=out)
    for line in report.warnings:
        print(f"WARNING: {line}", file=out)
    for line in report.problems:
        print(f"PROBLEM: {line}", file=out)
    verdict = "OK: usable for training" if report.ok else f"NOT USABLE: {len(report.problems)} problem(s) above"
    print(verdict, file=out)
    print(file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datasets.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cityscapes", metavar="ROOT", help="Cityscapes root (official or course layout)")
    parser.add_argument("--gta5", metavar="ROOT", help="GTA5 root (images/ and labels/)")
    parser.add_argument("--label-format", default="auto", choices=LABEL_FORMATS, help="GTA5 label format")
    parser.add_argument("--label-source", default="auto", choices=LABEL_SOURCES, help="Cityscapes label files")
    parser.add_argument(
        "--max-images", type=int, default=200, metavar="N", help="decode at most N images per dataset (0: all)"
    )
    args = parser.parse_args(argv)
    name_options({"label_format": "--label-format", "label_source": "--label-source"})
    if not args.cityscapes and not args.gta5:
        parser.error("give --cityscapes ROOT and/or --gta5 ROOT")
    reports = []
    try:
        if args.cityscapes:
            reports.append(check_cityscapes(args.cityscapes, args.label_source, args.max_images))
        if args.gta5:
            reports.append(check_gta5(args.gta5, args.label_format, args.max_images))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for report in reports:
        print_report(report)
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
