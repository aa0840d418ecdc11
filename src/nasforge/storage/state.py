"""A safe codec for strategy checkpoints: JSON plus typed arrays, never pickle.

A checkpoint blob is ``MAGIC`` followed by UTF-8 JSON. Values that JSON lacks are tagged
objects ``{"__t": tag, ...}``: tuples, sets, deques, non-string dict keys, non-finite floats,
numpy arrays and scalars (numeric and bool dtypes only, base64 bytes), torch tensors,
``numpy.random.Generator`` (its bit generator's state), :class:`Architecture`, and the
dataclasses registered with :func:`register_state_type`. Decoding builds only these types:
anything else (a pickle blob, garbage, an unknown tag or class, an object dtype) raises
:class:`StateError`, a :class:`~nasforge.exceptions.RunDirError`, so the CLI prints one line and
exits with code 2. Nothing in a blob is ever executed.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from collections import deque
from typing import Any

import numpy as np
import torch

from nasforge.exceptions import RunDirError
from nasforge.spaces.base import Architecture

MAGIC = b"NFSTATE1\n"
_DTYPES = frozenset(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
     "float16", "float32", "float64", "complex64", "complex128"]
)
_TORCH_DTYPES = {
    "torch.bool": torch.bool, "torch.uint8": torch.uint8, "torch.int8": torch.int8,
    "torch.int16": torch.int16, "torch.int32": torch.int32, "torch.int64": torch.int64,
    "torch.float16": torch.float16, "torch.float32": torch.float32,
    "torch.float64": torch.float64,
}
_TYPES: dict[str, type] = {}


class StateError(RunDirError):
    """A stored strategy state is not a nasforge checkpoint (corrupted or tampered with)."""


def register_state_type(cls: type) -> type:
    """Allow a dataclass in checkpoints (its fields are encoded; decoding calls ``cls(**f)``)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    _TYPES[cls.__qualname__] = cls
    return cls


def _array(a: np.ndarray) -> dict[str, Any]:
    if a.dtype.name not in _DTYPES:
        raise TypeError(f"cannot checkpoint an array of dtype {a.dtype}")
    c = np.ascontiguousarray(a)
    return {"dtype": c.dtype.name, "shape": list(c.shape),
            "b64": base64.b64encode(c.tobytes()).decode("ascii")}


def _enc(v: Any) -> Any:
    t = type(v)  # (exact types first: a checkpoint is mostly these, encoded once per ask)
    if t is str or t is int or t is bool or v is None:
        return v
    if t is list:
        return [_enc(x) for x in v]
    if t is dict and "__t" not in v and all(type(k) is str for k in v):
        return {k: _enc(x) for k, x in v.items()}
    return _enc_other(v)


def _enc_other(v: Any) -> Any:
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int) and not isinstance(v, np.integer):
        return int(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else {"__t": "float", "v": repr(v)}
    if isinstance(v, np.ndarray):
        return {"__t": "nd", **_array(v)}
    if isinstance(v, np.generic):
        return {"__t": "np", **_array(np.asarray(v))}
    if isinstance(v, torch.Tensor):
        return {"__t": "tensor", "torch_dtype": str(v.dtype),
                **_array(v.detach().cpu().contiguous().view(-1).numpy().reshape(tuple(v.shape)))}
    if isinstance(v, Architecture):
        return {"__t": "arch", "v": v.to_json()}
    if isinstance(v, np.random.Generator):
        return {"__t": "rng", "v": _enc(v.bit_generator.state)}
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v) and "__t" not in v:
            return {k: _enc(x) for k, x in v.items()}
        return {"__t": "dict", "v": [[_enc(k), _enc(x)] for k, x in v.items()]}
    if isinstance(v, list):
        return [_enc(x) for x in v]
    if isinstance(v, tuple):
        return {"__t": "tuple", "v": [_enc(x) for x in v]}
    if isinstance(v, deque):
        return {"__t": "deque", "v": [_enc(x) for x in v], "maxlen": v.maxlen}
    if isinstance(v, (set, frozenset)):
        items = list(v)
        try:
            items.sort()
        except TypeError:
            pass
        return {"__t": "frozenset" if isinstance(v, frozenset) else "set",
                "v": [_enc(x) for x in items]}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        name = type(v).__qualname__
        if _TYPES.get(name) is not type(v):
            raise TypeError(f"{name} is not registered with register_state_type")
        fields = {f.name: _enc(getattr(v, f.name)) for f in dataclasses.fields(v)}
        return {"__t": "dc", "cls": name, "v": fields}
    raise TypeError(f"cannot checkpoint a value of type {type(v).__name__}")


