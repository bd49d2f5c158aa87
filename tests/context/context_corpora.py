"""Four test corpora written or generated here (nothing downloaded): English prose, Chinese
prose, Python code and JSON. Each is deterministic and a few thousand tokens long."""

from __future__ import annotations

import json
import random

__all__ = ["CORPORA", "chinese_prose", "english_prose", "json_documents", "python_code"]

_ENGLISH = """\
The harbour town woke slowly that spring. Fishing boats came back before dawn, their decks
slick with rain, and the first customers of the bakery on Quay Street queued under a striped
awning that had seen better summers. Nobody in the queue talked about the weather; it had
rained for eleven days, and there was nothing left to say about it.

Margaret Okafor ran the bakery with her brother, who did the accounts and complained about
them. She liked the early hours. The ovens ticked as they warmed, the radio murmured the
shipping forecast, and for an hour or two the town belonged to people who were actually
doing something. At half past six the school bus went by, and the day became ordinary.

What changed that spring was the library. The county council had announced, in a letter
of remarkable length and very little content, that the building would close "pending a
review of provision". Everyone understood what that meant. The review would take a year,
the building would be sold, and the books would go to a warehouse somewhere inland where
nobody would ever read them again.

Engineers like to say that a system is only as reliable as its weakest component, but
communities are not systems, or not only. A town can lose its post office, its bank and
two of its three pubs and still feel like itself. Lose the place where children learn to
read for pleasure, though, and something harder to name goes with it.

So Margaret did what people in small towns do: she put a notice in the bakery window and
waited to see who turned up. Fourteen people came to the first meeting, which was held in
the back room of the Anchor because the church hall smelled of damp. They included a
retired headteacher, two students home from university, a man who repaired clocks, and
Mrs. Delacroix, who was ninety-one and had opinions about everything.

The plan they made was simple, perhaps naively so. They would prove that the library was
used, by using it. Every person in the room promised to borrow three books a week and to
persuade three other people to do the same. The students built a small website that
counted loans, with a chart that climbed in a satisfying way. The clock repairer, whose
name was Tomasz, offered to fix the heating, which had not worked properly since 2009.

By midsummer the loans had tripled. The council sent an officer to investigate, and she
spent an afternoon watching toddlers at story time, pensioners at the computers and a
teenager reading a chemistry textbook with grim determination. Her report, when it came,
was short. The building stayed open. Nobody ever learnt whether the report had anything to
do with it, and Margaret decided that it did not matter.

There is a lesson here about measurement, although it is not the obvious one. The council
measured what was easy to count and concluded that the library was unnecessary. The town
answered by making the thing they valued countable. Neither side was being dishonest;
each was simply working with the instruments it had. The interesting question is what we
fail to notice when the only instruments we trust are the ones that produce numbers.
"""

_EN_SUBJECTS = [
    "the committee",
    "a careful reader",
    "the new manager",
    "our neighbours",
    "the research team",
    "every volunteer",
    "the old lighthouse keeper",
    "a curious student",
    "the city council",
    "most travellers",
    "the orchestra",
    "the night nurse",
    "a quiet engineer",
    "the village",
]
_EN_VERBS = [
    "considered",
    "questioned",
    "remembered",
    "described",
    "postponed",
    "celebrated",
    "misunderstood",
    "recommended",
    "abandoned",
    "rebuilt",
    "welcomed",
    "examined",
    "explained",
]
_EN_OBJECTS = [
    "the proposal for a second bridge",
    "an unusually long winter",
    "the results of the survey",
    "a collection of forgotten letters",
    "the cost of repairing the harbour wall",
    "a surprising number of complaints",
    "the history of the market square",
    "the decision to close the school",
    "an argument about parking",
    "the festival programme",
]
_EN_TAILS = [
    "before anyone had time to object",
    "with more patience than expected",
    "although the evidence was thin",
    "because nobody else was willing to",
    "in a report that few people read",
    "while the rain kept falling",
    "after a long discussion",
    "despite several serious objections",
    "without telling the newspapers",
]


