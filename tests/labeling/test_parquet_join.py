"""Joining Parquet parts by copying their row groups (``exporters.parquet_join``)."""
from __future__ import annotations

import hashlib
import io
import struct

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labeling.exporters import parquet_join as pj
from labeling.exporters.hf import Parquet, schema
from labeling.services.snapshots import _HashingWriter


def _tables():
    first = pa.table({"id": list(range(5000)), "text": [f"x{i % 7}" for i in range(5000)],
                      "score": [i / 3 for i in range(5000)], "flag": [i % 2 == 0 for i in range(5000)]})
    second = pa.table({"id": list(range(5000, 8000)), "text": [None if i % 5 == 0 else f"é{i}" for i in range(3000)],
                       "score": [float(i) for i in range(3000)], "flag": [True] * 3000})
    return first, second


def _parts(tmp_path, tables, **options):
    paths = []
    for i, table in enumerate(tables):
        paths.append(tmp_path / f"part{i}.parquet")
        pq.write_table(table, paths[-1], row_group_size=2000, **options)
    return paths


def _footer(data: bytes) -> bytes:
    length = struct.unpack("<I", data[-8:-4])[0]
    return data[-8 - length : -8]


@pytest.mark.parametrize("options", [{}, {"write_page_index": True}, {"write_statistics": False},
                                     {"compression": "zstd"}, {"use_dictionary": False}])
def test_joined_file_holds_every_row_in_order_in_the_parts_row_groups(tmp_path, options):
    first, second = _tables()
    paths = _parts(tmp_path, [first, first.slice(0, 0), second], **options)
    out = io.BytesIO()
    pj.join(paths, out)
    joined = pq.ParquetFile(io.BytesIO(out.getvalue()))
    assert joined.read().equals(pa.concat_tables([first, second]))
    sizes = [joined.metadata.row_group(i).num_rows for i in range(joined.num_row_groups)]
    expected = [pq.ParquetFile(p).metadata.row_group(i).num_rows for p in paths
                for i in range(pq.ParquetFile(p).num_row_groups)]
    assert sizes == expected and joined.metadata.num_rows == 8000
    # Statistics (where written) still let a filter skip row groups, and every group reads on its own.
    assert pq.read_table(io.BytesIO(out.getvalue()), filters=[("id", ">=", 7990)]).num_rows == 10
    assert sum(joined.read_row_group(i).num_rows for i in range(joined.num_row_groups)) == 8000


def test_moved_offsets_point_at_the_same_bytes_as_in_the_part(tmp_path):
    """Every offset of the second part's footer (pages, dictionary, page indexes) is moved by where its
    data landed: the bytes there are the bytes the part had there."""
    paths = _parts(tmp_path, _tables(), write_page_index=True)
    out = io.BytesIO()
    pj.join(paths, out)
    joined, part = out.getvalue(), paths[1].read_bytes()
    shift = len(paths[0].read_bytes()) - 8 - len(_footer(paths[0].read_bytes())) - len(pj.MAGIC)
    groups = pj._get(pj.decode(_footer(part)), pj.FILE_ROW_GROUPS)[2][1]
    checked = 0
    for group in groups:
        for chunk in pj._get(group, pj.GROUP_COLUMNS)[2][1]:
            meta = pj._get(chunk, pj.CHUNK_META)[2]
            spots = [f[2] for f in meta if f[0] in pj.META_OFFSETS] + [f[2] for f in chunk if f[0] in pj.CHUNK_OFFSETS[1:]]
            for at in spots:
                assert joined[at + shift : at + shift + 16] == part[at : at + 16]
                checked += 1
    assert checked >= len(groups) * 4 * 3  # per column chunk: its data page and both page indexes, at least


def test_footers_decode_and_encode_back_byte_for_byte(tmp_path):
    for options in ({}, {"write_page_index": True}, {"compression": "zstd"}):
        for path in _parts(tmp_path, _tables(), **options):
            footer = _footer(path.read_bytes())
            assert pj.encode(pj.decode(footer)) == footer


def test_parts_of_different_schemas_are_refused_before_anything_is_written(tmp_path):
    first, second = _tables()
    paths = _parts(tmp_path, [first, second.drop(["flag"])])
    out = io.BytesIO()
    with pytest.raises(pj.JoinRefused, match="part1.parquet"):
        pj.join(paths, out)
    assert out.getvalue() == b""


def test_a_file_that_is_not_parquet_is_refused(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(pj.JoinRefused, match="bad.parquet"):
        pj.join([bad], io.BytesIO())


def test_the_exporter_joins_parts_it_cannot_copy_by_rewriting_them(tmp_path):
    """Parts whose footers differ (here: extra file metadata on one) are read and written again: the same
    rows in one file of the export's schema."""
    columns = schema()
    row = {"schema": "s", "campaign_id": 1, "split": "train", "prompt_text": "p", "chosen": "a", "rejected": "b",
           **{part: "{}" for part in ("prompt", "responses", "judgment", "item", "round", "lineage")}}
    plain = pa.Table.from_pylist([row, row], schema=columns)
    tagged = pa.Table.from_pylist([row], schema=columns.with_metadata({"note": "other"}))
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    pq.write_table(plain, paths[0])
    pq.write_table(tagged, paths[1])
    with pytest.raises(pj.JoinRefused):
        pj.join(paths, io.BytesIO())
    out = tmp_path / "out.parquet"
    with open(out, "wb") as fh:
        Parquet().combine(paths, fh)
    table = pq.read_table(out)
    assert table.num_rows == 3 and table.schema.equals(columns)


def test_the_export_jobs_hashing_writer_takes_the_rewritten_join(tmp_path):
    """The job writes through its hashing writer (no seek): a refused join must have written nothing to it,
    and the rewritten file's hash is the hash of what lands on disk."""
    columns = schema()
    row = {"schema": "s", "campaign_id": 1, "split": "train", "prompt_text": "p", "chosen": "a", "rejected": "b",
           **{part: "{}" for part in ("prompt", "responses", "judgment", "item", "round", "lineage")}}
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    pq.write_table(pa.Table.from_pylist([row], schema=columns), paths[0])
    pq.write_table(pa.Table.from_pylist([row], schema=columns.with_metadata({"note": "other"})), paths[1])
    out = tmp_path / "out.parquet"
    with open(out, "wb") as fh:
        writer = _HashingWriter(fh, hashlib.sha256())
        Parquet().combine(paths, writer)
    assert pq.read_table(out).num_rows == 2
    assert writer.digest.hexdigest() == hashlib.sha256(out.read_bytes()).hexdigest()
