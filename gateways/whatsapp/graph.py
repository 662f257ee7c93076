"""The Cloud API calls the gateway makes for one channel: send a message, mark a customer's
message read, fetch a customer's media. Endpoints are ``{api_base_url}/{api_version}/...``
with the channel's access token as a Bearer token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from gateways.common.blobs import TooLarge
from gateways.common.directory import ChannelConfig
from gateways.common.fetch import read_limited
from gateways.common.provider import DeliveryError, check_response

log = structlog.get_logger(__name__)

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_VERSION = "v21.0"


class MediaError(Exception):
    """A customer's media could not be fetched; ``transient`` ones are worth a redelivery."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class MediaTooLarge(MediaError):
    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


@dataclass(frozen=True, slots=True)
class Media:
    data: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class Graph:
    http: httpx.AsyncClient
    base_url: str
    version: str
    phone_number_id: str
    access_token: str

    @classmethod
    def of(cls, http: httpx.AsyncClient, channel: ChannelConfig) -> Graph:
        """The API as ``channel`` configures it (``MissingSetting`` if incomplete)."""
        return cls(
            http,
            channel.setting("api_base_url", DEFAULT_BASE_URL).rstrip("/"),
            channel.setting("api_version", DEFAULT_VERSION).strip("/"),
            channel.setting("phone_number_id"),
            channel.secret("access_token"),
        )

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{self.version}/{path}"

    async def _post(self, payload: dict[str, Any]) -> httpx.Response:
        response = await self.http.post(
            self._url(f"{self.phone_number_id}/messages"), json=payload, headers=self._auth
        )
        return check_response(response)

    async def send(self, payload: dict[str, Any]) -> str:
        """POST one message; its wamid (``messages[0].id``), empty if the answer lacks it."""
        response = await self._post(payload)
        try:
            return str(response.json()["messages"][0]["id"])
        except (ValueError, LookupError, TypeError):
            log.warning("the Cloud API accepted a message without naming it", body=response.text)
            return ""

    async def mark_read(self, wamid: str, *, typing: bool = False) -> None:
        """Blue ticks on the customer's message (and earlier ones); ``typing`` also shows the
        typing indicator, which the API ties to marking a message read."""
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": wamid,
        }
        if typing:
            payload["typing_indicator"] = {"type": "text"}
        await self._post(payload)

    async def media(self, media_id: str, *, limit: int) -> Media:
        """The bytes of a customer's media: its URL from ``GET /{media-id}``, then the file,
        both with the Bearer token. ``MediaTooLarge`` past ``limit`` bytes."""
        try:
            described = await self.http.get(self._url(media_id), headers=self._auth)
            _check(described, "media lookup")
            info = described.json()
            url = info["url"]
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise MediaError(f"media {media_id} has no usable url", transient=False)
            declared = int(info.get("file_size") or 0)
            if declared > limit:
                raise MediaTooLarge(f"media {media_id} is {declared} bytes, over {limit}")
            async with self.http.stream("GET", url, headers=self._auth) as response:
                if not response.is_success:
                    await response.aread()  # the error text, for the log
                _check(response, "media download")
                try:
                    data = await read_limited(response, limit)
                except TooLarge as exc:
                    raise MediaTooLarge(f"media {media_id}: {exc}") from exc
                content_type = response.headers.get("content-type", "")
        except (ValueError, LookupError, TypeError) as exc:
            raise MediaError(
                f"media {media_id}: unreadable answer ({exc})", transient=False
            ) from exc
        except httpx.TransportError as exc:
            raise MediaError(f"media {media_id}: {exc!r}", transient=True) from exc
        mime = str(info.get("mime_type") or content_type or "application/octet-stream")
        return Media(data, mime.split(";")[0].strip())


def _check(response: httpx.Response, what: str) -> None:
    try:
        check_response(response)
    except DeliveryError as exc:
        raise MediaError(f"{what}: {exc}", transient=exc.transient) from exc
