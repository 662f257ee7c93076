"""The e-mail gateway (``usher gateway email``): SMTP in, SMTP out, threaded by Message-ID."""

from gateways.email.provider import Email

__all__ = ["Email"]
