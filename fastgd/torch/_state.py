"""Loading torch-format optimizer state into a ``fastgd.torch`` buffer."""

from __future__ import annotations

import torch

from fastgd import _precision
from fastgd.torch._buffer import _HOST_IN_STATE, _Buffer


def _check_loaded_state(entry: dict, buf: _Buffer, i: int, index: int) -> None:
    where = f"state of parameter {buf.indices[i]} (param group {index})"
    tensors = {*buf.rule.states, _precision.KAHAN} if buf.kahan else set(buf.rule.states)
    known = {*tensors, *_HOST_IN_STATE}
    if buf.has_step:
        known.add("step")
    unknown = set(entry) - known
    if unknown:
        raise ValueError(
            f"{where} has unknown entries {sorted(unknown)} for rule {buf.rule.name!r} "
            f"(expected some of {sorted(known)})"
        )
    shape = buf.shapes[i]
    for name, value in entry.items():
        if name in tensors and value is not None:
            if not torch.is_tensor(value) or value.shape != shape:
                got = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
                raise ValueError(f"{where}: {name!r} is {got}, expected a tensor of {tuple(shape)}")
            if value.is_complex() != buf.complex:
                kind = "complex" if buf.complex else "real"
                raise ValueError(f"{where}: {name!r} has dtype {value.dtype}, expected {kind}")
    if "step" in entry:
        step = float(entry["step"])
        if not (step >= 0 and step == int(step)):
            raise ValueError(f"{where}: step {step} is not a count")
    if "mu_product" in entry:
        buf.rule.host["mu_product"]("mu_product", float(entry["mu_product"]))


def _copy_in(entry: dict, buf: _Buffer, i: int) -> None:
    """Tensor ``i``'s loaded torch state into the flat buffers (initial values
    where it has none)."""
    buf.steps_np[i] = float(entry["step"]) if "step" in entry else 0.0
    for name, (tensor, arr) in buf.host.items():
        if tensor is not None:
            arr[i] = float(entry.get(name, 1.0))
        else:  # SGD: momentum has started iff torch kept a momentum buffer
            arr[i] = entry.get("momentum_buffer") is not None
    for name in buf.stored:
        view = buf.views[name][i]
        value = entry.get(name)
        if value is None:  # kahan_comp: no compensation yet
            view.fill_(0.0 if name == _precision.KAHAN else buf.rule.initial(buf.opt, name))
        else:
            view.copy_(value)
