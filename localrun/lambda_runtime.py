"""In-process Lambda runtime: the handlers named in template.yaml, run with the deployed environment.

`sam local invoke` needs Docker, which these machines lack; this does what it does without a container:
read CodeUri/Handler/Layers from template.yaml, put the layer on sys.path, import the handler, set the
function's environment (resolved against the local stack), and call it with a Lambda context whose
deadline is the template's timeout. A loaded handler is kept, like a warm container, so module-level
caches (tokens, clients) behave as in Lambda; ``reset_handlers()`` gives the next call a cold start.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from localrun.aws import DeployedStack
from localrun.sam_template import TemplateError, load_template, sam_function

Handler = Callable[[dict[str, Any], Any], Any]

# Variables of the calling process that must not leak into a function: they could point boto3 at a
# real account or change Powertools' behaviour behind the template's back.
_ISOLATED_PREFIXES = ("AWS_", "POWERTOOLS_", "_X_AMZN_", "LAMBDA_")
_invoke_lock = threading.RLock()  # os.environ is process-wide: one invocation at a time
_handlers: dict[tuple[Path, str], Handler] = {}


class FunctionTimeoutError(RuntimeError):
    """The handler ran past its timeout (Lambda would have stopped it; here it is reported afterwards)."""


@dataclass
class LambdaContext:
    """What Lambda passes as ``context`` (the attributes Powertools and our handlers read)."""

    function_name: str
    memory_limit_in_mb: int
    timeout_s: float
    function_version: str = "$LATEST"
    invoked_function_arn: str = ""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None
    started_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        if not self.log_stream_name:
            day = time.strftime("%Y/%m/%d", time.gmtime())
            self.log_stream_name = f"{day}/[{self.function_version}]{uuid.uuid4().hex}"

    @property
    def deadline(self) -> float:
        return self.started_at + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class FunctionCode:
    code_dir: Path
    module: str
    function: str
    layer_dirs: tuple[Path, ...]
    handler: str


def function_code(logical_id: str, template_path: str | Path = "template.yaml") -> FunctionCode:
    """CodeUri, Handler and layer directories of a function, as template.yaml declares them."""
    path = Path(template_path).resolve()
    return _function_code(path, path.stat().st_mtime_ns, logical_id)


@functools.lru_cache(maxsize=64)
def _function_code(path: Path, _mtime_ns: int, logical_id: str) -> FunctionCode:
    # Cached per template version (mtime in the key): a drain invokes hundreds of times.
    template = load_template(path)
    props = sam_function(template, logical_id)
    code_uri, handler = props.get("CodeUri"), props.get("Handler")
    if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
        raise TemplateError(f"{logical_id}: needs a local CodeUri and a Handler like module.function")
    module, function = handler.rsplit(".", 1)
    layers = tuple(_layer_dir(template, path.parent, layer) for layer in props.get("Layers", []))
    return FunctionCode(code_dir=(path.parent / code_uri).resolve(), module=module, function=function,
                        layer_dirs=tuple(d for d in layers if d is not None), handler=handler)


def _layer_dir(template: Mapping[str, Any], base: Path, layer: Any) -> Path | None:
    """A layer defined in this template (Ref to a LayerVersion) -> its local ContentUri; external ARNs: None."""
    if not (isinstance(layer, dict) and "Ref" in layer):
        return None
    resource = template["Resources"].get(layer["Ref"], {})
    if resource.get("Type") != "AWS::Serverless::LayerVersion":
        return None
    content = (base / resource["Properties"]["ContentUri"]).resolve()
    # A built layer keeps packages under python/ (what Lambda mounts as /opt/python); the source tree does not.
    return content / "python" if (content / "python").is_dir() else content


def load_handler(logical_id: str, template_path: str | Path = "template.yaml") -> Handler:
    """Import the function's handler under a module name of its own (every function has an app.py)."""
    code = function_code(logical_id, template_path)
    key = (code.code_dir / code.module, logical_id)
    if key not in _handlers:
        for layer in code.layer_dirs:
            if str(layer) not in sys.path:
                sys.path.append(str(layer))
        # Unique per function and code directory: both functions ship an app.py.
        digest = hashlib.sha1(str(code.code_dir).encode(), usedforsecurity=False).hexdigest()[:8]
        module = _import_module(code, f"_lambda_{logical_id}_{digest}_{code.module.replace('.', '_')}")
        handler = getattr(module, code.function, None)
        if not callable(handler):
            raise TemplateError(f"{logical_id}: {code.handler} is not a function in {code.code_dir}")
        _handlers[key] = handler
    return _handlers[key]


