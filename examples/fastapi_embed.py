"""An existing FastAPI service that gains a workflow: mounted as an Atdak/OpenAI-compatible API,
and called from one of its own routes.

With ``ATDAK_API_KEY`` set the workflow's model calls go to the Atdak API; without it, the local
Atdak-compatible server answers with scripted replies, so this runs offline. It starts the
service on 127.0.0.1, calls it over HTTP, prints the answers and stops.

    python examples/fastapi_embed.py
"""

from __future__ import annotations

import os

import httpx
from fastapi import FastAPI

from atdak_agents import AtdakClient, GraphBuilder
from atdak_agents.graph.spec import ProviderSpec
from atdak_agents.server import BackgroundServer, ServerConfig, create_app
from atdak_agents.testing import LocalAtdakServer, Reply


def triage_graph():  # type: ignore[no-untyped-def]
    """classify → answer: the workflow the service adds (any graph or workflow file works)."""
    g = GraphBuilder("triage", model="atdak-gpt-4-mini")
    g.input("question", str, example="Where is my parcel #10423?")
    g.state("category", str)
    g.state("answer", str)
    g.llm("classify", "One word, shipping or billing: {{ inputs.question }}", writes="category")
    g.llm("answer", "As {{ state.category }} support: {{ inputs.question }}", writes="answer")
    g.chain("classify", "answer", "end")
    g.output("answer", "state.answer")
    return g.build()


def offline_replies(request):  # type: ignore[no-untyped-def]
    """What the local Atdak server answers when there is no ATDAK_API_KEY."""
    if "One word" in request.last_user_text:
        return "shipping"
    return Reply(text="Your parcel #10423 left Shanghai yesterday; it arrives in 2 days.")


def local_endpoint(upstream: LocalAtdakServer) -> ProviderSpec:
    return ProviderSpec(base_url=upstream.base_url, api_key=upstream.api_key)


def build_service(upstream: LocalAtdakServer | None) -> FastAPI:
    # the workflow app: one pooled client to the model endpoint for all runs
    agents = create_app(
        [triage_graph()],
        config=ServerConfig(database=".atdak/service.db"),  # keys: ATDAK_SERVER_KEYS
        provider=local_endpoint(upstream) if upstream is not None else None,
    )
    # the existing service: its lifespan starts and stops the workflow app
    api = FastAPI(title="Shop API", lifespan=lambda api: agents.running())

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.post("/tickets/triage")
    async def triage(ticket: dict[str, str]) -> dict[str, object]:
        result = await agents.service.run("triage", {"question": ticket["text"]})
        return {"answer": result.output["answer"], "run": result.run_id}

    api.mount("/agents", agents)  # POST /agents/v1/chat/completions, /agents/v1/runs, ...
    return api


def main() -> None:
    upstream = None if os.environ.get("ATDAK_API_KEY") else LocalAtdakServer(offline_replies)
    if upstream is not None:
        upstream.start_in_thread()
    try:
        with BackgroundServer(build_service(upstream)) as server:
            # any OpenAI/Atdak client chats with the workflow: `model` is its name
            client = AtdakClient(base_url=f"{server.url}/agents/v1", api_key="loopback")
            reply = client.chat.completions.create(
                model="triage", messages=[{"role": "user", "content": "Where is #10423?"}]
            )
            print("chat:", reply.choices[0].message.content)
            client.close()
            ticket = httpx.post(f"{server.url}/tickets/triage", json={"text": "Parcel #10423?"})
            print("route:", ticket.json()["answer"])
    finally:
        if upstream is not None:
            upstream.stop_in_thread()


if __name__ == "__main__":
    main()
