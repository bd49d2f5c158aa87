"""The Atdak provider's own Python snippet, run by atdak_agents with only its import line changed.

With ``ATDAK_API_KEY`` set it calls the real Atdak API. Without it, it starts the local
Atdak-compatible server in-process and points the client at it through ``ATDAK_BASE_URL`` and
``ATDAK_API_KEY`` — so the snippet below stays exactly as the provider documents it.

    python examples/chat_basic.py
"""

from __future__ import annotations

import os

from atdak_agents.testing import LocalAtdakServer, Reply

POEM = "春风拂面柳丝长，\n细雨无声润海棠。\n燕子归来寻旧垒，\n一园新绿映朝阳。"

local_server = None
if not os.environ.get("ATDAK_API_KEY"):
    greeting = Reply(text="你好！有什么可以帮助你的吗？", chunk_size=1)
    local_server = LocalAtdakServer([POEM, greeting]).start_in_thread()
    os.environ["ATDAK_BASE_URL"] = local_server.base_url
    os.environ["ATDAK_API_KEY"] = str(local_server.api_key)
    print(f"(no ATDAK_API_KEY set: answering from the local server at {local_server.base_url})\n")

# ---- the provider's snippet; only the import line differs ("from atdak import AtdakClient")
from atdak_agents import AtdakClient  # noqa: E402

client = AtdakClient()

# fmt: off
# 普通调用
response = client.chat.completions.create(
    model="atdak-gpt-4",
    messages=[
        {"role": "user", "content": "写一首关于春天的诗"}
    ]
)
print(response.choices[0].message.content)

# 流式调用
stream = client.chat.completions.create(
    model="atdak-gpt-4",
    messages=[{"role": "user", "content": "你好"}],
    stream=True
)
for chunk in stream:
    print(chunk.choices[0].delta.content, end="")
# fmt: on
# ---- end of the snippet

print()
client.close()
if local_server is not None:
    local_server.stop_in_thread()
