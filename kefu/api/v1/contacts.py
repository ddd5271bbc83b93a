"""REST routes: contacts, their identities and timeline, merges (reversible) and data exports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from kefu.api.deps import IfMatch, Scoped, UoWDep, client_ip, set_etag
from kefu.api.errors import AUTH_ERRORS, BODY_ERRORS, error_responses
from kefu.api.pagination import Cursor, Limit, Page, decode_cursor, page_of
from kefu.contacts import actions as contact_actions
from kefu.contacts import service as contact_service
from kefu.contacts.schemas import (
    ContactCreate,
    ContactExport,
    ContactMergeCreate,
    ContactMergeRead,
    ContactRead,
    ContactUpdate,
    ConversationExport,
    IdentityIn,
    IdentityRead,
)
from kefu.conversations import service as conversation_service
from kefu.conversations.schemas import ConversationRead
from kefu.core.clock import isoformat, utcnow
from kefu.core.errors import Forbidden

router = APIRouter(tags=["contacts"])
Reader = Scoped("contacts:read")
Writer = Scoped("contacts:write")
ContactId = Annotated[str, Path(max_length=40)]


async def _read(uow: UoWDep, contact_id: str, tenant_id: str) -> ContactRead:
    contact = await contact_service.access_contact(session=uow.session, tenant_id=tenant_id, contact_id=contact_id)
    return (await contact_service.contact_reads(session=uow.session, contacts=[contact]))[0]


@router.post("/api/v1/contacts", status_code=201, summary="Create a contact with identities",
             response_model=ContactRead, responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "identity_taken"))
async def create_contact(body: ContactCreate, actor: Writer, uow: UoWDep, response: Response) -> ContactRead:
    contact = await contact_actions.do_create_contact(uow, tenant_id=actor.tenant_id, data=body)
    read = await _read(uow, contact.id, actor.tenant_id)
    await uow.commit()
    set_etag(response, read.version)
    return read


@router.get("/api/v1/contacts", summary="List or search contacts", response_model=Page[ContactRead],
            responses=error_responses(*AUTH_ERRORS, "invalid_cursor"))
async def list_contacts(
    actor: Reader,
    uow: UoWDep,
    q: Annotated[str | None, Query(min_length=1, max_length=200,
                                   description="Substring of name, email, phone or any identity value")] = None,
    vip_level: Annotated[int | None, Query(ge=0, le=10)] = None,
    include_merged: Annotated[bool, Query(description="Also list contacts merged into others")] = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ContactRead]:
    rows = await contact_service.list_contacts(
        session=uow.session, tenant_id=actor.tenant_id, q=q, vip_level=vip_level, after_id=decode_cursor(cursor),
        limit=limit + 1, include_merged=include_merged)
    return page_of(await contact_service.contact_reads(session=uow.session, contacts=rows), limit)


@router.get("/api/v1/contacts/{contact_id}", summary="Get a contact with its identities", response_model=ContactRead,
            responses=error_responses(*AUTH_ERRORS, "contact_not_found"))
async def get_contact(contact_id: ContactId, actor: Reader, uow: UoWDep, response: Response) -> ContactRead:
    read = await _read(uow, contact_id, actor.tenant_id)
    set_etag(response, read.version)
    return read


@router.patch("/api/v1/contacts/{contact_id}", summary="Update a contact (If-Match)", response_model=ContactRead,
              responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "contact_not_found", "contact_merged",
                                        "version_conflict",
                                        "invalid_if_match"))
async def update_contact(contact_id: ContactId, body: ContactUpdate, actor: Writer, uow: UoWDep, expected: IfMatch,
                         response: Response) -> ContactRead:
    contact = await contact_service.access_live_contact(session=uow.session, tenant_id=actor.tenant_id,
                                                        contact_id=contact_id)
    await contact_actions.do_update_contact(uow, contact=contact, data=body, expected_version=expected)
    read = await _read(uow, contact.id, actor.tenant_id)
    await uow.commit()
    set_etag(response, read.version)
    return read


@router.post("/api/v1/contacts/{contact_id}/identities", status_code=201, response_model=IdentityRead,
             summary="Attach an identity (messages from it then join this contact)",
             responses={200: {"description": "The identity already belonged to this contact", "model": IdentityRead},
                        **error_responses(*AUTH_ERRORS, *BODY_ERRORS, "contact_not_found", "contact_merged",
                                          "identity_taken")})
async def add_identity(contact_id: ContactId, body: IdentityIn, actor: Writer, uow: UoWDep,
                       response: Response) -> IdentityRead:
    contact = await contact_service.access_live_contact(session=uow.session, tenant_id=actor.tenant_id,
                                                        contact_id=contact_id)
    identity, created = await contact_actions.do_add_identity(uow, contact=contact, data=body)
    await uow.commit()
    if not created:
        response.status_code = 200
    return IdentityRead.model_validate(identity)


@router.delete("/api/v1/contacts/{contact_id}/identities/{identity_id}", status_code=204,
               summary="Detach an identity from a contact",
               responses=error_responses(*AUTH_ERRORS, "contact_not_found", "contact_merged", "identity_not_found"))
async def remove_identity(contact_id: ContactId, identity_id: Annotated[str, Path(max_length=40)], actor: Writer,
                          uow: UoWDep) -> Response:
    contact = await contact_service.access_live_contact(session=uow.session, tenant_id=actor.tenant_id,
                                                        contact_id=contact_id)
    await contact_actions.do_remove_identity(uow, contact=contact, identity_id=identity_id)
    await uow.commit()
    return Response(status_code=204)


@router.get("/api/v1/contacts/{contact_id}/conversations", response_model=Page[ConversationRead],
            summary="The contact's timeline: their conversations across every inbox and channel",
            responses=error_responses(*AUTH_ERRORS, "contact_not_found", "invalid_cursor"))
async def contact_conversations(contact_id: ContactId, actor: Scoped("conversations:read"), uow: UoWDep,
                                limit: Limit = 50, cursor: Cursor = None) -> Page[ConversationRead]:
    contact = await contact_service.access_contact(session=uow.session, tenant_id=actor.tenant_id,
                                                   contact_id=contact_id)
    rows = await conversation_service.list_conversations(
        session=uow.session, tenant_id=actor.tenant_id, contact_id=contact.id, after_id=decode_cursor(cursor),
        limit=limit + 1)
    return page_of(await conversation_service.conversation_reads(session=uow.session, conversations=rows), limit)


@router.post("/api/v1/contacts/{contact_id}/merges", status_code=201, response_model=ContactMergeRead,
             summary="Merge another contact into this one (identities and conversations move; reversible; audited)",
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "contact_not_found", "contact_merged",
                                       "merge_same_contact"))
async def merge_contact(contact_id: ContactId, body: ContactMergeCreate, actor: Writer, uow: UoWDep,
                        request: Request) -> ContactMergeRead:
    target = await contact_service.access_contact(session=uow.session, tenant_id=actor.tenant_id,
                                                  contact_id=contact_id)
    source = await contact_service.access_contact(session=uow.session, tenant_id=actor.tenant_id,
                                                  contact_id=body.source_contact_id)
    merge = await contact_actions.do_merge_contacts(uow, target=target, source=source, actor=actor,
                                                    ip=client_ip(request))
    await uow.commit()
    return contact_service.merge_read(merge)


@router.get("/api/v1/contact-merges/{merge_id}", summary="Get a contact merge (what it moved)",
            response_model=ContactMergeRead, responses=error_responses(*AUTH_ERRORS, "merge_not_found"))
async def get_merge(merge_id: Annotated[str, Path(max_length=40)], actor: Reader, uow: UoWDep) -> ContactMergeRead:
    merge = await contact_service.access_merge(session=uow.session, tenant_id=actor.tenant_id, merge_id=merge_id)
    return contact_service.merge_read(merge)


@router.post("/api/v1/contact-merges/{merge_id}/revert", response_model=ContactMergeRead,
             summary="Revert a merge: exactly the identities and conversations it moved go back (audited)",
             responses=error_responses(*AUTH_ERRORS, "merge_not_found", "merge_already_reverted", "contact_merged"))
async def revert_merge(merge_id: Annotated[str, Path(max_length=40)], actor: Writer, uow: UoWDep,
                       request: Request) -> ContactMergeRead:
    merge = await contact_service.access_merge(session=uow.session, tenant_id=actor.tenant_id, merge_id=merge_id)
    merge = await contact_actions.do_revert_merge(uow, merge=merge, actor=actor, ip=client_ip(request))
    await uow.commit()
    return contact_service.merge_read(merge)


@router.get("/api/v1/contacts/{contact_id}/export", response_model=ContactExport,
            summary="Export everything stored about a contact as JSON (audited as contact.exported)",
            responses=error_responses(*AUTH_ERRORS, "contact_not_found"))
async def export_contact(contact_id: ContactId, actor: Reader, uow: UoWDep, request: Request) -> ContactExport:
    if not actor.can("conversations:read"):  # the export holds whole transcripts, internal notes included
        raise Forbidden("insufficient_scope" if actor.kind == "api_key" else "forbidden", scope="conversations:read")
    contact = await contact_service.access_contact(session=uow.session, tenant_id=actor.tenant_id,
                                                   contact_id=contact_id)
    read = (await contact_service.contact_reads(session=uow.session, contacts=[contact]))[0]
    conversations = await conversation_service.export_conversations(
        session=uow.session, tenant_id=actor.tenant_id, contact_id=contact.id)
    export = ContactExport(
        exported_at=isoformat(utcnow()) or "", contact=read,
        conversations=[ConversationExport(**c.model_dump(), messages=m) for c, m in conversations])
    # Audited before answering: an export that is not on record must not leave the building.
    await contact_actions.do_record_export(uow, contact=contact, actor=actor, ip=client_ip(request))
    await uow.commit()
    return export
