"""Configuration files: save -> load -> save is byte-identical, results are identical, bad files teach."""

import copy
import json
import re
from dataclasses import dataclass

import numpy as np
import pytest
import xarray as xr
from obspy import Stream, Trace, UTCDateTime

from anxcor.config import CONFIG_FORMAT, CONFIG_VERSION, anxcor_from_config, config_dict
from anxcor.core import Anxcor
from anxcor.database import InMemoryDatabase
from anxcor.errors import ConfigError
from anxcor.steps import (
    Bandpass,
    CrossCorrelate,
    Decimate,
    FunctionStep,
    Highpass,
    Lowpass,
    OrientHorizontals,
    RejectTransients,
    RemoveMeanTrend,
    RemoveResponse,
    Resample,
    Stack,
    Taper,
    TemporalNorm,
    Whiten,
    XArrayProcessor,
)

START = UTCDateTime(2021, 1, 1)
RATE = 10.0


# -------------------------------------------------------------------- importable user steps
def scale_by_two(array: xr.DataArray) -> xr.DataArray:
    """A module-level function: importable, so a FunctionStep of it can be saved."""
    return array * 2.0


class Gain(XArrayProcessor):
    """A plain-class user step with a tuple parameter (restored from its default's type)."""

    def __init__(self, gain: float = 1.0, band=(0.1, 1.0)):
        self.gain = gain
        self.band = band

    def process(self, array):
        return array * self.gain


@dataclass(frozen=True, kw_only=True)
class Clip(XArrayProcessor):
    """A dataclass user step whose tuple parameter defaults to None (restored from the annotation)."""

    limits: tuple[float, float] | None = None

    def process(self, array):
        return array if self.limits is None else array.clip(*self.limits)


@dataclass(frozen=True, kw_only=True)
class Loose(XArrayProcessor):
    """A dataclass user step whose parameter says nothing of tuples: a tuple in it cannot come back."""

    value: object = None

    def process(self, array):
        return array


# -------------------------------------------------------------------- configurations
def _custom(runnable: bool = True) -> Anxcor:
    """Every option and filter changed, tasks disabled, added and reordered, custom steps."""
    anx = Anxcor(window_length=300.0, read_span=600.0, pair_block_mb=8.0, gap_fill="interpolate", max_gap_fraction=0.1)
    anx.set_task("orient", None if runnable else OrientHorizontals(require_metadata=True))
    anx.set_task("detrend", RemoveMeanTrend(detrend="constant"))
    anx.set_task("taper", Taper(max_percentage=0.1, taper_type="hamming"))
    anx.set_task("bandpass", None)
    anx.add_process(Highpass(freq=0.05, order=2), name="highpass", after="taper")
    anx.add_process(Lowpass(freq=4.0, order=3, zerophase=False), name="lowpass", after="highpass")
    anx.set_task("resample", Resample(target_rate=RATE))
    anx.add_process(Decimate(factor=2, zerophase=False, ftype="fir"), name="decimate", after="resample")
    anx.add_process(RejectTransients(max_std_factor=None, max_rms_factor=50.0, window_s=20.0), before="temporal_norm")
    anx.set_task("temporal_norm", TemporalNorm(method="ram", window_s=20.0, factor=2.0, ram_band=(0.1, 1.0)))
    anx.set_task("whiten", Whiten(freqmin=0.1, freqmax=2.0, taper_fraction=0.1, smoothing_hz=0.05))
    anx.add_process(scale_by_two)
    anx.add_process(Gain(gain=3.0, band=(0.5, 1.5)), name="gain")
    anx.add_process(Clip(limits=(-50.0, 50.0)), name="clip", before="gain")
    if not runnable:  # needs a response inventory, which the quick data has not
        anx.add_process(
            RemoveResponse(output="DISP", pre_filt=(0.005, 0.01, 8.0, 10.0), water_level=60.0, zero_mean=False,
                           taper_fraction=0.1),
            name="response", before="detrend",
        )
        anx.add_process(Bandpass(freqmin=0.2, freqmax=3.0, order=2, zerophase=False), name="band2", after="whiten")
        anx.add_process(Clip(), name="noclip", after="band2")
    anx.set_task("crosscorrelate", CrossCorrelate(max_tau_shift=20.0, method="coherency", smoothing_hz=0.05,
                                                  water_level=0.02, output="lags"))
    stack = Stack(method="pws", power=1.5) if runnable else Stack(
        method="selective", power=3.0, tf_window_s=5.0, epsilon=1e-4, max_iterations=7, nth=3, threshold=0.3
    )
    anx.set_task("stack", stack)
    anx.set_station_filter(include=["XX.*"], exclude=["XX.D"])
    anx.set_pair_filter(exclude=["XX.A:XX.A"])
    return anx


