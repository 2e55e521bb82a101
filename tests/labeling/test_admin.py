"""Django admin: every registered model's list, search and add pages render for a superuser (with data in
them, so list_display and list_select_related are exercised)."""
from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from labeling.services.queue import assignment_next, judgment_record
from labeling.services.validation import JudgmentInput
from tests.factories import ItemFactory, UserFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    item = ItemFactory()
    annotator = member(item.campaign)
    slot = assignment_next(user=annotator, campaign=item.campaign)
    judgment_record(user=annotator, assignment_id=slot.pk, data=JudgmentInput(tie=True))
    return client


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_admin_pages_render(superuser_client, model):
    opts = model._meta
    changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    assert superuser_client.get(changelist).status_code == 200
    assert superuser_client.get(changelist, {"q": "x"}).status_code == 200
    add = superuser_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    assert add.status_code == (403 if getattr(admin.site._registry[model], "read_only", False) else 200)
    first = model.objects.first()
    if first is not None:
        change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk])
        assert superuser_client.get(change).status_code == 200
