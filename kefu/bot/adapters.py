"""The real implementations of the bot's ports, over the commerce, routing, knowledge and nlp domains.

Everything the bot knows about those packages' APIs is in this file, so when one of them changes only this
file follows. Results are turned into ``Outcome``s whose ``params`` are already formatted for the customer's
language; a source that does not answer (or answers only with an old copy) raises ``OrderSystemDown``: the
bot says so and hands off rather than quoting stale logistics or acting on a copy.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from kefu.bot.ports import (
    KnowledgeAnswer,
    KnowledgeChoice,
    Money,
    OrderBrief,
    OrderLine,
    OrderSystemDown,
    Outcome,
    QueuePlacement,
)
from kefu.commerce import actions as commerce_actions
from kefu.commerce import policies as commerce_policies
from kefu.commerce import service as commerce_service
from kefu.commerce.ports import SourceDown
from kefu.commerce.schemas import Address, AddressChangeRequest, CancelRequest, LineQuantity, ReturnCreate
from kefu.core.errors import DomainError, NotFound
from kefu.core.i18n import name_of
from kefu.knowledge import actions as knowledge_actions
from kefu.knowledge import service as knowledge_service
from kefu.nlp import service as nlp_service
from kefu.nlp.understanding import Understanding

if TYPE_CHECKING:
    from kefu.commerce.schemas import Order, OrderView
    from kefu.runtime import Runtime

log = logging.getLogger("kefu.bot")

# The demo shop's shipping promise: paid orders leave the warehouse within 48 hours (pre-sale: as announced).
# The canonical order has no promise date yet; when connectors provide one, read it here instead.
SHIP_PROMISE_HOURS = 48
TRANSIT_DAYS = 3
_BILINGUAL = re.compile(r"^\s*([^\x00-\x7F][^A-Za-z]*?)\s+([A-Za-z].*)$")
_CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]+")
_PHONE = re.compile(r"(?:\+?86[- ]?)?1[3-9]\d{9}")
REFUND_TEXT = {"zh": {"pending": "处理中", "succeeded": "已退款", "failed": "退款失败", "requested": "退货待审核",
                      "approved": "退货已同意，等待寄回", "received": "退货已签收，退款处理中"},
               "en": {"pending": "being processed", "succeeded": "paid", "failed": "failed",
                      "requested": "awaiting approval", "approved": "approved, waiting for the parcel",
                      "received": "received, refund in progress"}}


def _scan(node: str, description: str, lang: str) -> str:
    """A carrier scan: where and what, once ("Arrived at Hangzhou hub", not "Hangzhou hub Arrived at Hangzhou hub")."""
    where, what = in_language(node, lang), in_language(description, lang)
    return what if where and where in what else f"{where} {what}".strip()


def in_language(text: str, lang: str) -> str:
    """The demo shop writes "派送中 Out for delivery": keep the half in the customer's language."""
    match = _BILINGUAL.match(text or "")
    if not match:
        return text
    if lang == "zh":
        return match.group(1).strip()
    return " ".join(_CJK.sub(" ", match.group(2)).split()) or text


def _fmt_time(at: datetime | None, lang: str) -> str:
    if at is None:
        return ""
    local = at.astimezone(UTC) + timedelta(hours=8)  # shop time (China Standard Time)
    return local.strftime("%m-%d %H:%M") if lang == "zh" else local.strftime("%b %d %H:%M")


def _fmt_date(at: datetime | None, lang: str) -> str:
    if at is None:
        return ""
    local = at.astimezone(UTC) + timedelta(hours=8)
    return f"{local.month}月{local.day}日" if lang == "zh" else local.strftime("%b %d")


def brief(view: OrderView) -> OrderBrief:
    order = view.order
    lines = tuple(OrderLine(title=i.title, quantity=i.quantity, sku=i.sku,
                            category=i.category) for i in order.items)
    promise = (order.paid_at + timedelta(hours=SHIP_PROMISE_HOURS)) if order.paid_at and order.sale_type != "pre_sale" \
        else None
    return OrderBrief(
        id=view.id, number=order.order_id, status=order.status, placed_at=order.created_at,
        total=Money(order.total_paid, order.currency), lines=lines,
        category=order.items[0].category if order.items else None, promised_ship_by=promise,
        has_refund=bool(order.refunds or order.returns), shipped=bool(order.shipments),
        in_transit=any(s.status in ("pending", "in_transit", "exception") for s in order.shipments))