def _stream() -> Stream:
    rng = np.random.default_rng(50)
    source = rng.standard_normal(6000)
    traces = []
    for k, station in enumerate("ABCD"):
        data = np.roll(source, 5 * k) + 0.3 * rng.standard_normal(6000)
        header = dict(network="XX", station=station, channel="HHZ", sampling_rate=RATE, starttime=START)
        if station == "B":  # a short gap, filled because gap_fill='interpolate'
            traces.append(Trace(data[:2000], header=header))
            traces.append(Trace(data[2010:], header={**header, "starttime": START + 201.0}))
        else:
            traces.append(Trace(data, header=header))
    return Stream(traces)


def _process(anx: Anxcor) -> xr.Dataset:
    anx.add_dataset(InMemoryDatabase(_stream()), "x")
    return anx.process([START.timestamp, START.timestamp + 300.0])


def _params_of(anx: Anxcor) -> list:
    return [(name, step) for name, step in anx._tasks] + [(name, anx.get_task(name)) for name in ("crosscorrelate", "stack")]


# -------------------------------------------------------------------- round trips
@pytest.mark.parametrize("make", [Anxcor, lambda: _custom(runnable=True), lambda: _custom(runnable=False)],
                         ids=["default", "custom", "every-step"])
def test_save_load_save_is_byte_identical(make, tmp_path):
    anx = make()
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert anx.save_config(first) == first
    loaded = Anxcor.load_config(first)
    loaded.save_config(second)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_text(encoding="utf-8") == anx.config_json()  # the file is config_json()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.json", "second.json"]  # no temp files left
    assert loaded.task_names == anx.task_names
    for (name, step), (name_back, back) in zip(_params_of(anx), _params_of(loaded), strict=True):
        assert name == name_back
        if isinstance(step, (FunctionStep, Gain)):  # plain classes: compare what they hold
            assert type(back) is type(step) and vars(back) == vars(step)
        else:
            assert back == step, name
    for option in ("window_length", "read_span", "pair_block_mb", "gap_fill", "max_gap_fraction"):
        assert getattr(loaded, option) == getattr(anx, option)
    assert loaded._station_filter == anx._station_filter and loaded._pair_filter == anx._pair_filter


def test_tuples_come_back_as_tuples(tmp_path):
    anx = _custom(runnable=False)
    config = json.loads(anx.config_json())
    tasks = {t["task"]: t for t in config["tasks"]}
    assert tasks["response"]["params"]["pre_filt"] == [0.005, 0.01, 8.0, 10.0]  # JSON has lists
    assert tasks["bandpass"] == {"task": "bandpass", "step": None, "params": {}}
    assert tasks["functionstep"] == {"task": "functionstep", "step": "anxcor.steps.base.FunctionStep",
                                     "params": {"function": f"{__name__}.scale_by_two"}}
    loaded = anxcor_from_config(config)
    assert loaded.get_task("response").pre_filt == (0.005, 0.01, 8.0, 10.0)
    assert loaded.get_task("temporal_norm").ram_band == (0.1, 1.0)
    assert loaded.get_task("gain").band == (0.5, 1.5)
    assert loaded.get_task("clip").limits == (-50.0, 50.0)
    assert loaded.get_task("functionstep").function is scale_by_two
    assert loaded.get_task("bandpass") is None


