"""Parquet files and saved Hugging Face datasets of canonical records (``exporters.hf``) as ``(row, record)``
pairs for ``canonical_import``. A saved dataset comes as its folder or as the tar archive the exporter
writes; line numbers in errors are row numbers, from 1."""
from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import ValidationError
from ..exporters.hf import JSON_PARTS, record_from_row
from .base import RecordError

NEEDED = {"schema", "campaign_id", "split", *JSON_PARTS}


def _records(rows: Iterator[dict]) -> Iterator[tuple[int, object]]:
    for number, row in enumerate(rows, 1):
        missing = NEEDED - set(row)
        if missing:
            yield number, RecordError("record", f"missing columns {sorted(missing)}")
            continue
        try:
            yield number, record_from_row(row)
        except (TypeError, ValueError) as exc:
            yield number, RecordError("record", f"a JSON column does not parse: {exc}")


def parquet_records(path: Path):
    import pyarrow.parquet as pq

    try:
        pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own error types for a file that is not Parquet
        raise ValidationError(f"not a Parquet file: {exc}", field="file") from exc

    def read() -> Iterator[tuple[int, object]]:
        source = pq.ParquetFile(path)
        yield from _records(row for batch in source.iter_batches(batch_size=1000) for row in batch.to_pylist())

    return read


def dataset_records(path: Path, workdir: Path):
    """Rows of a saved dataset; a tar archive is unpacked into ``workdir`` first (members outside it refused)."""
    import datasets

    folder = path
    if path.is_file():
        try:
            with tarfile.open(path) as tar:
                tar.extractall(workdir, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise ValidationError(f"not a tar archive of a saved dataset: {exc}", field="file") from exc
        found = [p.parent for p in workdir.rglob("dataset_info.json")]
        if not found:
            raise ValidationError("the archive holds no saved dataset (no dataset_info.json)", field="file")
        folder = found[0]
    try:
        data = datasets.load_from_disk(str(folder))
    except Exception as exc:  # datasets raises FileNotFoundError or its own errors
        raise ValidationError(f"not a saved Hugging Face dataset: {exc}", field="file") from exc
    return lambda: _records(iter(data))