class CommerceOrderDesk:
    """``OrderDesk`` over ``kefu.commerce``: lookups through the read-through cache, actions with idempotency."""

    def __init__(self, runtime: Runtime, *, now: datetime | None = None) -> None:
        self.runtime = runtime
        self.now = now

    def _now(self) -> datetime:
        return self.now or datetime.now(UTC)

    async def customer_orders(self, *, tenant_id: str, contact_id: str, limit: int = 10) -> list[OrderBrief]:
        try:
            found = await commerce_service.orders_of_contact(runtime=self.runtime, tenant_id=tenant_id,
                                                             contact_id=contact_id, limit=limit)
        except NotFound:
            return []
        except SourceDown as exc:
            raise OrderSystemDown(str(exc)) from None
        if found.degraded:
            raise OrderSystemDown("order lookup degraded")
        return [brief(v) for v in found.orders]

    async def order(self, *, tenant_id: str, number: str) -> OrderBrief | None:
        view = await self._view_by_number(tenant_id, number)
        return brief(view) if view is not None else None

    async def _view_by_number(self, tenant_id: str, number: str) -> OrderView | None:
        try:
            if number.startswith("ord_"):
                view = await commerce_service.get_order(runtime=self.runtime, tenant_id=tenant_id, order_ref=number)
            else:
                found = await commerce_service.find_orders(runtime=self.runtime, tenant_id=tenant_id,
                                                           order_number=number, limit=1)
                if found.degraded and not found.orders:
                    raise OrderSystemDown("order lookup degraded")
                view = found.orders[0] if found.orders else None
        except NotFound:
            return None
        except SourceDown as exc:
            raise OrderSystemDown(str(exc)) from None
        if view is not None and view.freshness.degraded:
            raise OrderSystemDown("only a stale copy of the order is available")
        return view

    async def _fresh(self, tenant_id: str, order: OrderBrief) -> OrderView:
        view = await self._view_by_number(tenant_id, order.id)
        if view is None:
            raise OrderSystemDown("order vanished")
        return view

    async def perform(self, *, tenant_id: str, skill: str, order: OrderBrief | None, slots: dict[str, Any],
                      language: str, idempotency_key: str, contact_id: str, conversation_id: str) -> Outcome:
        handler = getattr(self, f"_{skill}", None)
        if handler is None:
            return Outcome(ok=False, code="failed", data={"error": f"unknown skill {skill}"})
        view = await self._fresh(tenant_id, order) if order is not None else None
        try:
            return await handler(tenant_id=tenant_id, view=view, slots=slots, lang=language, key=idempotency_key,
                                 contact_id=contact_id, conversation_id=conversation_id)
        except SourceDown as exc:
            raise OrderSystemDown(str(exc)) from None

    # -- read skills -----------------------------------------------------------------------------------

    def _shipment_params(self, order: Order, lang: str) -> dict[str, Any]:
        shipment = order.shipments[-1]
        events = sorted(shipment.events, key=lambda e: e.at, reverse=True)[:5]
        timeline = "\n".join(f"· {_fmt_time(e.at, lang)} {_scan(e.node, e.description, lang)}".rstrip() for e in events)
        eta = ""
        if shipment.status != "delivered" and shipment.shipped_at:
            expected = shipment.shipped_at + timedelta(days=TRANSIT_DAYS)
            if expected > self._now():
                eta = ("\n预计 " + _fmt_date(expected, lang) + " 送达。") if lang == "zh" \
                    else f"\nExpected by {_fmt_date(expected, lang)}."
        last_status = events[0].status if events else shipment.status
        return {"carrier": in_language(shipment.carrier, lang), "tracking_number": shipment.tracking_number,
                "status": name_of("commerce.shipment_status", last_status, lang), "timeline": timeline, "eta": eta,
                "delivered_at": _fmt_date(shipment.delivered_at, lang),
                "events": len(shipment.events)}

    def _promise(self, order: Order, lang: str) -> tuple[datetime | None, str]:
        if order.sale_type == "pre_sale" or order.paid_at is None:
            return None, "预售公告时间" if lang == "zh" else "the pre-sale date"
        promise = order.paid_at + timedelta(hours=SHIP_PROMISE_HOURS)
        return promise, _fmt_time(promise, lang)

    async def _track_order(self, *, view: OrderView, lang: str, **_: Any) -> Outcome:
        order = view.order
        if order.status == "cancelled":
            return Outcome(True, "cancelled")
        if not order.shipments:
            _, promise = self._promise(order, lang)
            return Outcome(True, "not_shipped", {"promise_date": promise})
        params = self._shipment_params(order, lang)
        if not order.shipments[-1].events:
            return Outcome(True, "no_tracking", params)
        return Outcome(True, "ok", params, {"tracking_number": params["tracking_number"], "events": params["events"]})

    async def _delivery_estimate(self, *, view: OrderView, lang: str, **_: Any) -> Outcome:
        order = view.order
        if order.status == "cancelled":
            return Outcome(True, "cancelled")
        if not order.shipments:
            return Outcome(True, "unknown", {"promise_date": self._promise(order, lang)[1]})
        shipment = order.shipments[-1]
        params = self._shipment_params(order, lang)
        if shipment.status == "delivered":
            return Outcome(True, "delivered", params)
        expected = (shipment.shipped_at or self._now()) + timedelta(days=TRANSIT_DAYS)
        if expected < self._now():
            expected = self._now() + timedelta(days=1)
        params["eta"] = _fmt_date(expected, lang)
        return Outcome(True, "ok", params)

    async def _refund_status(self, *, view: OrderView, lang: str, **_: Any) -> Outcome:
        order = view.order
        texts = REFUND_TEXT[lang]
        if order.refunds:
            last = order.refunds[-1]
            total = sum((r.amount + r.shipping for r in order.refunds), Decimal("0"))
            amount = str(Money(total, order.currency))
            if last.status == "succeeded":
                return Outcome(True, "refunded", {"refund_amount": amount,
                                                  "refunded_at": _fmt_date(last.created_at, lang)})
            eta = "预计 1-3 个工作日到账。" if lang == "zh" else "It usually arrives within 1-3 business days."
            return Outcome(True, "ok", {"refund_amount": amount, "refund_status": texts.get(last.status, last.status),
                                        "refund_eta": eta})
        open_returns = [r for r in order.returns if r.status in ("requested", "approved", "received")]
        if open_returns:
            pending = str(Money(order.total_paid - order.refunded_total, order.currency))
            status = texts.get(open_returns[-1].status, open_returns[-1].status)
            eta = "收到退货后 1-3 个工作日退款。" if lang == "zh" else "We refund 1-3 business days after the parcel arrives."
            return Outcome(True, "ok", {"refund_amount": pending, "refund_status": status, "refund_eta": eta})
        return Outcome(True, "none")

    async def _refund_policy(self, *, tenant_id: str, lang: str, **_: Any) -> Outcome:
        async with self.runtime.sessionmaker() as session:
            rules = await commerce_service.rules_of(session=session, tenant_id=tenant_id)
        names = [commerce_policies.category_name(code, lang) for code in rules.excluded_categories]
        excluded = "、".join(names) if lang == "zh" else " and ".join(", ".join(names).rsplit(", ", 1))
        if lang == "zh":
            policy = (f"支持 {rules.no_reason_return_days} 天无理由退货（{excluded}类商品除外），质量问题 "
                      f"{rules.defect_return_days} 天内可退换，运费由我们承担。退款在收到退货后 1-3 个工作日原路退回。"
                      f"付款后 {rules.price_protection_days} 天内降价可申请价保。")
        else:
            policy = (f"Most items can be returned within {rules.no_reason_return_days} days for any reason (except "
                      f"{excluded}); defective items within {rules.defect_return_days} days at our cost. Refunds go "
                      f"back to your payment method 1-3 business days after the return arrives. If the price drops "
                      f"within {rules.price_protection_days} days of payment, we refund the difference.")
        return Outcome(True, "ok", {"policy": policy})

    async def _price_protection(self, *, tenant_id: str, view: OrderView, lang: str, **_: Any) -> Outcome:
        total = Decimal("0")
        reasons: list[str] = []
        for item in view.order.items:
            quote = await commerce_service.price_protection_quote(runtime=self.runtime, tenant_id=tenant_id,
                                                                  order_ref=view.id, line_id=item.line_id)
            if quote.eligible:
                total += quote.amount
            else:
                reasons += [getattr(r, lang).rstrip("。. ") for r in quote.reasons]
        if total > 0:
            step = "客服确认后差价将原路退回。" if lang == "zh" else "Once confirmed, the difference goes back to your payment method."
            return Outcome(True, "ok", {"amount": str(Money(total, view.order.currency)), "next_step": step},
                           {"amount": format(total, "f")})
        unique = list(dict.fromkeys(reasons))
        if any("not lower" in r or "没有降价" in r or "未降价" in r for r in unique) and len(unique) <= 1:
            return Outcome(True, "no_drop")
        joiner = "；" if lang == "zh" else "; "
        return Outcome(True, "not_eligible", {"reasons": joiner.join(unique[:3])})

    async def _explain_promotions(self, *, view: OrderView, lang: str, **_: Any) -> Outcome:
        order = view.order
        if not order.promotions:
            hint = ("满 299 减 30、满 599 减 50 的活动在结算时自动生效。" if lang == "zh"
                    else "Spend-and-save offers (¥30 off ¥299, ¥50 off ¥599) apply automatically at checkout.")
            return Outcome(True, "none", {"hint": hint})
        details = []
        for promo in order.promotions:
            line = f"· {in_language(promo.title, lang)}: -{Money(promo.amount, order.currency)}"
            if promo.threshold is not None:
                line += (f"（满 {promo.threshold:.0f} 可用）" if lang == "zh" else f" (on orders over {promo.threshold:.0f})")
            details.append(line)
        return Outcome(True, "ok", {"details": "\n".join(details),
                                    "discount_total": str(Money(order.discount_total, order.currency)),
                                    "paid": str(Money(order.total_paid, order.currency))})

    # -- write skills ----------------------------------------------------------------------------------

    async def _record(self, *, tenant_id: str, kind: str, view: OrderView, data: dict[str, Any], key: str,
                      contact_id: str, conversation_id: str) -> tuple[str, bool]:
        from kefu.bot import actions as bot_actions

        uow = self.runtime.unit_of_work()
        try:
            request, created = await bot_actions.do_record_request(
                uow, tenant_id=tenant_id, kind=kind, order_ref=view.id, order_number=view.order.order_id,
                contact_id=contact_id, conversation_id=conversation_id, data=data, idempotency_key=key)
            await uow.commit()
            return request.id, created
        finally:
            await uow.session.close()

    async def _urge_shipment(self, *, tenant_id: str, view: OrderView, lang: str, key: str, contact_id: str,
                             conversation_id: str, **_: Any) -> Outcome:
        order = view.order
        if order.status in ("cancelled", "refunded"):
            return Outcome(True, "cancelled")
        if order.shipments:
            return Outcome(True, "already_shipped", self._shipment_params(order, lang))
        promise, promise_text = self._promise(order, lang)
        late = promise is not None and promise < self._now()
        request_id, _ = await self._record(tenant_id=tenant_id, kind="urge_shipment", view=view, key=key,
                                           data={"promise": promise.isoformat() if promise else None, "late": late},
                                           contact_id=contact_id, conversation_id=conversation_id)
        return Outcome(True, "late" if late else "ok", {"promise_date": promise_text},
                       {"request_id": request_id, "late": late})

    async def _cancel_order(self, *, tenant_id: str, view: OrderView, lang: str, key: str, **_: Any) -> Outcome:
        order = view.order
        if order.status == "cancelled":
            return Outcome(True, "already_cancelled")
        if order.shipments or order.status in ("shipped", "delivered", "completed"):
            return Outcome(True, "already_shipped")
        try:
            result = await commerce_actions.do_cancel_order(
                self.runtime, tenant_id=tenant_id, actor=None, order_ref=view.id,
                data=CancelRequest(reason="customer_request"), idempotency_key=key)
        except SourceDown:
            raise
        except DomainError as exc:
            return self._refusal(exc, "not_cancellable", order, lang)
        return Outcome(True, "ok", {"refund_amount": str(Money(order.total_paid, order.currency))},
                       {"action_id": result.id, "status": result.status})

    def _refusal(self, exc: DomainError, code: str, order: Order, lang: str) -> Outcome:
        if exc.code == "order_already_shipped":
            return Outcome(True, "already_shipped")
        reasons = exc.details.get("reasons") or []
        text = "；".join(r.get(lang, "") for r in reasons if isinstance(r, dict)) if reasons else exc.code
        status = name_of("commerce.order_status", order.status, lang)
        return Outcome(True, code, {"reason": text, "status": status, "reasons": text},
                       {"refusal": exc.code})

    async def _change_address(self, *, tenant_id: str, view: OrderView, slots: dict[str, Any], lang: str, key: str,
                              **_: Any) -> Outcome:
        order = view.order
        if order.shipments or order.status in ("shipped", "delivered", "completed"):
            return Outcome(True, "already_shipped")
        text = str(slots.get("address", "")).strip()
        current = order.shipping_address or Address()
        phone = _PHONE.search(text)
        address = Address(name=current.name, phone=phone.group(0) if phone else current.phone,
                          country=current.country or "CN", line1=text[:200])
        try:
            result = await commerce_actions.do_change_address(
                self.runtime, tenant_id=tenant_id, actor=None, order_ref=view.id,
                data=AddressChangeRequest(address=address), idempotency_key=key)
        except SourceDown:
            raise
        except DomainError as exc:
            return self._refusal(exc, "not_changeable", order, lang)
        return Outcome(True, "ok", {"address": text}, {"action_id": result.id})

    async def _return_or_exchange(self, *, tenant_id: str, view: OrderView, slots: dict[str, Any], lang: str,
                                  key: str, **_: Any) -> Outcome:
        kind = "exchange" if slots.get("kind") == "exchange" else "return"
        reason = "defect" if slots.get("reason") in ("defective", "wrong_item") else "no_reason"
        detail = await commerce_service.order_detail(runtime=self.runtime, tenant_id=tenant_id, order_ref=view.id)
        verdicts = [v for v in detail.returns if v.kind == reason]
        eligible = [v for v in verdicts if v.eligible and v.returnable_quantity > 0]
        if not eligible:
            reasons = list(dict.fromkeys(getattr(r, lang).rstrip("。. ") for v in verdicts for r in v.reasons))
            joiner = "；" if lang == "zh" else "; "
            return Outcome(True, "not_eligible", {"reasons": joiner.join(reasons[:3])}, {"reason": reason})
        lines = [LineQuantity(line_id=v.line_id, quantity=v.returnable_quantity) for v in eligible]
        try:
            result = await commerce_actions.do_create_return(
                self.runtime, tenant_id=tenant_id, actor=None, order_ref=view.id,
                data=ReturnCreate(kind=kind, reason=reason, lines=lines, note="via bot"), idempotency_key=key)
        except SourceDown:
            raise
        except DomainError as exc:
            return self._refusal(exc, "not_eligible", view.order, lang)
        if lang == "zh":
            instructions = "请在 7 天内将商品寄回（退货地址已发送到订单详情），我们收到后 1-3 个工作日内处理。"
        else:
            instructions = "Please send the item back within 7 days (the return address is on the order page); " \
                           "we process it within 1-3 business days of receipt."
        return Outcome(True, "ok", {"request_id": result.id, "instructions": instructions},
                       {"action_id": result.id, "kind": kind, "reason": reason, "lines": len(lines)})

    async def _request_invoice(self, *, tenant_id: str, view: OrderView, slots: dict[str, Any], lang: str, key: str,
                               contact_id: str, conversation_id: str, **_: Any) -> Outcome:
        order = view.order
        if order.status in ("unpaid", "cancelled"):
            reason = "订单未付款或已取消" if lang == "zh" else "the order is unpaid or cancelled"
            return Outcome(True, "not_eligible", {"reasons": reason})
        from kefu.bot import service as bot_service

        async with self.runtime.sessionmaker() as session:
            earlier = await bot_service.find_request(session=session, tenant_id=tenant_id, kind="invoice",
                                                     order_ref=view.id)
        if earlier is not None and earlier.idempotency_key != key:
            return Outcome(True, "already_issued", {}, {"request_id": earlier.id})
        request_id, _ = await self._record(tenant_id=tenant_id, kind="invoice", view=view, key=key,
                                           data={"title": str(slots.get("invoice_title", ""))[:100],
                                                 "amount": format(order.total_paid - order.refunded_total, "f")},
                                           contact_id=contact_id, conversation_id=conversation_id)
        return Outcome(True, "ok", {"request_id": request_id}, {"request_id": request_id})


