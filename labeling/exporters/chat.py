"""Prompts as chat transcripts, shared by the exporters (and the generation step): a chat prompt rendered as
HH-RLHF text (``render_chat``, each message as ``CHAT_TEMPLATE``), and an HH transcript split back into
messages (``hh_turns``). No imports of the exporter modules, so any of them can import it at load time."""
from __future__ import annotations

import re

ROLE_NAMES = {"user": "Human", "assistant": "Assistant", "system": "System", "tool": "Tool"}
CHAT_TEMPLATE = "\n\n{role}: {content}"
HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def render_chat(messages: list[dict]) -> str:
    turns = "".join(
        CHAT_TEMPLATE.format(role=ROLE_NAMES.get(m["role"], m["role"].title()), content=m["content"]) for m in messages
    )
    return turns + "\n\nAssistant:"


def hh_turns(text: str) -> list[dict] | None:
    """An HH transcript prompt as chat messages, or None if the text is not one."""
    if not (text.startswith("\n\nHuman: ") and text.endswith("\n\nAssistant:")):
        return None
    parts = HH_TURN.split(text)  # ["", "Human", " hi", "Assistant", " hello", ..., "Assistant", ""]
    out = []
    for role, content in zip(parts[1:-2:2], parts[2:-2:2], strict=True):
        content = content.removeprefix(" ")
        if not content.strip():
            return None
        out.append({"role": "user" if role == "Human" else "assistant", "content": content})
    return out or None
