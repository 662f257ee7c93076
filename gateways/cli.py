"""``usher gateway NAME``: run one channel gateway (webchat, whatsapp, line, sms, email).

Settings come from flags or ``USHER_GATEWAY_*`` variables (``gateways.common.settings``); the
channels themselves (numbers, tokens, secrets) are configured per tenant through the admin API.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click

from gateways.common.app import run
from gateways.common.provider import Provider
from gateways.common.settings import GatewaySettings

PROVIDERS = {
    "webchat": "gateways.webchat.provider:WebChat",
    "whatsapp": "gateways.whatsapp:WhatsApp",
    "line": "gateways.line:Line",
    "sms": "gateways.sms:TwilioSms",
    "email": "gateways.email:Email",
}


def load_provider(name: str, **options: Any) -> Provider:
    module, _, attribute = PROVIDERS[name].partition(":")
    provider: Provider = getattr(importlib.import_module(module), attribute)(**options)
    return provider


@click.command("gateway", context_settings={"auto_envvar_prefix": "USHER_GATEWAY"})
@click.argument("name", type=click.Choice(sorted(PROVIDERS)))
@click.option("--core", help="The core's gRPC address  [default: 127.0.0.1:50051]")
@click.option(
    "--api-key", "api_keys", multiple=True, help="A GATEWAY token; once per tenant served."
)
@click.option("--host", help="HTTP listen address  [default: 127.0.0.1]")
@click.option("--port", type=int, help="HTTP port  [default: 8080]")
@click.option("--public-url", help="How providers and browsers reach this gateway.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Attachments and state.")
def gateway_command(name: str, **flags: Any) -> None:
    """Run the NAME channel gateway until SIGTERM or Ctrl-C."""
    from core.serve import configure_logging

    configure_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per provider call is noise
    overrides = {k: v for k, v in flags.items() if v not in (None, ())}
    settings = GatewaySettings(**overrides)
    event_loop_runner()(run(load_provider(name), settings))


def event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop's runner where it is installed (uvicorn[standard] brings it, but not on Windows):
    a gateway spends most of its time in the event loop's I/O, which uvloop does in C."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run