class RoutingHandoffDesk:
    """``HandoffDesk`` over ``kefu.routing``: a waiting task with the bot's attributes, and a wait estimate."""

    async def enqueue(self, uow: Any, *, tenant_id: str, conversation_id: str, attributes: dict[str, Any],
                      summary: dict[str, Any], priority: int) -> QueuePlacement:
        from kefu.conversations import service as conversation_service
        from kefu.routing import actions as routing_actions

        conversation = await conversation_service.access_conversation(session=uow.session, tenant_id=tenant_id,
                                                                      conversation_id=conversation_id)
        task = await routing_actions.do_enqueue_conversation(uow, conversation=conversation)
        # Routing has no call yet to create a task with extra attributes, so they are merged into the task
        # it just made (a gap reported to routing; this stays the only place that knows).
        task.attributes = {**(task.attributes or {}), **{k: v for k, v in attributes.items() if v is not None},
                           "bot_summary": summary.get("text", "")[:1000]}
        task.priority = max(task.priority or 0, priority)
        await uow.session.flush()
        wait = await self._expected_wait(uow, tenant_id)
        return QueuePlacement(task_id=task.id, queue_name=None, expected_wait_seconds=wait)

    @staticmethod
    async def _expected_wait(uow: Any, tenant_id: str) -> int | None:
        """A plain estimate: the recent average speed of answer, or none when nobody is available."""
        from kefu.routing import service as routing_service

        try:
            stats = await routing_service.queue_stats(session=uow.session, tenant_id=tenant_id)
        except Exception:  # an estimate is not worth failing a handoff for
            log.exception("queue stats for the wait estimate failed")
            return None
        available = sum(q.agents_available for q in stats.queues)
        if not stats.queues or available == 0:
            return None
        asa = [q.average_speed_of_answer_seconds for q in stats.queues if q.average_speed_of_answer_seconds]
        waiting = sum(q.waiting for q in stats.queues)
        base = sum(asa) / len(asa) if asa else 60.0
        return int(max(30.0, base + 60.0 * waiting / max(available, 1)))


