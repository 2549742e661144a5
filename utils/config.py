"""Step-script configuration: the UPPER_CASE constants at the top of a script, overridable from the command line.

A step script declares its settings as plain constants with a one-line comment each, an optional ``CHOICES``
table and optional ``DEMO`` overrides, then calls ``load_config(globals(), argv)`` (nanoGPT-style)::

    EPOCHS = 50                  # passes over the train set
    EVAL_SIZE = (512, 1024)      # (H, W) evaluation resolution, or "native"
    AMP = "auto"                 # auto | bf16 | fp16 | off
    VARIANTS = {"none": {}, "flip": {"hflip": 0.5}}   # variant -> augmentations
    CHOICES = {"AMP": ("auto", "bf16", "fp16", "off"), "EVAL_SIZE": ("native",)}
    DEMO = {"EPOCHS": 2, "VARIANTS": "none"}          # --demo overrides

Command line: ``--KEY=value`` or ``--KEY value`` (key case-insensitive, ``-`` may stand for ``_``),
``--demo``, ``--help``. The value's type comes from the default:

- int (digits only, no "1e3"), float, str;
- bool: true/false, 1/0, yes/no (any case); a bare ``--KEY`` means true;
- tuple / list: comma-separated, element type from the default's first element; int tuples also take
  ``512x1024``;
- a ``None`` default takes any string, and ``none`` gives None;
- a dict (such as ``VARIANTS``): a comma-separated subset of its keys, in the order given, or ``all``.

``CHOICES`` maps a key to allowed strings. For a str default the value must be one of them; a choice
ending in ``:N`` (e.g. ``"cuda:N"``) accepts that prefix alone or followed by ``:`` and an integer
(``cuda``, ``cuda:1``). For any other
default the listed strings are accepted as alternatives to a value of the default's type (``EVAL_SIZE``
may be ``native``). A choice ``"<file>"`` (``FILE_CHOICE``) takes any other value as a file's path, and
``COMMON_ALIASES`` gives other spellings of a value that mean it (``PRETRAINED``: ``true`` is ``imagenet``,
``false`` is ``none``, also when comparing a run's stored config).

Only the constants of the CONFIG block are settings: those above the script's first table (``CHOICES``,
``BOUNDS``, ``DEMO``, ``STUDY``). Constants below the tables are data the script reads, not options.

After parsing, values that cannot be right are refused by name (a crash hours later is worse): any
``*_SIZE`` key holds an int of at least 1 or an (H, W) size with each side at least ``MIN_SIDE``, a seed is in
``SEED_RANGE``, and each key
of ``COMMON_BOUNDS`` and of the script's own ``BOUNDS`` table (``{"LR": 0, "MOMENTUM": "[0, 1)", ...}``) keeps
its bound: a number is the least value, an interval string bounds both sides, a list is held to it elementwise.

``--demo`` applies the script's ``DEMO`` overrides first, then the user's, and appends ``-demo`` to
``RUN_NAME``. ``DEMO`` values written as strings are parsed like command-line values; other Python values
are used as they are (a list of keys for a dict constant selects those keys). ``--study`` does the same with
the script's ``STUDY`` overrides (the adaptation study's setting, ``study.py``) and a ``-study`` suffix; both
read the synthetic world.
"""
from __future__ import annotations

import argparse
import copy
import difflib
import io
import math
import re
import sys
import tokenize
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from utils.device import AMP_CHOICES
from utils.errors import ConfigError, UserError, name_options
from utils.fast import COMPILE_CHOICES

__all__ = ["Config", "load_config", "config_diff", "run_main", "format_value", "parse_size", "settings",
           "canonical"]

_KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_RESERVED = ("DEMO", "STUDY", "CHOICES", "BOUNDS")
# A choice that takes any other value as a file's path (PRETRAINED: imagenet, none, or a weights file).
FILE_CHOICE = "<file>"
# Choices every script that has the key shares, so the allowed values live in one place.
COMMON_CHOICES = {"COMPILE": COMPILE_CHOICES, "AMP": AMP_CHOICES, "PRETRAINED": ("imagenet", "none", FILE_CHOICE)}
# Other spellings of a value, kept so that a run made with one (config.json from before PRETRAINED had one
# vocabulary) equals a run made with the value: key -> {alias (as format_value writes it, lower case): value}.
COMMON_ALIASES = {"PRETRAINED": {"true": "imagenet", "false": "none"}}
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")
_INT_RE = re.compile(r"^[+-]?\d+(_\d+)*$")
DEMO_SUFFIX = "-demo"
STUDY_SUFFIX = "-study"
# The two run modes on the synthetic world: flag -> (the script's overrides table, RUN_NAME suffix).
_MODES = {"demo": ("DEMO", DEMO_SUFFIX), "study": ("STUDY", STUDY_SUFFIX)}
# Bounds of keys every script has; a script adds its own in ``BOUNDS``, beside its constants, and both hold. A
# bound is a number (the least value) or an interval such as "[0, 1)"; a list or tuple is held to it elementwise.
COMMON_BOUNDS: dict[str, float | str] = {"EPOCHS": 1, "LATENCY_ITERS": 1, "CHECKPOINT_MINUTES": 0,
                                         "NUM_WORKERS": -1, "MOMENTUM": "[0, 1)", "BETAS": "[0, 1)",
                                         "DISC_BETAS": "[0, 1)"}
# Every seed (SEED, *_SEED, SEEDS) seeds NumPy, which takes [0, 2^32 - 1].
SEED_RANGE = "[0, 4294967295]"
# The least side of an (H, W) size: the networks downsample 32x, so a smaller side leaves them no pixel.
MIN_SIDE = 32
SIZE_RULE = f"two integers H,W (or HxW) of at least {MIN_SIDE} each"
_INTERVAL_RE = re.compile(r"^\s*([\[(])\s*([^,\s]+)\s*,\s*([^\])\s]+)\s*([\])])\s*$")


class Config(dict):
    """The resolved configuration: a dict of UPPER_CASE keys with attribute access (``cfg.EPOCHS``).

    Attributes:
        demo: True when ``--demo`` or ``--study`` was given: the run reads the synthetic world.
        study: True when ``--study`` was given (the adaptation study's setting, ``STUDY``).
        overrides: the keys the user set on the command line and their parsed values (not the DEMO ones).
        defaults: the script's constants with the ``--demo`` or ``--study`` table applied, before the user's
            overrides: what a key absent from an older run's config stands for.
    """

    def __init__(self, *args: Any, demo: bool = False, study: bool = False,
                 overrides: Mapping[str, Any] | None = None, defaults: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "demo", bool(demo or study))
        object.__setattr__(self, "study", bool(study))
        object.__setattr__(self, "overrides", dict(overrides or {}))
        object.__setattr__(self, "defaults", dict(defaults or {}))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("demo", "study", "overrides", "defaults"):
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def to_jsonable(self) -> dict:
        """Plain lists, dicts, str, int, float, bool and None only: fit for results.json and for a checkpoint
        that ``torch.load(weights_only=True)`` reads."""
        return to_json(dict(self))


