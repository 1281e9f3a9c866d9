"""The customer chat page of the local stack: the business's channel, played in a browser.

`ChatPageServer` serves the page (static HTML/CSS/JS in `static/`, no build step) and a tiny same-origin helper
under `/api/`. The helper holds the business API key and forwards an allow-list of business API calls to the
local API Gateway, so the key never reaches the browser, as a production channel's backend would. The page gets
its case's events, `AgentTyping` included, on the channel WebSocket (`static/channel.js`), with a token from
`POST /api/cases/{id}/channel-tokens`.
"""

from __future__ import annotations

from scripts.local_stack.chat_page.server import ChatPageServer

__all__ = ["ChatPageServer"]
