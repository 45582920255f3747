"""``fastgd bench --torch``: :mod:`fastgd.torch` against torch.optim on real ``nn.Module``s.

For each model and rule, four things are timed in one process, as medians of
interleaved samples (:func:`~fastgd.bench.interleaved_medians`):

(a) ``torch step``: one ``opt.step()`` of torch's fastest CPU implementation
    (``fused=True`` where torch has it for the rule on CPU, else
    ``foreach=True``, else the for-loop);
(b) ``fastgd.torch step``: one ``opt.step()`` of the adapter, which keeps each
    group's parameters in one flat buffer and steps it with one kernel call;
(c) ``bare``: a fastgd NumPy optimizer on one flat float32 array with as many
    elements as the model has parameters: the ceiling the adapter aims at;
(d) a full training iteration (``zero_grad``, forward, backward, ``step``)
    with torch's optimizer and with the adapter, each on its own copy of the
    model.

The step contenders see the same gradient values (random, magnitudes in
[0.1, 1), written into whatever ``.grad`` tensors the optimizer steps); the
iterations use the real gradients of a mean-squared-error loss.

torch and :mod:`fastgd.torch` are imported when a benchmark runs, never by
``import fastgd.bench``. torch runs with as many threads as numba.
``TORCH_MODELS``, ``TORCH_MIN_TIME``, ``TORCH_WARMUP_STEPS`` and
``random_arrays`` are read from :mod:`fastgd.bench` when a benchmark runs, so
rebinding them there takes effect (the tests use tiny models).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from fastgd import bench as _bench
from fastgd.bench._timing import (
    _check_count,
    _check_rules,
    _import_torch,
    _optimizer,
    _sig,
    bench_hyperparameters,
    interleaved_medians,
    resolved_backend,
)
from fastgd.bench.kernels import TORCH_OPTIMIZERS, torch_equivalent

#: Rules of ``fastgd bench --torch`` unless ``--rules`` says otherwise.
TORCH_BENCH_RULES = ("adamw", "rmsprop", "nadam", "adam", "sgd")
#: Interleaved samples per contender in ``--torch`` (its samples are long:
#: a training iteration of the largest model takes tens of milliseconds).
TORCH_BENCH_REPEAT = 5
#: Shortest wall time of one timed sample, in seconds.
TORCH_MIN_TIME = 0.02
#: Steps before timing: past RAdam's rectification switch (step 6) and SGD's
#: first step, so nothing compiles inside the timing.
TORCH_WARMUP_STEPS = 7

#: fastgd.torch class of every rule (fastgd.OPTIMIZERS key -> class name).
ADAPTER_CLASSES = {**TORCH_OPTIMIZERS, "momentum": "Momentum", "lion": "Lion"}


@dataclass(frozen=True)
class TorchModel:
    """A benchmark model: how to build it and a batch of its inputs.

    Attributes
    ----------
    name : str
        Key in :data:`TORCH_MODELS` and the ``model`` column.
    description : str
        What it is, for the notes.
    build : callable
        ``build(torch) -> nn.Module`` (float32, on the CPU).
    batch : callable
        ``batch(torch) -> (inputs, target)``: one training batch.
    """

    name: str
    description: str
    build: Callable
    batch: Callable


def _mlp(torch, layers: int, width: int):
    modules = []
    for i in range(layers):
        modules.append(torch.nn.Linear(width, width))
        if i < layers - 1:
            modules.append(torch.nn.ReLU())
    return torch.nn.Sequential(*modules)


def _transformer(torch, layers: int, d_model: int, nhead: int, dim_feedforward: int):
    layer = torch.nn.TransformerEncoderLayer(
        d_model, nhead, dim_feedforward, dropout=0.0, batch_first=True
    )
    return torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def _randn(torch, *shape):
    return torch.randn(*shape, dtype=torch.float32)


def mlp_model(name: str, layers: int, width: int, batch: int) -> TorchModel:
    """``layers`` x ``nn.Linear(width, width)`` with ReLUs between; ``2 * layers`` tensors."""
    return TorchModel(
        name,
        f"{layers} x Linear({width}, {width}) with ReLU, batch {batch}",
        partial(_mlp, layers=layers, width=width),
        lambda torch: (_randn(torch, batch, width), _randn(torch, batch, width)),
    )


def transformer_model(
    name: str, layers: int, d_model: int, nhead: int, dim_feedforward: int, batch: int, seq: int
) -> TorchModel:
    """``nn.TransformerEncoder`` (dropout 0, batch first); 12 tensors per layer."""
    return TorchModel(
        name,
        f"TransformerEncoder, {layers} layers, d_model={d_model}, nhead={nhead}, "
        f"dim_feedforward={dim_feedforward}, dropout 0, batch {batch} x {seq} tokens",
        partial(
            _transformer,
            layers=layers,
            d_model=d_model,
            nhead=nhead,
            dim_feedforward=dim_feedforward,
        ),
        lambda torch: (_randn(torch, batch, seq, d_model), _randn(torch, batch, seq, d_model)),
    )


#: The models of ``fastgd bench --torch``: the two of issue 9's table and a
#: ~200-tensor, ~1e7-parameter one.
TORCH_MODELS: dict[str, TorchModel] = {
    # 40 tensors, 83,200 parameters
    "mlp": mlp_model("mlp", 20, 64, batch=32),
    # 72 tensors, 4,738,560 parameters
    "transformer": transformer_model("transformer", 6, 256, 8, 1024, batch=4, seq=16),
    # 200 tensors, 10,017,200 parameters
    "wide": mlp_model("wide", 100, 316, batch=8),
}


# -- pieces ---------------------------------------------------------------------------


def import_adapter():
    """:mod:`fastgd.torch` (torch's threads set to numba's), or ImportError saying why not."""
    if _import_torch() is None:
        raise ImportError("torch is not installed; pip install torch")
    try:
        import fastgd.torch as adapter
    except ImportError as e:
        raise ImportError(f"fastgd.torch cannot be imported: {e}") from e
    return adapter


def _check_models(models) -> list[str]:
    known = _bench.TORCH_MODELS
    if models is None:
        return list(known)
    if isinstance(models, (str, bytes)):
        raise TypeError(f"models must be a sequence of names such as [{models!r}], not a string")
    models = list(models)
    unknown = [m for m in models if m not in known]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; choose from {', '.join(known)}")
    if not models:
        raise ValueError("models is empty; pass None for every model")
    return models


def _accepted(cls, kwargs: dict) -> dict:
    """``kwargs`` that ``cls``'s constructor accepts (all of them if it takes ``**kwargs``)."""
    parameters = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in parameters}


