"""The dialogue engine: one customer message in, the bot's replies and the new dialogue memory out.

It has no database and no HTTP: it reads the flows, the understanding of the message, the memory of the
conversation and of the contact, and calls the order system through the ``OrderDesk`` port. The caller
(``kefu.bot.actions``) loads the memory, stores the result and posts the replies, so the same engine runs in
the live worker, the simulation and the tests.

Order context is the subtle part. The order a turn is about is, in this order of preference: a number the
customer typed; "the other one" (the order before the current one); the order the contact talked about
last, in any conversation on any channel; the one order that fits the question (a customer whose only
recent unshipped order is being chased is not asked which); else the bot lists the candidates and asks.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kefu.bot import policies
from kefu.bot.flows import SKILLS, Flow, FlowSet, Slot, render
from kefu.bot.ports import KnowledgeAnswer, KnowledgeDesk, OrderBrief, OrderDesk, OrderSystemDown, Outcome
from kefu.nlp.understanding import Understanding

log = logging.getLogger("kefu.bot")
RECENT_DAYS = 30
MAX_CHOICES = 5
MAX_TURNS_KEPT = 12
# Outcomes that are true answers but need a person to follow up (a late shipment the bot cannot speed up).
FOLLOW_UP_CODES = frozenset({"late"})
SMALL_TALK = {"greeting": "greeting", "thanks": "thanks", "goodbye": "goodbye"}
# Intents that name a flow strongly enough to leave the flow in progress for it.
SWITCH_CONFIDENCE = 0.6
_ORDER_NUMBER = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{0,4}\d{6,24}(?![A-Za-z0-9])")
_ORDINALS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5,
             "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "one": 1, "two": 2, "three": 3,
             "four": 4, "five": 5}
_ORDINAL = re.compile(r"第\s*([一二两三四五1-5])\s*(?:个|笔|单|项)?|([1-5])(?:st|nd|rd|th)?\s*[.、)]?|"
                      r"(first|second|third|fourth|fifth)|(?:number|no\.?|#)\s*([1-5]|one|two|three|four|five)|"
                      r"(last|最后(?:一个|那个|一笔|那笔|一单)?)", re.IGNORECASE)
# Words around a pick that do not change it: "the first one please", "就第二个吧", "I'll take number 2".
_PICK_BEFORE = re.compile(r"^(?:(?:the|just|i'll take|i want|i mean|it's|its)\b|就|要|选|是)\s*", re.IGNORECASE)
_PICK_AFTER = re.compile(r"\s*(?:\b(?:one|order|item|please|pls)|吧|啊|呀|哈|就行|就好|订单|那个|那笔|的)$", re.IGNORECASE)


# A message that fits a pending free-text question answers it unless its intent is at least this sure.
TEXT_ANSWER_UNLESS = 0.9


def _fits_text_slot(slot: Slot, text: str) -> bool:
    value = " ".join(text.split())
    return slot.min_length <= len(value) <= slot.max_length and not (slot.pattern and not re.search(slot.pattern, value))


def _digit_runs(text: str, u: Understanding) -> tuple[list[str], list[str]]:
    """Digit runs that may be order numbers of a shop whose format the model does not know: those free, and those
    inside something it recognised as else (a phone number, a tracking number)."""
    spans = [(e.start, e.end) for e in u.entities if e.type != "order_number"]
    free: list[str] = []
    inside: list[str] = []
    for m in _ORDER_NUMBER.finditer(text):
        (inside if any(start < m.end() and m.start() < end for start, end in spans) else free).append(m.group(0))
    return free, inside


def _loose_order_numbers(text: str, u: Understanding) -> list[str]:
    return _digit_runs(text, u)[0]


def _contains(text: str, word: str) -> bool:
    """``word`` in ``text``; a Latin word only as a whole word ("other" is not in "another")."""
    if word.isascii() and word[:1].isalnum():
        return re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", text) is not None
    return word in text


def ordinal(text: str, count: int) -> int | None:
    """Which of ``count`` listed choices ``text`` picks by position (1-based): "2", "第二个", "the second one",
    "number 2", "the last one"; 0 when it names a position past the list, None when it is no pick by position."""
    said = text.strip().rstrip("。.!！?？~～ ").strip()
    match = _ORDINAL.fullmatch(said)
    for _ in range(3):  # "number one" must match before "one" is taken off as a filler
        if match:
            break
        said = _PICK_AFTER.sub("", _PICK_BEFORE.sub("", said)).strip()
        match = _ORDINAL.fullmatch(said)
    if not match:
        return None
    raw = next(g for g in match.groups() if g).lower()
    index = count if raw.startswith(("last", "最后")) else _ORDINALS.get(raw, 0)
    return index if index <= count else 0


@dataclass
class Memory:
    """The dialogue state of one conversation plus the contact's carried-over order context."""

    language: str | None = None
    flow: str | None = None
    step: str | None = None  # "slot:<name>" | "confirm" | None
    last_flow: str | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    strikes: int = 0
    turns: list[dict[str, Any]] = field(default_factory=list)
    current_order_id: str | None = None
    mentioned: list[str] = field(default_factory=list)  # order ids, most recent last
    orders: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> {number, headline} seen this turn
    # The knowledge-base answer (or choices) the bot gave in its last reply: the next message may be a verdict
    # on it ("没用", "thanks") or a pick among the choices. {"answer_id", "mode": answer|choices, "entry_id",
    # "choices": [{"id", "question"}]}; stored with the slots under "_kb".
    knowledge: dict[str, Any] | None = None

    def mention(self, order: OrderBrief) -> None:
        if self.mentioned and self.mentioned[-1] == order.id:
            pass
        else:
            self.mentioned = [o for o in self.mentioned if o != order.id][-9:] + [order.id]
        self.current_order_id = order.id
        self.orders[order.id] = {"number": order.number, "headline": order.headline}

    def reset_flow(self) -> None:
        self.flow, self.step, self.slots = None, None, {}


