"""The SMS gateway through Twilio (``usher gateway sms``): see docs/gateways/sms.md."""

from gateways.sms.provider import TwilioSms

__all__ = ["TwilioSms"]
