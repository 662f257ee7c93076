"""The LINE Messaging API gateway (``usher gateway line``): see docs/gateways/line.md."""

from gateways.line.provider import Line

__all__ = ["Line"]
