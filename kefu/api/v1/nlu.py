"""REST endpoints of language understanding: analyse text, per-tenant custom intents and retraining."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from kefu.api.deps import RuntimeDep, Scoped, UoWDep
from kefu.api.errors import AUTH_ERRORS, BODY_ERRORS, error_responses, request_locale
from kefu.api.pagination import Cursor, Limit, Page, decode_cursor, page_of
from kefu.core.errors import ValidationFailed
from kefu.core.i18n import translate
from kefu.nlp import actions as nlp_actions
from kefu.nlp import service as nlp_service
from kefu.nlp.entities import Product
from kefu.nlp.pipeline import NluPipeline, registry
from kefu.nlp.schemas import (
    AnalyseBatchRequest,
    AnalyseRequest,
    ExampleList,
    ExampleRead,
    ExamplesCreate,
    IntentCreate,
    IntentList,
    IntentRead,
    ModelRead,
    OrderPatternCreate,
    OrderPatternRead,
    ProductIn,
    TenantExamplesCreate,
    UnderstandingList,
    UnderstandingRead,
)
from kefu.nlp.understanding import Understanding
from kefu.runtime import Runtime

router = APIRouter(tags=["nlu"])
Reader = Scoped("nlu:read")
Writer = Scoped("nlu:write")
IntentId = Annotated[str, Path(max_length=40)]
ExampleId = Annotated[str, Path(max_length=40)]
PatternId = Annotated[str, Path(max_length=40)]


def _products(items: list[ProductIn]) -> tuple[Product, ...]:
    return tuple(Product(sku=p.sku, name=p.name, aliases=tuple(p.aliases)) for p in items)


async def _tenant_pipeline(runtime: Runtime, tenant_id: str) -> NluPipeline:
    """The tenant's pipeline, from a session closed before the model runs: a transaction open during the
    analysis would hold SQLite's write lock (``BEGIN IMMEDIATE``) and make every writer wait for it."""
    async with runtime.sessionmaker() as session:
        return await nlp_service.ensure_tenant_pipeline(session=session, tenant_id=tenant_id)


def _read(u: Understanding, full: bool, lang: str) -> dict[str, Any]:
    out = u.to_dict(full=full)
    if u.truncated:
        out["note"] = translate("nlu_note_truncated", lang, kept=len(u.text), total=u.original_length)
    return out


@router.post("/api/v1/nlu/analyse", summary="Understand one message (intent, entities, emotion, sentiment)",
             response_model=UnderstandingRead, responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS))
async def analyse(body: AnalyseRequest, actor: Reader, runtime: RuntimeDep, request: Request) -> dict[str, Any]:
    pipeline = await _tenant_pipeline(runtime, actor.tenant_id)
    u = await asyncio.to_thread(pipeline.analyse, body.text, now=body.now, products=_products(body.products))
    return _read(u, body.full, request_locale(request))


@router.post("/api/v1/nlu/analyse/batch", summary="Understand up to 1,000 messages in one pass",
             response_model=UnderstandingList, responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS))
async def analyse_batch(body: AnalyseBatchRequest, actor: Reader, runtime: RuntimeDep,
                        request: Request) -> dict[str, Any]:
    pipeline = await _tenant_pipeline(runtime, actor.tenant_id)
    out = await asyncio.to_thread(pipeline.analyse_batch, body.texts, now=body.now,
                                  products=_products(body.products))
    lang = request_locale(request)
    return {"data": [_read(u, body.full, lang) for u in out]}


@router.get("/api/v1/nlu/intents", summary="List the default intents and the tenant's custom ones",
            response_model=IntentList, responses=error_responses(*AUTH_ERRORS))
async def list_intents(actor: Reader, uow: UoWDep) -> IntentList:
    return IntentList(data=await nlp_service.list_intents(session=uow.session, tenant_id=actor.tenant_id))


@router.post("/api/v1/nlu/intents", status_code=201, summary="Add a custom intent with examples",
             response_model=IntentRead,
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "nlu_intent_exists", "nlu_reserved_intent",
                                       "nlu_too_many_examples"))
async def create_intent(body: IntentCreate, actor: Writer, uow: UoWDep) -> IntentRead:
    intent = await nlp_actions.do_create_intent(uow, tenant_id=actor.tenant_id, data=body)
    count = await nlp_service.count_examples(session=uow.session, tenant_id=actor.tenant_id, intent=intent.name)
    read = nlp_service.intent_read(intent, count)
    await uow.commit()
    return read


