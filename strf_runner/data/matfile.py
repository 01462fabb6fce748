"""Reading MATLAB ``.mat`` files, classic (v5, via scipy.io.loadmat) and v7.3 (HDF5, via h5py).

``read_mat(path, variables, fields)`` is the only entry point. Both readers return the same plain
form: a struct (array) is a list of dicts (one per element, MATLAB's column-major order; a scalar
struct is a list of one), a cell array is a list, a char array is a str, anything numeric an ndarray
of MATLAB's shape (v7.3 files store arrays transposed; they are transposed back).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Collection, Sequence

import h5py
import numpy as np
import scipy.io

from strf_runner.errors import DatasetError

__all__ = ["read_mat"]


def read_mat(
    path: str | os.PathLike, variables: Sequence[str], fields: Collection[str] | None = None
) -> dict[str, Any]:
    """The named variables of a classic or v7.3 (HDF5) ``.mat`` file, in the plain form above.

    fields: if given, struct fields not named here are left out at every level (much less to
    convert in big files). A missing, unreadable, corrupt or truncated file, or a missing
    variable, is a DatasetError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} does not exist")
    keep = None if fields is None else frozenset(fields)
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                out = {name: _from_hdf5(f[name], keep) for name in variables if name in f}
        else:
            raw = scipy.io.loadmat(path, variable_names=list(variables), squeeze_me=False, struct_as_record=True)
            out = {name: _from_scipy(raw[name], keep) for name in variables if name in raw}
    except Exception as err:  # scipy and h5py raise many kinds of errors on damaged files
        text = " ".join(str(err).split())[:200]
        raise DatasetError(
            f"{path}: cannot read as a MATLAB .mat file ({type(err).__name__}: {text}); it is corrupt or truncated, "
            "fetch it again"
        ) from err
    for name in variables:
        if name not in out:
            raise DatasetError(f"{path}: has no variable {name!r}")
    return out


def _from_scipy(x: Any, keep: frozenset[str] | None) -> Any:
    if isinstance(x, np.ndarray):
        if x.dtype.names:
            names = [n for n in x.dtype.names if keep is None or n in keep]
            return [{n: _from_scipy(e[n], keep) for n in names} for e in x.ravel(order="F")]
        if x.dtype.kind == "O":
            return [_from_scipy(e, keep) for e in x.ravel(order="F")]
        if x.dtype.kind == "U":
            return "".join(x.ravel(order="F").tolist())
    return x


def _matlab_class(node: h5py.HLObject) -> str:
    value = node.attrs.get("MATLAB_class", b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_refs(node: h5py.HLObject) -> bool:
    return isinstance(node, h5py.Dataset) and node.dtype == h5py.ref_dtype


def _from_hdf5(node: h5py.HLObject, keep: frozenset[str] | None) -> Any:
    """One v7.3 variable or referenced value in the plain form (HDF5 stores MATLAB arrays transposed)."""
    if isinstance(node, h5py.Group):
        members = {k: node[k] for k in node.keys() if not k.startswith("#") and (keep is None or k in keep)}
        # a struct array stores each field as an array of references without a MATLAB_class
        if members and all(_is_refs(m) and "MATLAB_class" not in m.attrs for m in members.values()):
            columns = {k: [_from_hdf5(node.file[r], keep) for r in m[()].ravel()] for k, m in members.items()}
            count = len(next(iter(columns.values())))
            return [{k: columns[k][i] for k in members} for i in range(count)]
        return [{k: _from_hdf5(m, keep) for k, m in members.items()}]
    if _is_refs(node):  # a cell array
        return [_from_hdf5(node.file[r], keep) for r in node[()].ravel()]
    # only chars (uint16) and empties (1-D dims) need the class; skipping the attribute read elsewhere
    # keeps big files quick (h5py pays per call)
    cls = _matlab_class(node) if node.ndim == 1 or node.dtype == np.uint16 else ""
    if node.ndim == 1 and node.attrs.get("MATLAB_empty", 0):  # MATLAB stores an empty array as its dims
        return "" if cls == "char" else [] if cls in ("cell", "struct") else np.zeros((0, 0), dtype=np.float64)
    data = np.asarray(node[()]).T
    if cls == "char":
        return "".join(chr(c) for c in data.ravel(order="F"))
    return data
