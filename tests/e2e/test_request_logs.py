"""One log record per request, on disk after a graceful shutdown, with no secret in any of them."""

from __future__ import annotations

import concurrent.futures
import signal

import httpx
import openai

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.gateway_process import read_records

SECRET = "sk-provider-very-secret-4242"


def test_every_request_leaves_one_record_after_sigterm(start_gateway: object, fake_openai: FakeOpenAI) -> None:
    # A long batch age: records are still queued in memory when SIGTERM arrives.
    gateway = start_gateway(env={"SKYRELAY_LOG_BATCH_MAX_AGE_S": "30"})  # type: ignore[operator]
    c = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=SECRET, max_retries=0,
                      default_headers={"x-portkey-provider": "openai", "x-portkey-custom-host": fake_openai.url})

    def one(i: int) -> None:
        if i % 3 == 0:
            list(c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": str(i)}],
                                           stream=True))
        else:
            c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": str(i)}])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(30)))
    bad = httpx.post(f"{gateway.url}/v1/chat/completions", content=b"{", headers={"x-portkey-provider": "openai"})
    assert bad.status_code == 400

    assert gateway.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after shutdown
    records = read_records(gateway.log_dir)

    assert len(records) == 31
    assert len({r["id"] for r in records}) == 31
    assert sorted(r["status"] for r in records) == [200] * 30 + [400]
    streamed = [r for r in records if r["stream"]]
    assert len(streamed) == 10
    assert all(r["response"]["body"]["choices"][0]["message"]["content"] == "Hello from the fake stream."
               for r in streamed)
    blob = "\n".join(str(r) for r in records)
    assert SECRET not in blob
    assert SECRET not in gateway.stderr()
