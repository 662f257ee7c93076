"""``usher serve``'s banner (``core.banner``): the lines scripts read, and the demo's part."""

from __future__ import annotations

import dataclasses

from core.banner import Banner, Demo

BASE = Banner(
    grpc="127.0.0.1:50051",
    services=17,
    routing="in-process shard (--local)",
    postgres="postgresql://postgres:***@/postgres",
    redis="unix:///tmp/redis.sock",
    metrics="http://127.0.0.1:9090/metrics",
    web="http://127.0.0.1:8090",
    cors="none (same-origin pages only)",
)


def keyed(lines: list[str]) -> dict[str, str]:
    return {k: v for k, _, v in (line.removeprefix("usher: ").partition(": ") for line in lines)}


def test_without_the_demo_metrics_close_the_banner_and_the_console_is_named() -> None:
    lines = BASE.lines()

    assert all(line.startswith("usher: ") for line in lines)
    assert lines[0] == "usher: gRPC listening on 127.0.0.1:50051"
    assert [line for line in lines if "metrics" in line] == [
        "usher: metrics: http://127.0.0.1:9090/metrics"
    ]
    assert lines[-1] == "usher: console (agents, supervisors): open http://127.0.0.1:8090/console"
    assert keyed(lines)["web API (Connect, gRPC-Web)"] == "http://127.0.0.1:8090"
    assert len(lines) <= 10


def test_the_demo_adds_tokens_the_web_chat_and_the_agents_sign_ins() -> None:
    demo = Demo(
        "demo",
        {"gateway": "ush_g", "agent": "ush_a", "admin": "ush_x"},
        (("ann", "Ann", "aaa-bbb-ccc"), ("bob", "Bob", "ddd-eee-fff")),
        chat_url="http://127.0.0.1:8080/demo/webchat/demo",
    )

    lines = dataclasses.replace(BASE, demo=demo).lines()
    found = keyed(lines)

    after_metrics = lines[lines.index("usher: metrics: http://127.0.0.1:9090/metrics") + 1 :]
    assert found["demo agent token (tenant demo)"] == "ush_a"
    assert found["demo web chat"] == "open http://127.0.0.1:8080/demo/webchat/demo"
    assert (
        found["console sign-in (tenant demo; agent number or name)"]
        == "ann / aaa-bbb-ccc, bob / ddd-eee-fff"
    )
    assert len(after_metrics) == 6
    assert len(lines) <= 16
