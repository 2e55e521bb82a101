"""The labeling core: campaigns, their members, rounds, prompts, responses, comparison items, the annotator
queue (one Assignment row per judgment slot) and judgments.

Lineage first: every judgment points at the slot it filled, the item, the exact responses (by id, never by
screen position) and the order they were shown in; every response says what produced it. The RLHF app links
responses to policy versions from its own side, so this app never imports it.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    ANNOTATOR = "annotator", "Annotator"
    RESEARCHER = "researcher", "Researcher"


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        ARCHIVED = "archived", "Archived"

    class Rationale(models.TextChoices):
        OFF = "off", "Off"
        OPTIONAL = "optional", "Optional"
        REQUIRED = "required", "Required"

    name = models.CharField(max_length=200, unique=True)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators beside every item.")
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Judgments wanted per item (k).")
    # Which judgment kinds are on.
    pairwise_enabled = models.BooleanField(default=True)
    allow_tie = models.BooleanField(default=True)
    allow_both_bad = models.BooleanField(default=True)
    strength_enabled = models.BooleanField(default=True, help_text="Strength of preference 1-3.")
    ranking_enabled = models.BooleanField(default=False, help_text="K-way ranking with ties.")
    rationale = models.CharField(max_length=10, choices=Rationale.choices, default=Rationale.OPTIONAL)
    lease_seconds = models.PositiveIntegerField(default=600)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # Quality control (labeling.services.quality): gold mixing, low-effort checks, dynamic overlap, review.
    gold_rate = models.FloatField(default=0.0, help_text="Share of queue requests served a gold item (0-0.5).")
    gold_min_accuracy = models.FloatField(
        null=True, blank=True, help_text="Recent gold accuracy below this pauses or flags an annotator; null: off."
    )
    gold_min_judged = models.PositiveSmallIntegerField(default=5, help_text="Gold items judged before the check.")
    gold_action = models.CharField(max_length=5, choices=[("flag", "Flag"), ("pause", "Pause")], default="flag")
    min_time_ms = models.PositiveIntegerField(default=1500, help_text="Judgments faster than this are flagged; 0: off.")
    position_streak = models.PositiveSmallIntegerField(
        default=12, help_text="Flag after this many picks of the same shown position in a row; 0: off."
    )
    tie_streak = models.PositiveSmallIntegerField(default=8, help_text="Flag after this many ties in a row; 0: off.")
    overlap_mode = models.CharField(
        max_length=7, choices=[("fixed", "Fixed"), ("dynamic", "Dynamic")], default="fixed",
        help_text="dynamic: start at overlap, add slots up to overlap_max while the consensus is uncertain.",
    )
    overlap_max = models.PositiveSmallIntegerField(default=5)
    consensus_threshold = models.FloatField(default=0.9, help_text="Dynamic overlap stops once confidence reaches it.")
    review_threshold = models.FloatField(default=0.7, help_text="Items whose consensus is below go to review.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1) & Q(overlap__lte=50), name="campaign_overlap_1_50"),
            models.CheckConstraint(
                condition=Q(pairwise_enabled=True) | Q(ranking_enabled=True), name="campaign_some_kind_on"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """One role of one user in one campaign. A user may hold several roles (annotator and researcher)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=12, choices=Role.choices)
    paused = models.BooleanField(default=False, help_text="A paused annotator gets no new items.")
    pause_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "user", "role"], name="membership_unique_role")]
        indexes = [models.Index(fields=["user", "role"])]

    def __str__(self) -> str:
        return f"{self.user} as {self.role} in {self.campaign}"


