"""Personal data: detectors (``detectors``), policies and their application with a report (``policy``), the
per-campaign stored policy and the import pass (``campaign``)."""
from .detectors import KINDS, STRUCTURED, Finding, detect, names_available
from .policy import ACTIONS, PiiReport, Policy, RecordRejected, apply_strings, apply_text, policy_from_dict

__all__ = ["ACTIONS", "KINDS", "STRUCTURED", "Finding", "PiiReport", "Policy", "RecordRejected", "apply_strings",
           "apply_text", "detect", "names_available", "policy_from_dict"]
