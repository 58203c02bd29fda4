"""A serving process loads what serving needs, and nothing heavy that it does not.

Every library imported into ``fleetlearn serve`` adds warning filters, and
scikit-learn's parallel helper re-applies all of them on each tree of each forest
prediction: with Ray and Plotly loaded, an RF-100 single-row request cost about 4 ms
more server CPU (benchmarks/results/issue8). Ray loads only with ``serve --ray`` and for
training; Plotly only when a report is asked for.
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys, warnings
import fleetlearn.cli.serve
from fleetlearn.api import create_app
from fleetlearn.serving import ServeSettings
create_app(ServeSettings())
print(json.dumps({m: m in sys.modules for m in ("ray", "plotly", "kaleido")}))
"""


def test_the_api_app_loads_neither_ray_nor_plotly() -> None:
    # A fresh interpreter: this test process has imported everything already.
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, timeout=120)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {"ray": False, "plotly": False, "kaleido": False}
