"""Read a CTranslate2 `model.bin` (binary version 6) into named numpy arrays.

The layout is what `ctranslate2/specs/model_spec.py::_serialize` writes, all little-endian:

    u32 binary_version
    str spec_name                  (str = u16 length incl. NUL, utf-8 bytes, NUL)
    u32 spec_revision
    u32 n_variables
    n_variables x { str name; u8 rank; rank x u32 dim; u8 dtype_id; u32 n_bytes; n_bytes data }
    u32 n_aliases
    n_aliases x { str alias; str target_name }

dtype ids follow `_dtype_to_type_id`: float32, int8, int16, int32, float16, bfloat16.
The model config (Whisper's suppress ids, ...) lives in config.json beside model.bin, not here.
Only version 6 (what ctranslate2 >= 3 writes) is accepted: older layouts differ in details
that no model we ship uses, and guessing them would read garbage silently.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intervox.errors import UpstreamError

# Order of ctranslate2's DataType enum (include/ctranslate2/types.h). bfloat16 has no numpy
# dtype: it is read as uint16 and widened by hand (see `_bf16_to_f32`).
DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


@dataclass(frozen=True)
class CT2Model:
    """The variables of a CTranslate2 model: spec name, revision and name -> array."""

    spec: str
    revision: int
    binary_version: int
    variables: dict[str, np.ndarray]

    def get(self, name: str) -> np.ndarray:
        """Return variable `name`; raise UpstreamError naming it if absent."""
        try:
            return self.variables[name]
        except KeyError:
            raise UpstreamError(f"CTranslate2 model ({self.spec}) has no variable {name!r}") from None


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


class _Cursor:
    """Sequential reader over a bytes buffer that names the file on truncation."""

    def __init__(self, data: memoryview, path: str) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise UpstreamError(f"{self.path}: truncated CTranslate2 model.bin (need {n} bytes at "
                                f"{self.pos})")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        n = self.unpack("H")
        return bytes(self.take(n))[:-1].decode("utf-8")  # drop the trailing NUL


def read_ct2_model(path: str | Path, prefix: str = "") -> CT2Model:
    """Return the variables of CTranslate2 `model.bin` at `path` whose names start with `prefix`.

    Arrays are copies (the file is not kept open); aliases resolve to their target's array.
    Raises UpstreamError naming the file when it is missing, truncated or not a ct2 model.
    """
    path = Path(path)
    try:
        data = memoryview(path.read_bytes())
    except OSError as exc:
        raise UpstreamError(f"{path}: cannot read CTranslate2 model ({exc})") from exc
    cur = _Cursor(data, str(path))
    version = cur.unpack("I")
    if version != 6:
        raise UpstreamError(f"{path}: not a supported CTranslate2 model.bin "
                            f"(binary version {version}, expected 6)")
    spec = cur.string()
    revision = cur.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(cur.unpack("I")):
        name = cur.string()
        shape = tuple(cur.unpack("I") for _ in range(cur.unpack("B")))
        type_id = cur.unpack("B")
        n_bytes = cur.unpack("I")
        if type_id >= len(DTYPES):
            raise UpstreamError(f"{path}: variable {name!r} has unknown dtype id {type_id}")
        raw = cur.take(n_bytes)
        if not name.startswith(prefix):
            continue
        dtype = DTYPES[type_id]
        arr = np.frombuffer(raw, dtype=np.uint16 if dtype == "bfloat16" else dtype).copy()
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise UpstreamError(f"{path}: variable {name!r} has {n_bytes} bytes, not shape {shape} x {dtype}")
        if dtype == "bfloat16":
            arr = _bf16_to_f32(arr)
        variables[name] = arr.reshape(shape)
    for _ in range(cur.unpack("I")):
        alias, target = cur.string(), cur.string()
        if alias.startswith(prefix) and target in variables:
            variables[alias] = variables[target]
    return CT2Model(spec=spec, revision=revision, binary_version=version, variables=variables)
