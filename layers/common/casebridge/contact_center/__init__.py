"""The 8x8 side: a client interface with one implementation per 8x8 API, tokens, and webhook signatures."""

from casebridge.contact_center.base import ContactCenterClient

__all__ = ["ContactCenterClient"]
