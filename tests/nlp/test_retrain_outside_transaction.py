"""A retrain trains with no transaction open: writers of the database go on, a second retrain is refused
at once, a claim left by a dead node expires, and a retrain that stops early gives its claim back."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from kefu.core.clock import utcnow
from kefu.core.errors import Conflict
from kefu.nlp import actions as nlp_actions
from kefu.nlp import service as nlp_service
from kefu.nlp.models import NluModel
from kefu.runtime import Runtime
from tests.conftest import LiveServer, runtime_on
from tests.factories import TenantFixture, create_tenant
from tests.nlp.retraining import (
    EXAMPLES,
    add_examples,
    current_hash,
    retrain,
    stored,
    thread_work_held,
    until_training,
)

RETRAIN = "/api/v1/nlu/model/retrain"


async def _shown_once_training(http: httpx.AsyncClient, headers: dict[str, str],
                               retraining: asyncio.Task[Any]) -> dict[str, Any]:
    """GET /model once it shows the running retrain's claim, or once that retrain is over (before, a reader
    waited for the retrain's commit and never saw it training)."""
    while True:
        model = (await http.get("/api/v1/nlu/model", headers=headers)).json()
        if model["status"] == "training" or retraining.done():
            return model
        await asyncio.sleep(0.02)


async def _add_examples_over_api(http: httpx.AsyncClient, tenant: TenantFixture, texts: list[str]) -> None:
    added = await http.post("/api/v1/nlu/examples", headers=tenant.admin.headers,
                            json={"intent": "track_order", "texts": texts})
    assert added.status_code == 201, added.text


async def test_writes_go_on_while_a_retrain_trains(server: LiveServer, http: httpx.AsyncClient, runtime: Runtime,
                                                   tenant: TenantFixture) -> None:
    admin = tenant.admin.headers
    await _add_examples_over_api(http, tenant, EXAMPLES)
    async with thread_work_held(server.loop) as release:  # the training waits until release()
        retraining = asyncio.create_task(http.post(RETRAIN, headers=admin))
        try:
            seen = await _shown_once_training(http, admin, retraining)
            assert (seen["status"], seen["version"]) == ("training", 0), seen
            await create_tenant(runtime)
            await _add_examples_over_api(http, tenant, ["my parcel went walkabout"])
            during = (await http.get("/api/v1/nlu/model", headers=admin)).json()
            assert (during["status"], during["version"]) == ("training", 0), during
            assert not retraining.done()
        finally:
            release()
            done = await retraining
    assert done.status_code == 200, done.text
    model = done.json()
    # Trained on the data read when it claimed the model: the example added meanwhile waits for the next one.
    assert (model["version"], model["status"], model["example_count"], model["loaded_version"]) == (
        1, "ready", len(EXAMPLES), 1)
    assert (await http.get("/api/v1/nlu/model", headers=admin)).json()["status"] == "ready"


async def test_a_second_retrain_while_one_trains_is_refused(server: LiveServer, http: httpx.AsyncClient,
                                                             tenant: TenantFixture) -> None:
    admin = tenant.admin.headers
    await _add_examples_over_api(http, tenant, EXAMPLES)
    async with thread_work_held(server.loop) as release:
        first = asyncio.create_task(http.post(RETRAIN, headers=admin))
        try:
            assert (await _shown_once_training(http, admin, first))["status"] == "training"
            second = await http.post(RETRAIN, headers=admin)
            assert second.status_code == 409, second.text
            assert second.json()["error"]["code"] == "nlu_training_in_progress"
        finally:
            release()
            done = await first
    assert done.status_code == 200 and done.json()["version"] == 1, done.text
    again = await http.post(RETRAIN, headers=admin)  # the finished retrain no longer holds the model
    assert again.status_code == 200 and again.json()["version"] == 2, again.text


async def _claim(runtime: Runtime, tenant_id: str, *, now: datetime) -> nlp_actions.RetrainClaim:
    uow = runtime.unit_of_work()
    try:
        claim = await nlp_actions.claim_retrain(uow, tenant_id=tenant_id, now=now)
        await uow.commit()
        return claim
    finally:
        await uow.session.close()


async def _finish(runtime: Runtime, claim: nlp_actions.RetrainClaim) -> NluModel:
    uow = runtime.unit_of_work()
    try:
        model = await nlp_actions.finish_retrain(uow, claim)
        await uow.commit()
        return model
    finally:
        await uow.session.close()


async def test_a_claim_older_than_the_lease_is_taken_over(db_url: str) -> None:
    async with runtime_on(db_url) as runtime:
        tenant = await create_tenant(runtime)
        await add_examples(runtime, tenant.id, EXAMPLES)
        lease = nlp_service.TRAINING_LEASE
        # A retrain whose node died mid-training, a minute longer ago than the lease: claimed, never finished.
        dead = await _claim(runtime, tenant.id, now=utcnow() - lease - timedelta(minutes=1))
        assert nlp_service.model_read(await stored(runtime, tenant.id), tenant.id).status == "default"
        assert await retrain(runtime, tenant.id) == 1
        with pytest.raises(Conflict):  # were it alive after all, its result would not be stored
            await _finish(runtime, dead)

        # A claim younger than the lease holds: a retrain is refused, and its owner stores the next version.
        live = await _claim(runtime, tenant.id, now=utcnow() - lease + timedelta(minutes=1))
        assert nlp_service.model_read(await stored(runtime, tenant.id), tenant.id).status == "training"
        assert await retrain(runtime, tenant.id) == "nlu_training_in_progress"
        model = await _finish(runtime, live)
        assert (model.version, model.status, model.data_hash) == (2, "ready", await current_hash(runtime, tenant.id))


async def test_a_retrain_that_stops_before_storing_gives_its_claim_back(runtime: Runtime) -> None:
    tenant = await create_tenant(runtime)
    await add_examples(runtime, tenant.id, EXAMPLES)
    async with thread_work_held(asyncio.get_running_loop()):
        retraining = asyncio.create_task(retrain(runtime, tenant.id))
        assert await until_training(runtime, tenant.id, retraining) == "training"
        # Its request is cancelled mid-training (a failing training takes the same way out).
        retraining.cancel()
        with pytest.raises(asyncio.CancelledError):
            await retraining
    model = await stored(runtime, tenant.id)
    assert model is not None and (model.status, model.version) == ("default", 0)
    assert await retrain(runtime, tenant.id) == 1  # at once, not after the lease
