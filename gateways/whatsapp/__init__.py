"""WhatsApp Cloud API gateway (``usher gateway whatsapp``); see docs/gateways/whatsapp.md."""

from gateways.whatsapp.provider import WhatsApp

__all__ = ["WhatsApp"]
