"""The README's quick start runs as written and its two runs agree (serial and dask)."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs_as_written(tmp_path, monkeypatch):
    section = README.read_text().split("## Quick start", 1)[1].split("## The result", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)  # the quick start writes its archive in the working directory
    namespace = {"__name__": "__main__"}
    exec(compile("\n".join(blocks), "README.md", "exec"), namespace)  # running the documented code is the test
    namespace["client"].close()
    result, result_dask = namespace["result"], namespace["result_dask"]
    assert result["test"].sizes == {"channel": 9, "station_pair": 21, "time": 2401}
    assert int(result["n_windows"].min()) == len(namespace["times"]) == 15
    np.testing.assert_allclose(result_dask["test"], result["test"], rtol=1e-10)
    assert len(namespace["streams"]) == 21 * 9
    assert (result["distance"] > 0).sum() == 15  # every cross pair has a distance
