"""Calls to Twilio's REST API for one channel: send a message (the Messages resource) and
fetch a customer's media. HTTP basic auth with the account SID and auth token; the base URL is
the channel's ``api_base_url`` so tests can point elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from gateways.common.directory import ChannelConfig
from gateways.common.fetch import media_type, read_limited
from gateways.common.provider import DeliveryError, check_response

API_BASE = "https://api.twilio.com"


@dataclass(frozen=True, slots=True)
class TwilioApi:
    http: httpx.AsyncClient
    channel: ChannelConfig

    @property
    def _auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(
            self.channel.secret("account_sid"), self.channel.secret("auth_token")
        )

    async def send(
        self, to: str, body: str, media_urls: Sequence[str], status_callback: str
    ) -> str:
        """Create a Message to ``to`` from the channel's number or messaging service; its SID."""
        account = self.channel.secret("account_sid")
        base = self.channel.setting("api_base_url", API_BASE).rstrip("/")
        service = self.channel.settings.get("messaging_service_sid", "")
        form: dict[str, str | list[str]] = {"To": to}
        if service:
            form["MessagingServiceSid"] = service
        else:
            form["From"] = self.channel.setting("from_number")
        if body:
            form["Body"] = body
        if media_urls:
            form["MediaUrl"] = list(media_urls)
        form["StatusCallback"] = status_callback
        response = await self.http.post(
            f"{base}/2010-04-01/Accounts/{account}/Messages.json", data=form, auth=self._auth
        )
        sid = check_response(response).json().get("sid")
        if not isinstance(sid, str) or not sid:
            raise DeliveryError("Twilio created a message without a sid", transient=False)
        return sid

    async def recent(self, to: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """The latest Messages to ``to`` (from the channel's number, when it has one), newest
        first, as Twilio lists them: what a broadcast's reconciliation looks through."""
        account = self.channel.secret("account_sid")
        base = self.channel.setting("api_base_url", API_BASE).rstrip("/")
        params = {"To": to, "PageSize": str(limit)}
        if not self.channel.settings.get("messaging_service_sid") and self.channel.settings.get(
            "from_number"
        ):
            params["From"] = self.channel.setting("from_number")
        response = await self.http.get(
            f"{base}/2010-04-01/Accounts/{account}/Messages.json", params=params, auth=self._auth
        )
        found = check_response(response).json().get("messages", [])
        return [m for m in found if isinstance(m, dict)] if isinstance(found, list) else []

    async def media(self, url: str, *, max_bytes: int) -> tuple[bytes, str]:
        """A customer's media (Twilio redirects to its CDN); ``TooLarge`` past ``max_bytes``."""
        request = self.http.stream("GET", url, auth=self._auth, follow_redirects=True)
        async with request as response:
            if not response.is_success:
                raise DeliveryError(f"GET media answered {response.status_code}", transient=True)
            return await read_limited(response, max_bytes), media_type(response)