@router.get("/api/v1/nlu/intents/{nlu_intent_id}", summary="Get a custom intent", response_model=IntentRead,
            responses=error_responses(*AUTH_ERRORS, "nlu_intent_not_found"))
async def get_intent(nlu_intent_id: IntentId, actor: Reader, uow: UoWDep) -> IntentRead:
    intent = await nlp_service.access_intent(session=uow.session, tenant_id=actor.tenant_id, intent_id=nlu_intent_id)
    count = await nlp_service.count_examples(session=uow.session, tenant_id=actor.tenant_id, intent=intent.name)
    return nlp_service.intent_read(intent, count)


@router.delete("/api/v1/nlu/intents/{nlu_intent_id}", status_code=204,
               summary="Delete a custom intent and its examples (effective at the next retrain)",
               responses=error_responses(*AUTH_ERRORS, "nlu_intent_not_found"))
async def delete_intent(nlu_intent_id: IntentId, actor: Writer, uow: UoWDep) -> Response:
    await nlp_actions.do_delete_intent(uow, tenant_id=actor.tenant_id, intent_id=nlu_intent_id)
    await uow.commit()
    return Response(status_code=204)


@router.get("/api/v1/nlu/intents/{nlu_intent_id}/examples", summary="List the examples of a custom intent",
            response_model=Page[ExampleRead],
            responses=error_responses(*AUTH_ERRORS, "nlu_intent_not_found", "invalid_cursor"))
async def list_intent_examples(nlu_intent_id: IntentId, actor: Reader, uow: UoWDep, limit: Limit = 50,
                               cursor: Cursor = None) -> Page[ExampleRead]:
    intent = await nlp_service.access_intent(session=uow.session, tenant_id=actor.tenant_id, intent_id=nlu_intent_id)
    rows = await nlp_service.list_examples(session=uow.session, tenant_id=actor.tenant_id, intent=intent.name,
                                           after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([ExampleRead.model_validate(r) for r in rows], limit)


@router.post("/api/v1/nlu/intents/{nlu_intent_id}/examples", status_code=201,
             summary="Add examples to a custom intent (duplicates are skipped)", response_model=ExampleList,
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "nlu_intent_not_found", "nlu_too_many_examples"))
async def add_intent_examples(nlu_intent_id: IntentId, body: ExamplesCreate, actor: Writer,
                              uow: UoWDep) -> ExampleList:
    intent = await nlp_service.access_intent(session=uow.session, tenant_id=actor.tenant_id, intent_id=nlu_intent_id)
    rows = await nlp_actions.do_add_examples(uow, tenant_id=actor.tenant_id, intent=intent.name, texts=body.texts,
                                             intent_row=intent)
    read = ExampleList(data=[ExampleRead.model_validate(r) for r in rows])
    await uow.commit()
    return read


@router.get("/api/v1/nlu/examples", summary="List the tenant's own examples", response_model=Page[ExampleRead],
            responses=error_responses(*AUTH_ERRORS, "invalid_cursor"))
async def list_examples(actor: Reader, uow: UoWDep,
                        intent: Annotated[str | None, Query(max_length=64, description="Only this intent")] = None,
                        limit: Limit = 50, cursor: Cursor = None) -> Page[ExampleRead]:
    rows = await nlp_service.list_examples(session=uow.session, tenant_id=actor.tenant_id, intent=intent,
                                           after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([ExampleRead.model_validate(r) for r in rows], limit)


@router.post("/api/v1/nlu/examples", status_code=201,
             summary="Add examples to a default or custom intent (duplicates are skipped)",
             response_model=ExampleList,
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "nlu_unknown_intent", "nlu_too_many_examples"))
async def add_examples(body: TenantExamplesCreate, actor: Writer, uow: UoWDep) -> ExampleList:
    rows = await nlp_actions.do_add_examples(uow, tenant_id=actor.tenant_id, intent=body.intent, texts=body.texts)
    read = ExampleList(data=[ExampleRead.model_validate(r) for r in rows])
    await uow.commit()
    return read


@router.delete("/api/v1/nlu/examples/{nlu_example_id}", status_code=204, summary="Delete one example",
               responses=error_responses(*AUTH_ERRORS, "nlu_example_not_found"))