@dataclass
class Customer:
    tenant_id: str
    contact_id: str
    conversation_id: str
    message_id: str
    vip_level: int = 0
    verified: bool = False
    first_turn: bool = False
    channel: str | None = None  # the conversation's channel: knowledge entries may be visible on some only


@dataclass
class TurnResult:
    replies: list[str]
    memory: Memory
    intent: str
    confidence: float
    language: str
    flow: str | None = None
    handoff: policies.HandoffDecision | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)  # what the bot did, for the agent's summary
    resolved: bool = False  # a flow's skill succeeded: the contact's question was settled
    order_category: str | None = None
    # Verdicts and handoffs to record on knowledge-base answers, in the turn's transaction:
    # {"answer_id", "helpful": bool} / {"answer_id", "handed_off": True}.
    knowledge_records: list[dict[str, Any]] = field(default_factory=list)


class _Stop(Exception):
    """Internal: the turn ends with a handoff decided deep inside slot filling or a skill."""

    def __init__(self, decision: policies.HandoffDecision, reply: str | None = None):
        self.decision = decision
        self.reply = reply


class Engine:
    def __init__(self, *, flows: FlowSet, desk: OrderDesk, knowledge: KnowledgeDesk | None,
                 thresholds: policies.HandoffThresholds, default_language: str = "zh",
                 now: datetime | None = None) -> None:
        self.flows = flows
        self.desk = desk
        self.knowledge = knowledge
        self.thresholds = thresholds
        self.default_language = default_language
        self.now = now
        self._orders_cache: list[OrderBrief] | None = None
        # Knowledge answers a handoff in this turn comes right after (the last reply's, this turn's own).
        self._kb_open: list[str] = []

    async def respond(self, *, text: str, understanding: Understanding, memory: Memory,
                      customer: Customer) -> TurnResult:
        """Answer one customer message (see the module docstring for how the order is chosen)."""
        self._orders_cache = None
        self._kb_open = []
        pending, memory.knowledge = memory.knowledge, None  # only the very next message can answer it
        lang = policies.reply_language(understanding, memory.language, self.default_language)
        memory.language = lang
        result = TurnResult(replies=[], memory=memory, intent=understanding.intent,
                            confidence=understanding.confidence, language=lang)
        if understanding.truncated:
            result.replies.append(self.flows.text("truncated", lang))
        decision = policies.decide_handoff(text=text, understanding=understanding, strikes=memory.strikes,
                                           vip_level=customer.vip_level, thresholds=self.thresholds,
                                           first_turn=customer.first_turn)
        if decision is not None and decision.reason in (policies.ANGER, policies.ANXIETY) and \
                memory.step == "confirm" and (policies.is_yes(text) or policies.is_no(text)):
            decision = None  # "不要了，算了" answering our question is a plain no, not an outburst
        if pending is not None and pending.get("answer_id"):
            try:
                if await self._after_knowledge(text, understanding, pending, memory, customer, result, decision):
                    return result
            except _Stop as stop:
                if stop.reply:
                    result.replies.append(stop.reply)
                return self._handoff(result, stop.decision)
        if decision is not None and decision.reason != policies.LOW_CONFIDENCE:
            return self._handoff(result, decision)
        try:
            await self._dispatch(text, understanding, memory, customer, result, decision)
        except _Stop as stop:
            if stop.reply:
                result.replies.append(stop.reply)
            return self._handoff(result, stop.decision)
        except OrderSystemDown as exc:
            result.actions.append({"skill": "order_lookup", "ok": False, "code": "order_system_down"})
            result.replies.append(self.flows.text("order_system_down", lang))
            return self._handoff(result, policies.HandoffDecision(policies.ORDER_SYSTEM_DOWN,
                                                                  {"error": str(exc)[:200]}))
        return result

    # -- turn dispatch ---------------------------------------------------------------------------------

    async def _dispatch(self, text: str, u: Understanding, memory: Memory, customer: Customer, result: TurnResult,
                        low: policies.HandoffDecision | None) -> None:
        lang = result.language
        flow = self.flows.flows.get(memory.flow or "")
        target = self.flows.for_intent(u.intent)
        confident = not policies.is_low_confidence(u, self.thresholds)
        if flow is not None and memory.step is not None and memory.step != "confirm" and policies.is_decline(text):
            self._decline(flow, memory, result, lang)  # "算了" / "never mind" to the question it asks
            return
        if flow is not None and memory.step is not None:
            # "thanks, bye" or "hello" is never the answer to the pending question (an invoice title, say).
            sure = u.confidence >= SWITCH_CONFIDENCE and not self._fills_step(text, u, flow, memory)
            small_talk = sure and u.intent in SMALL_TALK and policies.only_small_talk(text)
            if small_talk and u.intent == "greeting":  # ask again, not counted as a miss
                result.flow = flow.name
                result.replies.append(self.flows.styled(self._pending_question(flow, memory, lang), lang))
                return
            switching = small_talk or (sure and target is not None and target.name != flow.name)
            if not switching:
                result.flow = flow.name
                await self._continue(text, u, flow, memory, customer, result)
                return
            memory.reset_flow()
        if not confident and memory.last_flow in self.flows.flows and (
                policies.means_other_one(text) or u.entities_of("order_number") or _loose_order_numbers(text, u)):
            # "And the other one?" / "what about DS100008?": the same question about another order.
            target, confident, low = self.flows.flows[memory.last_flow], True, None
        if not confident or low is not None:
            # A question the intent model does not know may still be one the shop wrote an answer for.
            if await self._knowledge(text, memory, customer, result):
                return
            if low is not None:
                raise _Stop(low)
            memory.strikes += 1
            result.replies.append(self.flows.text("clarify", lang))
            return
        memory.strikes = 0
        if u.intent in SMALL_TALK:
            result.replies.append(self.flows.styled(self.flows.text(SMALL_TALK[u.intent], lang), lang))
            result.resolved = u.intent in ("thanks", "goodbye")
            return
        if target is None:
            if await self._knowledge(text, memory, customer, result):
                return
            raise _Stop(policies.HandoffDecision(policies.UNSUPPORTED_INTENT, {"intent": u.intent}),
                        self.flows.text("no_flow", lang))
        memory.reset_flow()
        memory.flow = memory.last_flow = target.name
        result.flow = target.name
        await self._advance(text, u, target, memory, customer, result, fresh=True)

    def _fills_step(self, text: str, u: Understanding, flow: Flow, memory: Memory) -> bool:
        """Whether this message answers the pending question (then a flow switch would be wrong)."""
        if memory.step == "confirm":
            return policies.is_yes(text) or policies.is_no(text)
        slot = self._slot(flow, memory.step)
        if slot is None:
            return False
        if slot.type == "order":
            return bool(u.entities_of("order_number") or _loose_order_numbers(text, u)
                        or policies.means_other_one(text) or ordinal(text, MAX_CHOICES) is not None)
        if slot.type == "choice":
            return self._choose(slot, text) is not None
        # Free text (an address, an invoice title) that fits the slot is its answer unless the message is clearly
        # a new question: an address with a phone number read as "track my order" at 0.66.
        return not policies.only_small_talk(text) and u.confidence < TEXT_ANSWER_UNLESS and _fits_text_slot(slot, text)

    async def _continue(self, text: str, u: Understanding, flow: Flow, memory: Memory, customer: Customer,
                        result: TurnResult) -> None:
        lang = result.language
        if memory.step == "confirm":
            if policies.is_yes(text):
                memory.strikes = 0
                await self._perform(flow, memory, customer, result)
            elif policies.is_no(text):
                self._decline(flow, memory, result, lang)
            else:
                self._strike(memory, lang, result, self.flows.text("confirm_again", lang))
            return
        slot = self._slot(flow, memory.step)
        if slot is None:
            memory.reset_flow()
            return
        if slot.type == "choice" and self._choose(slot, text) is None and \
                self._fill_choices(flow, text, memory, most_of_it=True):
            # They answered a later question first ("质量问题" when asked return or exchange): keep that answer
            # and ask this one again, without counting it as a miss.
            await self._advance(text, u, flow, memory, customer, result, fresh=False)
            return
        filled = await self._fill(slot, text, u, memory, customer, result, asked=True)
        if not filled:
            return
        await self._advance(text, u, flow, memory, customer, result, fresh=False)

    def _decline(self, flow: Flow, memory: Memory, result: TurnResult, lang: str) -> None:
        memory.strikes = 0
        memory.reset_flow()
        result.replies.append(self.flows.styled(flow.reply("declined", lang)
                                                or self.flows.text("confirm_declined", lang), lang))
        result.actions.append({"skill": flow.skill, "ok": True, "code": "declined"})
        result.resolved = True

    def _strike(self, memory: Memory, lang: str, result: TurnResult, reprompt: str) -> None:
        memory.strikes += 1
        if memory.strikes >= self.thresholds.low_confidence_strikes:
            raise _Stop(policies.HandoffDecision(policies.LOW_CONFIDENCE, {"strikes": memory.strikes}))
        result.replies.append(reprompt)

    async def _advance(self, text: str, u: Understanding, flow: Flow, memory: Memory, customer: Customer,
                       result: TurnResult, *, fresh: bool) -> None:
        """Fill what this message offers, ask for the first missing slot, confirm, then run the skill."""
        lang = result.language
        if fresh:  # the opening message may answer later questions too: "I received the wrong item", "我要退货"
            self._fill_choices(flow, text, memory, unambiguous=True)
        for slot in flow.slots:
            if slot.name in memory.slots:
                continue
            said = len(result.replies)
            if fresh or slot.type != "text":
                filled = await self._fill(slot, text, u, memory, customer, result, asked=False, flow=flow)
                if filled:
                    continue
            memory.step = f"slot:{slot.name}"
            if len(result.replies) == said:  # else _fill already asked again, with the reason
                result.replies.append(self.flows.styled(self._render(slot.prompt[lang], memory, lang), lang))
            return
        if flow.skill and SKILLS[flow.skill].writes and not customer.verified:
            raise _Stop(policies.HandoffDecision(policies.VERIFICATION_NEEDED, {"skill": flow.skill}),
                        self.flows.text("verification_needed", lang))
        if flow.confirm:
            if memory.step != "confirm":
                memory.step = "confirm"
                result.replies.append(self.flows.styled(self._render(flow.confirm[lang], memory, lang), lang))
                return
        await self._perform(flow, memory, customer, result)

    # -- slots -----------------------------------------------------------------------------------------

    @staticmethod
    def _slot(flow: Flow, step: str | None) -> Slot | None:
        if not step or not step.startswith("slot:"):
            return None
        name = step.split(":", 1)[1]
        return next((s for s in flow.slots if s.name == name), None)

    async def _fill(self, slot: Slot, text: str, u: Understanding, memory: Memory, customer: Customer,
                    result: TurnResult, *, asked: bool, flow: Flow | None = None) -> bool:
        lang = result.language
        if slot.type == "order":
            order = await self._pick_order(text, u, memory, customer, result, asked=asked,
                                           skill=(flow.skill if flow else None) or self._skill_of(memory))
            if order is None:
                return False
            memory.slots[slot.name] = {"id": order.id, "number": order.number}
            memory.slots["_order_params"] = {"order_title": order.lines[0].title if order.lines else "",
                                             "order_total": str(order.total) if order.total else ""}
            memory.mention(order)
            result.order_category = order.category
            return True
        if slot.type == "choice":
            # Asked, the longest word decides; unasked, a message naming two options ("退换货") answers neither.
            value = self._choose(slot, text, unambiguous=not asked)
            if value is None:
                if asked:
                    self._strike(memory, lang, result, self.flows.styled(self._render(slot.prompt[lang], memory, lang),
                                                                         lang))
                return False
            memory.slots[slot.name] = value
            return True
        if not asked:
            return False
        value = " ".join(text.split())
        if not _fits_text_slot(slot, value):
            self._strike(memory, lang, result,
                         self.flows.styled(self._render((slot.invalid or slot.prompt)[lang], memory, lang), lang))
            return False
        memory.slots[slot.name] = value
        return True

    def _skill_of(self, memory: Memory) -> str | None:
        flow = self.flows.flows.get(memory.flow or "")
        return flow.skill if flow else None

    def _pending_question(self, flow: Flow, memory: Memory, lang: str) -> str:
        """The question the flow waits on, asked again."""
        slot = self._slot(flow, memory.step)
        if slot is not None and slot.type == "order" and not memory.slots.get("_choices"):
            return self.flows.text("ask_order_number", lang)  # no list to choose from: the number was asked for
        if slot is not None:
            return self._render(slot.prompt[lang], memory, lang)
        return self._render(flow.confirm[lang], memory, lang) if flow.confirm else ""

    def _fill_choices(self, flow: Flow, text: str, memory: Memory, **match: bool) -> bool:
        """Fill the flow's open choice slots, other than the one being asked, that ``text`` answers (``match``:
        how strictly, see ``_choose``); whether it answered any."""
        filled = False
        for slot in flow.slots:
            if slot.type == "choice" and slot.name not in memory.slots and f"slot:{slot.name}" != memory.step:
                value = self._choose(slot, text, **match)
                if value is not None:
                    memory.slots[slot.name] = value
                    filled = True
        return filled

    @staticmethod
    def _choose(slot: Slot, text: str, *, most_of_it: bool = False, unambiguous: bool = False) -> str | None:
        """The option whose longest word ``text`` contains; with ``most_of_it``, only a word that is more than
        half of the message ("质量问题", "it's the wrong size"), not one met by chance ("which other options");
        with ``unambiguous``, only when no other option's word is in it too ("退换货" names both)."""
        lowered = " ".join(text.lower().split()).strip(" ,，.。!！?？~～")
        best: tuple[int, str] | None = None
        met: set[str] = set()
        for option in slot.options:
            if unambiguous and option.get("catch_all"):
                continue  # "other", "别的" answer only their own question (see Slot.options)
            for lang in ("zh", "en"):
                for word in option.get(lang, []):
                    if _contains(lowered, word.lower()):
                        met.add(option["value"])
                        if best is None or len(word) > best[0]:
                            best = (len(word), option["value"])
        if best is None or (most_of_it and best[0] * 2 <= len(lowered)) or (unambiguous and len(met) > 1):
            return None
        return best[1]

    async def _orders(self, customer: Customer) -> list[OrderBrief]:
        if self._orders_cache is None:
            self._orders_cache = await self.desk.customer_orders(tenant_id=customer.tenant_id,
                                                                 contact_id=customer.contact_id)
        return self._orders_cache

    async def _pick_order(self, text: str, u: Understanding, memory: Memory, customer: Customer,
                          result: TurnResult, *, asked: bool, skill: str | None) -> OrderBrief | None:
        lang = result.language
        free, inside = _digit_runs(text, u)
        numbers = [e.normalized or e.value for e in u.entities_of("order_number")]
        numbers += [n for n in free if n not in numbers]
        own = await self._orders(customer)
        by_id = {o.id: o for o in own}
        if not numbers:  # a run the model read as a phone or tracking number is still this customer's order
            mine = next((o for n in inside for o in own if n in (o.number, o.id)), None)
            if mine is not None:
                return mine
        if numbers:
            for number in numbers:
                match = next((o for o in own if number in (o.number, o.id)), None)
                if match is not None:
                    return match
            order = await self.desk.order(tenant_id=customer.tenant_id, number=numbers[0])
            if order is None:
                self._strike(memory, lang, result, self.flows.text("order_not_found", lang, number=numbers[0]))
                return None
            if own or customer.verified:
                self._strike(memory, lang, result, self.flows.text("order_not_yours", lang, number=numbers[0]))
                return None
            # An anonymous visitor typing an order number could be anyone: people check who they are.
            raise _Stop(policies.HandoffDecision(policies.VERIFICATION_NEEDED, {"number": numbers[0]}),
                        self.flows.text("verification_needed", lang))
        fitting = self._fitting(own, skill)
        if policies.means_other_one(text):
            other = self._other_order(memory, own, fitting)
            if other is not None:
                return other
        choices = memory.slots.get("_choices") or []
        if asked and choices:
            picked = self._ordinal_pick(text, choices, own)
            if picked is not None:
                memory.slots.pop("_choices", None)
                return picked
        current = by_id.get(memory.current_order_id or "")
        if current is not None and not asked and self._relevant(current, skill):
            return current  # the order talked about last, in this or an earlier conversation
        if len(fitting) == 1:
            return fitting[0]
        if not own:
            memory.slots.pop("_choices", None)
            if asked:
                self._strike(memory, lang, result, self.flows.text("ask_order_number", lang))
            else:
                result.replies.append(self.flows.styled(self.flows.text("ask_order_number", lang), lang))
            return None
        memory.slots["_choices"] = [o.id for o in (fitting or own)[:MAX_CHOICES]]
        for order in (fitting or own)[:MAX_CHOICES]:
            memory.orders[order.id] = {"number": order.number, "headline": order.headline}
        if asked:
            self._strike(memory, lang, result, self.flows.styled(self._choice_prompt(memory, lang), lang))
        return None

    @staticmethod
    def _other_order(memory: Memory, own: list[OrderBrief], fitting: list[OrderBrief]) -> OrderBrief | None:
        """The order mentioned before the current one; else the next one that fits the question."""
        by_id = {o.id: o for o in own}
        for order_id in reversed(memory.mentioned):
            if order_id != memory.current_order_id and order_id in by_id:
                return by_id[order_id]
        return next((o for o in (*fitting, *own) if o.id != memory.current_order_id), None)

    @staticmethod
    def _ordinal_pick(text: str, choices: list[str], own: list[OrderBrief]) -> OrderBrief | None:
        by_id = {o.id: o for o in own}
        index = ordinal(text, len(choices))
        if index:
            return by_id.get(choices[index - 1])
        lowered = text.lower()
        hits = [by_id[c] for c in choices if c in by_id and any(
            line.title and (line.title.lower() in lowered or lowered.strip() in line.title.lower() and len(lowered.strip()) >= 2)
            for line in by_id[c].lines)]
        return hits[0] if len(hits) == 1 else None

    def _fitting(self, own: list[OrderBrief], skill: str | None) -> list[OrderBrief]:
        """The customer's recent orders this question can be about (one fits: do not ask which)."""
        now = self.now or datetime.now(UTC)
        recent = [o for o in own if o.placed_at is None or o.placed_at >= now - timedelta(days=RECENT_DAYS)]
        narrowed = [o for o in recent if self._relevant(o, skill)]
        return narrowed or recent

    @staticmethod
    def _relevant(order: OrderBrief, skill: str | None) -> bool:
        relevant = {
            "track_order": lambda o: o.in_transit,
            "delivery_estimate": lambda o: o.in_transit or o.open_for_changes,
            "urge_shipment": lambda o: o.open_for_changes,
            "cancel_order": lambda o: o.open_for_changes,
            "change_address": lambda o: o.open_for_changes,
            "refund_status": lambda o: o.has_refund,
            "return_or_exchange": lambda o: o.status in ("delivered", "completed", "partially_refunded"),
            "price_protection": lambda o: o.status not in ("cancelled", "refunded", "returned", "unpaid"),
            "request_invoice": lambda o: o.status not in ("cancelled", "unpaid"),
        }.get(skill or "")
        return relevant is None or bool(relevant(order))

    def _choice_prompt(self, memory: Memory, lang: str) -> str:
        flow = self.flows.flows.get(memory.flow or "")
        slot = next((s for s in flow.slots if s.type == "order"), None) if flow else None
        return self._render(slot.prompt[lang] if slot else "{choices}", memory, lang)

    def _render(self, template: str, memory: Memory, lang: str, extra: dict[str, Any] | None = None) -> str:
        """Fill a template from the slots, the order in hand, choice labels and the skill's parameters."""
        choices = memory.slots.get("_choices") or []
        listing = "".join(f"\n{i}. {memory.orders.get(c, {}).get('headline', c)}" for i, c in enumerate(choices, 1))
        params: dict[str, Any] = {"choices": listing}
        order = memory.slots.get("order")
        if isinstance(order, dict):
            params["order_number"] = order.get("number")
            params.update(memory.slots.get("_order_params") or {})
        flow = self.flows.flows.get(memory.flow or "")
        for key, value in memory.slots.items():
            if key.startswith("_") or isinstance(value, dict):
                continue
            params[key] = value
            slot = next((s for s in flow.slots if s.name == key), None) if flow else None
            if slot is not None and slot.type == "choice":
                option = next((o for o in slot.options if o["value"] == value), None)
                words = (option or {}).get(lang) or [value]
                params[f"{key}_label"] = words[0]
        params.update(extra or {})
        return render(template, params).strip()

    # -- skills ----------------------------------------------------------------------------------------

    async def _perform(self, flow: Flow, memory: Memory, customer: Customer, result: TurnResult) -> None:
        lang = result.language
        order: OrderBrief | None = None
        slot_order = memory.slots.get("order")
        if isinstance(slot_order, dict):
            own = await self._orders(customer)
            order = next((o for o in own if o.id == slot_order["id"]), None)
            if order is None:
                order = await self.desk.order(tenant_id=customer.tenant_id, number=slot_order["number"])
            if order is None:
                raise _Stop(policies.HandoffDecision(policies.ACTION_FAILED, {"skill": flow.skill,
                                                                              "code": "order_vanished"}),
                            self.flows.text("order_not_found", lang, number=slot_order["number"]))
            result.order_category = order.category
        if flow.skill is None:
            outcome = Outcome(ok=True, code="default")
        else:
            slots = {k: v for k, v in memory.slots.items() if not k.startswith("_")}
            outcome = await self.desk.perform(
                tenant_id=customer.tenant_id, skill=flow.skill, order=order, slots=slots, language=lang,
                idempotency_key=f"bot:{customer.message_id}", contact_id=customer.contact_id,
                conversation_id=customer.conversation_id)
        result.actions.append({"skill": flow.skill, "ok": outcome.ok, "code": outcome.code,
                               "order": order.number if order else None, **outcome.data})
        params = dict(outcome.params)
        if order is not None:
            params.setdefault("order_number", order.number)
        template = flow.reply(outcome.code, lang)
        text = self.flows.styled(self._render(template, memory, lang, params), lang) if template else None
        memory.reset_flow()
        skill = SKILLS.get(flow.skill or "")
        failed = not outcome.ok or (skill is not None and outcome.code in skill.failures)
        if failed or outcome.code in FOLLOW_UP_CODES:
            reason = policies.ACTION_FAILED if failed else policies.ACTION_FOLLOW_UP
            raise _Stop(policies.HandoffDecision(reason, {"skill": flow.skill, "code": outcome.code}), text)
        if text:
            result.replies.append(text)
        result.resolved = flow.done

    # -- knowledge base --------------------------------------------------------------------------------

    async def _knowledge(self, text: str, memory: Memory, customer: Customer, result: TurnResult) -> bool:
        """Answer from the knowledge base, or offer its closest entries; False when it has nothing good enough."""
        if self.knowledge is None or len(_normalised(text)) < 2:
            return False  # "2", "?" or an emoji is no question for the knowledge base (nor for gap mining)
        lang = result.language
        try:
            answer = await self.knowledge.answer(tenant_id=customer.tenant_id, question=text, language=lang,
                                                 channel=customer.channel, conversation_id=customer.conversation_id,
                                                 message_id=customer.message_id)
        except Exception:  # the knowledge base is a nice-to-have here; people still get the question
            log.exception("knowledge base answer failed", extra={"conversation_id": customer.conversation_id})
            return False
        if answer is None:
            return False
        if answer.decision == "answer" and answer.text.strip():
            self._give_answer(answer, memory, result)
            result.actions.append({"skill": "knowledge", "ok": True, "code": "answered", "entry": answer.entry_id})
            return True
        if answer.decision == "choices" and answer.choices:
            listing = "".join(f"\n{i}. {c.question}" for i, c in enumerate(answer.choices, 1))
            result.replies.append(self.flows.styled(self.flows.text("kb_choices", lang), lang) + listing
                                  + "\n" + self.flows.text("kb_choices_hint", lang))
            memory.strikes = 0
            memory.knowledge = {"answer_id": answer.answer_id, "mode": "choices",
                                "choices": [{"id": c.id, "question": policies.clip(c.question, 200)}
                                            for c in answer.choices]}
            result.actions.append({"skill": "knowledge", "ok": True, "code": "choices",
                                   "entries": [c.id for c in answer.choices]})
            return True
        if answer.answer_id:
            self._kb_open.append(answer.answer_id)  # nothing good enough: a handoff now follows this question
        return False

    def _give_answer(self, answer: KnowledgeAnswer, memory: Memory, result: TurnResult) -> None:
        lang = result.language
        # The entry's text is the shop's own words: sent as it is (never rendered as a template), with a hint
        # that "没用" brings a person.
        result.replies.append(self.flows.styled(answer.text.strip(), lang) + "\n"
                              + self.flows.text("kb_feedback_hint", lang))
        result.resolved = True
        memory.strikes = 0
        memory.knowledge = {"answer_id": answer.answer_id, "mode": "answer", "entry_id": answer.entry_id}

    async def _after_knowledge(self, text: str, u: Understanding, pending: dict[str, Any], memory: Memory,
                               customer: Customer, result: TurnResult,
                               decision: policies.HandoffDecision | None) -> bool:
        """The message right after a knowledge answer: a verdict on it, or a pick among the offered choices.

        Returns True when the message was exactly that (the turn is complete); False to handle it as usual.
        """
        lang = result.language
        answer_id = str(pending["answer_id"])
        if policies.not_helpful(text):
            self._kb_open.append(answer_id)
            result.knowledge_records.append({"answer_id": answer_id, "helpful": False})
            result.actions.append({"skill": "knowledge", "ok": False, "code": "not_helpful",
                                   "entry": pending.get("entry_id")})
            if decision is None or decision.reason == policies.LOW_CONFIDENCE:
                decision = policies.HandoffDecision(policies.KNOWLEDGE_NOT_HELPFUL,
                                                    {"entry_id": pending.get("entry_id")})
            raise _Stop(decision, self.flows.styled(self.flows.text("kb_sorry", lang), lang))
        if decision is not None:
            # The customer's reaction to the answer sends them to people (asked for one, angry, not understood
            # twice): that handoff counts against the answer. One caused by a later question does not.
            self._kb_open.append(answer_id)
            if decision.reason != policies.LOW_CONFIDENCE:
                return False  # the handoff policy speaks first
        if pending.get("mode") == "answer" and policies.helpful(text):
            result.knowledge_records.append({"answer_id": answer_id, "helpful": True})
            result.actions.append({"skill": "knowledge", "ok": True, "code": "helpful",
                                   "entry": pending.get("entry_id")})
            if u.intent not in SMALL_TALK and not policies.is_low_confidence(u, self.thresholds):
                return False  # "thanks, and where is my parcel?": the verdict is noted, the question answered
            result.replies.append(self.flows.styled(self.flows.text("thanks", lang), lang))
            result.resolved = True
            memory.strikes = 0
            return True
        if pending.get("mode") == "choices" and self.knowledge is not None:
            entry_id = pick_choice(text, [c for c in pending.get("choices") or [] if isinstance(c, dict)])
            if entry_id is None:
                return False  # something else: a new question, answered as usual
            chosen = await self.knowledge.choose(tenant_id=customer.tenant_id, answer_id=answer_id,
                                                 entry_id=entry_id)
            if chosen is None or not chosen.text.strip():
                return False
            self._give_answer(chosen, memory, result)
            result.actions.append({"skill": "knowledge", "ok": True, "code": "picked", "entry": entry_id})
            return True
        return False

    def _handoff(self, result: TurnResult, decision: policies.HandoffDecision) -> TurnResult:
        result.handoff = decision
        result.memory.reset_flow()
        result.memory.strikes = 0
        result.memory.knowledge = None
        for answer_id in dict.fromkeys(self._kb_open):
            result.knowledge_records.append({"answer_id": answer_id, "handed_off": True})
        return result


_PUNCTUATION = re.compile(r"[\s\W_]+", re.UNICODE)


def _normalised(text: str) -> str:
    return _PUNCTUATION.sub("", text).lower()


def pick_choice(text: str, choices: list[dict[str, Any]]) -> str | None:
    """The entry id the customer picked: "2", "第二个", "second one", or (part of) the question's own words."""
    index = ordinal(text, len(choices))
    if index is not None:
        return str(choices[index - 1]["id"]) if index else None
    said = _normalised(text)
    if not said:
        return None
    questions = [(_normalised(str(c.get("question", ""))), str(c["id"])) for c in choices if c.get("id")]
    exact = [entry_id for question, entry_id in questions if question == said]
    if exact:
        return exact[0]
    # A part of one question only ("退货运费" for "退货运费谁出？"), or a question quoted inside the message.
    partial = [entry_id for question, entry_id in questions
               if question and (len(said) >= 3 and said in question or question in said)]
    return partial[0] if len(partial) == 1 else None
