"""Applying a PII policy to texts: allow, mask (``[EMAIL]``), pseudonymise (``[EMAIL_1a2b3c4d]``, a keyed hash
of the value, so one value always maps to one pseudonym within a campaign and the key's holder alone can
recompute it), or reject the whole record. ``PiiReport`` says what was found, where and what was done,
without ever repeating the value itself."""
from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ValidationError
from .detectors import KINDS, detect

ACTIONS = ("allow", "mask", "pseudonymise", "reject")
MAX_LISTED = 200


class RecordRejected(Exception):
    def __init__(self, kind: str, where: str):
        super().__init__(f"{kind} found in {where}")
        self.kind, self.where = kind, where


@dataclass(frozen=True)
class Policy:
    default: str = "allow"
    kinds: Mapping[str, str] = field(default_factory=dict)
    names: bool = True
    key: str = ""

    def action(self, kind: str) -> str:
        return self.kinds.get(kind, self.default)

    @property
    def active(self) -> bool:
        return any(self.action(k) != "allow" for k in KINDS)

    def manifest(self) -> dict:
        """What a manifest records: the rule, never the key."""
        return {"default": self.default, "kinds": dict(sorted(self.kinds.items())), "names": self.names}


def policy_from_dict(raw: Any, *, key: str = "") -> Policy:
    """A policy from ``{"default": action, "kinds": {kind: action}, "names": bool}``; bad input names the field."""
    if raw is None:
        return Policy(key=key)
    if not isinstance(raw, dict):
        raise ValidationError("pii_policy must be an object", field="pii_policy")
    unknown = set(raw) - {"default", "kinds", "names"}
    if unknown:
        raise ValidationError(f"unknown pii_policy keys {sorted(unknown)}", field="pii_policy")
    default = raw.get("default", "allow")
    if default not in ACTIONS:
        raise ValidationError(f"pii_policy.default must be one of {list(ACTIONS)} (got {default!r})", field="pii_policy.default")
    kinds = raw.get("kinds", {}) or {}
    if not isinstance(kinds, dict):
        raise ValidationError("pii_policy.kinds must be an object of kind: action", field="pii_policy.kinds")
    for kind, action in kinds.items():
        if kind not in KINDS:
            raise ValidationError(f"pii_policy.kinds: unknown kind {kind!r}; kinds: {list(KINDS)}", field="pii_policy.kinds")
        if action not in ACTIONS:
            raise ValidationError(f"pii_policy.kinds.{kind} must be one of {list(ACTIONS)}", field="pii_policy.kinds")
    names = raw.get("names", True)
    if not isinstance(names, bool):
        raise ValidationError("pii_policy.names must be true or false", field="pii_policy.names")
    return Policy(default=default, kinds=dict(kinds), names=names, key=key)


def pseudonym(key: str, kind: str, value: str) -> str:
    digest = hmac.new(key.encode(), f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()[:8]
    return f"[{kind.upper()}_{digest}]"


@dataclass
class PiiReport:
    counts: Counter = field(default_factory=Counter)  # "kind:action" -> n
    findings: list[dict] = field(default_factory=list)
    records_rejected: int = 0

    def add(self, kind: str, action: str, where: str) -> None:
        self.counts[f"{kind}:{action}"] += 1
        if len(self.findings) < MAX_LISTED:
            self.findings.append({"kind": kind, "where": where, "action": action})

    def merge(self, other: dict) -> None:
        """Add a report given as ``as_dict`` gives it (a part of an export written by another process)."""
        self.counts.update(other["counts"])
        self.findings.extend(other["findings"][:MAX_LISTED - len(self.findings)])
        self.records_rejected += other["records_rejected"]

    def as_dict(self) -> dict:
        return {"counts": dict(sorted(self.counts.items())), "findings": self.findings,
                "findings_truncated": sum(self.counts.values()) > len(self.findings),
                "records_rejected": self.records_rejected}


def apply_text(text: str, policy: Policy, *, where: str, report: PiiReport) -> str:
    """``text`` with the policy applied; raises RecordRejected when a finding's action is reject (the caller
    drops the record and counts it)."""
    if not policy.active or not text:
        return text
    needs_names = policy.names and policy.action("name") != "allow"
    out, last = [], 0
    for f in detect(text, names=needs_names):
        action = policy.action(f.kind)
        report.add(f.kind, action, where)
        if action == "reject":
            raise RecordRejected(f.kind, where)
        if action == "allow":
            continue
        out.append(text[last:f.start])
        out.append(f"[{f.kind.upper()}]" if action == "mask" else pseudonym(policy.key, f.kind, f.value))
        last = f.end
    out.append(text[last:])
    return "".join(out)


def apply_strings(value: Any, policy: Policy, *, where: str, report: PiiReport) -> Any:
    """Every string inside a JSON value (dict values, list items; not keys) with the policy applied."""
    if isinstance(value, str):
        return apply_text(value, policy, where=where, report=report)
    if isinstance(value, dict):
        return {k: apply_strings(v, policy, where=f"{where}.{k}", report=report) for k, v in value.items()}
    if isinstance(value, list):
        return [apply_strings(v, policy, where=f"{where}[{i}]", report=report) for i, v in enumerate(value)]
    return value