def english_prose(seed: int = 7, sentences: int = 220) -> str:
    """Hand-written paragraphs followed by generated sentences with a broad vocabulary."""
    rng = random.Random(seed)
    parts = [_ENGLISH]
    paragraph: list[str] = []
    for _ in range(sentences):
        sentence = (
            f"{rng.choice(_EN_SUBJECTS)} {rng.choice(_EN_VERBS)} {rng.choice(_EN_OBJECTS)} "
            f"{rng.choice(_EN_TAILS)}."
        )
        paragraph.append(sentence[0].upper() + sentence[1:])
        if len(paragraph) == rng.randint(4, 7):
            parts.append(" ".join(paragraph))
            paragraph = []
    parts.append(" ".join(paragraph))
    return "\n\n".join(p for p in parts if p)


_CHINESE = """\
清晨六点，小城的菜市场已经热闹起来。卖豆腐的老张把木板一块块摆好，旁边卖青菜的大姐一边整理
刚从地里摘来的菠菜，一边和熟客聊着昨天的天气。空气里混着油条、豆浆和泥土的味道，这是许多人
一天开始的方式。

李老师退休以后，每天都会来这里买菜。她说，菜市场是了解一座城市最好的地方：物价的涨落、
邻居的家长里短、年轻人是否愿意留在家乡，都能从摊主们的闲谈中听出来。最近大家谈得最多的，
是城东那座老图书馆可能要关门的消息。

图书馆建于上世纪八十年代，楼不高，书架有些旧，但冬天有暖气，夏天有风扇，很多孩子就是在那里
第一次读到《西游记》和《十万个为什么》。听说要关门，李老师坐不住了。她在小区的微信群里发了
一条消息，问有没有人愿意一起想办法。

第一次见面来了十几个人：有在读的大学生，有开出租车的师傅，有修钟表的老王，还有一位已经九十
多岁、说话依然中气十足的陈奶奶。大家的想法很朴素——既然有人说图书馆“没人用”，那就让更多
的人去用它。每个人每周至少借三本书，再各自动员三位朋友。

两个大学生做了一个简单的网页，每天更新借阅数量，折线图一路向上，看着让人高兴。老王主动帮忙
修好了坏了多年的暖气片，出租车师傅则在车里放了宣传单，遇到带孩子的乘客就顺手递上一张。

到了夏天，借阅量翻了三倍。文化局派人来调研，工作人员在阅览室里坐了整整一个下午，看着老人们
排队用电脑，小朋友围在一起听故事，一个中学生皱着眉头啃一本厚厚的化学书。几个星期以后，
通知下来了：图书馆继续开放。

这件事让人想到一个关于“衡量”的问题。管理部门只统计容易统计的东西，于是得出图书馆可有可无的
结论；居民们的回应，是把自己珍惜的东西变得可以被统计。双方都没有说谎，只是各自用手里的工具
看世界。真正值得追问的是：当我们只相信能变成数字的东西时，我们会错过什么？
"""

_ZH_SUBJECTS = [
    "社区居民",
    "这位年轻的工程师",
    "学校的老师们",
    "市政府",
    "附近的商户",
    "志愿者团队",
    "来自外地的游客",
    "研究小组",
    "新上任的经理",
    "村里的老人",
    "医院的护士",
    "图书馆管理员",
]
_ZH_VERBS = [
    "认真讨论了",
    "重新评估了",
    "公开反对",
    "积极支持",
    "详细记录了",
    "悄悄推迟了",
    "反复解释了",
]
_ZH_OBJECTS = [
    "修建第二座桥梁的计划",
    "今年冬天异常寒冷的天气",
    "问卷调查的最终结果",
    "老街改造的方案",
    "菜市场搬迁的决定",
    "停车难的问题",
    "春节期间的交通安排",
    "社区食堂的运营成本",
    "河道治理的进度",
]
_ZH_TAILS = [
    "，虽然证据并不充分",
    "，因为没有其他人愿意出面",
    "，讨论持续到了深夜",
    "，却没有通知媒体",
    "，大家的意见并不一致",
    "，结果出乎所有人的意料",
    "，整个过程花了将近三个月",
    "，外面一直在下雨",
]


