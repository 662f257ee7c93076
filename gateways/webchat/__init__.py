"""The web chat gateway: Usher's own embeddable chat widget, served over HTTP and WebSocket
(``usher gateway webchat``; see docs/gateways/webchat.md)."""
