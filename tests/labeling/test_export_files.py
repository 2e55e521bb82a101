"""Appending export parts (``exporters.files``) and the export job's hashing writer that copies them by the
kernel (``services.snapshots._HashingWriter``)."""
from __future__ import annotations

import hashlib
import io
import os

import pytest

from labeling.exporters.files import append_file, copy_range
from labeling.services.snapshots import _HashingWriter

DATA = bytes(range(256)) * 9000  # 2.3 MB: more than one block


@pytest.fixture
def part(tmp_path):
    path = tmp_path / "part"
    path.write_bytes(DATA)
    return path


def test_a_range_appends_to_any_binary_file(part):
    out = io.BytesIO(b"head:")
    out.seek(0, 2)
    append_file(out, part, 7, 1_500_000)
    append_file(out, part)
    assert out.getvalue() == b"head:" + DATA[7:1_500_007] + DATA


def test_the_hashing_writer_hashes_and_counts_what_the_kernel_copies(part, tmp_path):
    target = tmp_path / "out"
    with open(target, "wb") as fh:
        writer = _HashingWriter(fh, hashlib.sha256())
        writer.write(b"PAR1")
        append_file(writer, part, 4, len(DATA) - 4)
        writer.write(b"footer")  # written after the copy, where the copy ended
        append_file(writer, part, 0, 10)
        assert writer.tell() == 4 + len(DATA) - 4 + 6 + 10
    expected = b"PAR1" + DATA[4:] + b"footer" + DATA[:10]
    assert target.read_bytes() == expected
    assert writer.digest.hexdigest() == hashlib.sha256(expected).hexdigest() and writer.size == len(expected)


def test_a_part_shorter_than_its_range_is_an_error(part, tmp_path):
    with open(tmp_path / "out", "wb") as fh, pytest.raises(OSError, match="ended"):
        append_file(_HashingWriter(fh, hashlib.sha256()), part, len(DATA) - 5, 10)


def test_where_the_kernel_cannot_copy_the_bytes_are_read_and_written(part):
    """copy_file_range copies between regular files only: into a pipe the bytes go through Python."""
    read, write = os.pipe()
    with open(part, "rb") as src, os.fdopen(write, "wb") as out:
        copy_range(src, out, 100, 30_000)  # fits the pipe's buffer: no reader needed meanwhile
    with os.fdopen(read, "rb") as pipe:
        assert pipe.read() == DATA[100:30_100]
