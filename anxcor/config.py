"""Configuration files: every option and every task of an :class:`~anxcor.core.Anxcor`, as JSON.

A configuration file holds what ``Anxcor(...)`` was built with (the options), the ordered
preprocessing tasks with each step's class and parameters (disabled tasks included, as
``"step": null``), the ``crosscorrelate`` and ``stack`` steps, and the station and pair
filters. It is versioned: ``"format": "anxcor-config"`` and ``"version": 1``.

The databases added with :meth:`~anxcor.core.Anxcor.add_dataset` are **not** part of it:
a database is code (a class with ``get_waveforms``), so add it again after loading.

Steps are stored by their importable dotted path (``module.QualName``) and rebuilt on load by
importing that class and calling it with the saved parameters. A step class (or the function
of a :class:`~anxcor.steps.FunctionStep`) defined in a notebook or script (``__main__``),
inside a function, or as a lambda cannot be found again by another process, so saving it
raises :class:`~anxcor.errors.ConfigError`: move it to a module (e.g. ``mysteps.py`` beside
the notebook) and import it from there.

Examples
--------
>>> from anxcor.core import Anxcor
>>> anx = Anxcor(window_length=600.0)
>>> anx.set_task_kwargs("whiten", dict(freqmin=0.1, freqmax=2.0))
>>> config = config_dict(anx)
>>> config["format"], config["version"], config["options"]["window_length"]
('anxcor-config', 1, 600.0)
>>> anxcor_from_config(config).get_task("whiten") == anx.get_task("whiten")
True
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import tempfile
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError
from .steps.base import FunctionStep, Step

if TYPE_CHECKING:
    from .core import Anxcor

__all__ = [
    "CONFIG_FORMAT",
    "CONFIG_VERSION",
    "SUPPORTED_VERSIONS",
    "config_dict",
    "config_text",
    "anxcor_from_config",
    "anxcor_from_config_json",
    "save_config",
    "load_config",
]

#: The value of the ``format`` key of every configuration file.
CONFIG_FORMAT = "anxcor-config"
#: The version written by this anxcor.
CONFIG_VERSION = 1
#: The versions this anxcor can read.
SUPPORTED_VERSIONS = (1,)
#: Top-level keys of a configuration; ``format`` and ``version`` are required, the others
#: default to those of ``Anxcor()``.
TOP_LEVEL_KEYS = ("format", "version", "options", "tasks", "crosscorrelate", "stack", "station_filter", "pair_filter")
_TASK_KEYS = ("task", "step", "params")
_STEP_KEYS = ("step", "params")
_FILTER_KEYS = ("include", "exclude")


# ---------------------------------------------------------------------------- options
def _option_specs() -> dict[str, tuple[Any, str]]:
    """Each ``Anxcor(...)`` option with its default and annotation, read from the signature."""
    from .core import Anxcor

    signature = inspect.signature(Anxcor.__init__)
    return {
        name: (parameter.default, str(parameter.annotation))
        for name, parameter in list(signature.parameters.items())[1:]
    }


def _check_option_type(name: str, value: Any, annotation: str) -> None:
    kinds = {kind.strip() for kind in annotation.split("|")}
    if value is None and "None" in kinds:
        return
    if isinstance(value, str) and "str" in kinds:
        return
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)  # a bool is no number here
    if is_number and ("float" in kinds or ("int" in kinds and isinstance(value, int))):
        return
    wanted = " or ".join({"float": "a number", "int": "an integer", "str": "a string", "None": "null"}.get(k, k) for k in sorted(kinds))
    raise ConfigError(f"config option {name!r} must be {wanted}, got {value!r} ({type(value).__name__})")


# ---------------------------------------------------------------------------- writing
def config_dict(anx: Anxcor, *, strict: bool = True) -> dict[str, Any]:
    """The configuration of ``anx`` as a JSON-ready dict (see the module docstring).

    Parameters
    ----------
    anx
        The :class:`~anxcor.core.Anxcor` to describe.
    strict
        True (default): raise :class:`~anxcor.errors.ConfigError` for a step that could not
        be loaded back (not importable, or a parameter JSON cannot hold). False: describe
        such steps as well as possible (what ``result.attrs['config']`` records, so that a
        notebook-defined step never stops a run).
    """
    from .core import FINAL_TASKS

    options = {name: _plain(getattr(anx, name), f"option {name!r}", strict) for name in _option_specs()}
    tasks = []
    for name, step in anx._tasks:
        if step is None:
            tasks.append({"task": name, "step": None, "params": {}})
        else:
            tasks.append({"task": name, **_describe_step(name, step, strict)})
    config = {
        "format": CONFIG_FORMAT,
        "version": CONFIG_VERSION,
        "options": options,
        "tasks": tasks,
        **{name: _describe_step(name, anx._final[name], strict) for name in FINAL_TASKS},
        "station_filter": dict(zip(_FILTER_KEYS, anx._station_filter, strict=True)),
        "pair_filter": dict(zip(_FILTER_KEYS, anx._pair_filter, strict=True)),
    }
    return config


def config_text(anx: Anxcor, *, strict: bool = True) -> str:
    """The configuration file's text: JSON with sorted keys, indent 2, a final newline."""
    return _dumps(config_dict(anx, strict=strict))


