"""Speed, measured: the path the step scripts use ("fast") against plain eager fp32 code ("plain").

    python benchmark.py [--device cpu|cuda] [--height 512] [--width 1024] [--batch 1] [--iters N] [--json PATH]

Both paths run in this one process, side by side, on the same weights and inputs. Per model: parameters,
FLOPs (fvcore, multiply-adds), inference latency and FPS, training images/s (forward, loss, backward,
optimizer step), and the fast path's achieved FLOP/s over the device's own measured matmul peak (MFU; two
FLOPs per fvcore multiply-add). Data: GTA5 label decoding (one masked assignment per colour vs the project's
lookup), GTA5 image resizing (plain bilinear vs the loader's antialiased downscale) and loader images/s (raw
PNGs vs the prepared cache). ``--explore`` also times torch.compile modes.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from datasets import labels as L
from datasets.io import decode_colors, resize_image
from models import BiSeNet, DeepLabV2
from utils.complexity import FLOPS_HEADER, count_flops, count_params
from utils.device import amp_name, device_name, resolve_device
from utils.engine import Env, make_optimizer, train_iteration
from utils.fast import fast_settings, inference_context, inference_model
from utils.losses import SegLosses, build_seg_loss
from utils.ops import resize
from utils.paths import writable_file
from utils.report import provenance

MODELS = {"bisenet": lambda: BiSeNet(num_classes=19), "deeplabv2": lambda: DeepLabV2(num_classes=19)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, iters: int, warmup: int) -> list[float]:
    """Milliseconds of each of ``iters`` calls of ``fn`` after ``warmup`` untimed ones, device synchronised."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def peak_gflops(device: torch.device, dtype: torch.dtype, n: int) -> float:
    """The device's own dense matmul rate in ``dtype`` (GFLOP/s, 2 per multiply-add), from an n x n torch.mm."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 peak is true fp32
    try:
        ms = statistics.median(timed(lambda: torch.mm(a, b), device, iters=10 if device.type == "cuda" else 3,
                                     warmup=3 if device.type == "cuda" else 1))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return 2 * n ** 3 / (ms / 1000.0) / 1e9


# ------------------------------------------------------------------------------------------ inference
def plain_latency(model, x_float, device, iters, warmup) -> list[float]:
    """As a typical implementation writes it: fp32, NCHW, eager, ``torch.no_grad``, float input."""
    model.eval()

    def run():
        with torch.no_grad():
            model(x_float)
    return timed(run, device, iters, warmup)


def fast_latency(fast_model, x_uint8, device, iters, warmup) -> list[float]:
    """The fast model already holds its weights in the AMP dtype: no autocast needed around it."""
    def run():
        with inference_context(device, None):
            fast_model(x_uint8)
    return timed(run, device, iters, warmup)


# ------------------------------------------------------------------------------------------- training
def plain_train(model, images_float, labels, device, iters, warmup) -> float:
    """fp32 NCHW eager training: forward, cross-entropy (+ BiSeNet's aux heads), backward, SGD step."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def run():
        out = model(images_float)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        loss = sum(F.cross_entropy(o, labels, ignore_index=255) for o in outs if o is not None)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ms = statistics.median(timed(run, device, iters, warmup))
    return images_float.shape[0] * 1000.0 / ms


def fast_train(model, images_uint8, labels, env: Env, iters, warmup) -> float:
    """Exactly the step scripts' training iteration (``train_iteration``) under their default settings."""
    net = env.place(model)
    optimizer = make_optimizer("sgd", model.param_groups(), 1e-4)
    seg_loss = SegLosses(build_seg_loss("ce"))
    ms = statistics.median(timed(lambda: train_iteration(net, optimizer, seg_loss, (images_uint8, labels), env),
                                 env.device, iters, warmup))
    return images_uint8.shape[0] * 1000.0 / ms


def optimizer_step_ms(model, device, iters, warmup) -> dict:
    """One optimizer step over all of a model's parameters: PyTorch's default kernels vs the engine's
    (``make_optimizer``: fused). Gradients are random; only the step is timed."""
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    out = {}
    for name in ("sgd", "adam"):
        cls = torch.optim.SGD if name == "sgd" else torch.optim.Adam
        extra = {"momentum": 0.9} if name == "sgd" else {}
        plain = cls(model.parameters(), lr=1e-4, weight_decay=1e-4, **extra)
        fast = make_optimizer(name, model.param_groups(), 1e-4, weight_decay=1e-4)
        out[name] = {k: statistics.median(timed(o.step, device, max(5, iters // 2), max(2, warmup)))
                     for k, o in (("plain", plain), ("fast", fast))}
    return out


def bench_model(name: str, args, device, settings, peaks, explore: bool) -> dict:
    torch.manual_seed(0)
    model = MODELS[name]().to(device)
    h, w, b = args.height, args.width, args.batch
    th, tw, tb = args.train_resolution + [args.train_batch]
    g = torch.Generator().manual_seed(0)
    x8 = torch.randint(0, 256, (b, 3, h, w), generator=g, dtype=torch.uint8).to(device)
    xf = x8.float() / 255.0
    iters, warmup = args.iters, args.warmup
    row = {"params_m": count_params(model) / 1e6, "flops_g": count_flops(model, (h, w))}

    plain = plain_latency(model, xf, device, iters, warmup)
    def make_fast(mode):
        return inference_model(model, device, channels_last=settings["channels_last"], dtype=settings["amp_dtype"],
                               compile_mode=mode)

    fast_model = make_fast(settings["compile"])
    xin = x8.contiguous(memory_format=torch.channels_last) if settings["channels_last"] else x8
    fast = fast_latency(fast_model, xin, device, iters, warmup + 2)
    # Same weights, same input: the fast path must compute the same function.
    with torch.no_grad():
        ref = model.eval()(xf).float()
    with inference_context(device, None):
        out = fast_model(xin).float()
    agree = (ref.argmax(1) == out.argmax(1)).float().mean().item()
    lat = {"plain": statistics.median(plain), "fast": statistics.median(fast)}
    row["latency_ms"] = lat
    row["fps"] = {k: b * 1000.0 / v for k, v in lat.items()}
    row["argmax_agreement"] = agree
    peak = peaks["bf16" if settings["amp_dtype"] == torch.bfloat16 else "fp32"]
    row["mfu_fast"] = 2 * row["flops_g"] * row["fps"]["fast"] / peak if peak else None
    if explore and device.type == "cuda":
        row["explore_latency_ms"] = {}
        for mode in ("off", "cudagraph", "reduce-overhead"):
            try:
                t0 = time.perf_counter()
                m = make_fast(None if mode == "off" else mode)
                t = fast_latency(m, xin, device, iters, warmup + 3)
                row["explore_latency_ms"][f"compile={mode}"] = statistics.median(t)
                row["explore_latency_ms"][f"compile={mode} setup_s"] = time.perf_counter() - t0 - sum(t) / 1000
            except Exception as e:  # an exploration row never stops the benchmark
                row["explore_latency_ms"][f"compile={mode}"] = f"failed: {type(e).__name__}: {e}"[:300]
            print(f"  {name} compile={mode}: {row['explore_latency_ms'][f'compile={mode}']}", flush=True)
            torch.compiler.reset()
    del fast_model

    # Training: fresh copies so both start from the same weights.
    labels = torch.randint(0, 19, (tb, th, tw), generator=g).to(device)
    labels[:, : th // 8] = 255
    t8 = torch.randint(0, 256, (tb, 3, th, tw), generator=g, dtype=torch.uint8).to(device)
    titers, twarm = max(3, iters // 4), max(1, warmup // 2)
    torch.manual_seed(0)
    plain_ips = plain_train(MODELS[name]().to(device), t8.float() / 255.0, labels, device, titers, twarm)
    torch.manual_seed(0)
    env = Env(device=device, amp_dtype=settings["amp_dtype"], channels_last=settings["channels_last"])
    fast_ips = fast_train(MODELS[name]().to(device), t8, labels, env, titers, twarm)
    row["train_img_s"] = {"plain": plain_ips, "fast": fast_ips}
    row["optimizer_step_ms"] = optimizer_step_ms(model, device, iters, warmup)  # its inference runs are done
    if explore:
        torch.manual_seed(0)
        env = Env(device=device, amp_dtype=settings["amp_dtype"], channels_last=not settings["channels_last"])
        row["explore_train_img_s"] = {f"channels_last={env.channels_last}": fast_train(
            MODELS[name]().to(device), t8, labels, env, titers, twarm)}
        print(f"  {name} train {row['explore_train_img_s']}", flush=True)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


# ------------------------------------------------------------------------------------------------ data
def naive_decode(rgb: np.ndarray) -> np.ndarray:
    """How typical code converts a colour label: one masked assignment per class colour."""
    out = np.full(rgb.shape[:2], 255, dtype=np.uint8)
    for train_id, color in enumerate(L.PALETTE):
        out[(rgb == color).all(axis=-1)] = train_id
    return out


def bench_label_decode(iters: int) -> dict:
    rng = np.random.default_rng(0)
    # A 1052x1914 GTA5-sized label of blocks of train colours, with some colours outside the table.
    blocks = rng.integers(0, 21, size=(1052 // 4 + 1, 1914 // 4 + 1))
    table = np.concatenate([L.PALETTE, np.array([[1, 2, 3], [250, 0, 250]], dtype=np.uint8)])
    rgb = np.ascontiguousarray(table[np.kron(blocks, np.ones((4, 4), dtype=int))[:1052, :1914]])
    fast_ids, naive_ids = decode_colors(rgb), naive_decode(rgb)
    if not np.array_equal(fast_ids, naive_ids):
        raise AssertionError("the lookup and the naive decoder disagree")
    cpu = torch.device("cpu")
    return {"naive": statistics.median(timed(lambda: naive_decode(rgb), cpu, iters, 1)),
            "fast": statistics.median(timed(lambda: decode_colors(rgb), cpu, iters, 1))}


def bench_image_resize(iters: int) -> dict:
    """One 1052x1914 GTA5-sized RGB uint8 image to 720x1280: plain bilinear vs the loader's antialiased resize
    (``datasets.io.resize_image``), both from uint8 back to uint8, on one thread as in a DataLoader worker."""
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 1052, 1914), dtype=np.uint8))
    size = (720, 1280)

    def bilinear():
        return resize(image[None].float(), size)[0].round_().clamp_(0, 255).to(torch.uint8)

    cpu = torch.device("cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # DataLoader workers run torch single-threaded
    try:
        return {"bilinear": statistics.median(timed(bilinear, cpu, iters, 1)),
                "antialias": statistics.median(timed(lambda: resize_image(image, size), cpu, iters, 1))}
    finally:
        torch.set_num_threads(threads)


def bench_loader(args, device) -> dict:
    """Images/s of a training loader over raw PNGs vs the prepared cache, on the synthetic world's target."""
    try:
        from datasets.prepare import loader_throughput
    except ImportError as e:
        print(f"loader benchmark skipped: {e}")
        return {"raw": None, "prepared": None}
    from datasets.synthetic import demo_world
    from utils.data import default_workers

    root = Path(args.data_root) if args.data_root else demo_world("data/synthetic") / "Cityscapes"
    with tempfile.TemporaryDirectory() as cache:
        return loader_throughput(str(root), "cityscapes", size=tuple(args.train_resolution),
                                 n_images=args.loader_images, cache_dir=cache, batch_size=args.train_batch,
                                 num_workers=default_workers(device))


# ------------------------------------------------------------------------------------------------ main
def table(result: dict) -> str:
    h, w = result["resolution"]
    th, tw = result["train_resolution"]
    lines = [f"benchmark on {result['device']}, torch {result['torch']}, fast path: {result['fast_path']}",
             f"inference {h}x{w} batch {result['batch']}; training {th}x{tw} batch {result['train_batch']}; "
             f"matmul peak fp32 {result['peak_gflops']['fp32']:.0f} GFLOP/s, bf16 "
             f"{result['peak_gflops']['bf16']:.0f} GFLOP/s",
             f"{'model':10} {'params (M)':>10} {'G' + FLOPS_HEADER:>32} {'latency ms plain/fast':>22} "
             f"{'FPS plain/fast':>16} {'ratio':>6} {'train img/s plain/fast':>23} {'ratio':>6} {'MFU':>6}"]
    for name, m in result["models"].items():
        lat, fps, tr = m["latency_ms"], m["fps"], m["train_img_s"]
        lines.append(f"{name:10} {m['params_m']:10.2f} {m['flops_g']:32.2f} "
                     f"{lat['plain']:10.2f} / {lat['fast']:9.2f} {fps['plain']:7.1f} / {fps['fast']:6.1f} "
                     f"{lat['fast'] / lat['plain']:6.2f} {tr['plain']:10.2f} / {tr['fast']:10.2f} "
                     f"{tr['fast'] / tr['plain']:6.2f} {100 * (m['mfu_fast'] or 0):5.1f}%")
    for name, m in result["models"].items():
        if "optimizer_step_ms" in m:
            steps = ", ".join(f"{k} {v['plain']:.1f} -> {v['fast']:.1f} ms" for k, v in m["optimizer_step_ms"].items())
            lines.append(f"{name} optimizer step, PyTorch default -> fused: {steps}")
    d = result["data"]
    ld, li = d["label_decode_ms"], d["loader_img_s"]
    lines.append(f"GTA5 label decode 1052x1914: naive {ld['naive']:.1f} ms, lookup {ld['fast']:.1f} ms "
                 f"({ld['naive'] / ld['fast']:.0f}x)")
    ir = d["image_resize_ms"]
    lines.append(f"GTA5 image resize 1052x1914 -> 720x1280, one thread: bilinear {ir['bilinear']:.1f} ms, "
                 f"antialiased {ir['antialias']:.1f} ms ({ir['antialias'] / ir['bilinear']:.1f}x)")
    if li.get("raw"):
        lines.append(f"loader at {th}x{tw}: raw PNGs {li['raw']:.1f} img/s, prepared cache {li['prepared']:.1f} "
                     f"img/s ({li['prepared'] / li['raw']:.1f}x)")
    return "\n".join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--batch", type=int, default=1, help="inference batch")
    p.add_argument("--iters", type=int, default=None, help="timed runs (default 50 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 10 on CUDA, 1 on CPU)")
    p.add_argument("--train-height", type=int, default=None, help="default: 512 on CUDA, 256 on CPU")
    p.add_argument("--train-width", type=int, default=None, help="default: 1024 on CUDA, 512 on CPU")
    p.add_argument("--train-batch", type=int, default=None, help="default: 8 on CUDA, 2 on CPU")
    p.add_argument("--models", default="bisenet,deeplabv2", help="comma-separated subset of bisenet,deeplabv2")
    p.add_argument("--data-root", default=None, help="Cityscapes-layout root for the loader figures "
                   "(default: the synthetic world's, generated if absent)")
    p.add_argument("--loader-images", type=int, default=64, help="images the loader benchmark reads")
    p.add_argument("--peak-size", type=int, default=None, help="matmul size for the peak (default 8192 CUDA, 2048 CPU)")
    p.add_argument("--explore", action="store_true", help="also time torch.compile modes (CUDA)")
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args(argv)
    for k in ("height", "width", "batch"):
        if getattr(args, k) < 1:
            p.error(f"--{k} must be >= 1")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or any(m not in MODELS for m in models):
        p.error(f"--models takes a subset of {', '.join(MODELS)}")
    args.models = models
    if args.json:  # before the minutes of measuring, not after
        writable_file(args.json, "--json", "Give --json a file in a folder you can write to.")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    args.iters = args.iters or (50 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    args.train_resolution = [args.train_height or (512 if cuda else 256), args.train_width or (1024 if cuda else 512)]
    args.train_batch = args.train_batch or (8 if cuda else 2)
    settings = fast_settings(device)
    if cuda:
        torch.backends.cudnn.benchmark = True
    described = {"amp": amp_name(settings["amp_dtype"]), "channels_last": settings["channels_last"],
                 "compile": settings["compile"] or "off"}
    print(f"fast path on {device_name(device)}: {described}", flush=True)
    n = args.peak_size or (8192 if cuda else 2048)
    peaks = {"fp32": peak_gflops(device, torch.float32, n), "bf16": peak_gflops(device, torch.bfloat16, n)}
    result = {"device": device_name(device), "torch": torch.__version__, "resolution": [args.height, args.width],
              "batch": args.batch, "train_resolution": args.train_resolution, "train_batch": args.train_batch,
              "peak_gflops": peaks, "fast_path": described, "models": {}}
    for name in tqdm(args.models, desc="models"):
        result["models"][name] = m = bench_model(name, args, device, settings, peaks, args.explore)
        print(f"{name}: latency ms {m['latency_ms']}, train img/s {m['train_img_s']}", flush=True)
    result["data"] = {"label_decode_ms": bench_label_decode(10 if cuda else 5),
                      "image_resize_ms": bench_image_resize(10 if cuda else 5),
                      "loader_img_s": bench_loader(args, device)}
    result["provenance"] = provenance()
    result["command"] = "python benchmark.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return result


if __name__ == "__main__":
    from utils.config import run_main

    run_main(main)
