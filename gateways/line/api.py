"""Calls to the LINE Messaging API for one channel: reply, push, the loading animation,
message content and profiles. Base URLs come from the channel's settings so tests (and LINE's
regional endpoints) can point elsewhere."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from gateways.common.directory import ChannelConfig
from gateways.common.fetch import media_type, read_limited
from gateways.common.provider import DeliveryError, check_response

API_BASE = "https://api.line.me"
DATA_API_BASE = "https://api-data.line.me"

Message = Mapping[str, Any]
"""A LINE message object (``{"type": "text", "text": ...}``)."""


class ReplyRefused(Exception):
    """The reply API answered 400: the token expired or was used (push instead)."""


def _sent_ids(response: httpx.Response) -> list[str]:
    try:
        sent = response.json().get("sentMessages", [])
    except (ValueError, AttributeError):
        return []
    return [str(m["id"]) for m in sent if isinstance(m, dict) and m.get("id")]


@dataclass(frozen=True, slots=True)
class LineApi:
    http: httpx.AsyncClient
    channel: ChannelConfig

    @property
    def _base(self) -> str:
        return self.channel.setting("api_base_url", API_BASE).rstrip("/")

    @property
    def _data_base(self) -> str:
        return self.channel.setting("data_api_base_url", DATA_API_BASE).rstrip("/")

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.channel.secret('channel_access_token')}"}

    async def reply(self, token: str, messages: Sequence[Message]) -> list[str]:
        """Send up to five messages with a reply token; the sent message ids."""
        response = await self.http.post(
            f"{self._base}/v2/bot/message/reply",
            json={"replyToken": token, "messages": list(messages)},
            headers=self._auth,
        )
        if response.status_code == 400:
            raise ReplyRefused(response.text[:300])
        return _sent_ids(check_response(response))

    async def push(self, to: str, messages: Sequence[Message], *, retry_key: str) -> list[str]:
        """Send up to five messages to a user. ``retry_key`` (a UUID) makes a retried push
        harmless: LINE answers 409 to a key it already accepted."""
        response = await self.http.post(
            f"{self._base}/v2/bot/message/push",
            json={"to": to, "messages": list(messages)},
            headers={**self._auth, "X-Line-Retry-Key": retry_key},
        )
        if response.status_code == 409:
            return _sent_ids(response)  # accepted earlier: the first attempt got through
        return _sent_ids(check_response(response))

    async def show_loading(self, user_id: str, seconds: int) -> None:
        """The typing-like animation in the user's chat (a multiple of 5, 5 to 60 seconds)."""
        response = await self.http.post(
            f"{self._base}/v2/bot/chat/loading/start",
            json={"chatId": user_id, "loadingSeconds": seconds},
            headers=self._auth,
        )
        check_response(response)

    async def display_name(self, user_id: str, *, timeout: float) -> str:
        response = await self.http.get(
            f"{self._base}/v2/bot/profile/{user_id}", headers=self._auth, timeout=timeout
        )
        name = check_response(response).json().get("displayName", "")
        return name if isinstance(name, str) else ""

    async def content(self, message_id: str, *, max_bytes: int) -> tuple[bytes, str]:
        """The bytes and content type of a customer's image, video, audio or file; ``TooLarge``
        past ``max_bytes`` (stops reading there)."""
        url = f"{self._data_base}/v2/bot/message/{message_id}/content"
        async with self.http.stream("GET", url, headers=self._auth) as response:
            if response.status_code != 200:  # 202: a video or audio LINE is still preparing
                raise DeliveryError(f"GET content answered {response.status_code}", transient=True)
            return await read_limited(response, max_bytes), media_type(response)
