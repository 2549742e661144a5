"""Step-script configuration: types, choices, --demo, --help, errors, JSON/checkpoint round trip."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
import textwrap

import pytest
import torch

from utils.config import Config, config_diff, load_config, read_comments, run_main
from utils.errors import ConfigError, DatasetError

SCRIPT = '''\
"""Step 9: a fake step script for the config tests."""
import math as MATH
from collections import OrderedDict

from utils.config import load_config

RUNS_DIR = "runs"            # where runs are saved
RUN_NAME = "step9_fake"      # folder under RUNS_DIR
SEED = 0                     # random seed
EPOCHS = 50                  # passes over the train set
LR = 2.5e-2                  # base learning rate (poly schedule)
OVERWRITE = False            # replace a run with a different config
EVAL_SIZE = (512, 1024)      # (H, W) evaluation resolution, or "native"
SCALES = [0.5, 1.0, 1.5]     # multi-scale evaluation factors
FLAGS = (True, False)        # two switches
AMP = "auto"                 # auto | bf16 | fp16 | off
DEVICE = "auto"              # which device runs the model
INIT_FROM = None             # checkpoint to start the weights from
VARIANTS = {                 # variant -> augmentations
    "none": {},
    "flip": {"hflip": 0.5},
    "jitter": {"color": 0.4},
}
# how many minutes between checkpoints
CHECKPOINT_MINUTES = 20.0
CHOICES = {"AMP": ("auto", "bf16", "fp16", "off"), "EVAL_SIZE": ("native",),
           "DEVICE": ("auto", "cpu", "cuda:N")}
DEMO = {"EPOCHS": 2, "VARIANTS": "none", "EVAL_SIZE": "64x128", "LR": 0.1}
_PRIVATE = 3


def helper():
    INSIDE = 1  # not a config key
    return INSIDE


class THING:
    pass


def main(argv=None):
    return load_config(globals(), argv)
'''


@pytest.fixture(scope="module")
def ns(tmp_path_factory):
    path = tmp_path_factory.mktemp("script") / "step9_fake.py"
    path.write_text(SCRIPT)
    spec = importlib.util.spec_from_file_location("step9_fake", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return vars(module)


def load(ns, *argv):
    return load_config(ns, list(argv))


def test_defaults_and_keys(ns):
    cfg = load(ns)
    assert list(cfg) == ["RUNS_DIR", "RUN_NAME", "SEED", "EPOCHS", "LR", "OVERWRITE", "EVAL_SIZE", "SCALES",
                         "FLAGS", "AMP", "DEVICE", "INIT_FROM", "VARIANTS", "CHECKPOINT_MINUTES"]
    assert cfg.EPOCHS == 50 and cfg["LR"] == 2.5e-2 and cfg.demo is False and cfg.overrides == {}
    assert cfg.VARIANTS == ns["VARIANTS"] and cfg.VARIANTS is not ns["VARIANTS"]  # a copy, not the constant
    with pytest.raises(AttributeError):
        cfg.NOPE


def test_argv_none_reads_sys_argv(ns, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["step9_fake.py", "--EPOCHS=4"])
    assert load_config(ns, None).EPOCHS == 4


def test_types(ns):
    cfg = load(ns, "--EPOCHS=3", "--LR=1e-3", "--RUN_NAME=abc", "--SEED", "5", "--CHECKPOINT_MINUTES=2")
    assert cfg.EPOCHS == 3 and type(cfg.EPOCHS) is int
    assert cfg.LR == 1e-3 and type(cfg.LR) is float
    assert cfg.RUN_NAME == "abc" and cfg.SEED == 5
    assert cfg.CHECKPOINT_MINUTES == 2.0 and type(cfg.CHECKPOINT_MINUTES) is float
    assert cfg.overrides == {"EPOCHS": 3, "LR": 1e-3, "RUN_NAME": "abc", "SEED": 5, "CHECKPOINT_MINUTES": 2.0}
    assert load(ns, "--LR", "-5e-3").LR == -5e-3  # a negative number is a value, not an option


@pytest.mark.parametrize("raw,want", [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("Yes", True),
                                      ("false", False), ("False", False), ("0", False), ("no", False),
                                      ("NO", False)])
def test_bool_spellings(ns, raw, want):
    assert load(ns, f"--OVERWRITE={raw}").OVERWRITE is want


def test_bare_bool_flag_means_true(ns):
    assert load(ns, "--OVERWRITE").OVERWRITE is True
    cfg = load(ns, "--OVERWRITE", "--EPOCHS=2")
    assert cfg.OVERWRITE is True and cfg.EPOCHS == 2


def test_tuples_and_lists(ns):
    assert load(ns, "--EVAL_SIZE=256,512").EVAL_SIZE == (256, 512)
    assert load(ns, "--EVAL_SIZE=256x512").EVAL_SIZE == (256, 512)
    assert load(ns, "--EVAL_SIZE", "256, 512").EVAL_SIZE == (256, 512)
    scales = load(ns, "--SCALES=0.75,1,1.25").SCALES
    assert scales == [0.75, 1.0, 1.25] and isinstance(scales, list) and all(type(s) is float for s in scales)
    assert load(ns, "--FLAGS=no,yes").FLAGS == (False, True)
    with pytest.raises(ConfigError, match="EVAL_SIZE must be two integers H,W"):
        load(ns, "--EVAL_SIZE=256.5,512")


def test_choices(ns):
    assert load(ns, "--AMP=bf16").AMP == "bf16"
    assert load(ns, "--AMP=BF16").AMP == "bf16"
    with pytest.raises(ConfigError, match="AMP must be one of auto, bf16, fp16, off"):
        load(ns, "--AMP=fp8")
    assert load(ns, "--EVAL_SIZE=native").EVAL_SIZE == "native"  # alternative to a non-str default
    assert load(ns, "--DEVICE=cuda:1").DEVICE == "cuda:1"
    assert load(ns, "--DEVICE=cuda").DEVICE == "cuda"
    assert load(ns, "--DEVICE=CPU").DEVICE == "cpu"
    with pytest.raises(ConfigError, match="DEVICE must be one of"):
        load(ns, "--DEVICE=cuda:x")
    with pytest.raises(ConfigError, match="or one of native"):
        load(ns, "--EVAL_SIZE=big")


def test_none_default(ns):
    assert load(ns, "--INIT_FROM=runs/a/best.pt").INIT_FROM == "runs/a/best.pt"
    assert load(ns, "--INIT_FROM=none").INIT_FROM is None
    assert load(ns, "--INIT_FROM=None").INIT_FROM is None


def test_dict_subset_and_all(ns):
    cfg = load(ns, "--VARIANTS=jitter,none")
    assert list(cfg.VARIANTS) == ["jitter", "none"]
    assert cfg.VARIANTS == {"jitter": {"color": 0.4}, "none": {}}
    assert load(ns, "--VARIANTS=all").VARIANTS == ns["VARIANTS"]
    assert list(load(ns, "--VARIANTS=ALL").VARIANTS) == ["none", "flip", "jitter"]
    assert list(load(ns, "--VARIANTS=Flip").VARIANTS) == ["flip"]
    with pytest.raises(ConfigError, match=r"unknown entry 'flp'; did you mean flip\?"):
        load(ns, "--VARIANTS=flp")
    with pytest.raises(ConfigError, match="choose at least one"):
        load(ns, "--VARIANTS=,")


def test_case_insensitive_keys(ns):
    cfg = load(ns, "--epochs=7", "--Eval_Size=32x64", "--run-name=x")
    assert cfg.EPOCHS == 7 and cfg.EVAL_SIZE == (32, 64) and cfg.RUN_NAME == "x"
    assert set(cfg.overrides) == {"EPOCHS", "EVAL_SIZE", "RUN_NAME"}


def test_unknown_key_suggests_and_lists(ns):
    with pytest.raises(ConfigError) as e:
        load(ns, "--EPOCH=3")
    msg = str(e.value)
    assert "--EPOCH" in msg and "Did you mean EPOCHS?" in msg
    assert "RUNS_DIR" in msg and "CHECKPOINT_MINUTES" in msg
    for not_a_key in ("DEMO", "CHOICES", "_PRIVATE", "THING", "INSIDE", "OrderedDict", "MATH"):
        assert not_a_key not in msg.split("Valid keys:")[1]


@pytest.mark.parametrize("arg,pattern", [("--EPOCHS=1e3", "EPOCHS expects an integer"),
                                         ("--EPOCHS=2.5", "EPOCHS expects an integer"),
                                         ("--LR=fast", "LR expects a number"),
                                         ("--OVERWRITE=maybe", "OVERWRITE expects a bool"),
                                         ("--FLAGS=true,perhaps", "FLAGS expects a comma-separated list of bools")])
def test_wrong_type(ns, arg, pattern):
    with pytest.raises(ConfigError, match=pattern) as e:
        load(ns, arg)
    assert "Valid keys" not in str(e.value)  # the key is right, its value is not: that key's values are named


@pytest.mark.parametrize("argv,pattern", [(["EPOCHS=3"], "unexpected argument 'EPOCHS=3'"),
                                          (["-x"], "unexpected argument"),
                                          (["--EPOCHS"], "--EPOCHS needs a value"),
                                          (["--EPOCHS", "--LR=1"], "--EPOCHS needs a value"),
                                          (["--demo=maybe"], "--demo takes no value")])
def test_bad_argv(ns, argv, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(ns, argv)


def test_demo_order_and_suffix(ns):
    cfg = load(ns, "--demo")
    assert cfg.demo is True
    assert cfg.EPOCHS == 2 and cfg.LR == 0.1
    assert cfg.VARIANTS == {"none": {}}  # the string "none" parsed as a subset of the dict's keys
    assert cfg.EVAL_SIZE == (64, 128)  # the string "64x128" parsed like a command-line value
    assert cfg.RUN_NAME == "step9_fake-demo"
    assert cfg.overrides == {}

    cfg = load(ns, "--EPOCHS=5", "--demo", "--VARIANTS=all", "--RUN_NAME=mine")
    assert cfg.EPOCHS == 5 and cfg.LR == 0.1  # the user's overrides win over DEMO's
    assert list(cfg.VARIANTS) == ["none", "flip", "jitter"]
    assert cfg.RUN_NAME == "mine-demo"  # suffix appended after all overrides
    assert load(ns, "--demo", "--RUN_NAME=x-demo").RUN_NAME == "x-demo"  # not doubled
    assert load(ns, "--RUN_NAME=y").RUN_NAME == "y"  # no suffix without --demo


def test_demo_python_values_used_as_is(ns):
    custom = dict(ns, DEMO={"VARIANTS": ["flip"], "EVAL_SIZE": "native", "SCALES": [2.0], "INIT_FROM": None})
    cfg = load_config(custom, ["--demo"])
    assert cfg.VARIANTS == {"flip": {"hflip": 0.5}} and cfg.EVAL_SIZE == "native" and cfg.SCALES == [2.0]
    with pytest.raises(ConfigError, match="DEMO\\['EPOCH'\\]"):
        load_config(dict(ns, DEMO={"EPOCH": 1}), ["--demo"])
    with pytest.raises(ConfigError, match="AMP must be one of"):
        load_config(dict(ns, DEMO={"AMP": "fp8"}), ["--demo"])


def test_study_applies_its_own_table_and_suffix(ns):
    with_study = dict(ns, STUDY={"EPOCHS": 8, "VARIANTS": "flip", "EVAL_SIZE": "80x160"})
    cfg = load_config(with_study, ["--study", "--SEED=3"])
    assert cfg.study is True and cfg.demo is True  # the study reads the synthetic world too
    assert cfg.EPOCHS == 8 and cfg.LR == 2.5e-2  # STUDY on the script's constants, not on DEMO's
    assert cfg.VARIANTS == {"flip": {"hflip": 0.5}} and cfg.EVAL_SIZE == (80, 160) and cfg.SEED == 3
    assert cfg.RUN_NAME == "step9_fake-study" and cfg.overrides == {"SEED": 3}
    assert load_config(with_study, ["--demo"]).study is False
    with pytest.raises(ConfigError, match="give one of them"):
        load_config(with_study, ["--demo", "--study"])
    with pytest.raises(ConfigError, match="no STUDY table"):
        load_config(ns, ["--study"])
    with pytest.raises(ConfigError, match="STUDY\\['EPOCH'\\]"):
        load_config(dict(ns, STUDY={"EPOCH": 1}), ["--study"])


def test_choices_for_unknown_key_is_an_error(ns):
    with pytest.raises(ConfigError, match="CHOICES\\['AMPP'\\]"):
        load_config(dict(ns, CHOICES={"AMPP": ("off",)}), [])


def test_help_lists_keys_with_comments_and_exits_0(ns, capsys):
    with pytest.raises(SystemExit) as e:
        load(ns, "--EPOCHS=bad", "--help")  # --help wins over other (even bad) arguments
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "Step 9: a fake step script" in out
    lines = out.splitlines()

    def line_of(key):
        return next(line for line in lines if line.strip().startswith(f"--{key}="))

    assert "--EPOCHS=50" in line_of("EPOCHS") and "passes over the train set" in line_of("EPOCHS")
    assert "--EVAL_SIZE=512,1024" in line_of("EVAL_SIZE") and "native" in line_of("EVAL_SIZE")
    assert "choices: auto, cpu, cuda:N" in line_of("DEVICE")  # appended when the comment does not list them
    assert "choices" not in line_of("AMP")  # not repeated when it does
    assert "--INIT_FROM=none" in line_of("INIT_FROM")
    assert "--VARIANTS=none,flip,jitter" in line_of("VARIANTS")
    assert "variant -> augmentations" in out  # comment on the first line of a multi-line value
    assert "how many minutes between checkpoints" in out  # comment on the line above
    assert "--AMP=auto" in line_of("AMP") and "auto | bf16 | fp16 | off" in line_of("AMP")
    demo_line = next(line for line in lines if line.strip().startswith("--demo"))
    assert "EPOCHS=2" in demo_line and "VARIANTS=none" in demo_line and "-demo" in demo_line
    with pytest.raises(SystemExit):
        load(ns, "-h")


def test_read_comments_survives_missing_or_broken_script(tmp_path):
    assert read_comments(None) == {}
    assert read_comments(str(tmp_path / "missing.py")) == {}
    broken = tmp_path / "broken.py"
    broken.write_text("EPOCHS = (1,  # open\n")
    assert read_comments(str(broken)) == {}
    ok = tmp_path / "ok.py"
    ok.write_text(textwrap.dedent("""\
        A = 1  # first
        B: int = 2  # annotated
        if True:
            C = 3  # indented, not a constant
    """))
    assert read_comments(str(ok)) == {"A": "first", "B": "annotated"}


def test_config_is_a_dict_with_attributes():
    cfg = Config({"A": 1}, demo=True, overrides={"A": 1})
    cfg.B = 2
    assert cfg == {"A": 1, "B": 2} and cfg.demo and cfg.overrides == {"A": 1}
    assert isinstance(cfg, dict)


def test_to_jsonable_round_trips(ns, tmp_path):
    cfg = load(ns, "--demo", "--VARIANTS=flip,jitter")
    plain = cfg.to_jsonable()
    assert plain["EVAL_SIZE"] == [64, 128] and plain["INIT_FROM"] is None
    assert plain["VARIANTS"] == {"flip": {"hflip": 0.5}, "jitter": {"color": 0.4}}
    assert json.loads(json.dumps(plain)) == plain
    path = tmp_path / "ckpt.pt"
    torch.save({"config": plain}, path)
    assert torch.load(path, weights_only=True)["config"] == plain
    assert config_diff(plain, cfg) == []  # a tuple equals the list it was saved as


def test_config_diff(ns):
    a = load(ns).to_jsonable()
    b = load(ns, "--EPOCHS=3", "--RUN_NAME=other", "--EVAL_SIZE=64x64").to_jsonable()
    assert config_diff(a, b, ignore=("RUN_NAME",)) == ["EPOCHS: 50 -> 3", "EVAL_SIZE: [512, 1024] -> [64, 64]"]
    assert "RUN_NAME: 'step9_fake' -> 'other'" in config_diff(a, b)
    assert config_diff({"A": 1}, {"B": 2}) == ["A: 1 -> (absent)", "B: (absent) -> 2"]
    assert config_diff(a, a) == []
    assert config_diff({"X": math.inf}, {"X": math.inf}) == []


def test_run_main(capsys):
    def bad(argv):
        raise DatasetError("no images under /data/x: check the path")

    with pytest.raises(SystemExit) as e:
        run_main(bad, [])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.strip() == "error: no images under /data/x: check the path"
    assert "Traceback" not in err

    def interrupted(argv):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as e:
        run_main(interrupted)
    assert e.value.code == 130
    assert capsys.readouterr().err == ""

    assert run_main(lambda argv: {"miou": 1.0, "argv": argv}, ["--x"]) == {"miou": 1.0, "argv": ["--x"]}

    def bug(argv):
        raise RuntimeError("a programming error keeps its traceback")

    with pytest.raises(RuntimeError):
        run_main(bug)


def test_script_main_end_to_end(ns):
    cfg = ns["main"](["--demo", "--EPOCHS=1"])
    assert cfg.EPOCHS == 1 and cfg.demo and cfg.RUN_NAME.endswith("-demo")