def test_every_builtin_step_rebuilds_equal_from_its_saved_params():
    anx = _custom(runnable=False)
    config = config_dict(anx)
    builtin = [entry for entry in config["tasks"] if entry["step"] and entry["step"].startswith("anxcor.steps.p")]
    classes = {entry["step"].rsplit(".", 1)[1] for entry in builtin}
    assert classes == {"RemoveMeanTrend", "Taper", "Highpass", "Lowpass", "Resample", "Decimate", "RejectTransients",
                       "TemporalNorm", "Whiten", "RemoveResponse", "Bandpass"}
    assert config["tasks"][0]["step"] == "anxcor.steps.orient.OrientHorizontals"
    loaded = anxcor_from_config(json.loads(json.dumps(config)))
    for entry in builtin:
        step = anx.get_task(entry["task"])
        assert type(step)(**step.get_params()) == step
        assert loaded.get_task(entry["task"]) == step


def test_loaded_config_gives_identical_results_and_attrs_config_rebuilds_it(tmp_path):
    anx = _custom(runnable=True)
    anx.save_config(tmp_path / "run.json")
    original = _process(anx)
    loaded = Anxcor.load_config(tmp_path / "run.json")
    again = _process(loaded)
    assert int(original["n_windows"].max()) == 2  # the run did correlate something
    assert "XX.D" not in " ".join(original["station_pair"].values) and "XX.A:XX.A" not in original["station_pair"]
    np.testing.assert_array_equal(again["x"].values, original["x"].values)
    assert again.attrs["config"] == original.attrs["config"] == anx.config_json()
    rebuilt = Anxcor.from_config_json(original.attrs["config"])
    assert rebuilt.config_json() == anx.config_json()
    np.testing.assert_array_equal(_process(rebuilt)["x"].values, original["x"].values)


def test_load_config_is_a_classmethod_returning_a_new_object(tmp_path):
    path = _custom().save_config(tmp_path / "run.json")
    anx = Anxcor(window_length=900.0)
    loaded = anx.load_config(path)
    assert loaded is not anx and loaded.window_length == 300.0 and anx.window_length == 900.0

    class MyAnxcor(Anxcor):
        pass

    assert type(MyAnxcor.load_config(path)) is MyAnxcor


def test_minimal_file_takes_the_defaults_and_datasets_are_not_saved(tmp_path):
    anx = anxcor_from_config({"format": CONFIG_FORMAT, "version": CONFIG_VERSION, "options": {"window_length": 600}})
    assert anx.window_length == 600.0 and anx.task_names == Anxcor().task_names
    full = Anxcor(window_length=600.0)
    full.add_dataset(InMemoryDatabase(_stream()), "x")
    assert full.config_json() == Anxcor(window_length=600.0).config_json()  # databases are code, not config
    assert Anxcor.from_config_json(full.config_json())._datasets == {}


