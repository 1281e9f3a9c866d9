"""The business API edge: its HTTP plumbing (http), request models (models) and answer/event shapes (views).

Empty on purpose: the webhook intake imports business_api.http without loading the request models."""