def _dumps(config: dict) -> str:
    return json.dumps(config, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def save_config(anx: Anxcor, path: str | os.PathLike) -> Path:
    """Write the configuration of ``anx`` to ``path`` (JSON) and return the path.

    The file is written under a temporary name in the same folder and then renamed, so an
    interrupted write never leaves a half-written file. Databases are not saved (see the
    module docstring). Raises :class:`~anxcor.errors.ConfigError` naming the task when a
    step cannot be loaded back.
    """
    text = config_text(anx, strict=True)
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _describe_step(task: str, step: Any, strict: bool) -> dict[str, Any]:
    cls = type(step)
    where = f"task {task!r} ({cls.__name__})"
    path = _dotted_path(cls, where, "step class", strict)
    params = {}
    for key, value in step.get_params().items():
        if isinstance(step, FunctionStep) and key == "function":
            params[key] = _dotted_path(value, where, "function", strict)
        else:
            params[key] = _plain(value, f"{where} parameter {key!r}", strict)
    if strict and dataclasses.is_dataclass(step):
        try:
            again = _build_step(task, path, params, base=object)
        except ConfigError as exc:
            raise ConfigError(f"{where} cannot be loaded back from its saved parameters: {exc}") from None
        if again != step:
            raise ConfigError(
                f"{where} does not survive a save and load: saved {step!r}, it would load as {again!r}. "
                "Give its parameters as numbers, strings, booleans, None, tuples or lists."
            )
    return {"step": path, "params": params}


def _dotted_path(obj: Any, where: str, what: str, strict: bool) -> str:
    """``module.QualName`` of a class or module-level function, checked to import back."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if module is None or qualname is None:
        if strict:
            raise ConfigError(
                f"{where}: the {what} {obj!r} ({type(obj).__name__}) has no importable name, so a config file "
                "cannot refer to it; use a class, or a function defined at the top level of a module"
            )
        return repr(obj)
    path = f"{module}.{qualname}"
    if not strict:
        return path
    fix = (
        "Define it at the top level of an importable module (e.g. a mysteps.py beside the notebook) "
        "and import it from there, then save again."
    )
    if "<lambda>" in qualname:
        raise ConfigError(f"{where}: the {what} is a lambda ({path}), which cannot be saved in a config file. {fix}")
    if "<locals>" in qualname:
        raise ConfigError(
            f"{where}: the {what} {path} is defined inside a function, so it cannot be imported and "
            f"cannot be saved in a config file. {fix}"
        )
    if module == "__main__":
        raise ConfigError(
            f"{where}: the {what} {qualname} is defined in __main__ (a notebook or script), "
            f"which another process cannot import, so it cannot be saved in a config file. {fix}"
        )
    try:
        found = _import_path(path)
    except ConfigError as exc:
        raise ConfigError(f"{where}: the {what} {path} cannot be imported again ({exc}). {fix}") from None
    if found is not obj:
        raise ConfigError(f"{where}: {path} does not import back to the same {what}. {fix}")
    return path


def _plain(value: Any, where: str, strict: bool) -> Any:
    """``value`` as JSON values (tuples become lists); a ConfigError for anything else."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if np.isfinite(value):
            return float(value)
    elif isinstance(value, (tuple, list)):
        return [_plain(item, where, strict) for item in value]
    elif isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _plain(item, where, strict) for key, item in value.items()}
    if not strict:
        return repr(value)
    raise ConfigError(
        f"{where} is {value!r} ({type(value).__name__}), which a config file cannot hold: use finite numbers, "
        "strings, booleans, None, or lists/tuples/dicts of them"
    )