class KnowledgeSeam:
    """``KnowledgeDesk`` over ``kefu.knowledge``: every question is recorded through ``actions.do_answer`` (so the
    shop sees answers given and gap mining sees what nobody could answer), a picked choice through
    ``do_choose``, and the customer's verdict and a handoff after an answer in the bot's own unit of work."""

    # Questions longer than this are cut before searching: a pasted essay is not a better query.
    MAX_QUESTION_CHARS = 500
    _REMEMBERED = 256

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # A turn recomputed after a conflict (another node answered meanwhile) asks again with the same message:
        # answer from memory instead of recording the question twice.
        self._asked: OrderedDict[str, KnowledgeAnswer] = OrderedDict()

    async def answer(self, *, tenant_id: str, question: str, language: str, channel: str | None,
                     conversation_id: str, message_id: str) -> KnowledgeAnswer | None:
        known = self._asked.get(message_id)
        if known is not None:
            return known
        # A unit of work of its own, with nothing written before do_answer: an index rebuild can then end its
        # read transaction first, and the bot holds no SQLite write lock while it builds.
        uow = self.runtime.unit_of_work()
        try:
            result = await knowledge_actions.do_answer(
                uow, tenant_id=tenant_id, question=question[:self.MAX_QUESTION_CHARS], language=language,
                channel=channel, conversation_id=conversation_id)
            await uow.commit()
        finally:
            await uow.session.close()
        if result.decision == "answer" and result.best is not None:
            answer = KnowledgeAnswer(decision="answer", text=_plain(result.best.answer_html), answer_id=result.id,
                                     entry_id=result.best.id, score=float(result.best.confidence))
        elif result.decision == "choices" and result.choices:
            answer = KnowledgeAnswer(decision="choices", answer_id=result.id,
                                     score=float(result.choices[0].confidence),
                                     choices=tuple(KnowledgeChoice(c.id, c.question) for c in result.choices[:3]))
        else:
            answer = KnowledgeAnswer(decision="handoff", answer_id=result.id)
        self._asked[message_id] = answer
        while len(self._asked) > self._REMEMBERED:
            self._asked.popitem(last=False)
        return answer

    async def choose(self, *, tenant_id: str, answer_id: str, entry_id: str) -> KnowledgeAnswer | None:
        uow = self.runtime.unit_of_work()
        try:
            try:
                recorded = await knowledge_service.access_answer(session=uow.session, tenant_id=tenant_id,
                                                                 answer_id=answer_id)
                choice = await knowledge_actions.do_choose(uow, answer=recorded, entry_id=entry_id)
            except DomainError:  # the entry was unpublished meanwhile, or the answer is gone
                return None
            await uow.commit()
        finally:
            await uow.session.close()
        return KnowledgeAnswer(decision="answer", text=_plain(choice.answer_html), answer_id=answer_id,
                               entry_id=choice.id, score=float(choice.confidence))

    async def record(self, uow: Any, *, tenant_id: str, answer_id: str, helpful: bool | None = None,
                     handed_off: bool = False) -> None:
        try:
            recorded = await knowledge_service.access_answer(session=uow.session, tenant_id=tenant_id,
                                                             answer_id=answer_id)
        except NotFound:
            return
        if helpful is not None:
            await knowledge_actions.do_record_feedback(uow, answer=recorded, helpful=helpful)
        if handed_off:
            await knowledge_actions.do_record_handoff(uow, answer=recorded)