def to_json(v: Any) -> Any:
    """A copy of ``v`` made of what JSON holds: dicts with str keys, lists (from tuples too), str, int, bool,
    None, finite floats (NaN and inf become None, as results.json writes them); anything else as its str."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, Mapping):
        return {str(k): to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    return str(v)


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any], ignore: Iterable[str] = (),
                absent: Mapping[str, Any] | None = None) -> list[str]:
    """Human-readable differences between two configs, e.g. ``["EPOCHS: 2 -> 3"]``, skipping ``ignore``.

    Values are compared in their JSON form, so a tuple equals the list it was saved as, and an alias of
    ``COMMON_ALIASES`` equals its value (a config.json saying PRETRAINED false equals one saying none).
    ``absent`` gives what a key missing from ``a`` stands for (a script's defaults: a setting added since ``a``
    was written does not make it another config while it keeps its default).
    """
    ignore = set(ignore)
    a, b, absent = (to_json({k: canonical(k, v) for k, v in c.items()}) for c in (a, b, absent or {}))
    out = []
    for key in list(a) + [k for k in b if k not in a]:
        if key in ignore:
            continue
        if key not in b:
            out.append(f"{key}: {a[key]!r} -> (absent)")
        elif key not in a:
            if key in absent and absent[key] == b[key]:
                continue
            out.append(f"{key}: (absent) -> {b[key]!r}")
        elif a[key] != b[key]:
            out.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    return out


def format_value(v: Any) -> str:
    """A value as one would type it on the command line."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Mapping):
        return ",".join(str(k) for k in v)
    if isinstance(v, (list, tuple)):
        return ",".join(format_value(x) for x in v)
    return str(v)


def _type_name(default: Any) -> str:
    if isinstance(default, bool):
        return "a bool (true/false/1/0/yes/no)"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if default is None:
        return "a string or none"
    if isinstance(default, Mapping):
        return f"a comma-separated subset of {', '.join(map(str, default))}, or all"
    if isinstance(default, (list, tuple)):
        if default and isinstance(default[0], int) and not isinstance(default[0], bool):
            return "comma-separated integers (or AxB)"
        elem = default[0] if default else ""
        kind = {bool: "bools (true/false)", float: "numbers"}.get(type(elem), "strings")
        return f"a comma-separated list of {kind}"
    return type(default).__name__


def _choices_text(choices: Iterable[str]) -> str:
    return ", ".join("a file path" if c == FILE_CHOICE else c for c in choices)


def _match_choice(raw: str, choices: tuple[str, ...]) -> str | None:
    low = raw.lower()
    for c in choices:
        if c.endswith(":N"):
            prefix = c[:-2]
            if low == prefix.lower():
                return prefix
            m = re.fullmatch(re.escape(prefix.lower()) + r":(\d+)", low)
            if m:
                return f"{prefix}:{m.group(1)}"
        elif low == c.lower():
            return c
    return raw if raw and FILE_CHOICE in choices else None


