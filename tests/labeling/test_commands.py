"""Management commands: what they create, and exit code 2 with a message on bad input."""
from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labeling.models import Campaign, ComparisonItem, Membership
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def run(*args, **env):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_campaign_create_with_members_and_guidelines(tmp_path):
    UserFactory(username="ann")
    UserFactory(username="boss")
    guide = tmp_path / "g.md"
    guide.write_text("# Be kind", encoding="utf-8")
    out = run("campaign_create", "Safety", "--overlap", "3", "--ranking", "--guidelines-file", str(guide), "--annotator", "ann", "--admin", "boss")
    campaign = Campaign.objects.get(pk=int(out.strip()))
    assert campaign.overlap == 3 and campaign.ranking_enabled and campaign.guidelines == "# Be kind"
    assert set(Membership.objects.filter(campaign=campaign).values_list("user__username", "role")) == {("ann", "annotator"), ("boss", "admin")}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["campaign_create", "X", "--annotator", "ghost"], "no such user"),
        (["campaign_create", "X", "--overlap", "0"], "overlap must be between 1 and 50"),
        (["campaign_create", "X", "--guidelines-file", "/nonexistent.md"], "not found"),
        (["campaign_create", "X", "--no-pairwise"], "at least one judgment kind"),
    ],
)
def test_campaign_create_refuses_bad_input_with_exit_code_2(args, message):
    with pytest.raises(CommandError, match=message) as exc:
        run(*args)
    assert exc.value.returncode == 2
    assert not Campaign.objects.exists()


def test_user_create_takes_the_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("LOOPWISE_PASSWORD", "a-Long-and-unusual-passphrase")
    out = run("user_create", "alice", "--token")
    assert "created user alice" in out and "token:" in out
    with pytest.raises(CommandError, match="already exists"):
        run("user_create", "alice")
    monkeypatch.setenv("LOOPWISE_PASSWORD", "123")
    with pytest.raises(CommandError, match="password refused") as exc:
        run("user_create", "bob")
    assert exc.value.returncode == 2
    monkeypatch.delenv("LOOPWISE_PASSWORD")
    with pytest.raises(CommandError, match=r"\$LOOPWISE_PASSWORD"):
        run("user_create", "carol")


def test_seed_demo_is_idempotent():
    first = run("seed_demo")
    second = run("seed_demo")
    assert "seeded campaign" in first and "already seeded" in second
    campaign = Campaign.objects.get()
    assert ComparisonItem.objects.filter(campaign=campaign).count() == 19
    assert campaign.items.filter(kind="ranking").count() == 3