_TAG = re.compile(r"<[^>]+>")


MAX_ANSWER_CHARS = 1200  # a chat bubble, not a manual: a long article is cut at a line and marked as cut


def _plain(html_text: str) -> str:
    """The knowledge base answers in sanitised HTML; chat messages are plain text (long articles cut)."""
    import html

    text = re.sub(r"</(p|li|div|h\d)>|<br\s*/?>", "\n", html_text or "", flags=re.IGNORECASE)
    text = "\n".join(line.strip() for line in html.unescape(_TAG.sub("", text)).splitlines() if line.strip())
    if len(text) <= MAX_ANSWER_CHARS:
        return text
    cut = text.rfind("\n", 0, MAX_ANSWER_CHARS)
    return text[:cut if cut > MAX_ANSWER_CHARS // 2 else MAX_ANSWER_CHARS].rstrip() + " …"


class NluUnderstander:
    """``Understander`` over ``kefu.nlp`` (the tenant's own model when it has one), off the event loop.

    Loading the default model, training a tenant's, the tokeniser's first use (about 1.5 s for jieba's
    dictionary) and each analysis are CPU work: they run in worker threads, so a node keeps serving its
    WebSockets and HTTP requests while the bot thinks.
    """

    def __init__(self, runtime: Runtime | None = None) -> None:
        self.runtime = runtime

    async def analyse(self, text: str, *, tenant_id: str | None = None) -> Understanding:
        if self.runtime is not None and tenant_id is not None:
            async with self.runtime.sessionmaker() as session:
                pipeline = await nlp_service.ensure_tenant_pipeline(session=session, tenant_id=tenant_id)
        else:
            pipeline = await asyncio.to_thread(nlp_service.pipeline_for, tenant_id)
        return await asyncio.to_thread(pipeline.analyse, text)

    @staticmethod
    def warm_up() -> None:
        """Load the default model and the tokeniser's dictionary (blocking: call it in a thread)."""
        nlp_service.pipeline_for(None).analyse("你好，我的快递到哪了？ Where is my parcel?")