def _nd(d: dict[str, Any]) -> np.ndarray:
    dtype = d.get("dtype")
    if dtype not in _DTYPES:
        raise StateError(f"array dtype {dtype!r}")
    shape = tuple(int(s) for s in d["shape"])
    raw = base64.b64decode(d["b64"], validate=True)
    return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()


def _dec(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, list):
        return [_dec(x) for x in v]
    if not isinstance(v, dict):
        raise StateError(f"value of type {type(v).__name__}")
    tag = v.get("__t")
    if tag is None:
        return {k: _dec(x) for k, x in v.items()}
    if tag == "float":
        if v["v"] not in ("nan", "inf", "-inf"):
            raise StateError(f"float {v['v']!r}")
        return float(v["v"])
    if tag == "nd":
        return _nd(v)
    if tag == "np":
        return _nd(v)[()]
    if tag == "tensor":
        tdtype = _TORCH_DTYPES.get(v.get("torch_dtype", ""))
        if tdtype is None:
            raise StateError(f"tensor dtype {v.get('torch_dtype')!r}")
        return torch.from_numpy(_nd(v)).to(tdtype)
    if tag == "arch":
        return Architecture.from_json(v["v"])
    if tag == "rng":
        state = _dec(v["v"])
        name = state.get("bit_generator") if isinstance(state, dict) else None
        if name not in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"):
            raise StateError(f"bit generator {name!r}")
        bitgen = getattr(np.random, str(name))()
        bitgen.state = state
        return np.random.Generator(bitgen)
    if tag == "dict":
        return {_dec(k): _dec(x) for k, x in v["v"]}
    if tag == "tuple":
        return tuple(_dec(x) for x in v["v"])
    if tag == "deque":
        return deque((_dec(x) for x in v["v"]), maxlen=v.get("maxlen"))
    if tag == "set":
        return {_dec(x) for x in v["v"]}
    if tag == "frozenset":
        return frozenset(_dec(x) for x in v["v"])
    if tag == "dc":
        cls = _TYPES.get(str(v.get("cls")))
        if cls is None:
            raise StateError(f"class {v.get('cls')!r} is not allowed")
        return cls(**{str(k): _dec(x) for k, x in v["v"].items()})
    raise StateError(f"tag {tag!r}")


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # (built once, not per call)


def dumps(value: Any) -> bytes:
    """Encode ``value`` (raises TypeError for a type the codec does not know)."""
    return MAGIC + _ENCODER.encode(_enc(value)).encode()


def loads(blob: bytes, what: str = "strategy state") -> Any:
    """Decode a blob written by :func:`dumps`; anything else raises :class:`StateError`."""
    if not isinstance(blob, (bytes, bytearray)) or not blob.startswith(MAGIC):
        raise StateError(
            f"the stored {what} is not a nasforge checkpoint (corrupted, tampered with, or "
            "written by an older nasforge that pickled it); refusing to load it"
        )
    try:
        return _dec(json.loads(blob[len(MAGIC):].decode("utf-8")))
    except StateError as err:
        raise StateError(f"the stored {what} is corrupted or tampered with ({err}); "
                         "refusing to load it") from None
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise StateError(f"the stored {what} is corrupted or tampered with "
                         f"({type(err).__name__}); refusing to load it") from None
