"""One trained model, end to end: run folder, build, (resume,) train, evaluate, measure, record.

Step scripts build datasets and models, then hand them here; everything they share lives once.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from utils import distributed
from utils.checkpoint import load_checkpoint, load_resumable
from utils.complexity import count_flops, count_params, measure_latency
from utils.data import batch_stream, limit, make_loader
from utils.engine import Env, Trainer, adversarial_step, evaluate, fit, make_optimizer, seg_step, setup_env
from utils.device import amp_name
from utils.errors import CheckpointError, ConfigError, DatasetError
from utils.fast import fast_settings, inference_model
from utils.losses import build_seg_loss
from utils.plots import (plot_confusion_matrix, plot_per_class_iou, plot_qualitative, plot_training_curves,
                         spread_indices)
from utils.report import print_results, provenance
from utils.runs import Run, write_json

_COMPLEXITY_CACHE: dict[str, dict] = {}


def load_weights(model: nn.Module, path: str | Path) -> dict:
    """Start ``model`` from a checkpoint of this project (or a bare state dict); the model must match."""
    from models import check_spec

    ckpt = load_checkpoint(path)
    if "trainer" in ckpt:
        state, spec = ckpt["trainer"]["model"], ckpt.get("model_spec") or None
    else:
        state, spec = ckpt.get("model", ckpt), ckpt.get("model_spec")
    if spec:
        check_spec(model.spec, spec, path)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        missing = str(e).count("Missing key")
        raise CheckpointError(
            f"{path} does not fit this model ({model.spec.get('arch')}, {model.spec.get('num_classes')} classes): "
            f"{str(e).splitlines()[0]}{' ...' if missing else ''}. Use a checkpoint of the same model.") from None
    print(f"initialised weights from {path}")
    return ckpt


def complexity(model: nn.Module, env: Env, flops_size, latency_size, latency_iters: int,
               compile_mode: str = "auto") -> dict:
    """Params, fvcore FLOPs and latency of ``model`` on the run's device and fast path, cached per process.

    Under torchrun only rank 0 measures (the others would compete for the same machine and skew the
    latency); they wait for its figures.
    """
    key = json.dumps([model.spec, list(flops_size), list(latency_size), str(env.device),
                      str(env.amp_dtype), latency_iters, compile_mode], sort_keys=True)
    if key not in _COMPLEXITY_CACHE:
        measured = None
        if env.is_main:
            model = distributed.unwrap(model)
            was_training = model.training
            flops = count_flops(model, size=tuple(flops_size))
            # The fast path (utils/fast.py); at least 3 warm-up calls: a compiled model records its CUDA graph
            # on the second or third call, which must not be timed.
            settings = fast_settings(env.device, amp_name(env.amp_dtype), compile_mode)
            fast = inference_model(model, env.device, channels_last=settings["channels_last"],
                                   fold_bn=settings["fold_bn"], dtype=settings["amp_dtype"],
                                   compile_mode=settings["compile"])
            lat = measure_latency(fast, size=tuple(latency_size), device=env.device, iters=latency_iters,
                                  warmup=max(3, latency_iters // 4), channels_last=settings["channels_last"])
            del fast
            model.train(was_training)
            measured = {
                "params_m": count_params(model) / 1e6, "flops_g": flops, "flops_resolution": list(flops_size),
                "latency_ms": lat["latency_ms"], "latency_std_ms": lat["latency_std_ms"], "fps": lat["fps"],
                "latency_resolution": list(latency_size)}
        _COMPLEXITY_CACHE[key] = distributed.broadcast_object(measured)
    return dict(_COMPLEXITY_CACHE[key])


def _prepare_synthetic(dataset) -> None:
    """Decode the synthetic world's training images once (a few seconds), not once per epoch.

    The prepared set goes beside the world (``<world>/cache``), so it is deleted with it; rank 0 writes it.
    """
    from datasets.prepare import use_prepared

    if not hasattr(dataset, "root"):
        return
    cache_dir = Path(dataset.root).resolve().parent / "cache"
    with distributed.main_first():
        try:
            use_prepared(dataset, cache_dir)
        except (OSError, DatasetError) as e:  # a read-only or full disk costs speed, never the run
            print(f"note: could not prepare the demo images in {cache_dir} ({e}); reading the PNGs instead")


def run_experiment(cfg, *, step: str, model_name: str, build_model: Callable[[], nn.Module], train_set,
                   val_set, train_domain: str, eval_domain: str, synthetic: bool, variant: str | None = None,
                   variant_spec=None, extra_evals: dict | None = None, target_set=None,
                   optimizer: str = "sgd", loss: str = "ce", lr: float | None = None,
                   init_from: str | None | bool = True, command: str | None = None) -> dict:
    """Train one model (or resume it, or reprint it when finished) and return its results.json record.

    Args:
        cfg: the step script's resolved config.
        step: "2a", "2b", "3a3b" or "4_5".
        model_name: "bisenet" or "deeplabv2".
        build_model: makes the model (pretrained as configured), on the CPU.
        train_set, val_set: datasets yielding (uint8 image, int64 train-id label).
        variant, variant_spec: for multi-variant steps; part of the run's identity.
        extra_evals: further evaluations, name -> dataset (e.g. in-domain GTA5 val).
        target_set: unlabelled target-domain dataset: trains adversarially when given.
        optimizer, loss: "sgd"/"adam" and "ce"/"focal" for the segmentation network.
        lr: base learning rate (default ``cfg.LR``).
        init_from: checkpoint to start from; True means ``cfg.INIT_FROM``.
    """
    run = Run(cfg, variant=variant, variant_spec=variant_spec, command=command)
    full_train = train_set
    train_set, val_set = limit(train_set, cfg.get("TRAIN_IMAGES", 0)), limit(val_set, cfg.get("VAL_IMAGES", 0))
    if cfg.EVAL_ONLY:
        return _eval_only(cfg, run, step, model_name, build_model, val_set, train_domain, eval_domain,
                          synthetic, extra_evals)
    env = setup_env(cfg)  # joins torchrun's processes before they agree on the run's status
    status = run.prepare()
    if status == "finished":
        results = run.stored_results()
        print(f"{run.dir} already finished with this config; its stored results:")
        print_results(results)
        return results

    if synthetic and int(cfg.EPOCHS) * len(train_set) >= 2 * len(full_train):  # read at least twice
        _prepare_synthetic(full_train)
    model = build_model().to(env.device)
    if env.channels_last:
        model = model.to(memory_format=torch.channels_last)
    init_from = cfg.INIT_FROM if init_from is True else init_from
    if init_from and status == "new":
        load_weights(model, init_from)

    batch = int(cfg.BATCH_SIZE)  # per process under torchrun
    shard = len(train_set) // env.world
    if batch < 1 or shard < batch:
        per = f" ({shard} per process, {env.world} processes)" if env.world > 1 else ""
        raise ConfigError(f"BATCH_SIZE={batch} but the training set has {len(train_set)} images{per}: "
                          "use a batch between 1 and the number of images (2 or more for BiSeNet).")
    workers = int(cfg.get("NUM_WORKERS", -1))
    shards = dict(rank=env.rank, world=env.world)
    train_loader = make_loader(train_set, batch, train=True, seed=cfg.SEED, device=env.device,
                               num_workers=workers, **shards)
    val_loader = make_loader(val_set, int(cfg.get("EVAL_BATCH_SIZE", batch)), train=False, seed=cfg.SEED,
                             device=env.device, num_workers=workers, **shards)
    max_iter = int(cfg.EPOCHS) * len(train_loader)  # this process's iterations: each one steps every rank
    lr = float(cfg.LR if lr is None else lr)
    tr = Trainer(
        model=distributed.wrap(model, env.device, find_unused_parameters=target_set is not None),
        optimizer=make_optimizer(optimizer, model.param_groups(), lr, momentum=cfg.get("MOMENTUM", 0.9),
                                 weight_decay=cfg.WEIGHT_DECAY, betas=cfg.get("BETAS", (0.9, 0.99))),
        loss_fn=build_seg_loss(loss, gamma=cfg.get("FOCAL_GAMMA", 2.0)),
        env=env, base_lr=lr, max_iter=max_iter, aux_weight=cfg.get("AUX_WEIGHT", 1.0))
    step_fn = seg_step
    resume = load_resumable(run.last, map_location=env.device)[0] if status == "resume" else None
    if target_set is not None:
        from models import FCDiscriminator

        disc = FCDiscriminator(num_classes=cfg.NUM_CLASSES).to(env.device)
        tr.disc_base_lr = float(cfg.DISC_LR)
        tr.disc_optimizer = make_optimizer("adam", [{"params": disc.parameters()}], tr.disc_base_lr,
                                           betas=tuple(cfg.get("DISC_BETAS", (0.9, 0.99))))
        tr.discriminator = distributed.wrap(disc, env.device)
        tr.lambda_adv = float(cfg.LAMBDA_ADV)
        target_loader = make_loader(target_set, batch, train=True, seed=cfg.SEED, device=env.device,
                                    num_workers=workers, stream=1, **shards)
        start = int(resume["trainer"]["global_it"]) if resume is not None else 0
        tr.target_batches = batch_stream(target_loader, start=start)
        step_fn = adversarial_step
    run.log(f"{status}: {model_name} step {step} variant {run.variant}, {cfg.EPOCHS} epochs x "
            f"{len(train_loader)} iterations, {env.describe()}")
    print(f"[{step} {run.variant}] {model_name}: {len(train_set)} train / {len(val_set)} val images, "
          f"{cfg.EPOCHS} epochs x {len(train_loader)} iterations, {env.describe()['device']}, "
          f"AMP {env.describe()['amp']} -> {run.dir}")

    state = fit(tr, run, train_loader, val_loader, epochs=int(cfg.EPOCHS), eval_every=int(cfg.EVAL_EVERY),
                checkpoint_minutes=float(cfg.CHECKPOINT_MINUTES), num_classes=cfg.NUM_CLASSES,
                step_fn=step_fn, resume=resume, model_spec=model.spec, progress=env.is_main)
    final = state["last_eval"]
    results = _record(cfg, run, env, step, model_name, model, final, train_domain, eval_domain, synthetic)
    results.update(epochs=int(cfg.EPOCHS), iterations=tr.global_it, train_seconds=state["train_seconds"],
                   best_miou=state["best_miou"], history=state["history"])
    results["extra_evals"] = _extra_evals(cfg, model, env, extra_evals, workers)
    if env.is_main:
        run.save_results(results)
        plot_training_curves(run.metrics_path, state["history"], run.dir / "curves.png")
        plot_per_class_iou([results], run.dir / "per_class_iou.png", title=f"{model_name}, step {step}")
        name = f"{model_name}, step {step}" + (f" [{run.variant}]" if variant else "") + f", {eval_domain} val"
        if final.get("confusion") is not None:
            plot_confusion_matrix(final["confusion"], run.dir / "confusion_matrix.png",
                                  class_names=list(final["per_class_iou"]), title=name)
        plot_qualitative(model, val_set, spread_indices(len(val_set)), env, run.dir / "qualitative.png",
                         title=name)
        print_results(results)
    return results


def _record(cfg, run: Run, env: Env, step, model_name, model, final, train_domain, eval_domain,
            synthetic) -> dict:
    eval_size = cfg.EVAL_SIZE if cfg.EVAL_SIZE == "native" else list(cfg.EVAL_SIZE)
    results = {"step": step, "variant": run.variant, "model": model_name, "train_domain": train_domain,
               "eval_domain": eval_domain, "miou": final["miou"], "pixel_acc": final["pixel_acc"],
               "per_class_iou": final["per_class_iou"], "eval_resolution": eval_size}
    results.update(complexity(model, env, cfg.FLOPS_SIZE, cfg.LATENCY_SIZE, int(cfg.LATENCY_ITERS),
                              str(cfg.get("COMPILE", "auto"))))
    results.update(device=env.describe()["device"], amp=env.describe()["amp"], synthetic=bool(synthetic),
                   config=run.config, model_spec=model.spec, path=str(run.dir), **provenance())
    return results


def _extra_evals(cfg, model, env, extra_evals, workers) -> dict:
    out = {}
    for name, ds in (extra_evals or {}).items():
        loader = make_loader(ds, int(cfg.BATCH_SIZE), train=False, seed=cfg.SEED, device=env.device,
                             num_workers=workers, rank=env.rank, world=env.world)
        r = evaluate(model, loader, env, cfg.NUM_CLASSES, desc=name, progress=env.is_main).compute()
        out[name] = {"miou": r["miou"], "per_class_iou": r["per_class_iou"]}
    return out


def _eval_only(cfg, run, step, model_name, build_model, val_set, train_domain, eval_domain, synthetic,
               extra_evals) -> dict:
    if not cfg.INIT_FROM:
        raise ConfigError("EVAL_ONLY=true needs INIT_FROM=<checkpoint> (e.g. runs/NAME/best.pt).")
    env = setup_env(cfg)
    model = build_model().to(env.device)
    ckpt = load_weights(model, cfg.INIT_FROM)
    workers = int(cfg.get("NUM_WORKERS", -1))
    loader = make_loader(val_set, int(cfg.BATCH_SIZE), train=False, seed=cfg.SEED, device=env.device,
                         num_workers=workers, rank=env.rank, world=env.world)
    final = evaluate(model, loader, env, cfg.NUM_CLASSES, progress=env.is_main).compute()
    results = _record(cfg, run, env, step, model_name, model, final, train_domain, eval_domain, synthetic)
    trained = ckpt.get("state", {})
    results.update(epochs=trained.get("epoch", 0), iterations=ckpt.get("trainer", {}).get("global_it", 0),
                   train_seconds=trained.get("train_seconds", 0.0), evaluated_checkpoint=str(cfg.INIT_FROM))
    results["extra_evals"] = _extra_evals(cfg, model, env, extra_evals, workers)
    out = run.dir / f"eval_{Path(cfg.INIT_FROM).stem}.json"
    if env.is_main:
        write_json(out, results)
        print_results(results)
        print(f"evaluation of {cfg.INIT_FROM} written to {out}")
    return results
