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
