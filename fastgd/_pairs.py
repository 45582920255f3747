"""bfloat16 loops that move two elements per 32-bit word.

A loop over ``uint16`` storage widens each element with a zero-extension and
a shift (``vpmovzxwd``, ``vpslld``) and narrows each result with a shift and
a truncating move (``vpsrld``, ``vpmovdw``). On a CPU where the bfloat16 step
is limited by that arithmetic rather than by memory (the 2-core AVX-512
machine of DESIGN.md), reading the arrays as ``uint32`` words does less: the
low element of a word is ``w << 16``, the high one ``w & 0xFFFF0000``, and
two rounded results go back as one word, ``(hi & 0xFFFF0000) | (lo >> 16)``
(:func:`fastgd.storage.bf16_lo`, :func:`~fastgd.storage.bf16_hi`,
:func:`~fastgd.storage.bf16_pack`). The element functions and the rounding
formulas are the same ones, so every bit is the element loop's.

A module with pair loops holds, for each CPU variant ``v``:

* ``_v_elements``: the element loop of :mod:`fastgd.backends`;
* ``_v_pairs``: the loop over words, taking ``uint32`` views;
* ``v``: the entry, with the element loop's signature (``uint16`` arrays). It
  runs the words from the first element whose address is a multiple of 4 (a
  slice may start at an odd element) and the one element before and after
  them with the serial element loop; if the arrays' addresses differ in
  alignment, or there are fewer than :data:`MIN_ELEMENTS` elements, it runs
  the element loop on everything. The ``uint32`` views are made here,
  outside the ``prange`` function (numba miscompiled a ``view`` inside one).

Stochastic rounding keeps the element loops: its per-element hash, not the
conversions, limits it, and the pair loops measured no faster.
"""

from __future__ import annotations

#: Below this many elements the entry runs the element loop: too few words
#: for the pair loop to pay for its two extra calls.
MIN_ELEMENTS = 256

#: The entry of a pair-loop module.
_ENTRY = """
@numba.njit(error_model="numpy", cache={cache}, nogil=True)
def {name}(p, g, {states}c):
    n = p.shape[0]
    base = numba.int64(p.ctypes.data)
    if (({differences}) & 3) != 0 or (base & 1) != 0 or n < {min_elements}:
        _{name}_elements(p, g, {states}c)
        return
    a = (base >> 1) & 1
    e = a + ((n - a) >> 1 << 1)
    if a > 0:
        _serial_elements(p[:a], g[:a], {head}c)
    _{name}_pairs(p[a:e].view(np.uint32), g[a:e].view(np.uint32), {words}c)
    if e < n:
        _serial_elements(p[e:], g[e:], {tail}c)
"""

_PAIR_LOOP = """
@numba.njit(error_model="numpy", cache={cache}, nogil=True{parallel})
def _{name}_pairs(p, g, {states}{scalar_arg}):
{unpack}
    for j in {range}(p.shape[0]):
{body}"""

_CONVERSIONS = """
import numpy as np
_lo_bfloat16 = _storage.cpu_function("bf16_lo")
_hi_bfloat16 = _storage.cpu_function("bf16_hi")
_word_bfloat16 = _storage.cpu_function("f32_to_bf16_word")
_pack_bfloat16 = _storage.cpu_function("bf16_pack")
"""


def paired(storage, active, target: str) -> bool:
    """Whether a loop gets pair loops: on the CPU, rounding to nearest or
    with Kahan compensation, with every array it moves (params, grad, the
    ``active`` states, a Kahan buffer) in bfloat16."""
    arrays = (storage.params, storage.grad) + ((storage.state,) if active else ())
    return (
        target == "cpu"
        and storage.rounding != "stochastic"
        and all(kind == "bfloat16" for kind in arrays)
    )


def source(fields: dict, halves: tuple[dict, dict], unpack: str) -> str:
    """The pair loops and the entries of a pair-loop module, after its
    element loops (``fastgd.backends`` names them ``_serial_elements`` and
    ``_parallel_elements`` here).

    ``fields``: the element loop's template fields (``fastgd.backends._fill``);
    ``halves``: the fields of the word's low and high halves, each formatted
    into ``fastgd.backends._BODY`` here; ``unpack``: the loops' scalar lines.
    """
    from fastgd import backends

    arrays = ["p", "g", *(s.strip() for s in fields["states"].split(",") if s.strip())]
    states = arrays[2:]
    words = "\n".join(f"        w_{a} = {a}[j]" for a in arrays)
    lo, hi = (backends._BODY.format(**h) for h in halves)
    rounded = {"p": "pw", "kbuf": "kw"}  # the halves' rounded words; a state's: "<state>w"
    packs = []
    for a in ["p", *states]:
        w = rounded.get(a, f"{a}w")
        packs.append(f"        {a}[j] = _pack_bfloat16({w}_lo, {w}_hi)")
    pair_body = "\n".join([words, lo, hi, *packs])
    sliced = {
        "head": "".join(f"{s}[:a], " for s in states),
        "tail": "".join(f"{s}[e:], " for s in states),
        "words": "".join(f"{s}[a:e].view(np.uint32), " for s in states),
    }
    differences = " | ".join(f"(numba.int64({a}.ctypes.data) - base)" for a in arrays[1:])
    src = _CONVERSIONS
    for name, rng, par in backends._CPU_VARIANTS:
        src += _PAIR_LOOP.format(
            **{**fields, "name": name, "range": rng, "parallel": par, "unpack": unpack,
               "body": pair_body}
        )  # fmt: skip
        src += _ENTRY.format(
            name=name, cache=fields["cache"], states=fields["states"],
            differences=differences, min_elements=MIN_ELEMENTS, **sliced,
        )  # fmt: skip
    return src