# ---------------------------------------------------------------------------- reading
def load_config(path: str | os.PathLike, *, cls: type | None = None) -> Anxcor:
    """A new :class:`~anxcor.core.Anxcor` from a configuration file written by :func:`save_config`.

    Add the databases again with ``add_dataset`` (they are not in the file).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    return anxcor_from_config_json(text, cls=cls, source=str(path))


def anxcor_from_config_json(text: str, *, cls: type | None = None, source: str = "config") -> Anxcor:
    """A new :class:`~anxcor.core.Anxcor` from configuration JSON text (a file's text, or
    ``result.attrs['config']``)."""
    if not isinstance(text, str):
        raise ConfigError(f"{source}: configuration JSON must be a string, got {type(text).__name__}")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    return anxcor_from_config(config, cls=cls)


def anxcor_from_config(config: dict, *, cls: type | None = None) -> Anxcor:
    """A new :class:`~anxcor.core.Anxcor` (or ``cls``) from a configuration dict (see
    :func:`config_dict`); :class:`~anxcor.errors.ConfigError` naming the key when invalid."""
    from .core import FINAL_TASKS, Anxcor

    cls = Anxcor if cls is None else cls
    if not isinstance(config, dict):
        raise ConfigError(f"a configuration must be a JSON object (dict), got {type(config).__name__}")
    if "format" not in config:
        raise ConfigError(f"not an anxcor configuration: key 'format' is missing (expected {CONFIG_FORMAT!r})")
    if config["format"] != CONFIG_FORMAT:
        raise ConfigError(f"not an anxcor configuration: 'format' is {config['format']!r}, expected {CONFIG_FORMAT!r}")
    if "version" not in config:
        raise ConfigError(f"config key 'version' is missing (this anxcor reads version {CONFIG_VERSION})")
    _check_version(config["version"])
    _unknown(config, TOP_LEVEL_KEYS, "config top-level key")

    options = _mapping(config.get("options", {}), "options")
    specs = _option_specs()
    _unknown(options, specs, "config option", where="options")
    for name, value in options.items():
        _check_option_type(name, value, specs[name][1])
    try:
        anx = cls(**options)
    except ConfigError as exc:
        raise ConfigError(f"config 'options': {exc}") from None

    if "tasks" in config:
        anx._tasks = _read_tasks(config["tasks"])
    for name, base in FINAL_TASKS.items():
        if name in config:
            entry = _mapping(config[name], name)
            _unknown(entry, _STEP_KEYS, "config key", where=name)
            path = entry.get("step", f"{base.__module__}.{base.__qualname__}")
            anx._final[name] = _build_step(name, path, entry.get("params", {}), base=base)

    for key, setter in (("station_filter", anx.set_station_filter), ("pair_filter", anx.set_pair_filter)):
        if key in config:
            entry = _mapping(config[key], key)
            _unknown(entry, _FILTER_KEYS, "config key", where=key)
            for part in _FILTER_KEYS:
                value = entry.get(part)
                if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
                    raise ConfigError(f"config '{key}.{part}' must be null or a list of fnmatch patterns (strings), got {value!r}")
            setter(entry.get("include"), entry.get("exclude"))
    return anx


def _check_version(version: Any) -> None:
    supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError(f"config 'version' must be an integer (this anxcor reads version {supported}), got {version!r}")
    if version in SUPPORTED_VERSIONS:
        return
    if version > max(SUPPORTED_VERSIONS):
        raise ConfigError(
            f"config 'version' {version} is newer than this anxcor supports (version {supported}); "
            "upgrade anxcor to read it"
        )
    raise ConfigError(
        f"config 'version' {version} is older than this anxcor supports (version {supported}); "
        "rebuild the configuration with the current API and save it again"
    )


def _mapping(value: Any, key: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"config '{key}' must be a JSON object, got {value!r}")
    return value


def _unknown(mapping: dict, valid, what: str, where: str | None = None, prefix: str = "") -> None:
    unknown = sorted(set(mapping) - set(valid))
    if unknown:
        place = f" in '{where}'" if where else ""
        plural = "s" if len(unknown) > 1 else ""
        raise ConfigError(
            f"{prefix}unknown {what}{plural} {', '.join(repr(k) for k in unknown)}{place}; "
            f"valid ones: {', '.join(repr(k) for k in sorted(valid))}"
        )


def _read_tasks(tasks: Any) -> list[tuple[str, Step | None]]:
    from .core import FINAL_TASKS

    if not isinstance(tasks, list):
        raise ConfigError(f"config 'tasks' must be a list of {{'task', 'step', 'params'}} objects, got {tasks!r:.100}")
    result: list[tuple[str, Step | None]] = []
    for index, entry in enumerate(tasks):
        where = f"tasks[{index}]"
        entry = _mapping(entry, where)
        _unknown(entry, _TASK_KEYS, "config key", where=where)
        name = entry.get("task")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"config '{where}.task' must be a non-empty task name, got {name!r}")
        if name in FINAL_TASKS:
            raise ConfigError(f"config '{where}': {name!r} is not a preprocessing task; give it under the top-level key {name!r}")
        if name in (task for task, _ in result):
            raise ConfigError(f"config '{where}': task {name!r} appears twice; task names must be unique")
        path, params = entry.get("step"), entry.get("params", {})
        if path is None:
            if params:
                raise ConfigError(f"task {name!r} is disabled (step null) but has params {params!r}")
            result.append((name, None))
        else:
            result.append((name, _build_step(name, path, params, base=Step)))
    return result


def _build_step(task: str, path: Any, params: Any, *, base: type) -> Any:
    """Import the class at ``path`` and call it with ``params`` (lists made tuples where wanted)."""
    if not isinstance(path, str) or not path:
        raise ConfigError(f"task {task!r}: 'step' must be a dotted class path like 'anxcor.steps.Whiten', got {path!r}")
    if not isinstance(params, dict):
        raise ConfigError(f"task {task!r}: 'params' must be a JSON object, got {params!r}")
    try:
        cls = _import_path(path)
    except ConfigError as exc:
        raise ConfigError(f"task {task!r}: cannot load step {path!r}: {exc}") from None
    if not isinstance(cls, type) or not issubclass(cls, base):
        raise ConfigError(f"task {task!r}: {path!r} is not a {base.__name__} class")
    where = f"task {task!r} ({cls.__name__})"
    fields = _parameters(cls)
    if fields is not None:
        _unknown(params, fields, "parameter", prefix=f"{where}: ")
    kwargs = {}
    for key, value in params.items():
        if issubclass(cls, FunctionStep) and key == "function":
            if not isinstance(value, str):
                raise ConfigError(f"{where}: 'function' must be a dotted path like 'mymodule.myfunction', got {value!r}")
            try:
                value = _import_path(value)
            except ConfigError as exc:
                raise ConfigError(f"{where}: cannot load function {params[key]!r}: {exc}") from None
        elif fields is not None and fields[key]:
            value = _tuples(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot build it from params {params!r}: {exc}") from None


def _parameters(cls: type) -> dict[str, bool] | None:
    """Each constructor parameter of ``cls`` -> whether it holds a tuple; None if it takes ``**kwargs``."""
    if dataclasses.is_dataclass(cls):
        hints = _type_hints(cls)
        return {
            f.name: isinstance(f.default, tuple) or _is_tuple_type(hints.get(f.name, f.type))
            for f in dataclasses.fields(cls)
            if f.init
        }
    signature = inspect.signature(cls.__init__)
    parameters = list(signature.parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    hints = _type_hints(cls.__init__)
    return {
        p.name: isinstance(p.default, tuple) or _is_tuple_type(hints.get(p.name, p.annotation))
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def _type_hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj)
    except Exception:  # unresolvable string annotations: fall back to their text
        return {}


def _is_tuple_type(annotation: Any) -> bool:
    if annotation is inspect.Parameter.empty:
        return False
    if isinstance(annotation, str):
        text = annotation.replace(" ", "").lower()
        return text.startswith("tuple") or "|tuple" in text or "[tuple" in text
    if annotation is tuple or typing.get_origin(annotation) is tuple:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_tuple_type(arg) for arg in typing.get_args(annotation))
    return False


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


def _import_path(path: str) -> Any:
    """The object at dotted ``path``: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    if not all(parts):
        raise ConfigError(f"{path!r} is not a dotted path")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                continue  # this prefix is not a module: try a shorter one
            raise ConfigError(f"importing {module_name} failed: {exc}") from None
        except Exception as exc:
            raise ConfigError(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from None
        try:
            for attribute in parts[split:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            raise ConfigError(f"module {module_name} has no {'.'.join(parts[split:])}") from None
        return obj
    raise ConfigError(f"no module of {path!r} can be imported (is the package installed, or the module on sys.path?)")
