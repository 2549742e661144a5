"""One trained model's results: measured (params, FLOPs, latency), written (results.json), plotted and printed.

A step script calls :func:`record_results` after ``utils.engine.fit`` with what only it knows (the step, the
model's name, the domains); the run folder supplies the rest.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch.nn as nn

from utils import distributed
from utils.complexity import count_flops, count_params, measure_latency
from utils.data import spread_indices
from utils.device import amp_name
from utils.engine import Env
from utils.fast import fast_settings, inference_model
from utils.plots import plot_confusion_matrix, plot_per_class_iou, plot_qualitative, plot_training_curves
from utils.report import print_results, provenance
from utils.runs import Run, write_json

QUALITATIVE_IMAGES = 4  # val images shown in qualitative.png
_COMPLEXITY_CACHE: dict[str, dict] = {}


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
            was_training = model.training
            flops = count_flops(model, size=tuple(flops_size))
            # The fast path (utils/fast.py); at least 3 warm-up calls: a compiled model records its CUDA graph
            # on the second or third call, which must not be timed.
            settings = fast_settings(env.device, amp_name(env.amp_dtype), compile_mode)
            fast = inference_model(model, env.device, channels_last=settings["channels_last"],
                                   dtype=settings["amp_dtype"], compile_mode=settings["compile"])
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


def record_results(run: Run, env: Env, model: nn.Module, trained: dict, about: dict, val_set,
                   extra_evals: dict | None = None) -> dict:
    """The results.json record of one trained (or, with ``EVAL_ONLY``, evaluated) model: written, plotted,
    printed and returned.

    Args:
        run: the run folder; its config supplies the evaluation, FLOPs and latency settings.
        env: where the model runs.
        model: the trained model (not a DDP wrapper).
        trained: what ``utils.engine.fit`` returned (final evaluation, epochs, iterations, times, history).
        about: ``{"step", "model", "train_domain", "eval_domain"}``: what only the script knows.
        val_set: the evaluation set, for the qualitative figure.
        extra_evals: further evaluations, name -> ``ConfusionMatrix.compute()`` (e.g. in-domain GTA5 val).
    """
    cfg, final = run.config, trained["last_eval"]
    eval_size = cfg["EVAL_SIZE"] if cfg["EVAL_SIZE"] == "native" else list(cfg["EVAL_SIZE"])
    results = {"step": about["step"], "variant": run.variant, "model": about["model"],
               "train_domain": about["train_domain"], "eval_domain": about["eval_domain"], "miou": final["miou"],
               "pixel_acc": final["pixel_acc"], "per_class_iou": final["per_class_iou"], "eval_resolution": eval_size,
               "eval_labels": cfg["EVAL_LABELS"], "eval_pixels": int(np.asarray(final["confusion"]).sum())}
    results.update(complexity(model, env, cfg["FLOPS_SIZE"], cfg["LATENCY_SIZE"], int(cfg["LATENCY_ITERS"]),
                              str(cfg["COMPILE"])))
    results.update(device=env.describe()["device"], amp=env.describe()["amp"], synthetic=bool(run.synthetic),
                   config=run.config, model_spec=model.spec, path=str(run.dir), **provenance())
    results.update({k: trained[k] for k in ("epochs", "iterations", "train_seconds", "best_miou", "history",
                                            "evaluated_checkpoint", "miou_before_adabn", "adabn_images",
                                            "adabn_seconds") if k in trained})
    results["extra_evals"] = {name: {"miou": r["miou"], "per_class_iou": r["per_class_iou"]}
                              for name, r in (extra_evals or {}).items()}
    if not env.is_main:
        return results
    if run.status == "evaluate" and not run.eval_run:
        adapted = "_adabn" if "miou_before_adabn" in trained else ""
        out = run.dir / f"eval_{Path(trained['evaluated_checkpoint']).stem}{adapted}.json"
        write_json(out, results)
        print_results(results)
        print(f"evaluation of {trained['evaluated_checkpoint']} written to {out}")
        return results
    run.save_results(results)
    _plot(run, env, model, results, final, val_set)
    print_results(results)
    return results


def _plot(run: Run, env: Env, model: nn.Module, results: dict, final: dict, val_set) -> None:
    plot_training_curves(run.metrics_path, results.get("history") or [], run.dir / "curves.png")
    name = f"{results['model']}, step {results['step']}"
    plot_per_class_iou([results], run.dir / "per_class_iou.png", title=name)
    name += (f" [{run.variant}]" if run.variant != "default" else "") + f", {results['eval_domain']} val"
    if final.get("confusion") is not None:
        plot_confusion_matrix(final["confusion"], run.dir / "confusion_matrix.png",
                              class_names=list(final["per_class_iou"]), title=name)
    plot_qualitative(model, val_set, spread_indices(len(val_set), QUALITATIVE_IMAGES), env,
                     run.dir / "qualitative.png", title=name)


def show_stored_results(run: Run) -> dict:
    """A finished run's stored results, printed and returned: re-running it trains nothing."""
    results = run.stored_results()
    print(f"{run.dir} already finished with this config; its stored results:")
    print_results(results)
    return results
