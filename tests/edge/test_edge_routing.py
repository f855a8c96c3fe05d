"""Skyrelay in front of Skyrelay: an edge and two cloud gateways, each with its own fake provider, on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from core.auth.gateway_keys import hash_key
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.gateway_process import GatewayProcess, free_port, read_records

GROQ_SECRET = "gsk-only-in-the-aws-gateway-1234"
TOGETHER_SECRET = "tg-only-in-the-gcp-gateway-5678"
KEY_A, KEY_B, EDGE_KEY = "sk-sr-gateway-a-key", "sk-sr-gateway-b-key", "sk-sr-edge-client-key"
MESSAGES = [{"role": "user", "content": "hi"}]


@dataclass
class Topology:
    edge: GatewayProcess
    a: GatewayProcess
    b: GatewayProcess
    fake_a: FakeOpenAI
    fake_b: FakeOpenAI
    tmp: Path

    def restart_a(self) -> None:
        self.a = GatewayProcess(self.a.log_dir, env=self.a._env, args=self.a._args)
        self.a.port = self.port_a
        self.a.start()

    port_a: int = 0


def cloud_store(path: Path, gateway_key: str, vk: str, provider: str, upstream: FakeOpenAI, secret_env: str,
                extra: str = "") -> Path:
    path.write_text(f"""
gateway_keys:
  - id: edge
    sha256: {hash_key(gateway_key)}
virtual_keys:
  {vk}:
    provider: {provider}
    custom_host: {upstream.url}
    api_key: {{env: {secret_env}}}
{extra}""")
    return path


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    tmp = tmp_path_factory.mktemp("edge")
    fake_a, fake_b = FakeOpenAI().start(), FakeOpenAI().start()
    port_a, port_b = free_port(), free_port()
    store_a = cloud_store(tmp / "a.yaml", KEY_A, "groq-prod", "groq", fake_a, "GROQ_KEY", f"""remote_gateways:
  gcp-us-central1: {{url: "http://127.0.0.1:{port_b}", api_key: {{env: GW_B_KEY}}}}""")
    store_b = cloud_store(tmp / "b.yaml", KEY_B, "together-prod", "together-ai", fake_b, "TOGETHER_KEY")
    a = GatewayProcess(tmp / "logs-a", env={"GROQ_KEY": GROQ_SECRET, "GW_B_KEY": KEY_B,
                                            "SKYRELAY_PROVIDER_AFFINITY": "together-ai=gcp-us-central1"},
                       args=["--config", str(store_a)])
    a.port = port_a
    b = GatewayProcess(tmp / "logs-b", env={"TOGETHER_KEY": TOGETHER_SECRET}, args=["--config", str(store_b)])
    b.port = port_b
    a.start()
    b.start()
    edge_store = tmp / "edge.yaml"
    edge_store.write_text(f"""
gateway_keys:
  - id: app
    sha256: {hash_key(EDGE_KEY)}
remote_gateways:
  aws-us-east-1: {{url: "http://127.0.0.1:{port_a}", api_key: {{env: GW_A_KEY}}, providers: [groq]}}
  gcp-us-central1: {{url: "http://127.0.0.1:{port_b}", api_key: {{env: GW_B_KEY}}, providers: [together-ai]}}
  dead: {{url: "http://127.0.0.1:{free_port()}"}}
