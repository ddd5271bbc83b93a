"""REST endpoints of the knowledge domain: entries and their workflow, search, bot answers with feedback,
agent suggestions, import/export and gap mining."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse

from kefu.api.deps import IfMatch, Scoped, UoWDep, set_etag
from kefu.api.errors import AUTH_ERRORS, BODY_ERRORS, error_responses, request_locale
from kefu.api.pagination import Cursor, Limit, Page, decode_cursor, page_of
from kefu.core.errors import Forbidden, PayloadTooLarge
from kefu.core.i18n import translate
from kefu.knowledge import actions as knowledge_actions
from kefu.knowledge import io as knowledge_io
from kefu.knowledge import service as knowledge_service
from kefu.knowledge.policies import MAX_IMPORT_ROWS
from kefu.knowledge.schemas import (
    AnswerChoice,
    AnswerChoiceRequest,
    AnswerFeedback,
    AnswerHandoff,
    AnswerRequest,
    EntryCreate,
    EntryRead,
    EntryUpdate,
    EntryVersionRead,
    GapReport,
    ImportFormat,
    ImportReport,
    ImportRequest,
    ImportRowError,
    KnowledgeAnswer,
    RenderedEntry,
    SearchResults,
    Status,
    Suggestions,
)

router = APIRouter(tags=["knowledge"])
Reader = Scoped("knowledge:read")
# Recording answers and what customers made of them moves the entries' analytics: not for read-only keys.
Recorder = Scoped("knowledge:feedback")
Writer = Scoped("knowledge:write")
EntryId = Annotated[str, Path(max_length=40)]
AnswerId = Annotated[str, Path(max_length=40)]
LanguageQ = Annotated[str | None, Query(pattern="^(zh|en)$")]


async def _entry(uow: UoWDep, tenant_id: str, entry_id: str):  # type: ignore[no-untyped-def]
    return await knowledge_service.access_entry(session=uow.session, tenant_id=tenant_id, entry_id=entry_id)


@router.post("/api/v1/kb-entries", status_code=201, response_model=EntryRead, summary="Create a KB entry (draft)",
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "kb_entry_key_taken"))
async def create_entry(body: EntryCreate, actor: Writer, uow: UoWDep, response: Response) -> EntryRead:
    entry = await knowledge_actions.do_create_entry(uow, tenant_id=actor.tenant_id, data=body, actor_id=actor.id)
    await uow.commit()
    set_etag(response, entry.version)
    return knowledge_service.entry_read(entry)


@router.get("/api/v1/kb-entries", response_model=Page[EntryRead], summary="List KB entries",
            responses=error_responses(*AUTH_ERRORS, "invalid_cursor"))
async def list_entries(actor: Reader, uow: UoWDep, status: Status | None = None, language: LanguageQ = None,
                       category: Annotated[str | None, Query(max_length=100)] = None,
                       q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
                       limit: Limit = 50, cursor: Cursor = None) -> Page[EntryRead]:
    rows = await knowledge_service.list_entries(session=uow.session, tenant_id=actor.tenant_id, status=status,
                                                language=language, category=category, q=q,
                                                after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([knowledge_service.entry_read(r) for r in rows], limit)


@router.get("/api/v1/kb-entries/{kb_entry_id}", response_model=EntryRead, summary="Get a KB entry with analytics",
            responses=error_responses(*AUTH_ERRORS, "kb_entry_not_found"))
async def get_entry(kb_entry_id: EntryId, actor: Reader, uow: UoWDep, response: Response) -> EntryRead:
    entry = await _entry(uow, actor.tenant_id, kb_entry_id)
    set_etag(response, entry.version)
    return knowledge_service.entry_read(entry)


@router.patch("/api/v1/kb-entries/{kb_entry_id}", response_model=EntryRead,
              summary="Save a new version of an entry (If-Match)",
              responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "kb_entry_not_found", "version_conflict",
                                        "invalid_if_match", "kb_invalid_validity"))
async def update_entry(kb_entry_id: EntryId, body: EntryUpdate, actor: Writer, uow: UoWDep, expected: IfMatch,
                       response: Response) -> EntryRead:
    entry = await _entry(uow, actor.tenant_id, kb_entry_id)
    await knowledge_actions.do_update_entry(uow, entry=entry, data=body, expected_version=expected,
                                            actor_id=actor.id)
    await uow.commit()
    set_etag(response, entry.version)
    return knowledge_service.entry_read(entry)


async def _transition(kb_entry_id: str, status: str, actor, uow: UoWDep, expected: int | None,  # type: ignore[no-untyped-def]
                      response: Response) -> EntryRead:
    entry = await _entry(uow, actor.tenant_id, kb_entry_id)
    await knowledge_actions.do_set_status(uow, entry=entry, status=status, expected_version=expected)
    await uow.commit()
    set_etag(response, entry.version)
    return knowledge_service.entry_read(entry)


_TRANSITION_ERRORS = error_responses(*AUTH_ERRORS, "kb_entry_not_found", "version_conflict", "invalid_if_match",
                                     "kb_invalid_transition")


@router.post("/api/v1/kb-entries/{kb_entry_id}/publish", response_model=EntryRead, responses=_TRANSITION_ERRORS,
             summary="Publish the latest version (search and the bot use it from now on)")
async def publish_entry(kb_entry_id: EntryId, actor: Writer, uow: UoWDep, expected: IfMatch,
                        response: Response) -> EntryRead:
    return await _transition(kb_entry_id, "published", actor, uow, expected, response)


@router.post("/api/v1/kb-entries/{kb_entry_id}/unpublish", response_model=EntryRead, responses=_TRANSITION_ERRORS,
             summary="Take an entry back to draft (no longer searchable)")
async def unpublish_entry(kb_entry_id: EntryId, actor: Writer, uow: UoWDep, expected: IfMatch,
                          response: Response) -> EntryRead:
    return await _transition(kb_entry_id, "draft", actor, uow, expected, response)


@router.post("/api/v1/kb-entries/{kb_entry_id}/archive", response_model=EntryRead, responses=_TRANSITION_ERRORS,
             summary="Archive an entry (kept with its versions and analytics, never shown)")
async def archive_entry(kb_entry_id: EntryId, actor: Writer, uow: UoWDep, expected: IfMatch,
                        response: Response) -> EntryRead:
    return await _transition(kb_entry_id, "archived", actor, uow, expected, response)


@router.get("/api/v1/kb-entries/{kb_entry_id}/versions", response_model=list[EntryVersionRead],
            summary="Every saved version of an entry, newest first",
            responses=error_responses(*AUTH_ERRORS, "kb_entry_not_found"))
async def entry_versions(kb_entry_id: EntryId, actor: Reader, uow: UoWDep) -> list[EntryVersionRead]:
    entry = await _entry(uow, actor.tenant_id, kb_entry_id)
    return await knowledge_service.list_versions(session=uow.session, entry=entry)


@router.get("/api/v1/kb-entries/{kb_entry_id}/rendered", response_model=RenderedEntry,
            summary="The published answer as sanitised HTML (counts a view)",
            responses=error_responses(*AUTH_ERRORS, "kb_entry_not_found"))
async def render_entry(kb_entry_id: EntryId, actor: Reader, uow: UoWDep) -> RenderedEntry:
    entry = await _entry(uow, actor.tenant_id, kb_entry_id)
    rendered = await knowledge_service.render(session=uow.session, entry=entry)
    await knowledge_actions.do_record_view(uow, entry=entry)
    await uow.commit()
    return rendered


@router.get("/api/v1/kb-search", response_model=SearchResults, summary="Search published entries (zh/en)",
            responses=error_responses(*AUTH_ERRORS))
async def search(actor: Reader, uow: UoWDep, q: Annotated[str, Query(min_length=1, max_length=2000)],
                 language: LanguageQ = None, category: Annotated[str | None, Query(max_length=100)] = None,
                 channel: Annotated[str | None, Query(max_length=40)] = None,
                 product_id: Annotated[str | None, Query(min_length=1, max_length=100,
                                                         description="Only entries linked to this product")] = None,
                 limit: Annotated[int, Query(ge=1, le=50)] = 5) -> SearchResults:
    hits = await knowledge_service.search(session=uow.session, tenant_id=actor.tenant_id, query=q, language=language,
                                          category=category, channel=channel, product=product_id, limit=limit)
    return SearchResults(query=q, data=hits)


@router.post("/api/v1/kb-answers", status_code=201, response_model=KnowledgeAnswer,
             summary="Answer a question from the KB: answer, offer choices, or hand off (recorded)",
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS))
async def create_answer(body: AnswerRequest, actor: Recorder, uow: UoWDep) -> KnowledgeAnswer:
    result = await knowledge_actions.do_answer(uow, tenant_id=actor.tenant_id, question=body.question,
                                               language=body.language, channel=body.channel,
                                               conversation_id=body.conversation_id)
    await uow.commit()
    return result


@router.post("/api/v1/kb-answers/{kb_answer_id}/feedback", status_code=204,
             summary='Record the customer\'s verdict ("that did not help" is helpful=false)',
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "kb_answer_not_found"))
async def answer_feedback(kb_answer_id: AnswerId, body: AnswerFeedback, actor: Recorder, uow: UoWDep) -> Response:
    answer = await knowledge_service.access_answer(session=uow.session, tenant_id=actor.tenant_id,
                                                   answer_id=kb_answer_id)
    await knowledge_actions.do_record_feedback(uow, answer=answer, helpful=body.helpful)
    await uow.commit()
    return Response(status_code=204)


@router.post("/api/v1/kb-answers/{kb_answer_id}/choice", response_model=AnswerChoice,
             summary="The customer picked one of the offered choices: its answer, counted as the answer given",
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "kb_answer_not_found", "kb_choice_not_offered"))
async def answer_choice(kb_answer_id: AnswerId, body: AnswerChoiceRequest, actor: Recorder,
                        uow: UoWDep) -> AnswerChoice:
    answer = await knowledge_service.access_answer(session=uow.session, tenant_id=actor.tenant_id,
                                                   answer_id=kb_answer_id)
    choice = await knowledge_actions.do_choose(uow, answer=answer, entry_id=body.entry_id)
    await uow.commit()
    return choice


@router.post("/api/v1/kb-answers/{kb_answer_id}/handoff", status_code=204,
             summary="Record that the conversation went to a human after this answer",
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "kb_answer_not_found"))
async def answer_handoff(kb_answer_id: AnswerId, body: AnswerHandoff, actor: Recorder, uow: UoWDep) -> Response:
    answer = await knowledge_service.access_answer(session=uow.session, tenant_id=actor.tenant_id,
                                                   answer_id=kb_answer_id)
    await knowledge_actions.do_record_handoff(uow, answer=answer)
    await uow.commit()
    return Response(status_code=204)


@router.get("/api/v1/conversations/{conversation_id}/kb-suggestions", response_model=Suggestions,
            summary="KB entries for the conversation's latest customer messages, ready to insert",
            responses=error_responses(*AUTH_ERRORS, "conversation_not_found"))
async def conversation_suggestions(conversation_id: Annotated[str, Path(max_length=40)], actor: Reader,
                                   uow: UoWDep, limit: Annotated[int, Query(ge=1, le=20)] = 5) -> Suggestions:
    if not actor.can("conversations:read"):
        raise Forbidden("insufficient_scope" if actor.kind == "api_key" else "forbidden", scope="conversations:read")
    return await knowledge_service.suggestions(session=uow.session, tenant_id=actor.tenant_id,
                                               conversation_id=conversation_id, limit=limit)


@router.post("/api/v1/kb-imports", response_model=ImportReport,
             summary="Import entries from JSON, JSONL, CSV or Markdown; bad rows are reported by line, the rest "
                     "imported",
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "kb_import_too_large"))
async def import_entries(body: ImportRequest, actor: Writer, uow: UoWDep, request: Request) -> ImportReport:
    drafts, errors = knowledge_io.parse(body.content, body.format)
    if len(drafts) + len(errors) > MAX_IMPORT_ROWS:
        raise PayloadTooLarge("kb_import_too_large", details={"max_rows": MAX_IMPORT_ROWS})
    report = await knowledge_actions.do_import_entries(
        uow, tenant_id=actor.tenant_id, drafts=drafts, publish=body.publish, actor_id=actor.id,
        errors=[ImportRowError(**e.as_dict()) for e in errors])
    await uow.commit()
    lang = request_locale(request)
    for error in report.errors:  # localised reason, then the parser's technical detail
        error.message = f"{translate(f'knowledge.import.{error.code}', lang)}: {error.message}"
    return report


@router.get("/api/v1/kb-exports", response_class=PlainTextResponse, summary="Export entries (imports back as is)",
            responses={200: {"content": {"text/plain": {}}}, **error_responses(*AUTH_ERRORS)})
async def export_entries(actor: Reader, uow: UoWDep, format: ImportFormat = "jsonl",  # noqa: A002
                         status: Status | None = None, language: LanguageQ = None) -> PlainTextResponse:
    rows, after = [], None
    while True:
        page = await knowledge_service.list_entries(session=uow.session, tenant_id=actor.tenant_id, status=status,
                                                    language=language, after_id=after, limit=1000)
        rows += page
        if len(page) < 1000:
            break
        after = page[-1].id
    entries = [{"id": e.external_key or e.id, "kind": e.kind, "language": e.language, "category": e.category,
                "question": e.question, "questions": e.paraphrases, "answer": e.answer, "tags": e.tags,
                "channels": e.channels, "product_ids": e.product_ids,
                "valid_from": e.valid_from.isoformat() if e.valid_from else None,
                "valid_until": e.valid_until.isoformat() if e.valid_until else None} for e in rows]
    media = {"json": "application/json", "jsonl": "application/x-ndjson", "csv": "text/csv",
             "markdown": "text/markdown"}[format]
    return PlainTextResponse(knowledge_io.export(entries, format), media_type=f"{media}; charset=utf-8")


@router.get("/api/v1/kb-gaps", response_model=GapReport,
            summary="Questions the bot could not answer (or that did not help), clustered into proposed entries",
            responses=error_responses(*AUTH_ERRORS))
async def gaps(actor: Reader, uow: UoWDep, days: Annotated[int, Query(ge=1, le=365)] = 30,
               limit: Annotated[int, Query(ge=1, le=100)] = 20) -> GapReport:
    return GapReport(data=await knowledge_service.gaps(session=uow.session, tenant_id=actor.tenant_id, days=days,
                                                       limit=limit))
