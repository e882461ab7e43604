"""TFRecord framing with byte offsets, over Beam FileSystems (local or gs://).

Beam's own TFRecord source/sink cannot say where a record lives, and its sink
shuffles whole records through a GroupByKey. The split job instead plans with
small (path, offset, length) references and has each shard writer fetch and
write records itself, so image bytes never pass through a shuffle (the direct
runner would hold every shuffled byte in memory). Format: uint64 length,
masked crc32c of the length, data, masked crc32c of the data.
"""

import struct
from typing import BinaryIO, Iterator, Tuple

import google_crc32c
from apache_beam.io.filesystems import FileSystems

_MASK_DELTA = 0xA282EAD8


class RecordError(ValueError):
    """A TFRecord file is truncated or fails its checksums."""


def masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def write_record(f: BinaryIO, data: bytes) -> int:
    """Append one record; returns the number of bytes written."""
    header = struct.pack("<Q", len(data))
    f.write(header)
    f.write(struct.pack("<I", masked_crc(header)))
    f.write(data)
    f.write(struct.pack("<I", masked_crc(data)))
    return len(data) + 16


def _read_exact(f: BinaryIO, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = f.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_one(f: BinaryIO, path: str, offset: int):
    header = _read_exact(f, 12)
    if not header:
        return None
    if len(header) < 12:
        raise RecordError(f"{path}: truncated record header at byte {offset}")
    length_bytes, (length_crc,) = header[:8], struct.unpack("<I", header[8:])
    if masked_crc(length_bytes) != length_crc:
        raise RecordError(f"{path}: corrupt record length at byte {offset}")
    (length,) = struct.unpack("<Q", length_bytes)
    body = _read_exact(f, length + 4)
    if len(body) < length + 4:
        raise RecordError(f"{path}: truncated record at byte {offset}")
    data, (data_crc,) = body[:length], struct.unpack("<I", body[length:])
    if masked_crc(data) != data_crc:
        raise RecordError(f"{path}: record at byte {offset} fails its checksum")
    return data


def scan_records(path: str) -> Iterator[Tuple[int, bytes]]:
    """Yield (offset, data) for every record of a TFRecord file, in order."""
    with FileSystems.open(path, compression_type="uncompressed") as f:
        offset = 0
        while True:
            data = _read_one(f, path, offset)
            if data is None:
                return
            yield offset, data
            offset += len(data) + 16


def read_record_at(f: BinaryIO, path: str, offset: int) -> bytes:
    """The record starting at `offset` of an open seekable file."""
    f.seek(offset)
    data = _read_one(f, path, offset)
    if data is None:
        raise RecordError(f"{path}: no record at byte {offset}")
    return data