""")
    edge = GatewayProcess(tmp / "logs-edge", env={
        "GW_A_KEY": KEY_A, "GW_B_KEY": KEY_B, "SKYRELAY_REMOTE_HEALTH_INTERVAL_S": "0.2",
        "SKYRELAY_REMOTE_UNHEALTHY_AFTER": "2",
        "SKYRELAY_PROVIDER_AFFINITY": "groq=aws-us-east-1,together-ai=gcp-us-central1"},
        args=["--config", str(edge_store)]).start()
    topo = Topology(edge=edge, a=a, b=b, fake_a=fake_a, fake_b=fake_b, tmp=tmp, port_a=port_a)
    yield topo
    for process in (topo.edge, topo.a, topo.b):
        process.stop()
    fake_a.stop()
    fake_b.stop()


def edge_client(topo: Topology, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{topo.edge.url}/v1", api_key="not-a-provider-key", max_retries=0,
                         default_headers={"x-portkey-api-key": EDGE_KEY, **headers})


@pytest.fixture(autouse=True)
def reset_fakes(topology: Topology) -> None:
    topology.fake_a.reset()
    topology.fake_b.reset()


def test_affinity_routes_each_provider_to_its_cloud_gateway(topology: Topology) -> None:
    groq = edge_client(topology, **{"x-portkey-provider": "groq", "x-portkey-virtual-key": "groq-prod",
                                    "x-portkey-trace-id": "trace-groq-1"})
    raw = groq.chat.completions.with_raw_response.create(model="llama-3.3-70b", messages=MESSAGES)
    assert raw.headers["x-portkey-provider"] == "groq"
    assert raw.headers["x-skyrelay-remote-gateway"] == "aws-us-east-1"
    assert topology.fake_a.received[-1].headers["authorization"] == f"Bearer {GROQ_SECRET}"

    together = edge_client(topology, **{"x-portkey-provider": "together-ai",
                                        "x-portkey-virtual-key": "together-prod"})
    assert together.chat.completions.create(model="m", messages=MESSAGES).choices
    assert topology.fake_b.received[-1].headers["authorization"] == f"Bearer {TOGETHER_SECRET}"
    assert len(topology.fake_a.received) == 1 and len(topology.fake_b.received) == 1


def test_streaming_crosses_two_hops_without_buffering(topology: Topology) -> None:
    gate = threading.Event()
    topology.fake_a.chunk_gate = gate
    stream = edge_client(topology, **{"x-portkey-provider": "groq", "x-portkey-virtual-key": "groq-prod"}) \
        .chat.completions.create(model="m", messages=MESSAGES, stream=True)
    iterator = iter(stream)
    first = next(iterator)
    assert first.choices[0].delta.role == "assistant"
    assert not gate.is_set(), "the first chunk only arrived after the provider sent the rest"
    gate.set()
    text = "".join(c.choices[0].delta.content or "" for c in iterator if c.choices)
    assert text == "Hello from the fake stream."


def test_fallback_from_a_failing_remote_gateway_to_another(topology: Topology) -> None:
    config = {"strategy": {"mode": "fallback"}, "targets": [
        {"gateway": "dead", "provider": "groq", "virtual_key": "groq-prod"},
        {"gateway": "gcp-us-central1", "provider": "together-ai", "virtual_key": "together-prod"}]}
    raw = edge_client(topology, **{"x-portkey-config": json.dumps(config)}).chat.completions \
        .with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert raw.headers["x-skyrelay-remote-gateway"] == "gcp-us-central1"


def test_unhealthy_gateways_leave_rotation_and_come_back(topology: Topology) -> None:
    config = {"strategy": {"mode": "loadbalance"}, "targets": [
        {"gateway": "aws-us-east-1", "provider": "groq", "virtual_key": "groq-prod"},
        {"gateway": "gcp-us-central1", "provider": "together-ai", "virtual_key": "together-prod"}]}
    client = edge_client(topology, **{"x-portkey-config": json.dumps(config)})
    topology.a.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = httpx.get(f"{topology.edge.url}/v1/ready").json()["remote_gateways"]
        if not status["aws-us-east-1"]["healthy"]:
            break
        time.sleep(0.1)
    assert not status["aws-us-east-1"]["healthy"]
    for _ in range(10):
        raw = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
        assert raw.headers["x-skyrelay-remote-gateway"] == "gcp-us-central1"

    topology.restart_a()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if httpx.get(f"{topology.edge.url}/v1/ready").json()["remote_gateways"]["aws-us-east-1"]["healthy"]:
            break
        time.sleep(0.1)
    served = {client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
              .headers["x-skyrelay-remote-gateway"] for _ in range(20)}
    assert served == {"aws-us-east-1", "gcp-us-central1"}


def test_hop_limit_stops_loops(topology: Topology) -> None:
    # Gateway A itself forwards together-ai to B: edge → A → B would be a second hop.
    direct = httpx.post(f"{topology.a.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES},
                        headers={"x-portkey-api-key": KEY_A, "x-portkey-provider": "together-ai",
                                 "x-portkey-virtual-key": "together-prod", "x-skyrelay-hops": "1"})
    assert direct.status_code == 508
    assert direct.json()["error"]["code"] == "loop_detected"
    through_edge = httpx.post(f"{topology.edge.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES},
                              headers={"x-portkey-api-key": EDGE_KEY, "x-portkey-provider": "groq",
                                       "x-portkey-virtual-key": "groq-prod", "x-skyrelay-hops": "5"})
    assert through_edge.status_code == 508
    assert not topology.fake_b.received


def test_each_gateway_logs_the_request_with_the_same_trace_id(topology: Topology) -> None:
    client = edge_client(topology, **{"x-portkey-provider": "groq", "x-portkey-virtual-key": "groq-prod",
                                      "x-portkey-trace-id": "trace-shared-42"})
    client.chat.completions.create(model="m", messages=MESSAGES)
    deadline = time.monotonic() + 10
    edge_records: list[dict] = []
    remote_records: list[dict] = []
    while time.monotonic() < deadline and not (edge_records and remote_records):
        edge_records = [r for r in read_records(topology.edge.log_dir) if r["trace_id"] == "trace-shared-42"]
        remote_records = [r for r in read_records(topology.a.log_dir) if r["trace_id"] == "trace-shared-42"]
        time.sleep(0.1)
    assert len(edge_records) == 1 and len(remote_records) == 1
    assert edge_records[0]["remote_gateway"] == "aws-us-east-1"
    assert edge_records[0]["remote_trace_id"] == "trace-shared-42"
    assert remote_records[0]["virtual_key"] == "groq-prod" and remote_records[0]["provider"] == "groq"


def test_no_provider_credential_exists_at_the_edge(topology: Topology) -> None:
    edge_client(topology, **{"x-portkey-provider": "groq", "x-portkey-virtual-key": "groq-prod"}) \
        .chat.completions.create(model="m", messages=MESSAGES)
    time.sleep(0.3)
    assert "GROQ_KEY" not in topology.edge._env and "TOGETHER_KEY" not in topology.edge._env
    edge_blob = json.dumps(read_records(topology.edge.log_dir)) + topology.edge.stderr()
    for secret in (GROQ_SECRET, TOGETHER_SECRET, KEY_A, KEY_B, EDGE_KEY):
        assert secret not in edge_blob
    sent_to_a = [r for r in topology.fake_a.received]
    assert all(r.headers["authorization"] == f"Bearer {GROQ_SECRET}" for r in sent_to_a)
