"""Loading tensors from run directories and exports without running code.

Every checkpoint nasforge reads back (DARTS checkpoints in ``run.sqlite``, ``best_model.pt``,
exported ``model.pt``) goes through :func:`load_checkpoint`: ``torch.load(weights_only=True)``,
whose unpickler only rebuilds tensors, plain containers and numbers, so a tampered file cannot
execute code. Anything it refuses, or a file that is not a checkpoint at all, becomes one
:class:`~nasforge.exceptions.RunDirError` line.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from nasforge.exceptions import RunDirError

_GLOBAL = re.compile(r"unsupported (?:global: )?GLOBAL ([\w.]+)", re.IGNORECASE)


def _refused_global(message: str) -> str:
    """What torch's weights-only unpickler refused, from its multi-line message (whose first
    line is advice on loading the file unsafely, not quoted): the global it names."""
    found = _GLOBAL.search(message)
    if found:
        return f"it references {found.group(1)}"
    return "torch's weights-only loader refused it"


def load_checkpoint(
    source: bytes | str | Path, map_location: str | torch.device | None = "cpu", what: str = ""
) -> Any:
    """``torch.load(source, weights_only=True)``; a refused or damaged file is one error line."""
    name = what or (repr(str(source)) if not isinstance(source, bytes) else "checkpoint")
    try:
        f: Any = io.BytesIO(source) if isinstance(source, bytes) else source
        with warnings.catch_warnings():  # torch warns on raw (non-zip) pickles: not one line
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(f, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # weights_only refused a global: possible code
        raise RunDirError(
            f"{name} holds objects other than tensors and was refused without running it "
            f"({_refused_global(str(err))})"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError,
            IndexError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if isinstance(err, KeyError) and first.isdigit():  # torch's legacy-format magic key
            first = "its first bytes are no torch file header"
        raise RunDirError(f"{name} is damaged or not a torch checkpoint ({first[:160]})") from None


def state_dict_of(obj: Any, what: str) -> dict[str, torch.Tensor]:
    """``obj`` if it is a flat ``{name: tensor}`` mapping (a state_dict), else an error."""
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise RunDirError(f"{what} is not a state_dict (a mapping of names to tensors)")
    return obj


_NUMPY = {
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
}
_NUMPY_RANDOM = {
    "__bit_generator_ctor", "__generator_ctor", "__randomstate_ctor", "SeedSequence",
    "__pyx_unpickle_SeedSequence", "PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64",
    "Generator", "RandomState",
}
_BUILTINS = {"object", "set", "frozenset", "slice", "complex", "bytearray", "range", "tuple",
             "list", "dict"}
_GYM_CLASS_MODULES = ("gymnasium.envs.", "gymnasium.wrappers.", "gymnasium.spaces.",
                      "gymnasium.core")


class _EnvUnpickler(pickle.Unpickler):
    """Only numpy arrays and generators, plain builtins, and gymnasium *classes* (envs,
    wrappers, spaces; never a gymnasium function such as ``make``, which imports by name)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY or (module, name) == ("copyreg", "_reconstructor"):
            return super().find_class(module, name)
        if module.startswith("numpy.random.") and name in _NUMPY_RANDOM:
            return super().find_class(module, name)
        if module == "builtins" and name in _BUILTINS:
            return super().find_class(module, name)
        if module.startswith(_GYM_CLASS_MODULES):
            obj = super().find_class(module, name)
            if isinstance(obj, type):
                return obj
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def load_environments(blob: bytes, what: str = "environment state") -> Any:
    """Environments pickled mid-episode (PBT-NAS on RL tasks), through an allow-list unpickler
    (:class:`_EnvUnpickler`) instead of plain :func:`pickle.loads`."""
    try:
        return _EnvUnpickler(io.BytesIO(blob)).load()
    except pickle.UnpicklingError as err:
        raise RunDirError(f"{what} was refused without running it ({err})") from None
    except (EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as err:
        raise RunDirError(f"{what} is damaged ({type(err).__name__}: {err})") from None
