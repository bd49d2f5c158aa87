"""Function nodes of the ``map_reduce_summary`` recipe: the long document and its chunks.

Without a document of your own, :func:`load_document` writes a long bilingual annual report,
the same on every run (seeded), longer than atdak-llama-70b's 32,000-token window; with one
(``--input document_file=report.txt``), it reads that file. :func:`split_document` cuts it with
:func:`atdak_agents.context.split.split_text` into chunks of at most ``chunk_tokens`` tokens, on
paragraph and sentence boundaries, so each map request fits the model's window.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from atdak_agents.context.split import split_text
from atdak_agents.context.tokens import count_tokens

MODEL = "atdak-llama-70b"
REGIONS = ["华东", "华南", "华北", "华中", "西南", "西北", "东北", "港澳"]
PRODUCTS = ["智能台灯", "升降桌", "人体工学椅", "收纳系统", "厨房小电", "床品", "户外家具"]
CAUSES = ["新品上市", "直播渠道放量", "门店调整", "价格战", "供应链改善"]
PLANS = ["扩充库存", "优化客服排班", "上线以旧换新", "与物流商重新议价", "减少促销依赖"]
RISKS = [
    "原材料（铝材、ABS 塑料）价格上涨",
    "华南仓库租约到期，续租成本上升",
    "第三方物流旺季运力紧张",
    "跨境平台的退货政策收紧",
]


def load_document(inputs: Mapping[str, Any], context: Any) -> dict[str, str]:
    """The document to summarise: the file ``inputs.document_file`` (relative to the
    workflow's folder), or the generated annual report when it is empty."""
    name = inputs.get("document_file") or ""
    if not name:
        return {"document": annual_report()}
    base = context.env.base_dir or Path.cwd()
    return {"document": (Path(base) / name).read_text(encoding="utf-8")}


def split_document(state: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The document in chunks of at most ``inputs.chunk_tokens`` tokens, and its size."""
    chunks = split_text(state["document"], inputs["chunk_tokens"], model=MODEL)
    return {
        "chunks": [chunk.text for chunk in chunks],
        "document_tokens": count_tokens(state["document"], model=MODEL),
    }


def annual_report(seed: int = 2024) -> str:
    """A long, realistic-looking operations report: 4 quarters × 8 regions × 7 product lines."""
    rng = random.Random(seed)
    parts = ["# 2024 年度运营报告 / Annual Operations Report 2024\n"]
    for quarter in range(1, 5):
        parts.append(f"\n## 第 {quarter} 季度 / Q{quarter}\n")
        for region in REGIONS:
            parts.append(f"\n### {region}区 — Q{quarter}\n")
            for product in PRODUCTS:
                parts.append(_paragraph(rng, quarter, region, product))
        parts.append(_quarter_notes(rng, quarter))
    return "".join(parts)


def _paragraph(rng: random.Random, quarter: int, region: str, product: str) -> str:
    revenue = rng.randint(180, 2400) * 10_000
    growth = rng.uniform(-8, 24)
    orders = rng.randint(2_000, 60_000)
    returns = rng.uniform(0.8, 6.5)
    days = rng.uniform(1.2, 4.8)
    nps = rng.randint(28, 71)
    return (
        f"\n{region}区 {product} 在第 {quarter} 季度实现收入 {revenue:,} 元，同比"
        f"{'增长' if growth >= 0 else '下降'} {abs(growth):.1f}%，订单 {orders:,} 笔，退货率 "
        f"{returns:.1f}%，平均配送时效 {days:.1f} 天，NPS 为 {nps}。"
        f"In Q{quarter}, {product} in the {region} region brought in CNY {revenue:,} "
        f"({growth:+.1f}% year on year) from {orders:,} orders; returns were {returns:.1f}% and "
        f"deliveries took {days:.1f} days on average. "
        f"团队认为主要原因是{rng.choice(CAUSES)}，下季度计划{rng.choice(PLANS)}。\n"
    )


def _quarter_notes(rng: random.Random, quarter: int) -> str:
    risk = rng.choice(RISKS)
    return (
        f"\n### 第 {quarter} 季度小结 / Q{quarter} summary\n\n"
        f"本季度整体经营稳健，主要风险是{risk}。管理层将继续控制费用，"
        f"并把资源集中在复购率高的品类。Management will keep costs under control and focus "
        f"on the categories customers buy again.\n"
    )


def chunk_tokens(text: str) -> int:
    """Tokens of ``text`` as the budget counts them for atdak-llama-70b."""
    return count_tokens(text, model=MODEL)
