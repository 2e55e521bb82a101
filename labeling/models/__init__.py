"""Labeling models, one module per area. Each area's module is imported here so Django finds its models and
``from labeling.models import X`` keeps working."""
from .core import (  # noqa: F401
    Assignment,
    Campaign,
    ComparisonItem,
    ItemResponse,
    ItemSkip,
    Judgment,
    Membership,
    Prompt,
    Response,
    Role,
    Round,
)
from .governance import AuditEvent, ExportJob, PiiPolicy, Snapshot, SnapshotMember  # noqa: F401
from .quality import GoldResult, QualityFlag  # noqa: F401
