"""``manage.py import_file`` and ``manage.py export``: output, messages and exit codes."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from labeling.models import ComparisonItem, Prompt
from tests.conftest import REPO
from tests.factories import CampaignFactory

GOOD = [{"prompt": f"Q{n}?", "chosen": f"yes {n}", "rejected": f"no {n}"} for n in range(3)]


def _file(tmp_path: Path, rows, name="pairs.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_import_prints_the_report_and_takes_the_campaign_by_name(tmp_path):
    campaign = CampaignFactory(name="Helpfulness")
    out, _ = _run("import_file", "Helpfulness", str(_file(tmp_path, GOOD + GOOD[:1])), "--label-source", "vendor")
    assert "format: trl (jsonl)" in out and "items created: 3, judgments created: 3" in out
    assert "duplicates (not imported again): 1, lines 4" in out
    assert ComparisonItem.objects.filter(campaign=campaign).count() == 3
    out, _ = _run("import_file", str(campaign.pk), str(_file(tmp_path, GOOD)), "--dry-run", "--json")
    assert json.loads(out)["duplicates_count"] == 3 and json.loads(out)["dry_run"] is True


@pytest.mark.django_db
def test_a_rejected_file_lists_each_error_on_stderr_and_exits_2(tmp_path):
    campaign = CampaignFactory()
    rows = [GOOD[0], {"prompt": "Q", "chosen": 3, "rejected": "r"}, {"prompt": "Q", "rejected": "r"}]
    err = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("import_file", str(campaign.pk), str(_file(tmp_path, rows)), "--format", "trl", stderr=err)
    assert caught.value.returncode == 2 and "2 error(s) in the file; nothing was imported" in str(caught.value)
    assert err.getvalue().splitlines() == [
        "line 2, field chosen: expected a string, got a number",
        "line 3, field chosen: missing",
    ]
    assert not Prompt.objects.exists()


@pytest.mark.django_db
def test_import_refuses_a_missing_file_or_campaign_with_exit_2(tmp_path):
    campaign = CampaignFactory()
    for args in ([str(campaign.pk), str(tmp_path / "nope.jsonl")], ["No such campaign", str(_file(tmp_path, GOOD))]):
        with pytest.raises(CommandError) as caught:
            _run("import_file", *args)
        assert caught.value.returncode == 2


@pytest.mark.django_db
def test_export_writes_a_file_or_stdout_and_exits_2_on_a_bad_option(tmp_path):
    campaign = CampaignFactory()
    _run("import_file", str(campaign.pk), str(_file(tmp_path, GOOD)))
    target = tmp_path / "out.jsonl"
    _, err = _run("export", str(campaign.pk), "--style", "conversational", "-o", str(target))
    assert err.strip() == f"wrote 3 records to {target}" and not (tmp_path / "out.jsonl.part").exists()
    assert json.loads(target.read_text().splitlines()[0])["chosen"] == [{"role": "assistant", "content": "yes 0"}]
    out, _ = _run("export", str(campaign.pk), "--margin", "strength", "--round", "1")
    assert [json.loads(line) for line in out.splitlines()][2] == {**GOOD[2], "margin": 0.0}
    for bad in (["--ties", "maybe"], ["--format", "parquet"], ["--option", "colour=red"], ["--round", "7"]):
        with pytest.raises(CommandError) as caught:
            _run("export", str(campaign.pk), *bad)
        assert caught.value.returncode == 2, bad
    with pytest.raises(CommandError, match=r"ties must be one of \['drop', 'keep'\] \(got 'maybe'\) \(ties\)"):
        _run("export", str(campaign.pk), "--ties", "maybe")


@pytest.mark.django_db(transaction=True)
def test_the_real_process_exits_2_and_prints_errors_to_stderr(tmp_path):
    """Through manage.py, as a user runs it: the exit status and the stderr lines."""
    campaign = CampaignFactory()
    path = _file(tmp_path, [GOOD[0], {"prompt": "", "chosen": "a", "rejected": "b"}])
    if connection.vendor != "postgresql":
        pytest.skip("the subprocess needs the test database in a server")
    db = connection.settings_dict
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    done = subprocess.run(
        [sys.executable, "manage.py", "import_file", str(campaign.pk), str(path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "line 2, field prompt: is empty" in done.stderr.splitlines()
    assert "CommandError" in done.stderr and not Prompt.objects.exists()
