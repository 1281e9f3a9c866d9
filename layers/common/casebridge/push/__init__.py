"""Pushes to the business's channel: a WebSocket for web widgets (channel tokens, connections, fan-out from the
bus through API Gateway's @connections API) and Standard Webhooks for channels hosted off AWS. Both follow
the case's timeline by its sequence, so neither skips nor repeats an entry (docs/push.md)."""