async def delete_example(nlu_example_id: ExampleId, actor: Writer, uow: UoWDep) -> Response:
    await nlp_actions.do_delete_example(uow, tenant_id=actor.tenant_id, example_id=nlu_example_id)
    await uow.commit()
    return Response(status_code=204)


@router.get("/api/v1/nlu/order-patterns", summary="List the tenant's order-number formats",
            response_model=Page[OrderPatternRead], responses=error_responses(*AUTH_ERRORS))
async def list_order_patterns(actor: Reader, uow: UoWDep) -> Page[OrderPatternRead]:
    rows = await nlp_service.list_order_patterns(session=uow.session, tenant_id=actor.tenant_id)
    return Page[OrderPatternRead](data=[OrderPatternRead.model_validate(r) for r in rows])


@router.post("/api/v1/nlu/order-patterns", status_code=201,
             summary="Add an order-number format (used after the next retrain)", response_model=OrderPatternRead,
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "nlu_invalid_pattern", "nlu_pattern_exists"))
async def add_order_pattern(body: OrderPatternCreate, actor: Writer, uow: UoWDep,
                            request: Request) -> OrderPatternRead:
    try:
        row = await nlp_actions.do_add_order_pattern(uow, tenant_id=actor.tenant_id, data=body)
    except ValidationFailed as exc:
        if exc.code == "nlu_invalid_pattern":
            exc.params["problem"] = _pattern_problem_text(exc.details, request_locale(request))
        raise
    read = OrderPatternRead.model_validate(row)
    await uow.commit()
    return read


def _pattern_problem_text(details: dict[str, Any], lang: str) -> str:
    """The refusal reason (``details.problem`` is the stable code) as a sentence in the caller's language."""
    params = dict(details)
    if "feature" in params:
        params["feature"] = translate(f"nlu_regex_feature.{params['feature']}", lang)
    return translate(f"nlu_pattern_problem.{details.get('problem')}", lang, **params)


@router.get("/api/v1/nlu/order-patterns/{nlu_pattern_id}", summary="Get an order-number format",
            response_model=OrderPatternRead, responses=error_responses(*AUTH_ERRORS, "nlu_pattern_not_found"))
async def get_order_pattern(nlu_pattern_id: PatternId, actor: Reader, uow: UoWDep) -> OrderPatternRead:
    row = await nlp_service.access_order_pattern(session=uow.session, tenant_id=actor.tenant_id,
                                                 pattern_id=nlu_pattern_id)
    return OrderPatternRead.model_validate(row)


@router.delete("/api/v1/nlu/order-patterns/{nlu_pattern_id}", status_code=204,
               summary="Delete an order-number format", responses=error_responses(*AUTH_ERRORS,
                                                                                  "nlu_pattern_not_found"))
async def delete_order_pattern(nlu_pattern_id: PatternId, actor: Writer, uow: UoWDep) -> Response:
    await nlp_actions.do_delete_order_pattern(uow, tenant_id=actor.tenant_id, pattern_id=nlu_pattern_id)
    await uow.commit()
    return Response(status_code=204)


@router.get("/api/v1/nlu/model", summary="The tenant's model version and training status", response_model=ModelRead,
            responses=error_responses(*AUTH_ERRORS))
async def get_model(actor: Reader, uow: UoWDep) -> ModelRead:
    model = await nlp_service.get_model(session=uow.session, tenant_id=actor.tenant_id)
    return nlp_service.model_read(model, actor.tenant_id)


@router.post("/api/v1/nlu/model/retrain", summary="Retrain the tenant's model now and swap it in without restart",
             response_model=ModelRead, responses=error_responses(*AUTH_ERRORS, "nlu_training_in_progress"))
async def retrain(actor: Writer, runtime: RuntimeDep) -> ModelRead:
    # The action commits its own short transactions around the training (none is open while it trains), and
    # returns after the last one: installing only now means a retrain that did not commit never serves.
    model, pipeline = await nlp_actions.do_retrain(runtime.unit_of_work, tenant_id=actor.tenant_id)
    registry.install(actor.tenant_id, model.version, pipeline, model.data_hash)
    nlp_service.forget_checks(actor.tenant_id)
    return nlp_service.model_read(model, actor.tenant_id)
