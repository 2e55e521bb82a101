"""``hh-rlhf``: Anthropic HH-RLHF transcripts, ``{"chosen": transcript, "rejected": transcript}``, one row per
decisive pair. The prompt is written as a transcript: an HH prompt as it is stored (it already ends with
``"\\n\\nAssistant:"`` and its responses start with the marker's space), a chat prompt rendered turn by turn,
a plain text prompt as one Human turn; a response follows the prompt after one space unless it starts with
whitespace already. ``importers.hh_rlhf`` reads the file back (prompt, the two responses, the preference);
ties, both-bad, strength and rationale have no place in the format."""
from __future__ import annotations

from collections.abc import Iterator

from .chat import hh_turns, render_chat
from .records import RecordExporter, decisive_pair, register


def transcript(prompt: dict) -> str:
    if prompt["kind"] == "chat":
        return render_chat(prompt["messages"])
    text = prompt["text"]
    if hh_turns(text) or (text.startswith("\n\n") and text.endswith("\n\nAssistant:")):
        return text  # a transcript already (a system turn first is one too)
    return render_chat([{"role": "user", "content": prompt["text"]}])


def joined(prompt_part: str, response: str) -> str:
    return prompt_part + (response if response[:1].isspace() else " " + response)


@register
class HhRlhf(RecordExporter):
    name = "hh-rlhf"
    help = 'HH-RLHF transcripts: {"chosen", "rejected"} as "\\n\\nHuman: ... \\n\\nAssistant: ..."'

    def rows(self, record: dict) -> Iterator[dict]:
        pair = decisive_pair(record)
        if pair is None:
            return
        head = transcript(record["prompt"])
        texts = [r["text"] for r in record["responses"]]
        yield {"chosen": joined(head, texts[pair[0]]), "rejected": joined(head, texts[pair[1]])}
