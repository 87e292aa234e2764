"""Writes ind.<name>.* files as the published Planetoid files are: Python 2 pickles.

The real files were pickled by Python 2 with the numpy and scipy of 2016, so their
globals name `numpy.core.multiarray._reconstruct`, `scipy.sparse.csr.csr_matrix`,
`__builtin__.list`, and their strings and array buffers are Python 2 `str` (BINSTRING
opcodes, which Python 3 reads back with encoding='latin1'). Today's pickle writes
`numpy._core...`, `scipy.sparse._csr` and bytes through `_codecs.encode`, so a test
written with pickle.dump alone would not read what users have.

(Imported as tests.datasets.planetoid_files: with --import-mode=importlib a conftest.py
cannot be imported by name.)
"""

import io
import os
import pickle
import struct

# Today's module -> the module the 2016 versions pickled the same global under.
LEGACY_MODULES = {
    "numpy._core.multiarray": "numpy.core.multiarray",
    "scipy.sparse._csr": "scipy.sparse.csr",
    "builtins": "__builtin__",
    "copyreg": "copy_reg",
}


class Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it: str and bytes as BINSTRING, legacy module names."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_binstring(self, data, obj):
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    def save_bytes(self, obj):
        self._save_binstring(obj, obj)

    def save_str(self, obj):
        try:
            self._save_binstring(obj.encode("ascii"), obj)
        except UnicodeEncodeError:
            super().save_str(obj)

    def save_global(self, obj, name=None):
        name = name or obj.__qualname__
        module = pickle.whichmodule(obj, name)
        module = LEGACY_MODULES.get(module, module)
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii"))
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str
    dispatch[type] = save_global


def dump_python2(obj, path):
    """Pickles obj to path the way Python 2 did (protocol 2)."""
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(obj)
    with open(path, "wb") as f:
        f.write(buffer.getvalue())


def write_planetoid(directory, name, objects, test_index, skip=None):
    """ind.<name>.{x,y,tx,ty,allx,ally,graph} as Python 2 pickles and test.index as text."""
    for part, value in objects.items():
        if part != skip:
            dump_python2(value, os.path.join(directory, f"ind.{name}.{part}"))
    with open(os.path.join(directory, f"ind.{name}.test.index"), "w") as f:
        f.write("".join(f"{int(i)}\n" for i in test_index))