class _Parser:
    def __init__(self, defaults: dict[str, Any], choices: Mapping[str, Iterable[str]]) -> None:
        self.defaults = defaults
        self.choices = {k: tuple(v) for k, v in choices.items()}
        self.by_lower = {k.lower(): k for k in defaults}

    def valid_keys(self) -> str:
        return "Valid keys: " + ", ".join(self.defaults)

    def resolve_key(self, name: str, where: str) -> str:
        key = self.by_lower.get(name.lower().replace("-", "_"))
        if key is not None:
            return key
        close = difflib.get_close_matches(name.upper().replace("-", "_"), list(self.defaults), n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise ConfigError(f"unknown option {where}.{hint} {self.valid_keys()}; see --help.")

    def parse(self, key: str, raw: str, where: str) -> Any:
        """``raw`` as ``key``'s value; a wrong one is a ConfigError naming that key's valid values."""
        default = self.defaults[key]
        choices = self.choices.get(key, ())
        raw = COMMON_ALIASES.get(key, {}).get(raw.strip().lower(), raw)
        if choices:
            hit = _match_choice(raw.strip(), choices)
            if hit is not None:
                return hit
            if isinstance(default, str):
                raise ConfigError(f"{where}: {key} must be one of {_choices_text(choices)}; got {raw!r}.")
        try:
            return _parse_typed(raw, default)
        except SizeError:
            alternatives = f", or one of {_choices_text(choices)}" if choices else ""
            raise ConfigError(f"{where}: {key} must be {SIZE_RULE} (e.g. --{key}=512,1024)"
                              f"{alternatives}, got {raw!r}.") from None
        except ValueError as e:
            expected = _type_name(default)
            if choices:
                expected += f", or one of {_choices_text(choices)}"
            detail = f" ({e})" if str(e) else ""
            raise ConfigError(f"{where}: {key} expects {expected}, got {raw!r}{detail}.") from None

    def table_value(self, key: str, value: Any, table: str = "DEMO") -> Any:
        """A value of a ``DEMO`` or ``STUDY`` table: strings parsed like the command line's, the rest as is."""
        default = self.defaults[key]
        if isinstance(value, str):
            return self.parse(key, value, f"{table}[{key!r}]")
        if isinstance(default, Mapping) and isinstance(value, (list, tuple)):
            return self.parse(key, ",".join(map(str, value)), f"{table}[{key!r}]")
        return copy.deepcopy(value)


def _parse_typed(raw: str, default: Any) -> Any:
    """Parse ``raw`` to the type of ``default``; ValueError with a short reason when it does not fit."""
    s = raw.strip()
    if isinstance(default, bool):
        low = s.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("")
    if isinstance(default, int):
        if not _INT_RE.match(s):
            raise ValueError("")
        return int(s)
    if isinstance(default, float):
        try:
            return float(s)
        except ValueError:
            raise ValueError("") from None
    if isinstance(default, str):
        return raw
    if default is None:
        return None if s.lower() == "none" else raw
    if isinstance(default, Mapping):
        keys = list(default)
        if s.lower() == "all":
            return copy.deepcopy(dict(default))
        names = [p.strip() for p in s.split(",") if p.strip()]
        if not names:
            raise ValueError("choose at least one")
        by_lower = {str(k).lower(): k for k in keys}
        chosen: dict = {}
        for n in names:
            k = n if n in default else by_lower.get(n.lower())
            if k is None:
                close = difflib.get_close_matches(n, [str(k) for k in keys], n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise ValueError(f"unknown entry {n!r}{hint}")
            chosen.setdefault(k, copy.deepcopy(default[k]))
        return chosen
    if isinstance(default, (list, tuple)):
        elem = default[0] if default else ""
        is_int = isinstance(elem, int) and not isinstance(elem, bool)
        if is_int and len(default) == 2:
            return type(default)(parse_size(s))
        parts = s.split(",") if s else []
        values = [_parse_typed(p.strip(), elem) for p in parts]
        return type(default)(values)
    raise ValueError(f"a {type(default).__name__} cannot be set from the command line")


class SizeError(argparse.ArgumentTypeError, ValueError):
    """A size that is not two integers; argparse prints its message, and it is a ValueError elsewhere."""


def parse_size(text: str, min_side: int = 1) -> tuple[int, int]:
    """``"512x1024"`` or ``"512,1024"`` -> ``(512, 1024)``: the one way sizes are read from a command line.

    Args:
        text: the size as typed.
        min_side: the least height and width (``MIN_SIDE`` for a network's input).
    """
    parts = re.split(r"[xX,]", text.strip())
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise SizeError(f"expected a size H,W or HxW such as 512,1024, got {text!r}") from None
    if h < min_side or w < min_side:
        what = "two positive integers" if min_side <= 1 else f"two integers of at least {min_side} each"
        raise SizeError(f"a size must be {what}, H,W or HxW such as 512,1024, got {text!r}")
    return h, w


def settings(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """A script's settings: its UPPER_CASE constants up to its first table (``CHOICES``, ``BOUNDS``, ``DEMO`` or
    ``STUDY``), the CONFIG block. Constants below the tables (``VARIANTS``' method list, the study's row
    specs...) are what the script reads, not options: ``--KEY`` of one is an unknown option."""
    out = {}
    for name, value in namespace.items():
        if name in _RESERVED:
            break
        if _is_config_key(name, value):
            out[name] = value
    return out


def canonical(key: str, value: Any) -> Any:
    """``value`` with an alias of ``COMMON_ALIASES`` replaced by what it stands for (PRETRAINED false -> none)."""
    aliases = COMMON_ALIASES.get(key)
    if not aliases or not isinstance(value, (bool, str)):
        return value
    return aliases.get(format_value(value).strip().lower(), value)


def _is_config_key(name: str, value: Any) -> bool:
    return (_KEY_RE.match(name) is not None and name not in _RESERVED
            and not isinstance(value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)))


def read_comments(script: str | None) -> dict[str, str]:
    """``{KEY: comment}`` for top-level ``KEY = value  # comment`` lines of a script.

    A comment on the assignment's first line wins; else the first comment inside a multi-line value; else
    the comment lines directly above the assignment. An unreadable script gives no comments.
    """
    if not script:
        return {}
    try:
        with tokenize.open(script) as f:
            source = f.read()
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (OSError, SyntaxError, tokenize.TokenError, UnicodeDecodeError):
        return {}
    comments: dict[str, str] = {}
    depth = 0
    stmt: list[tokenize.TokenInfo] = []
    above: list[str] = []
    for tok in tokens:
        if tok.type == tokenize.INDENT:
            depth += 1
        elif tok.type == tokenize.DEDENT:
            depth -= 1
        if tok.type == tokenize.COMMENT and not stmt:
            above.append(tok.string.lstrip("#").strip())
            continue
        if tok.type == tokenize.NL and not stmt:
            if tok.line.strip() == "":
                above = []
            continue
        if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            if depth == 0 and stmt:
                _take_comment(stmt, above, comments)
            stmt, above = [], []
            continue
        if tok.type not in (tokenize.INDENT, tokenize.DEDENT):
            stmt.append(tok)
    return comments


def _take_comment(stmt: list[tokenize.TokenInfo], above: list[str], out: dict[str, str]) -> None:
    code = [t for t in stmt if t.type not in (tokenize.COMMENT, tokenize.NL)]
    if len(code) < 2 or code[0].type != tokenize.NAME or not _KEY_RE.match(code[0].string):
        return
    if code[1].type != tokenize.OP or code[1].string not in ("=", ":"):
        return
    first_row = code[0].start[0]
    inline = [t.string for t in stmt if t.type == tokenize.COMMENT]
    same = [t.string for t in stmt if t.type == tokenize.COMMENT and t.start[0] == first_row]
    text = (same or inline or [" ".join(above)])[0]
    out[code[0].string] = text.lstrip("#").strip()


def _help_text(prog: str, doc: str | None, defaults: dict[str, Any], comments: dict[str, str],
               choices: Mapping[str, tuple[str, ...]], demo: Mapping[str, Any],
               study: Mapping[str, Any]) -> str:
    lines = [f"usage: {prog} [--demo | --study] [--KEY=value ...]"]
    if doc and doc.strip():
        lines += ["", doc.strip().split("\n\n")[0].strip()]
    lines += ["", "options (defaults shown; keys are case-insensitive; --KEY value also works):"]
    rows = []
    for key, v in defaults.items():
        note = comments.get(key, "")
        listed = [c for c in choices.get(key, ()) if c != FILE_CHOICE]
        if listed and not all(c in note for c in listed):  # the comment often lists them already
            note = f"{note} [choices: {_choices_text(choices[key])}]".strip()
        rows.append((f"--{key}={format_value(v)}", note))
    demo_note = "a small, fast run on the synthetic world"
    if demo:
        demo_note += ": " + ", ".join(f"{k}={format_value(v)}" for k, v in demo.items())
    rows.append(("--demo", f"{demo_note}; RUN_NAME gets a {DEMO_SUFFIX} suffix"))
    if study:
        rows.append(("--study", "the adaptation study's setting on the synthetic world (make study): "
                     + ", ".join(f"{k}={format_value(v)}" for k, v in study.items())
                     + f"; RUN_NAME gets a {STUDY_SUFFIX} suffix"))
    rows.append(("-h, --help", "show this message and exit"))
    width = min(max(len(flag) for flag, _ in rows), 36)
    for flag, note in rows:
        if len(flag) > width and note:
            lines += [f"  {flag}", f"  {'':<{width}}  {note}"]
        else:
            lines.append(f"  {flag:<{width}}  {note}".rstrip())
    return "\n".join(lines)


def load_config(namespace: dict, argv: list[str] | None, script: str | None = None) -> Config:
    """Resolve a step script's configuration from its constants and the command line.

    Args:
        namespace: the script's ``globals()``: its settings (:func:`settings`, the UPPER_CASE constants above
            its first table) are the keys; ``CHOICES``, ``BOUNDS``, ``DEMO`` and ``STUDY`` are read from it too.
        argv: command-line arguments; None means ``sys.argv[1:]``.
        script: path of the script to read ``--help`` comments from; defaults to ``namespace["__file__"]``.

    Raises:
        ConfigError: unknown key (with the closest match), wrong type, value not among the choices, or an
            argument that is not ``--something``.
        SystemExit: 0 after printing ``--help``.
    """
    if argv is None:
        argv = sys.argv[1:]
    defaults = settings(namespace)
    choices = {k: tuple(v) for k, v in COMMON_CHOICES.items() if k in defaults}
    choices.update({k: tuple(v) for k, v in (namespace.get("CHOICES") or {}).items()})
    bounds: dict[str, list] = {k: [v] for k, v in COMMON_BOUNDS.items() if k in defaults}
    for k, v in (namespace.get("BOUNDS") or {}).items():
        bounds.setdefault(k, []).append(v)
    parser = _Parser(defaults, choices)
    for k in choices:
        parser.resolve_key(k, f"CHOICES[{k!r}]")
    for k in bounds:
        parser.resolve_key(k, f"BOUNDS[{k!r}]")

    if any(a in ("-h", "--help") for a in argv):
        script = script or namespace.get("__file__")
        prog = f"python {script}" if script else "python script.py"
        print(_help_text(prog, namespace.get("__doc__"), defaults, read_comments(script), choices,
                         dict(namespace.get("DEMO") or {}), dict(namespace.get("STUDY") or {})))
        raise SystemExit(0)

    modes = {"demo": False, "study": False}
    user: list[tuple[str, str, str]] = []  # (key, raw value, as written)
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"unexpected argument {arg!r}: options look like --KEY=value (see --help).")
        name, eq, raw = arg[2:].partition("=")
        if name.lower() in modes:
            try:
                modes[name.lower()] = _parse_typed(raw, True) if eq else True
            except ValueError:
                raise ConfigError(f"--{name.lower()} takes no value (or true/false), got {raw!r}.") from None
            continue
        key = parser.resolve_key(name, f"--{name}")
        if not eq:
            nxt = argv[i] if i < len(argv) else None
            if isinstance(defaults[key], bool) and (nxt is None or nxt.startswith("--")):
                raw = "true"
            elif nxt is None or nxt.startswith("--"):
                raise ConfigError(f"--{name} needs a value: --{key}=VALUE (default {format_value(defaults[key])}).")
            else:
                raw = nxt
                i += 1
        user.append((key, raw, f"--{name}"))

    if modes["demo"] and modes["study"]:
        raise ConfigError("--demo and --study are two settings of the synthetic world: give one of them.")
    mode = next((m for m, on in modes.items() if on), None)
    table, suffix = _MODES[mode] if mode else (None, "")
    mode_overrides = dict(namespace.get(table) or {}) if table else {}
    if mode == "study" and not mode_overrides:
        raise ConfigError("--study: this script takes no part in the adaptation study (it has no STUDY table).")
    values = copy.deepcopy(defaults)
    for name, v in mode_overrides.items():
        key = parser.resolve_key(name, f"{table}[{name!r}]")
        values[key] = parser.table_value(key, v, table)
    mode_defaults = copy.deepcopy(values)  # the script's defaults in this mode (--demo, --study or neither)
    overrides = {}
    for key, raw, where in user:
        overrides[key] = values[key] = parser.parse(key, raw, where)
    values = {key: canonical(key, value) for key, value in values.items()}  # a table's False is "none"
    for key, value in values.items():
        where = next((w for k, _, w in reversed(user) if k == key), None)
        if where is None:
            where = f"{table}[{key!r}]" if key in mode_overrides else key
        _check_bounds(key, value, where, bounds)
    name_options(_spellings(defaults))
    if suffix and isinstance(values.get("RUN_NAME"), str) and not values["RUN_NAME"].endswith(suffix):
        values["RUN_NAME"] += suffix
    return Config(values, demo=modes["demo"], study=modes["study"], overrides=overrides, defaults=mode_defaults)


def _spellings(keys: Iterable[str]) -> dict[str, str]:
    """How library arguments are typed as this script's keys: ``num_classes`` -> ``--NUM_CLASSES``, and a suffix
    of two words or more that ends one key alone (``label_format`` -> ``--GTA5_LABEL_FORMAT``)."""
    exact, by_suffix = {}, {}
    for key in keys:
        words = key.lower().split("_")
        exact[key.lower()] = f"--{key}"
        for i in range(1, len(words) - 1):
            by_suffix.setdefault("_".join(words[i:]), []).append(f"--{key}")
    unique = {arg: names[0] for arg, names in by_suffix.items() if len(names) == 1}
    return {**unique, **exact}


def _check_bounds(key: str, value: Any, where: str, bounds: Mapping[str, list]) -> None:
    """ConfigError for a size that is not two integers of at least ``MIN_SIDE``, or a value outside its bounds."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if key.endswith("_SIZE") and isinstance(value, (list, tuple)):
        ok = len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= MIN_SIDE for v in value)
        if not ok:
            raise ConfigError(f"{where}: {key} must be {SIZE_RULE} (e.g. --{key}=512,1024), "
                              f"got {format_value(value)}.")
        return
    rules = [1] if key.endswith("_SIZE") else list(bounds.get(key, []))
    if key == "SEED" or key.endswith(("_SEED", "SEEDS")):
        rules.append(SEED_RANGE)
    for rule in rules:
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not _within(v, rule):
                what = f"at least {rule}" if isinstance(rule, (int, float)) else f"in {rule}"
                each = " each" if isinstance(value, (list, tuple)) else ""
                raise ConfigError(f"{where}: {key} must be {what}{each}, got {format_value(value)}.")


def _within(v: float, rule: float | str) -> bool:
    """Whether ``v`` keeps a bound: a number is the least value, "[lo, hi]" or "[lo, hi)" an interval."""
    if isinstance(rule, (int, float)):
        return v >= rule
    m = _INTERVAL_RE.match(rule)
    if m is None:
        raise ValueError(f"a bound is a number or an interval such as '[0, 1)', not {rule!r}")
    lo, hi = float(m.group(2)), float(m.group(3))
    low_ok = v >= lo if m.group(1) == "[" else v > lo
    high_ok = v <= hi if m.group(4) == "]" else v < hi
    return low_ok and high_ok  # NaN keeps no bound


def run_main(main: Callable[[list[str] | None], Any], argv: list[str] | None = None) -> Any:
    """The step scripts' ``if __name__ == "__main__":`` wrapper.

    A ``UserError`` prints ``error: <message>`` to stderr and exits 1 without a traceback, and so does an
    ``OSError`` about a file (a folder that became read-only, a file where a folder should be) that no check
    caught before; Ctrl-C exits 130 quietly (the engine has already written its checkpoint by then).
    """
    try:
        return main(argv)
    except UserError as e:
        sys.stdout.flush()
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as e:
        if e.filename is None:
            raise
        sys.stdout.flush()
        print(f"error: {e.filename}: {e.strerror or e}. Check that it is of the right kind (a file or a folder) "
              "and that it may be read or written, then run the same command again (a run goes on from its last "
              "checkpoint).", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        sys.stdout.flush()
        raise SystemExit(130) from None
