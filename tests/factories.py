"""factory_boy factories for the labeling models. ``ItemFactory`` builds a complete item: prompt, responses,
links and ``campaign.overlap`` open slots, exactly as the import service would."""
from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from labeling.models import (
    Assignment,
    Campaign,
    ComparisonItem,
    ItemResponse,
    Membership,
    Prompt,
    Response,
    Role,
    Round,
)
from labeling.services.items import PromptSpec, item_hash, prompt_hash, response_hash


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("pw-Loopwise-1")


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Campaign {n}")
    guidelines = "Prefer the more helpful and harmless answer."
    overlap = 1

    @factory.post_generation
    def first_round(obj, create, extracted, **kwargs):
        if create and not obj.rounds.exists():
            Round.objects.create(campaign=obj, number=1, name="Round 1")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    campaign = factory.SubFactory(CampaignFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.ANNOTATOR


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    campaign = factory.SubFactory(CampaignFactory)
    text = factory.Sequence(lambda n: f"Prompt number {n}: explain something.")
    messages = factory.LazyFunction(list)
    content_hash = factory.LazyAttribute(lambda p: prompt_hash(PromptSpec(text=p.text, messages=p.messages)))


class ResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Response

    prompt = factory.SubFactory(PromptFactory)
    text = factory.Sequence(lambda n: f"Response {n}.")
    content_hash = factory.LazyAttribute(lambda r: response_hash(r.text))


class ItemFactory(factory.django.DjangoModelFactory):
    """An item with ``n_responses`` responses (2: pairwise, more: ranking) and ``campaign.overlap`` free slots
    in the campaign's first round, as the import service builds it."""

    class Meta:
        model = ComparisonItem
        skip_postgeneration_save = True

    campaign = factory.SubFactory(CampaignFactory)
    round = factory.LazyAttribute(lambda o: o.campaign.rounds.order_by("number").first())
    prompt = factory.LazyAttribute(lambda o: PromptFactory(campaign=o.campaign))
    content_hash = factory.Sequence(lambda n: f"item-{n}")

    @factory.post_generation
    def n_responses(item, create, extracted, **kwargs):
        if not create:
            return
        n = extracted or 2
        responses = [ResponseFactory(prompt=item.prompt, round=item.round) for _ in range(n)]
        ItemResponse.objects.bulk_create([ItemResponse(item=item, response=r, position=i) for i, r in enumerate(responses)])
        item.kind = ComparisonItem.Kind.PAIRWISE if n == 2 else ComparisonItem.Kind.RANKING
        item.content_hash = item_hash(item.prompt.content_hash, [r.text for r in responses])
        item.save(update_fields=["kind", "content_hash"])
        Assignment.objects.bulk_create(
            [Assignment(campaign=item.campaign, round=item.round, item=item) for _ in range(item.campaign.overlap)]
        )


def member(campaign, role=Role.ANNOTATOR, user=None, **kwargs):
    """A user holding ``role`` in ``campaign`` (a new user unless one is given)."""
    user = user or UserFactory(**kwargs)
    Membership.objects.get_or_create(campaign=campaign, user=user, role=role)
    return user