def _fastest_torch_optimizer(torch, cls, params: list, kwargs: dict):
    """``cls(params, fused=True)``, else ``foreach=True``, else the for-loop; the
    first that constructs and steps. Returns ``(optimizer, implementation)``."""
    for impl, extra in (
        ("fused", {"fused": True}),
        ("foreach", {"foreach": True}),
        ("for-loop", {}),
    ):
        try:
            opt = cls(params, **kwargs, **extra)
            opt.step()
        except (RuntimeError, TypeError, ValueError):
            continue
        return opt, impl
    raise RuntimeError(f"torch.optim.{cls.__name__} does not step")  # pragma: no cover


def _fill_grads(torch, model, seed: int) -> None:
    """Real gradients once (so every ``.grad`` exists where the optimizer keeps it),
    then overwritten in place with random values, magnitudes in [0.1, 1)."""
    params = [p for p in model.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    (values,) = _bench.random_arrays(n, "float32", 1, seed)
    with torch.no_grad():
        start = 0
        for p in params:
            chunk = torch.from_numpy(values[start : start + p.numel()]).view_as(p)
            if p.grad is None:
                p.grad = chunk.clone()
            else:
                p.grad.copy_(chunk)
            start += p.numel()


def _iteration(torch, model, opt, inputs, target) -> Callable[[], None]:
    mse = torch.nn.functional.mse_loss

    def iteration():
        opt.zero_grad()
        mse(model(inputs), target).backward()
        opt.step()

    return iteration


# -- one row ---------------------------------------------------------------------------


def measure_torch_model(
    model: str,
    rule: str,
    repeat: int = TORCH_BENCH_REPEAT,
    *,
    min_time: float | None = None,
    seed: int = 0,
    iterations: bool = True,
) -> dict:
    """Time torch.optim, :mod:`fastgd.torch` and the bare kernel on one model and rule.

    Parameters
    ----------
    model : str
        Key of :data:`TORCH_MODELS`.
    rule : str
        Key of :data:`fastgd.OPTIMIZERS`; configured as in ``fastgd bench``
        (defaults, SGD with momentum 0.9), with torch's argument names.
    repeat : int
        Interleaved samples of each contender.
    min_time : float, optional
        Shortest sample in seconds; :data:`TORCH_MIN_TIME` by default.
    seed : int
        Seed of the model's weights, its batch and the gradients.
    iterations : bool
        Time the training iterations too (else their fields are None).

    Returns
    -------
    dict
        ``model, description, tensors, params, rule, hyperparameters``;
        ``torch_impl`` (``"fused"``, ``"foreach"``, ``"for-loop"``; None where
        torch lacks the rule); ``torch_step_s, fastgd_step_s, bare_step_s``
        (seconds per step; torch's None without the rule), ``bare_backend``
        (the loop the bare kernel ran); ``x_torch`` (torch step / fastgd.torch
        step: above 1 the adapter is faster), ``bare_fraction`` (bare step /
        fastgd.torch step: 1.0 is the ceiling), ``x_torch_bare`` (torch step /
        bare step, the ratio of issue 9's table); ``torch_iter_s,
        fastgd_iter_s, x_iter`` (a training iteration, torch / fastgd.torch);
        ``repeat``, and ``steps_per_sample`` and ``samples_s`` by contender.
    """
    rule = _check_rules([rule])[0]
    (model,) = _check_models([model])
    repeat = _check_count("repeat", repeat)
    if min_time is None:
        min_time = _bench.TORCH_MIN_TIME
    adapter = import_adapter()
    torch = _import_torch()
    spec = _bench.TORCH_MODELS[model]
    warmup = _bench.TORCH_WARMUP_STEPS

    torch.manual_seed(seed)
    with torch.no_grad():
        reference = spec.build(torch).float()
        inputs, target = spec.batch(torch)
    params = [p for p in reference.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)

    # the bare kernel: one flat float32 array as large as the model
    hyperparameters = bench_hyperparameters(rule)
    flat, grad = _bench.random_arrays(n, "float32", 2, seed)
    bare = _optimizer(rule, flat, "auto", hyperparameters)
    for _ in range(warmup):
        bare.step(grad)
    equivalent = torch_equivalent(rule, bare.hyperparameters)

    # the adapter, with torch's argument names where torch has the rule
    adapter_cls = getattr(adapter, ADAPTER_CLASSES[rule])
    adapter_kwargs = equivalent[1] if equivalent else hyperparameters
    fastgd_model = copy.deepcopy(reference)
    fastgd_opt = adapter_cls(fastgd_model.parameters(), **_accepted(adapter_cls, adapter_kwargs))
    mse = torch.nn.functional.mse_loss
    mse(fastgd_model(inputs), target).backward()
    _fill_grads(torch, fastgd_model, seed + 1)
    for _ in range(warmup):
        fastgd_opt.step()
    steps = {"fastgd.torch": fastgd_opt.step, "bare": partial(bare.step, grad)}
    loops = {"fastgd.torch": _iteration(torch, fastgd_model, fastgd_opt, inputs, target)}

    torch_impl = None
    if equivalent is not None:
        cls_name, kwargs = equivalent
        torch_model = copy.deepcopy(reference)
        mse(torch_model(inputs), target).backward()
        _fill_grads(torch, torch_model, seed + 1)
        torch_opt, torch_impl = _fastest_torch_optimizer(
            torch, getattr(torch.optim, cls_name), list(torch_model.parameters()), kwargs
        )
        for _ in range(warmup - 1):
            torch_opt.step()
        steps = {"torch": torch_opt.step, **steps}
        loops = {"torch": _iteration(torch, torch_model, torch_opt, inputs, target), **loops}
    del reference

    step_times = interleaved_medians(steps, repeat, min_time)
    iter_times = {}
    if iterations:
        for iteration in loops.values():  # warm the iteration (set_to_none, fresh grads)
            iteration()
        iter_times = interleaved_medians(loops, repeat, min_time)

    def median(timings, key):
        return timings[key].median if key in timings else None

    t_torch, t_fastgd = median(step_times, "torch"), step_times["fastgd.torch"].median
    t_bare = step_times["bare"].median
    i_torch, i_fastgd = median(iter_times, "torch"), median(iter_times, "fastgd.torch")
    return {
        "model": model,
        "description": spec.description,
        "tensors": len(params),
        "params": n,
        "rule": rule,
        "hyperparameters": bare.hyperparameters,
        "torch_impl": torch_impl,
        "torch_step_s": t_torch,
        "fastgd_step_s": t_fastgd,
        "bare_step_s": t_bare,
        "bare_backend": resolved_backend(bare),
        "x_torch": None if t_torch is None else t_torch / t_fastgd,
        "bare_fraction": t_bare / t_fastgd,
        "x_torch_bare": None if t_torch is None else t_torch / t_bare,
        "torch_iter_s": i_torch,
        "fastgd_iter_s": i_fastgd,
        "x_iter": None if i_torch is None or i_fastgd is None else i_torch / i_fastgd,
        "repeat": repeat,
        "steps_per_sample": {
            **{f"step {k}": v.steps for k, v in step_times.items()},
            **{f"iteration {k}": v.steps for k, v in iter_times.items()},
        },
        "samples_s": {
            **{f"step {k}": v.samples for k, v in step_times.items()},
            **{f"iteration {k}": v.samples for k, v in iter_times.items()},
        },
    }


def run_torch_bench(
    rules=None,
    models=None,
    repeat: int = TORCH_BENCH_REPEAT,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """:func:`measure_torch_model` for every model (default all of :data:`TORCH_MODELS`)
    and rule (default :data:`TORCH_BENCH_RULES`), model by model.

    The arguments are checked, and :mod:`fastgd.torch` imported, before
    anything runs: unknown or empty rules or models and a ``repeat`` that is
    not an integer >= 1 raise ValueError or TypeError; a missing torch or
    :mod:`fastgd.torch` raises ImportError.
    """
    rules = _check_rules(list(TORCH_BENCH_RULES) if rules is None else rules)
    models = _check_models(models)
    repeat = _check_count("repeat", repeat)
    import_adapter()
    rows = []
    for model in models:
        for rule in rules:
            if progress:
                progress(f"{model} {rule}")
            rows.append(measure_torch_model(model, rule, repeat))
    return rows


# -- output ------------------------------------------------------------------------------


def _us(x):
    return "-" if x is None else _sig(x * 1e6)


def _ms(x):
    return "-" if x is None else _sig(x * 1e3)


def _ratio(x):
    return "-" if x is None else f"{x:.2f}"


#: Columns of the ``--torch`` table: header, key, formatter.
TORCH_COLUMNS = (
    ("model", "model", str),
    ("tensors", "tensors", str),
    ("params", "params", lambda x: f"{x:,}"),
    ("rule", "rule", str),
    ("torch impl", "torch_impl", lambda x: x or "-"),
    ("torch us", "torch_step_s", _us),
    ("fastgd.torch us", "fastgd_step_s", _us),
    ("bare us", "bare_step_s", _us),
    ("x torch", "x_torch", _ratio),
    ("of bare", "bare_fraction", _ratio),
    ("iter torch ms", "torch_iter_s", _ms),
    ("iter fastgd.torch ms", "fastgd_iter_s", _ms),
    ("x iter", "x_iter", _ratio),
)


def torch_notes(rows: list[dict]) -> str:
    """What the ``--torch`` table's columns mean, the models and the configurations."""
    notes = [
        "torch us: one opt.step() of torch.optim's fastest CPU implementation (torch impl); "
        "fastgd.torch us: one opt.step() of fastgd.torch's class, same arguments; "
        "bare us: a fastgd NumPy optimizer on one flat float32 array of the model's size "
        "(the adapter's ceiling). Medians of interleaved samples, same gradient values.",
        "x torch: torch step / fastgd.torch step (>1: fastgd.torch faster); "
        "of bare: bare step / fastgd.torch step (1.0: the adapter costs nothing).",
        "iter: zero_grad(), forward, MSE loss, backward, step() on each optimizer's own copy "
        "of the model; x iter: torch iteration / fastgd.torch iteration.",
    ]
    seen = {}
    for row in rows:
        seen.setdefault(row["model"], row)
    for name, row in seen.items():
        notes.append(
            f"{name}: {row['description']}; {row['tensors']} tensors, {row['params']:,} parameters."
        )
    for rule in dict.fromkeys(row["rule"] for row in rows):
        extra = bench_hyperparameters(rule)
        if extra:
            text = ", ".join(f"{k}={v}" for k, v in extra.items())
            notes.append(f"{rule}: default hyperparameters except {text}.")
    return "\n".join(notes)
