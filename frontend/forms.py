"""Forms of the admin and researcher pages. They check shape only; the services decide (and their errors are
put back on the form by ``add_service_error``)."""
from __future__ import annotations

from django import forms

from labeling.errors import LoopwiseError
from labeling.models import Campaign, Judgment, Role

from .selectors import AGREEMENT_LEVELS


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200)
    status = forms.ChoiceField(choices=Campaign.Status.choices, initial=Campaign.Status.ACTIVE)
    guidelines = forms.CharField(
        required=False,
        max_length=100_000,
        widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "true"}),
        help_text="Markdown, shown to annotators beside every item.",
    )
    overlap = forms.IntegerField(min_value=1, max_value=50, initial=1, help_text="Judgments wanted per item.")
    pairwise_enabled = forms.BooleanField(required=False, initial=True, label="Pairwise judgments")
    allow_tie = forms.BooleanField(required=False, initial=True, label="Allow ties")
    allow_both_bad = forms.BooleanField(required=False, initial=True, label="Allow “both bad”")
    strength_enabled = forms.BooleanField(required=False, initial=True, label="Ask for strength of preference")
    ranking_enabled = forms.BooleanField(required=False, label="K-way ranking")
    rationale = forms.ChoiceField(choices=Campaign.Rationale.choices, initial=Campaign.Rationale.OPTIONAL)
    lease_seconds = forms.IntegerField(
        min_value=30, max_value=86_400, initial=600, help_text="How long an item stays reserved for an annotator."
    )

    @classmethod
    def for_campaign(cls, campaign: Campaign) -> CampaignForm:
        return cls(initial={name: getattr(campaign, name) for name in cls.base_fields})


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)


class MemberChangeForm(forms.Form):
    ACTIONS = [("remove", "Remove"), ("pause", "Pause"), ("resume", "Resume")]

    user_id = forms.IntegerField()
    role = forms.ChoiceField(choices=Role.choices)
    action = forms.ChoiceField(choices=ACTIONS)


class JudgmentFilterForm(forms.Form):
    round = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    annotator = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    kind = forms.ChoiceField(choices=[("", "Any kind"), *Judgment.Kind.choices], required=False)
    agreement = forms.ChoiceField(choices=[("", "Any agreement"), *AGREEMENT_LEVELS], required=False)

    def __init__(self, *args, rounds=(), annotators=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["round"].choices = [("", "Any round")] + [(r.pk, f"Round {r.number}") for r in rounds]
        self.fields["annotator"].choices = [("", "Anyone")] + [(u.pk, u.username) for u in annotators]


class MarkdownPreviewForm(forms.Form):
    text = forms.CharField(required=False, max_length=100_000, strip=False)


def add_service_error(form: forms.Form, error: LoopwiseError) -> None:
    """Show a service's error on the field it names, or on the form."""
    field = error.field if error.field in form.fields else None
    form.add_error(field, error.message)
