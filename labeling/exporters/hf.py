"""Columnar files of canonical records, lossless (``importers.hf`` reads both back through
``canonical_import``):

- ``parquet``: one Parquet file, written a row group of ``ROWS_PER_GROUP`` records at a time.
- ``hf-datasets``: a Hugging Face ``datasets`` dataset saved with ``save_to_disk``, packed as one tar
  archive (a download is one file); ``datasets.load_from_disk`` reads the unpacked folder.

Columns: ``schema``, ``campaign_id``, ``split``, ``prompt_text`` (the prompt as text: chat prompts rendered),
``chosen`` / ``rejected`` (the decisive pair's texts, null otherwise), and the canonical parts ``prompt``,
``responses``, ``judgment``, ``item``, ``round``, ``lineage`` as JSON strings: their metadata is free-form JSON,
which a fixed Arrow schema cannot hold, and strings keep every value exactly."""
from __future__ import annotations

import json
import tarfile
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from itertools import accumulate, islice
from pathlib import Path
from typing import IO

from . import parquet_join
from .records import RecordExporter, decisive_pair, dumps, prompt_text, register

ROWS_PER_GROUP = 2000
# Min / max statistics only where a reader can use them to skip row groups: on the JSON parts and the
# free texts they would be kilobytes of text per row group (most of the footer) that no filter wants.
STATISTICS = ["schema", "campaign_id", "split"]
JSON_PARTS = ("prompt", "responses", "judgment", "item", "round", "lineage")


def schema():
    import pyarrow as pa

    columns = [("schema", pa.string()), ("campaign_id", pa.int64()), ("split", pa.string()),
               ("prompt_text", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())]
    return pa.schema(columns + [(part, pa.string()) for part in JSON_PARTS])


def flat_row(record: dict, memo: dict | None = None) -> tuple:
    """The row of one record: its values in ``schema()``'s column order, texts as UTF-8 bytes (what Arrow
    stores; the JSON parts are encoded straight to bytes). ``memo``, kept between calls, spares encoding
    again what the records of one item share (the same objects: ``selectors_records``): the prompt and
    responses, most of a row's text."""
    memo = {} if memo is None else memo
    parts = []
    for part in JSON_PARTS:
        value = record[part]
        seen = memo.get(part)
        if seen is None or seen[0] is not value:
            # A copy of its size: orjson's output keeps the 4 KB it was written into, and a row group
            # holds thousands of them (20 MB for nothing).
            seen = memo[part] = (value, bytes(memoryview(dumps(value, sort_keys=True))))
        parts.append(seen[1])
    prompt, responses = record["prompt"], record["responses"]
    seen = memo.get("texts")
    if seen is None or seen[0] is not prompt or seen[1] is not responses:
        seen = memo["texts"] = (prompt, responses, prompt_text(prompt).encode(), [r["text"].encode() for r in responses])
    texts, pair = seen[3], decisive_pair(record)
    return (record["schema"].encode(), record["campaign_id"], record["split"].encode(), seen[2],
            texts[pair[0]] if pair else None, texts[pair[1]] if pair else None, *parts)


def _arrow_array(values: list, kind):
    """The Arrow array of ``values`` (UTF-8 bytes or None for strings; int or None for int64) built from
    its buffers: what ``pa.array`` gives for the decoded values, without the pandas import ``pa.array``
    makes on its first call (pandas costs each export process 50 MB of memory and nothing here uses it)."""
    import numpy as np
    import pyarrow as pa

    present = [value is not None for value in values]
    nulls = len(values) - sum(present)
    validity = pa.py_buffer(np.packbits(np.array(present), bitorder="little")) if nulls else None
    if pa.types.is_int64(kind):
        data = array("q", (0 if value is None else value for value in values))
        return pa.Array.from_buffers(kind, len(values), [validity, pa.py_buffer(data)], nulls)
    if nulls:
        values = [b"" if value is None else value for value in values]
    offsets = array("i", [0])
    offsets.extend(accumulate(map(len, values)))  # int32: a row group's column stays far below 2 GiB
    return pa.Array.from_buffers(kind, len(values), [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(values))],
                                 nulls)


def record_from_row(row: dict) -> dict:
    record = {part: json.loads(row[part]) for part in JSON_PARTS}
    record.update(schema=row["schema"], campaign_id=row["campaign_id"], split=row["split"])
    return record


class _Columnar(RecordExporter):
    extension = "parquet"
    content_type = "application/vnd.apache.parquet"
    container = "binary"

    def __init__(self, raw_options=None):
        super().__init__(raw_options)
        self.memo: dict = {}

    def rows(self, record: dict) -> Iterator[dict]:
        yield flat_row(record, self.memo)


@register
class Parquet(_Columnar):
    name = "parquet"
    help = "Apache Parquet of canonical records (lossless; prompt_text / chosen / rejected columns for training)"

    def write(self, records: Iterable[dict], fh: IO[bytes]) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = self._all_rows(records)
        columns = schema()
        with pq.ParquetWriter(pa.PythonFile(fh, mode="w"), columns, write_statistics=STATISTICS) as writer:
            while batch := list(islice(rows, ROWS_PER_GROUP)):
                arrays = [_arrow_array(list(values), f.type) for values, f in zip(zip(*batch, strict=True), columns, strict=True)]
                writer.write_table(pa.Table.from_arrays(arrays, schema=columns))
        return self.rows_written

    def splittable(self) -> bool:
        return True

    def preload(self) -> None:
        import numpy  # noqa: F401
        import pyarrow.parquet  # noqa: F401

    def combine(self, parts: Iterable[Path], fh: IO[bytes]) -> None:
        """One file of the parts' row groups in order: the same rows and columns as one pass (row groups
        at a part's end may be shorter). The row groups are copied as they are (``parquet_join``); parts
        it can't join so are read and written again."""
        parts = list(parts)
        try:
            parquet_join.join(parts, fh)
            return
        except parquet_join.JoinRefused:  # raised before it wrote anything
            pass
        import pyarrow as pa
        import pyarrow.parquet as pq

        with pq.ParquetWriter(pa.PythonFile(fh, mode="w"), schema(), write_statistics=STATISTICS) as writer:
            for part in parts:
                source = pq.ParquetFile(part)
                for group in range(source.num_row_groups):
                    writer.write_table(source.read_row_group(group))


@register
class HfDatasets(Parquet):
    name = "hf-datasets"
    extension = "tar"
    content_type = "application/x-tar"
    help = "Hugging Face datasets save_to_disk folder of canonical records, as a tar archive"

    def splittable(self) -> bool:
        return False

    def write(self, records: Iterable[dict], fh: IO[bytes]) -> int:
        import datasets

        with tempfile.TemporaryDirectory() as tmp:
            # Through Parquet: datasets then memory-maps Arrow files rather than holding the rows.
            staged = Path(tmp) / "staged.parquet"
            with staged.open("wb") as out:
                Parquet.write(self, records, out)
            data = datasets.Dataset.from_parquet(str(staged), cache_dir=str(Path(tmp) / "cache"),
                                                 features=datasets.Features.from_arrow_schema(schema()))
            folder = Path(tmp) / "dataset"
            data.save_to_disk(str(folder))
            with tarfile.open(fileobj=fh, mode="w|") as tar:
                tar.add(folder, arcname="dataset")
        return self.rows_written