def test_save_is_atomic_and_a_failed_save_leaves_the_old_file(tmp_path):
    path = Anxcor().save_config(tmp_path / "run.json")
    before = path.read_bytes()
    bad = Anxcor()
    bad.add_process(lambda array: array, name="identity")
    with pytest.raises(ConfigError):
        bad.save_config(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


# -------------------------------------------------------------------- steps that cannot be saved
def _notebook_class():
    def process(self, array):
        return array

    return type("Despike", (XArrayProcessor,), {"process": process, "__module__": "__main__"})


def test_notebook_class_refuses_to_save_with_advice(tmp_path):
    anx = Anxcor()
    anx.add_process(_notebook_class()(), name="despike")
    with pytest.raises(ConfigError, match=r"task 'despike'.*__main__.*importable module") as info:
        anx.save_config(tmp_path / "run.json")
    assert "import it from there" in str(info.value)
    assert not (tmp_path / "run.json").exists()
    # a run still records it (attrs['config'] never fails) and loading that says what is missing
    text = anx.config_json()
    assert '"__main__.Despike"' in text
    with pytest.raises(ConfigError, match=r"task 'despike'.*__main__\.Despike"):
        Anxcor.from_config_json(text)


def test_local_class_lambda_and_local_function_refuse_to_save(tmp_path):
    class Local(XArrayProcessor):
        def process(self, array):
            return array

    def local_function(array):
        return array

    for step, name, words in [
        (Local(), "local", "inside a function"),
        (lambda array: array, "lam", "lambda"),
        (local_function, "localfn", "inside a function"),
    ]:
        anx = Anxcor()
        anx.add_process(step, name=name)
        with pytest.raises(ConfigError, match=rf"task '{name}'.*{words}.*importable module"):
            anx.save_config(tmp_path / "run.json")


def test_parameter_a_file_cannot_hold_is_refused_naming_it(tmp_path):
    anx = Anxcor()
    anx.add_process(Gain(gain=np.array([1.0, 2.0])), name="gain")
    with pytest.raises(ConfigError, match=r"task 'gain' \(Gain\) parameter 'gain'.*ndarray"):
        anx.save_config(tmp_path / "run.json")
    anx.set_task("gain", Gain(gain=float("nan")))
    with pytest.raises(ConfigError, match=r"parameter 'gain'"):
        anx.save_config(tmp_path / "run.json")


def test_step_that_would_load_back_different_is_refused_at_save(tmp_path):
    anx = Anxcor()
    anx.add_process(Loose(value=[1.0, 2.0]), name="loose")
    anx.save_config(tmp_path / "run.json")  # a list comes back as a list
    anx.set_task("loose", Loose(value=(1.0, 2.0)))
    with pytest.raises(ConfigError, match=r"task 'loose' \(Loose\) does not survive a save and load.*value=\[1.0, 2.0\]"):
        anx.save_config(tmp_path / "run.json")


# -------------------------------------------------------------------- bad files
def _default() -> dict:
    return json.loads(Anxcor().config_json())


def _task(config: dict, name: str) -> dict:
    return next(t for t in config["tasks"] if t["task"] == name)


BAD = {
    "wrong format": (lambda c: c.update(format="obspy"), [r"'format'", "anxcor-config"]),
    "missing format": (lambda c: c.pop("format"), [r"'format' is missing"]),
    "newer version": (lambda c: c.update(version=2), [r"'version' 2 is newer", r"version 1"]),
    "older version": (lambda c: c.update(version=0), [r"'version' 0 is older", r"version 1"]),
    "version as text": (lambda c: c.update(version="1"), [r"'version' must be an integer"]),
    "missing version": (lambda c: c.pop("version"), [r"'version' is missing", "version 1"]),
    "unknown top-level key": (lambda c: c.update(datasets={}), [r"top-level key 'datasets'", r"valid ones: .*'options'"]),
    "unknown option": (lambda c: c["options"].update(windowlength=900.0),
                       [r"option 'windowlength' in 'options'", r"'window_length'"]),
    "option as text": (lambda c: c["options"].update(window_length="900"), [r"'window_length' must be a number", "'900'"]),
    "option as bool": (lambda c: c["options"].update(read_span=True), [r"'read_span' must be a number"]),
    "option of wrong kind": (lambda c: c["options"].update(gap_fill=3), [r"'gap_fill' must be null or a string"]),
    "invalid option value": (lambda c: c["options"].update(window_length=-5.0), [r"'options'", "window_length"]),
    "options not an object": (lambda c: c.update(options=[900.0]), [r"'options' must be a JSON object"]),
    "unknown step class": (lambda c: _task(c, "whiten").update(step="anxcor.steps.preprocess.Whitening"),
                           [r"task 'whiten'", "has no Whitening"]),
    "step module missing": (lambda c: _task(c, "whiten").update(step="mysteps.Whiten"),
                            [r"task 'whiten'", r"'mysteps.Whiten'", "sys.path"]),
    "step not a Step": (lambda c: _task(c, "whiten").update(step="collections.OrderedDict"),
                        [r"task 'whiten'", "not a Step"]),
    "unknown step parameter": (lambda c: _task(c, "whiten")["params"].update(freq_min=0.1),
                               [r"^task 'whiten' \(Whiten\): unknown parameter 'freq_min'", r"valid ones: .*'freqmin'"]),
    "invalid step value": (lambda c: _task(c, "whiten")["params"].update(freqmin=-1.0),
                           [r"^task 'whiten' \(Whiten\): ", "freqmin"]),
    "mistyped step value": (lambda c: _task(c, "bandpass")["params"].update(freqmax="8"),
                            [r"^task 'bandpass' \(Bandpass\): ", "freqmax"]),
    "tuple of wrong length": (lambda c: _task(c, "temporal_norm")["params"].update(ram_band=[0.1]),
                              [r"^task 'temporal_norm' \(TemporalNorm\): ", "ram_band"]),
    "unknown task key": (lambda c: _task(c, "taper").update(enabled=True), [r"key 'enabled' in 'tasks\[2\]'", "'params'"]),
    "duplicate task": (lambda c: c["tasks"].append(copy.deepcopy(_task(c, "taper"))), [r"'taper' appears twice"]),
    "final task among tasks": (lambda c: c["tasks"].append({"task": "stack", "step": None}),
                               [r"'stack' is not a preprocessing task"]),
    "disabled task with params": (lambda c: _task(c, "taper").update(step=None), [r"task 'taper' is disabled"]),
    "tasks not a list": (lambda c: c.update(tasks={}), [r"'tasks' must be a list"]),
    "unknown correlate parameter": (lambda c: c["crosscorrelate"]["params"].update(max_lag=10.0),
                                    [r"^task 'crosscorrelate' \(CrossCorrelate\): unknown parameter 'max_lag'", "'max_tau_shift'"]),
    "wrong final class": (lambda c: c["crosscorrelate"].update(step="anxcor.steps.stack.Stack"),
                          [r"task 'crosscorrelate'", "not a CrossCorrelate"]),
    "invalid stack value": (lambda c: c["stack"]["params"].update(method="median"), [r"^task 'stack' \(Stack\): ", "median"]),
    "unknown stack key": (lambda c: c["stack"].update(kind="linear"), [r"key 'kind' in 'stack'"]),
    "filter as a string": (lambda c: c["station_filter"].update(include="XX.*"), [r"'station_filter.include'"]),
    "unknown filter key": (lambda c: c["pair_filter"].update(only=["*"]), [r"key 'only' in 'pair_filter'", "'include'"]),
    "function not importable": (lambda c: c["tasks"].append({"task": "f", "step": "anxcor.steps.base.FunctionStep",
                                                              "params": {"function": "anxcor.nowhere.f"}}),
                                [r"task 'f' \(FunctionStep\)", "anxcor.nowhere.f"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_raises_naming_the_key(case):
    change, patterns = BAD[case]
    config = _default()
    change(config)
    with pytest.raises(ConfigError) as info:
        anxcor_from_config(config)
    for pattern in patterns:
        assert re.search(pattern, str(info.value)), (pattern, str(info.value))


def test_bad_files(tmp_path):
    path = tmp_path / "run.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"run.json is not valid JSON: .* line 1"):
        Anxcor.load_config(path)
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        Anxcor.load_config(path)
    with pytest.raises(FileNotFoundError):
        Anxcor.load_config(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="must be a string"):
        Anxcor.from_config_json(b"{}")
