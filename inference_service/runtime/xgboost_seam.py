"""XGBoost's dense in-place prediction without its per-call Python layer (verified against xgboost==3.2.0).

`Booster.inplace_predict` costs ~230 us for one row here, of which ~65 us is libxgboost's own work whatever the
model's size; the rest is Python that a served request never needs: dispatch over pandas/arrow/cudf/polars
inputs (with a function-level import per call), the array interface as JSON, a ctypes array type built per call
to read the answer. A request's features are always a dense float [N, features] array, so `DensePredict` calls
the same public C entry point, `XGBoosterPredictFromDense`, with the same arguments inplace_predict passes for
its defaults (all trees, values not margins, NaN as missing), and copies the answer out.

Relies on `xgboost.core._LIB` (the loaded libxgboost, its function signatures set by xgboost) and
`Booster.handle`. tests/model/test_xgboost_seam.py fails naming either when an upgrade removes it, and holds the
answers equal to inplace_predict's, bit for bit, for every shape and dtype a request can bring.
"""

from __future__ import annotations

import ctypes
import json

import numpy as np
import xgboost as xgb
from xgboost import core

# inplace_predict's arguments for its defaults: iteration_range (0, 0) (every tree), predict_type "value",
# missing NaN, strict_shape False. cache_id 0: nothing is cached across calls.
_CONFIG = json.dumps(
    {
        "type": 0,
        "training": False,
        "iteration_begin": 0,
        "iteration_end": 0,
        "missing": float("nan"),
        "strict_shape": False,
        "cache_id": 0,
    }  # fmt: skip
).encode()
_TYPESTR = {np.dtype(np.float32): b"<f4", np.dtype(np.float64): b"<f8"}


def library():
    """The libxgboost handle xgboost itself calls (a seam: xgboost.core._LIB is not public)."""
    return core._LIB


class DensePredict:
    """`booster.inplace_predict(features)` for dense float features, with the same answer."""

    def __init__(self, booster: xgb.Booster) -> None:
        self._booster = booster  # keeps the handle alive
        self._handle = booster.handle
        self._lib = library()
        self._call = self._lib.XGBoosterPredictFromDense

    def __call__(self, features: np.ndarray) -> np.ndarray:
        if features.ndim != 2 or not len(features):  # (libxgboost shapes an empty answer its own way)
            return self._booster.inplace_predict(features)
        if features.dtype not in _TYPESTR or not features.flags.c_contiguous:
            # what inplace_predict reads from any other float array (float16 becomes float32 there too)
            features = np.ascontiguousarray(features, dtype=np.float64 if features.dtype == np.float64 else np.float32)
        interface = b'{"data": [%d, true], "shape": [%d, %d], "strides": null, "typestr": "%s", "version": 3}' % (
            features.ctypes.data,
            features.shape[0],
            features.shape[1],
            _TYPESTR[features.dtype],
        )
        shape, dims, preds = ctypes.POINTER(ctypes.c_uint64)(), ctypes.c_uint64(), ctypes.POINTER(ctypes.c_float)()
        status = self._call(
            self._handle, interface, _CONFIG, None, ctypes.byref(shape), ctypes.byref(dims), ctypes.byref(preds)
        )
        if status != 0:
            raise xgb.core.XGBoostError(self._lib.XGBGetLastError().decode())
        # The answer lives in the booster's per-thread buffer until its next call on this thread: copy it out.
        out = np.empty(tuple(shape[i] for i in range(dims.value)), dtype=np.float32)
        ctypes.memmove(out.ctypes.data, preds, out.nbytes)
        return out
