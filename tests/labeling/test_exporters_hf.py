"""The Parquet writer (``exporters.hf``): arrays built from their buffers, statistics where filters use them,
and no pandas in an export process."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labeling.exporters.hf import STATISTICS, Parquet, _arrow_array, schema


@pytest.mark.parametrize("values,kind", [
    (["a", None, "é\n\"quoted\"", "", "😀" * 3], pa.string()),
    ([None, None], pa.string()),
    ([], pa.string()),
    (["x" * 5000] * 9, pa.string()),  # 9 values: a validity bitmap's partial last byte
    ([1, None, 2**62, -5, 0, 7, 8, 9, None], pa.int64()),
])
def test_arrays_built_from_buffers_are_what_pa_array_gives(values, kind):
    built = _arrow_array([v.encode() if isinstance(v, str) else v for v in values], kind)
    built.validate(full=True)
    assert built.equals(pa.array(values, type=kind))
    assert built.null_count == values.count(None)


def _record(i: int, winner) -> dict:
    prompt = {"id": i // 3, "kind": "text", "text": f"prompt {i // 3}", "messages": [], "metadata": {}}
    responses = [{"id": 2 * i, "text": f"left {i}"}, {"id": 2 * i + 1, "text": f"right {i}"}]
    return {"schema": "loopwise.judgment/1", "campaign_id": 7, "split": ("train", "test")[i % 2], "prompt": prompt,
            "responses": responses, "item": {"id": i // 3}, "round": {"id": 1, "number": 1},
            "judgment": {"id": i, "winner": winner}, "lineage": {"judgment_ids": [i]}}


def test_only_the_columns_filters_use_carry_statistics():
    out = io.BytesIO()
    Parquet().write([_record(i, None if i % 4 == 0 else i % 2) for i in range(10)], out)
    table = pq.read_table(io.BytesIO(out.getvalue()))
    assert table.num_rows == 10 and table.schema.equals(schema())
    assert table.column("chosen").null_count == 3  # ties have no decisive pair
    group = pq.ParquetFile(io.BytesIO(out.getvalue())).metadata.row_group(0)
    with_stats = {group.column(i).path_in_schema for i in range(group.num_columns) if group.column(i).is_stats_set}
    assert with_stats == set(STATISTICS)
    assert pq.read_table(io.BytesIO(out.getvalue()), filters=[("split", "=", "test")]).num_rows == 5


def test_writing_parquet_does_not_import_pandas():
    """``pa.array`` imports pandas (50 MB per export process); the writer must not call it. In a fresh
    interpreter, as the test process may have pandas already."""
    code = textwrap.dedent("""
        import io, sys
        import django
        django.setup()
        from labeling.exporters.hf import Parquet
        from tests.labeling.test_exporters_hf import _record
        Parquet().write([_record(i, i % 2) for i in range(5)], io.BytesIO())
        assert "pyarrow" in sys.modules
        print("pandas" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_arrow_allocates_with_malloc_in_django_processes():
    """Settings choose Arrow's system pool before pyarrow loads: its jemalloc kept ~25 MB of freed pages in
    each export process."""
    assert pa.default_memory_pool().backend_name == "system"
