"""Handler cold import time: each handler imported in a fresh interpreter, layer on sys.path, as Lambda's init does."""

from __future__ import annotations

import subprocess
import sys

from bench.models import ColdImport
from localrun.environment import TEMPLATE
from localrun.lambda_runtime import function_code

# Runs in the child: time only the handler module's import (interpreter start-up is not the handler's).
_PROBE = """
import importlib.util, sys, time
code_dir, source, layers = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path[:0] = [code_dir, *layers]
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("handler_under_test", source)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(time.perf_counter() - started)
"""

# What Lambda sets before init; Powertools reads some of these at import time.
_LAMBDA_ENV = {"AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "eu-north-1", "PATH": "/usr/bin:/bin",
               "POWERTOOLS_SERVICE_NAME": "ml-connector", "POWERTOOLS_TRACE_DISABLED": "true",
               "AWS_LAMBDA_FUNCTION_NAME": "bench"}


def measure(logical_id: str, runs: int = 7) -> ColdImport:
    code = function_code(logical_id, TEMPLATE)
    source = code.code_dir / (code.module.replace(".", "/") + ".py")
    argv = [sys.executable, "-c", _PROBE, str(code.code_dir), str(source), *map(str, code.layer_dirs)]
    times = []
    for _ in range(runs):
        # -I would drop site-packages; a clean env keeps the caller's AWS_* and PYTHON* settings out.
        out = subprocess.run(argv, capture_output=True, text=True, check=True, env=_LAMBDA_ENV,  # noqa: S603
                             timeout=60)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return ColdImport(handler=f"{logical_id} ({code.code_dir.name}/{source.name})", runs_s=times)


def measure_all(runs: int = 7) -> list[ColdImport]:
    return [measure(name, runs) for name in ("PollerFunction", "WriterFunction")]
