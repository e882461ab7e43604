"""tf.train.Example wire format for the split job, without importing TensorFlow.

Why not `schema.make_example`: importing TensorFlow costs each Beam worker process
~2.5 CPU-seconds and ~300 MB of RSS, which on a small job is more than decoding the
images; and TensorFlow serializes the feature map in a process-dependent order, so
two runs with different worker counts would write the same records as different
bytes. This encoder writes exactly what `tf.train.Example.SerializeToString(
deterministic=True)` writes (map entries sorted by key, packed int64 lists), with
the keys of fixmatch.data.schema; tests check both against TensorFlow.
"""

import functools
from typing import Dict, List, Tuple, Union

from fixmatch.data import schema

_LEN, _VARINT, _I64, _I32 = 2, 0, 1, 5
_SMALL = [bytes((i,)) for i in range(0x80)]


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _SMALL[value]
    value &= 0xFFFFFFFFFFFFFFFF  # negative int64 -> two's complement, as protobuf does
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _LEN) + _varint(len(payload)) + payload


def _feature(value: Union[bytes, int]) -> bytes:
    if isinstance(value, bytes):
        return _len_field(1, _len_field(1, value))            # bytes_list.value
    return _len_field(3, _len_field(1, _varint(int(value))))  # int64_list.value, packed


@functools.lru_cache(maxsize=64)
def _key_field(key: str) -> bytes:
    return _len_field(1, key.encode("utf-8"))


def encode_example(features: Dict[str, Union[bytes, int]]) -> bytes:
    """Serialized Example with one bytes or int64 value per key."""
    entries = b"".join(
        _len_field(1, _key_field(key) + _len_field(2, _feature(value)))
        for key, value in sorted(features.items()))
    return _len_field(1, entries)


def make_example(*, encoded: bytes, filename: str, label: int, synset: str,
                 height: int, width: int) -> bytes:
    """Same record as `schema.make_example`, deterministic bytes, no TensorFlow."""
    return encode_example({
        schema.ENCODED: encoded, schema.FORMAT: b"JPEG",
        schema.FILENAME: filename.encode("utf-8"), schema.LABEL: int(label),
        schema.SYNSET: synset.encode("utf-8"), schema.HEIGHT: int(height),
        schema.WIDTH: int(width)})


def _read_varint(data: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes):
    """Yield (field number, wire type, value) of one message (value: int or bytes)."""
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value, pos = _read_varint(data, pos)
        elif wire == _LEN:
            size, pos = _read_varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
            if len(value) != size:
                raise ValueError("truncated field")
        elif wire in (_I64, _I32):
            width = 8 if wire == _I64 else 4
            value, pos = data[pos:pos + width], pos + width
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def decode_features(data: bytes) -> Dict[str, List[Union[bytes, int]]]:
    """Serialized Example -> {key: bytes or int64 values} (float lists are skipped)."""
    out: Dict[str, List[Union[bytes, int]]] = {}
    for number, _, features in _fields(data):
        if number != 1:
            continue
        for entry_number, _, entry in _fields(features):
            if entry_number != 1:
                continue
            key, feature = "", b""
            for n, _, v in _fields(entry):
                if n == 1:
                    key = v.decode("utf-8")
                elif n == 2:
                    feature = v
            values: List[Union[bytes, int]] = []
            for kind, _, lst in _fields(feature):
                for n, wire, v in _fields(lst):
                    if n != 1:
                        continue
                    if kind == 1:
                        values.append(bytes(v))
                    elif kind == 3 and wire == _LEN:  # packed int64s
                        pos = 0
                        while pos < len(v):
                            item, pos = _read_varint(v, pos)
                            values.append(_int64(item))
                    elif kind == 3:
                        values.append(_int64(v))
            out[key] = values
    return out
