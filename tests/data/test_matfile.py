"""MATLAB files (``matfile.read_mat``): classic and v7.3 give the same plain form; bad files name themselves.

The v7.3 file is built by hand with h5py in MATLAB's layout (arrays transposed with a MATLAB_class,
a struct array as a group of reference arrays into ``#refs#``, a cell as an array of references,
an empty as its dims with MATLAB_empty). test_ns1 reads NS1's own files in both layouts.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from strf_runner.data.matfile import read_mat
from strf_runner.errors import DatasetError

X = np.arange(6.0).reshape(2, 3)


def write_classic(path: Path) -> None:
    """``s``: a 1x2 struct array with a char, a 2x3 double, a 1x2 cell {1, 'ab'} and an empty double."""
    s = np.empty((1, 2), dtype=[("name", "O"), ("x", "O"), ("c", "O"), ("e", "O")])
    for i, name in enumerate(("first", "second")):
        cell = np.empty((1, 2), dtype=object)
        cell[0, 0], cell[0, 1] = np.array([[1.0]]), np.array(["ab"])
        s["name"][0, i], s["x"][0, i], s["c"][0, i], s["e"][0, i] = np.array([name]), X + i, cell, np.zeros((0, 0))
    scipy.io.savemat(path, {"s": s, "other": np.ones((1, 1))})


def write_v73(path: Path) -> None:
    """The same ``s`` in MATLAB's v7.3 layout."""
    with h5py.File(path, "w", userblock_size=512) as f:
        refs, count = f.create_group("#refs#"), iter(range(1000))

        def value(data, cls: str, empty: bool = False) -> h5py.Reference:
            ds = refs.create_dataset(f"r{next(count)}", data=data)
            ds.attrs["MATLAB_class"] = np.bytes_(cls)
            if empty:
                ds.attrs["MATLAB_empty"] = np.uint8(1)
            return ds.ref

        def char(text: str) -> h5py.Reference:
            return value(np.array([[ord(ch)] for ch in text], dtype=np.uint16), "char")

        fields = {"name": [], "x": [], "c": [], "e": []}
        for i, name in enumerate(("first", "second")):
            fields["name"].append(char(name))
            fields["x"].append(value((X + i).T, "double"))
            fields["c"].append(value(np.array([[value(np.array([[1.0]]), "double")], [char("ab")]]), "cell"))
            fields["e"].append(value(np.array([0, 0], dtype=np.uint64), "double", empty=True))
        s = f.create_group("s")
        s.attrs["MATLAB_class"] = np.bytes_("struct")
        for key, column in fields.items():
            s.create_dataset(key, data=np.array(column, dtype=h5py.ref_dtype)[:, None])  # 1 x 2, transposed
        other = f.create_dataset("other", data=np.ones((1, 1)))
        other.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .".ljust(116))


@pytest.fixture(params=["classic", "v73"])
def mat(request, tmp_path: Path) -> Path:
    path = tmp_path / f"{request.param}.mat"
    (write_classic if request.param == "classic" else write_v73)(path)
    assert h5py.is_hdf5(path) == (request.param == "v73")
    return path


def test_both_layouts_read_to_the_same_plain_form(mat: Path):
    out = read_mat(mat, ["s", "other"])
    assert set(out) == {"s", "other"}
    np.testing.assert_array_equal(out["other"], [[1.0]])
    s = out["s"]
    assert isinstance(s, list) and len(s) == 2 and all(set(e) == {"name", "x", "c", "e"} for e in s)
    assert [e["name"] for e in s] == ["first", "second"]
    for i, e in enumerate(s):
        assert e["x"].shape == (2, 3)  # MATLAB's shape, whichever the layout
        np.testing.assert_array_equal(e["x"], X + i)
        assert isinstance(e["c"], list) and len(e["c"]) == 2
        np.testing.assert_array_equal(e["c"][0], [[1.0]])
        assert e["c"][1] == "ab"
        assert isinstance(e["e"], np.ndarray) and e["e"].size == 0


def test_fields_leaves_out_the_struct_fields_not_named(mat: Path):
    s = read_mat(mat, ["s"], fields=["name", "x"])["s"]
    assert [sorted(e) for e in s] == [["name", "x"]] * 2


def test_unreadable_mat_files_name_the_file(tmp_path: Path):
    scipy.io.savemat(tmp_path / "n.mat", {"data": np.random.default_rng(0).normal(size=(200, 100))})
    data = (tmp_path / "n.mat").read_bytes()
    (tmp_path / "t.mat").write_bytes(data[: len(data) // 2])
    (tmp_path / "g.mat").write_bytes(b"garbage" * 100)
    for name in ("t.mat", "g.mat"):
        pattern = rf"{name}: cannot read as a MATLAB \.mat file .*corrupt or truncated"
        with pytest.raises(DatasetError, match=pattern) as info:
            read_mat(tmp_path / name, ["data"])
        assert "\n" not in str(info.value)
    with pytest.raises(DatasetError, match=r"n\.mat: has no variable 'neuron'"):
        read_mat(tmp_path / "n.mat", ["neuron"])
    with pytest.raises(DatasetError, match="does not exist"):
        read_mat(tmp_path / "none.mat", ["data"])


def test_missing_variable_of_a_v73_file_names_the_file(tmp_path: Path):
    write_v73(tmp_path / "b.mat")
    with pytest.raises(DatasetError, match=r"b\.mat: has no variable 'data'"):
        read_mat(tmp_path / "b.mat", ["s", "data"])