class Round(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    class Purpose(models.TextChoices):
        COLLECT = "collect", "Collect training data"
        # Held-out comparisons (a human evaluation between model versions): never trained on, never the target
        # of an import that names no round.
        EVALUATION = "evaluation", "Evaluation (held out from training)"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    purpose = models.CharField(max_length=12, choices=Purpose.choices, default=Purpose.COLLECT)
    target_judgments = models.PositiveIntegerField(
        null=True, blank=True, help_text="In loop mode, the round closes itself at this many judgments."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign_id", "number"]
        constraints = [models.UniqueConstraint(fields=["campaign", "number"], name="round_unique_number")]

    def __str__(self) -> str:
        return f"{self.campaign} round {self.number}"


class Prompt(models.Model):
    class Kind(models.TextChoices):
        TEXT = "text", "Plain text"
        CHAT = "chat", "Chat messages"

    class Split(models.TextChoices):
        UNASSIGNED = "", "Unassigned"
        TRAIN = "train", "Train"
        VALIDATION = "validation", "Validation"
        TEST = "test", "Test"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="prompts")
    kind = models.CharField(max_length=4, choices=Kind.choices, default=Kind.TEXT)
    text = models.TextField(blank=True, help_text="The prompt when kind is text.")
    messages = models.JSONField(
        default=list, blank=True, help_text='Chat prompts: [{"role": "user", "content": "..."}, ...].'
    )
    metadata = models.JSONField(default=dict, blank=True)
    split = models.CharField(max_length=10, choices=Split.choices, default=Split.UNASSIGNED, blank=True)
    external_id = models.CharField(max_length=200, blank=True)
    content_hash = models.CharField(max_length=64, help_text="sha256 of the canonical prompt; dedupes imports.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "content_hash"], name="prompt_unique_content")]

    def __str__(self) -> str:
        body = self.text if self.kind == self.Kind.TEXT else (self.messages[-1]["content"] if self.messages else "")
        return body[:60]


class Response(models.Model):
    IMPORTED = "imported"

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="responses")
    round = models.ForeignKey(Round, null=True, blank=True, on_delete=models.SET_NULL, related_name="responses")
    text = models.TextField()
    model_name = models.CharField(
        max_length=300, default=IMPORTED, help_text='What produced it: a model id or version label, or "imported".'
    )
    generation_params = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["prompt", "content_hash"])]

    def __str__(self) -> str:
        return f"{self.model_name}: {self.text[:60]}"


class ComparisonItem(models.Model):
    """A prompt and 2..K of its responses to compare."""

    class Kind(models.TextChoices):
        PAIRWISE = "pairwise", "Pairwise"
        RANKING = "ranking", "K-way ranking"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETE = "complete", "Complete"
        RETIRED = "retired", "Retired"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="items")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="items")
    responses = models.ManyToManyField(Response, through="ItemResponse", related_name="items")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.PAIRWISE)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    content_hash = models.CharField(max_length=64, help_text="sha256 of prompt + responses; dedupes imports.")
    metadata = models.JSONField(default=dict, blank=True)
    is_gold = models.BooleanField(default=False, help_text="A gold item with a known answer (quality checks).")
    gold_answer = models.JSONField(
        default=dict, blank=True, help_text='{"label": "A" | "B" | "tie" | "both_bad"} or {"ranking": [[ids]]}.'
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "content_hash"], name="item_unique_content")]
        indexes = [
            models.Index(fields=["campaign", "round", "status"]),
            models.Index(fields=["campaign", "id"], name="item_gold_idx", condition=Q(is_gold=True)),
        ]

    def __str__(self) -> str:
        return f"item {self.pk} ({self.kind})"


class ItemResponse(models.Model):
    """A response's place in an item, in canonical (import / generation) order, not the order shown."""

    item = models.ForeignKey(ComparisonItem, on_delete=models.CASCADE, related_name="item_responses")
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["item_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["item", "position"], name="itemresponse_unique_position"),
            models.UniqueConstraint(fields=["item", "response"], name="itemresponse_unique_response"),
        ]

    def __str__(self) -> str:
        return f"item {self.item_id} #{self.position}: response {self.response_id}"