def chinese_prose(seed: int = 11, sentences: int = 200) -> str:
    """Hand-written Chinese paragraphs followed by generated sentences."""
    rng = random.Random(seed)
    parts = [_CHINESE]
    paragraph: list[str] = []
    for _ in range(sentences):
        end = rng.choice(["。", "。", "。", "！", "？"])
        paragraph.append(
            f"{rng.choice(_ZH_SUBJECTS)}{rng.choice(_ZH_VERBS)}{rng.choice(_ZH_OBJECTS)}"
            f"{rng.choice(_ZH_TAILS)}{end}"
        )
        if len(paragraph) == rng.randint(3, 6):
            parts.append("".join(paragraph))
            paragraph = []
    parts.append("".join(paragraph))
    return "\n\n".join(p for p in parts if p)


_PYTHON = '''\
"""Inventory management for a small warehouse."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from typing import Iterable


@dataclasses.dataclass
class StockItem:
    sku: str
    name: str
    quantity: int = 0
    unit_price: float = 0.0
    updated_at: dt.datetime | None = None

    def value(self) -> float:
        """Total value of this item in stock."""
        return round(self.quantity * self.unit_price, 2)


class Inventory:
    def __init__(self, items: Iterable[StockItem] = ()) -> None:
        self._items: dict[str, StockItem] = {item.sku: item for item in items}
        self._history: defaultdict[str, list[int]] = defaultdict(list)

    def receive(self, sku: str, amount: int) -> StockItem:
        if amount <= 0:
            raise ValueError(f"amount must be positive, got {amount}")
        item = self._items[sku]
        item.quantity += amount
        item.updated_at = dt.datetime.now(dt.timezone.utc)
        self._history[sku].append(amount)
        return item

    def low_stock(self, threshold: int = 5) -> list[StockItem]:
        return sorted(
            (i for i in self._items.values() if i.quantity < threshold),
            key=lambda i: (i.quantity, i.sku),
        )
'''

_PY_NOUNS = ["order", "customer", "invoice", "shipment", "payment", "report", "session", "user"]
_PY_VERBS = ["load", "save", "validate", "compute", "render", "fetch", "merge", "archive"]
_PY_FIELDS = ["id", "name", "total", "status", "created_at", "items", "currency", "notes"]


def _python_function(rng: random.Random) -> str:
    noun, verb = rng.choice(_PY_NOUNS), rng.choice(_PY_VERBS)
    fields = rng.sample(_PY_FIELDS, 3)
    limit = rng.randint(2, 500)
    return f'''
def {verb}_{noun}(record: dict[str, object], *, limit: int = {limit}) -> dict[str, object]:
    """{verb.capitalize()} one {noun} record and return the cleaned copy."""
    result: dict[str, object] = {{}}
    for key in ({fields[0]!r}, {fields[1]!r}, {fields[2]!r}):
        value = record.get(key)
        if value is None:
            continue
        if isinstance(value, str) and len(value) > limit:
            value = value[:limit] + "..."
        result[key] = value
    if not result:
        raise KeyError(f"{noun} record has none of the expected fields: {{sorted(record)}}")
    return result
'''


def python_code(seed: int = 3, functions: int = 45) -> str:
    """A hand-written module followed by generated functions."""
    rng = random.Random(seed)
    return _PYTHON + "".join(_python_function(rng) for _ in range(functions))


def _record(rng: random.Random, index: int) -> dict[str, object]:
    return {
        "id": 10_000 + index,
        "customer": {
            "name": rng.choice(["Alice Martin", "Bob Chen", "Carla Rossi", "Deepak Rao"]),
            "email": f"user{rng.randint(1, 9999)}@example.com",
            "vip": rng.random() < 0.2,
        },
        "items": [
            {
                "sku": f"SKU-{rng.randint(100, 999)}",
                "qty": rng.randint(1, 5),
                "price": round(rng.uniform(1, 200), 2),
            }
            for _ in range(rng.randint(1, 3))
        ],
        "status": rng.choice(["pending", "shipped", "delivered", "refunded"]),
        "created_at": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:15:00Z",
        "tags": rng.sample(["gift", "express", "fragile", "bulk", "returning"], 2),
    }


def json_documents(seed: int = 5, records: int = 70) -> str:
    """Order records as an API or a tool would return them: pretty-printed and compact."""
    rng = random.Random(seed)
    data = [_record(rng, i) for i in range(records)]
    half = records // 2
    return json.dumps(data[:half], indent=2) + "\n" + json.dumps(data[half:])


CORPORA = {
    "english prose": english_prose,
    "chinese prose": chinese_prose,
    "python code": python_code,
    "json": json_documents,
}
