"""The agent desk: a browser page at `/desk` for playing the contact center's agents by hand.

Static HTML/CSS/JS (in `static/`, no build step) plus a small JSON API under `/desk/api/`: a snapshot the page
short-polls (queues, waiting conversations, the signed-in agent's conversation with its whole transcript,
customer typing), sign-in / sign-out, and attachment downloads. Agent actions (accept, reply, typing, transfer,
leave) go through the control API (`/_emulator/agents/...`), the same one tests and scripts use.

Signing in at the desk takes an agent off its script (it becomes a manual agent, as if a person sat down at its
desk); signing out gives the script back. Several agents can be signed in, each in its own browser tab.
"""

from __future__ import annotations

from cc_emulator.desk.surface import DeskSurface

__all__ = ["DeskSurface"]