class Assignment(models.Model):
    """One judgment slot of an item: an item with overlap k has k slots. ``next`` leases a free (or expired)
    slot to an annotator with ``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent annotators never share one,
    and ``submit`` marks it done. ``campaign`` and ``round`` are copied from the item so that the queue query
    reads one table through one index."""

    class State(models.TextChoices):
        AVAILABLE = "available", "Available"
        LEASED = "leased", "Leased"
        DONE = "done", "Done"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="assignments")
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(ComparisonItem, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assignments"
    )
    state = models.CharField(max_length=9, choices=State.choices, default=State.AVAILABLE)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    leased_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    shown_order = models.JSONField(default=list, blank=True, help_text="Response ids in the order shown.")

    class Meta:
        ordering = ["id"]
        constraints = [
            # Never two slots of one item for one annotator: the backstop behind the queue's own check.
            models.UniqueConstraint(
                fields=["item", "annotator"], condition=Q(annotator__isnull=False), name="assignment_one_per_annotator"
            ),
            models.CheckConstraint(
                condition=Q(state="available", annotator__isnull=True) | ~Q(state="available"),
                name="assignment_available_has_no_annotator",
            ),
        ]
        indexes = [
            # The queue scan: open slots of a campaign in item order.
            models.Index(
                fields=["campaign", "item", "id"],
                name="assignment_queue_idx",
                condition=Q(state__in=["available", "leased"]),
            ),
            models.Index(fields=["annotator", "state"], name="assignment_annotator_idx"),
        ]

    def __str__(self) -> str:
        return f"slot {self.pk} of item {self.item_id} ({self.state})"


class ItemSkip(models.Model):
    """An annotator passed on an item: it is not offered to them again."""

    item = models.ForeignKey(ComparisonItem, on_delete=models.CASCADE, related_name="skips")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "annotator"], name="itemskip_unique")]

    def __str__(self) -> str:
        return f"{self.annotator_id} skipped item {self.item_id}"


class Judgment(models.Model):
    """A judgment of an item. Pairwise: ``winner`` (or ``tie`` / ``both_bad``) with an optional ``strength``;
    ranking: ``ranking`` as tie groups of response ids, best first. ``ranking`` is filled for pairwise too
    (winner first, or one group for a tie), so every consumer can read one field."""

    class Kind(models.TextChoices):
        PAIRWISE = "pairwise", "Pairwise"
        RANKING = "ranking", "Ranking"

    class Source(models.TextChoices):
        HUMAN = "human", "Human annotator"
        IMPORTED = "imported", "Imported label"
        SIMULATED = "simulated", "Simulated annotator"
        ADJUDICATED = "adjudicated", "Adjudicator"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="judgments")
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="judgments")
    item = models.ForeignKey(ComparisonItem, on_delete=models.CASCADE, related_name="judgments")
    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="judgment"
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="judgments"
    )
    source = models.CharField(max_length=11, choices=Source.choices, default=Source.HUMAN)
    source_name = models.CharField(max_length=200, blank=True, help_text="Who labelled an imported judgment.")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    winner = models.ForeignKey(Response, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    tie = models.BooleanField(default=False)
    both_bad = models.BooleanField(default=False)
    strength = models.PositiveSmallIntegerField(null=True, blank=True)
    ranking = models.JSONField(default=list, help_text="Tie groups of response ids, best first.")
    rationale = models.TextField(blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    shown_order = models.JSONField(default=list, blank=True)
    client_id = models.UUIDField(null=True, blank=True, help_text="Client-generated id; makes submit idempotent.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["annotator", "client_id"], condition=Q(client_id__isnull=False), name="judgment_client_id"
            ),
            models.CheckConstraint(
                condition=Q(strength__isnull=True) | (Q(strength__gte=1) & Q(strength__lte=3) & Q(winner__isnull=False)),
                name="judgment_strength_needs_winner",
            ),
            models.CheckConstraint(
                condition=~(Q(both_bad=True) & Q(winner__isnull=False)), name="judgment_both_bad_no_winner"
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "round", "id"]),
            models.Index(fields=["item", "annotator"]),
            # The low-effort streak check on every submit: an annotator's last n judgments in a campaign, newest
            # first. Without it PostgreSQL walks the primary key backwards, through every other annotator's rows.
            models.Index(fields=["campaign", "annotator", "id"], name="judgment_streak_idx"),
        ]

    def __str__(self) -> str:
        return f"judgment {self.pk} on item {self.item_id}"