def _import_module(code: FunctionCode, unique_name: str) -> ModuleType:
    source = code.code_dir / (code.module.replace(".", "/") + ".py")
    spec = importlib.util.spec_from_file_location(unique_name, source)
    if spec is None or spec.loader is None or not source.is_file():
        raise TemplateError(f"handler module not found: {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique_name] = module
    # The code directory is the task root in Lambda: sibling modules import by plain name.
    sys.path.insert(0, str(code.code_dir))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[unique_name]
        raise
    finally:
        sys.path.remove(str(code.code_dir))
    return module


def reset_handlers() -> None:
    """Forget loaded handlers: the next invocation of each function is a cold start."""
    for name in [n for n in sys.modules if n.startswith("_lambda_")]:
        del sys.modules[name]
    _handlers.clear()


def function_env(stack: DeployedStack, logical_id: str, context: LambdaContext, code: FunctionCode,
                 overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Template environment + Lambda's reserved variables + the local AWS endpoint + caller overrides."""
    reserved = {
        "AWS_LAMBDA_FUNCTION_NAME": context.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": context.function_version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(context.memory_limit_in_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": context.log_group_name,
        "AWS_LAMBDA_LOG_STREAM_NAME": context.log_stream_name,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "LAMBDA_TASK_ROOT": str(code.code_dir),
        "_HANDLER": code.handler,
        # What `sam local` sets: Powertools' Tracer stays off without an X-Ray daemon.
        "AWS_SAM_LOCAL": "true",
    }
    return {**stack.function_environment(logical_id), **reserved, **stack.aws.env(), **(overrides or {})}


@contextlib.contextmanager
def applied_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """os.environ as the function sees it for the duration of the block, restored afterwards."""
    saved = dict(os.environ)
    kept = {k: v for k, v in saved.items() if not k.startswith(_ISOLATED_PREFIXES)}
    os.environ.clear()
    os.environ.update({**kept, **variables})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def make_context(stack: DeployedStack, logical_id: str, timeout_s: float | None = None) -> LambdaContext:
    name = stack.function_name(logical_id)
    return LambdaContext(
        function_name=name, memory_limit_in_mb=stack.function_memory(logical_id),
        timeout_s=float(stack.function_timeout(logical_id) if timeout_s is None else timeout_s),
        invoked_function_arn=f"arn:aws:lambda:{stack.aws.region}:{stack.account_id}:function:{name}")


def invoke(stack: DeployedStack, logical_id: str, event: dict[str, Any], *, env: dict[str, str] | None = None,
           template_path: str | Path | None = None, timeout_s: float | None = None) -> Any:
    """Run the function's handler once with its deployed environment; its return value, or its exception.

    ``template_path`` defaults to the template the stack was deployed from; ``timeout_s`` overrides the
    template's timeout (a run that overshoots raises FunctionTimeoutError, as Lambda would fail it).
    """
    path = stack.template_path if template_path is None else Path(template_path)
    with _invoke_lock:
        code = function_code(logical_id, path)
        context = make_context(stack, logical_id, timeout_s)
        with applied_environment(function_env(stack, logical_id, context, code, env)):
            # A cold start imports here, so module-level code sees the function's environment, as in Lambda.
            handler = load_handler(logical_id, path)
            context.started_at = time.monotonic()  # the timeout counts from the invocation, not the init
            result = handler(event, context)
        overrun = time.monotonic() - context.deadline
        if overrun > 0:
            raise FunctionTimeoutError(f"{context.function_name} ran {overrun:.2f}s past its "
                                       f"{context.timeout_s:g}s timeout")
        return result
