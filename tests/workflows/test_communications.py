"""The communications workflow on the time-skipping server, with a real SMTP
server (aiosmtpd: STARTTLS and AUTH) and a real webhook endpoint: status
changes send updates, a posted update reaches every subscriber once (after a
worker restart in the middle of sending too), internal notes stay on the
timeline, the reminder pages the communications lead on time, and only the
people the policy allows post."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from stanch.activities.communications import CommunicationsActivities
from stanch.harness.waiting import eventually
from stanch.models.communications import Subscriber
from stanch.models.config import ApiRole
from stanch.models.incident import Acknowledge, Resolve, UpdateResult
from stanch.models.severity import Severity
from stanch.models.status import IncidentStatus
from stanch.models.status_updates import (
    Briefing,
    CommsView,
    Delivery,
    PostUpdate,
    StatusUpdate,
    Subscribe,
    UpdateKind,
    comms_workflow_id,
)
from stanch.stores.page_file import read_pages
from stanch.stores.policy import PolicySource
from stanch.stores.subscriptions import SqliteSubscriptions
from stanch.testing.decisions import decide
from stanch.testing.started import Started
from stanch.workflows.communications import CommunicationsWorkflow
from stanch.workflows.incident import IncidentWorkflow
from tests.support.incidents import incident_worker, open_incident, settled
from tests.support.plans import policy_file
from tests.support.smtp import PASSWORD, PASSWORD_VARIABLE, MailServer, running_mail_server
from tests.support.webhooks import Answer, Receiver

SECRET = "the database password is hunter2"
CTO = "cto@example.com"


@pytest.fixture
def mail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MailServer]:
    monkeypatch.setenv(PASSWORD_VARIABLE, PASSWORD)
    with running_mail_server(tmp_path) as server:
        yield server


def comms_policy(tmp_path: Path, mail: MailServer, receiver: Receiver, **comms: Any) -> Path:
    """carol leads communications; the execs hear about every Sev2 by email
    and webhook."""
    from stanch.harness.plans import ROSTER

    roster = [dict(p) for p in ROSTER]
    roster[2]["roles"] = ["approver", "comms"]
    section = {
        "groups": [
            {
                "name": "execs",
                "members": [f"email:{CTO}", f"webhook:{receiver.url}/execs"],
                "severities": ["Sev2"],
            }
        ],
        "email": mail.policy(),
        **comms,
    }
    return policy_file(tmp_path, roster=roster, communications=section)


def comms(env: WorkflowEnvironment, incident: WorkflowHandle[Any, Any]) -> WorkflowHandle[Any, Any]:
    return env.client.get_workflow_handle(comms_workflow_id(incident.id), result_type=CommsView)


async def view(env: WorkflowEnvironment, incident: WorkflowHandle[Any, Any]) -> CommsView:
    async def asked() -> CommsView | None:
        try:
            found = await comms(env, incident).query(CommunicationsWorkflow.view)
        except Exception:
            return None  # not started yet
        return found if found.ready else None

    return await eventually(asked, what="the communications workflow")


def webhook_updates(receiver: Receiver) -> list[dict[str, Any]]:
    return [r for r in receiver.received if r["path"] == "/execs"]


async def post(
    env: WorkflowEnvironment,
    incident: WorkflowHandle[Any, Any],
    by: str,
    text: str,
    internal: str | None = None,
) -> StatusUpdate:
    await view(env, incident)
    return await decide(
        comms(env, incident),
        "post_update",
        PostUpdate(by=by, text=text, internal=internal),
        env=env,
        role=ApiRole.RESPONDER,
        result_type=StatusUpdate,
    )


async def test_status_changes_and_a_posted_update_reach_both_subscribers_and_internal_notes_never_do(
    ts_env, task_queue, tmp_path, new_id, started: Started, mail, receiver
):
    config = comms_policy(tmp_path, mail, receiver)
    async with incident_worker(ts_env, task_queue, config):
        incident = await open_incident(started, ts_env.client, task_queue, new_id())
        await eventually(lambda: _count(mail, 1), what="the opening update by email")
        await decide(
            incident, "acknowledge", Acknowledge(by="bob"), env=ts_env, result_type=UpdateResult
        )
        await eventually(lambda: _count(mail, 2), what="the acknowledged update")
        posted = await post(
            ts_env, incident, "carol", "Checkout is slow; a fix is rolling out", SECRET
        )
        assert posted.internal is None  # the answer is the public update
        await eventually(lambda: _count(mail, 3), what="carol's update")
        await decide(incident, "resolve", Resolve(by="bob"), env=ts_env, result_type=UpdateResult)
        await eventually(lambda: _count(mail, 4), what="the resolved update")
        # Awaiting the incident skips time through its reopen window: it closes.
        await incident.result()
        final = await comms(ts_env, incident).result()  # it ends after the closing update
        timeline = await incident.query(IncidentWorkflow.timeline)

    statuses = [u.status for u in reversed(final.updates)]
    assert statuses == ["triggered", "acknowledged", "acknowledged", "resolved", "closed"]
    kinds = [u.kind for u in reversed(final.updates)]
    assert kinds.count(UpdateKind.POSTED) == 1
    emails = mail.to(CTO)
    hooks = webhook_updates(receiver)
    assert len(emails) == len(hooks) == 5  # each update once to each subscriber
    assert [h["body"]["update"]["status"] for h in hooks] == statuses
    assert len({h["key"] for h in hooks}) == 5
    everything_sent = " ".join([str(r.message) for r in emails] + [str(h["body"]) for h in hooks])
    assert "Checkout is slow" in everything_sent
    assert SECRET not in everything_sent  # the internal note never leaves stanch
    lines = [e.summary for e in timeline if e.kind == "status_update"]
    assert lines == [
        f"Status update 3: Checkout is slow; a fix is rolling out (internal: {SECRET})"
    ]


def _count(mail: MailServer, n: int) -> Any:
    async def check() -> bool:
        return len(mail.to(CTO)) >= n

    return check()


async def test_an_update_reaches_email_and_webhook_once_across_a_worker_restart_mid_send(
    dev_env, task_queue, tmp_path, new_id, started: Started, mail, receiver
):
    """On the dev server, in real time: the lost attempt is noticed when its
    heartbeats stop, as with a worker that died."""
    ts_env = dev_env
    config = comms_policy(tmp_path, mail, receiver, automatic_updates=False)
    # The webhook takes the request and never finishes answering: the worker
    # is stopped while that delivery is in flight.
    receiver.script = [Answer(endless=True, drip=0.5)]
    first = incident_worker(ts_env, task_queue, config)
    await first.__aenter__()
    try:
        incident = await open_incident(started, ts_env.client, task_queue, new_id())
        update = await post(ts_env, incident, "carol", "Payments are failing for some customers")
        # The email counts as sent once its delivery is recorded, not when the
        # SMTP server has it: a worker stopped between the two may send it again
        # (the same Message-ID lets a mail client fold it), which is not what
        # this test is about.
        emailed = f"{update.id}/{Subscriber.parse(f'email:{CTO}').id}"
        record = SqliteSubscriptions(config.parent / "subscriptions.db")
        await eventually(
            lambda: _true(record.delivered(emailed) and len(webhook_updates(receiver)) == 1)
        )
    finally:
        await first.__aexit__(None, None, None)  # the worker goes, mid-send
    async with incident_worker(ts_env, task_queue, config):  # a new worker, same stores
        done = await eventually(lambda: _delivered(ts_env, incident), timeout=60)
    assert done.updates[0].delivered == 2 and done.updates[0].failed == []
    assert [r.message["Message-ID"] for r in mail.to(CTO)] == [f"<{update.id}@stanch>"]
    hooks = webhook_updates(receiver)
    assert len(hooks) == 2  # the lost attempt and the retry, one delivery by its key
    assert {h["key"] for h in hooks} == {
        f"{update.id}/{Subscriber.parse(f'webhook:{receiver.url}/execs').id}"
    }


async def _true(value: bool) -> bool:
    return value


async def skip(env: WorkflowEnvironment, incident: WorkflowHandle[Any, Any], by: timedelta) -> None:
    """Moves the clock once the incident and its communications have nothing in
    flight (test_the_reminder_pages_the_comms_lead_when_no_update_was_posted_in_time).
    A delivery that is slow on a loaded machine holds the clock where it is,
    so waiting for it long is safe: no reminder comes early meanwhile."""
    await settled(incident, timeout=90)
    await settled(comms(env, incident), timeout=90)
    await env.sleep(by)


async def _delivered(
    env: WorkflowEnvironment, incident: WorkflowHandle[Any, Any]
) -> CommsView | None:
    found = await comms(env, incident).query(CommunicationsWorkflow.view)
    return found if found.updates and found.updates[0].delivered == 2 else None


async def test_a_delivery_recorded_by_one_worker_is_not_sent_again_by_the_next(
    tmp_path, mail, receiver
):
    """A retry whose first attempt sent the update but never reported it (the
    worker died): the delivery record, not Temporal's history, stops the resend."""
    config = comms_policy(tmp_path, mail, receiver)
    delivery = Delivery(
        incident_id="i1",
        update=StatusUpdate(
            id="i1.run.1",
            number=1,
            at=_now(),
            kind=UpdateKind.POSTED,
            status=IncidentStatus.ACKNOWLEDGED,
            text="We are on it",
            by="carol",
        ),
        briefing=Briefing(title="t", severity=Severity.SEV2, status=IncidentStatus.ACKNOWLEDGED),
        subscriber=Subscriber.parse(f"email:{CTO}"),
        thread="i1.run.1",
    )
    results = []
    for _ in range(2):  # two processes, one store file
        store = SqliteSubscriptions(tmp_path / "subscriptions.db")
        acts = CommunicationsActivities(PolicySource(config), store, store)
        results.append(await ActivityEnvironment().run(acts.deliver_update, delivery))
    assert [r.sent for r in results] == [True, False]
    assert len(mail.to(CTO)) == 1


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def test_the_reminder_pages_the_comms_lead_when_no_update_was_posted_in_time(
    own_ts_env, task_queue, tmp_path, new_id, started: Started, mail, receiver
):
    """On a server of its own, and each clock move starts with nothing in
    flight: the test server holds its clock while any activity is out, so a
    delivery still retrying (a loaded worker's missed heartbeat) made the move
    wait in real time until the call timed out (CI, stop 14)."""
    ts_env = own_ts_env
    config = comms_policy(tmp_path, mail, receiver, reminders={"Sev2": "30m"})
    pages = tmp_path / "pages.jsonl"

    def reminders() -> list[dict[str, Any]]:
        return [p for p in read_pages(pages) if p["reason"].startswith("no status update")]

    async with incident_worker(ts_env, task_queue, config):
        incident = await open_incident(started, ts_env.client, task_queue, new_id())
        opened = await view(ts_env, incident)
        due = opened.next_reminder_at
        assert due is not None
        await skip(ts_env, incident, timedelta(minutes=29))
        assert reminders() == []  # not before its time
        await skip(ts_env, incident, timedelta(minutes=2))
        await eventually(lambda: _true(len(reminders()) == 1), what="the reminder page")
        # An update resets the clock: the next reminder is 30m after it.
        update = await post(ts_env, incident, "carol", "Still investigating")
        after = await comms(ts_env, incident).query(CommunicationsWorkflow.view)
        await skip(ts_env, incident, timedelta(minutes=29))
        assert len(reminders()) == 1
        await skip(ts_env, incident, timedelta(minutes=2))
        await eventually(lambda: _true(len(reminders()) == 2), what="the second reminder")
        timeline = await incident.query(IncidentWorkflow.timeline)

    first = reminders()[0]
    assert first["recipients"] == ["carol"]  # the holder of the comms role, nobody else
    assert after.next_reminder_at == update.at + timedelta(minutes=30)
    # 30m from the incident's opening (its first update follows within moments)
    assert abs(due - opened.updates[-1].at - timedelta(minutes=30)) < timedelta(seconds=2)
    assert [e.kind for e in timeline].count("comms_reminder") == 2


async def test_only_people_the_policy_allows_post_updates_and_a_refusal_changes_nothing(
    ts_env, task_queue, tmp_path, new_id, started: Started, mail, receiver
):
    config = comms_policy(tmp_path, mail, receiver, automatic_updates=False)
    async with incident_worker(ts_env, task_queue, config):
        incident = await open_incident(started, ts_env.client, task_queue, new_id())
        before = await view(ts_env, incident)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await post(ts_env, incident, "alice", "All good, nothing to see")
        forged = PostUpdate(by="carol", text="forged")  # no gateway's proof
        with pytest.raises(WorkflowUpdateFailedError) as unsigned:
            await comms(ts_env, incident).execute_update("post_update", forged)
        # The incident names alice its communications lead: now she may.
        from stanch.models.incident import AssignRole, Role

        await decide(
            incident,
            "assign_role",
            AssignRole(by="bob", role=Role.COMMUNICATIONS_LEAD, assignee="alice"),
            env=ts_env,
            result_type=UpdateResult,
        )

        async def lead_known() -> bool:
            return (
                await comms(ts_env, incident).query(CommunicationsWorkflow.view)
            ).lead == "alice"

        await eventually(lead_known, what="the incident telling its lead")
        allowed = await post(ts_env, incident, "alice", "A fix is deploying")
        after = await comms(ts_env, incident).query(CommunicationsWorkflow.view)
        await eventually(lambda: _true(len(mail.to(CTO)) == 1), what="alice's update")
    assert "alice may not post status updates" in str(refused.value.cause)
    assert "unsigned decision" in str(unsigned.value.cause)
    assert before.updates == []
    assert [u.id for u in after.updates] == [allowed.id]
    assert mail.to(CTO)[0].message["Message-ID"] == f"<{allowed.id}@stanch>"
    assert len(mail.received) == 1


async def test_a_subscriber_of_one_incident_hears_its_updates(
    ts_env, task_queue, tmp_path, new_id, started: Started, mail, receiver
):
    config = comms_policy(tmp_path, mail, receiver, groups=[])
    async with incident_worker(ts_env, task_queue, config):
        incident = await open_incident(started, ts_env.client, task_queue, new_id())
        await view(ts_env, incident)
        # The opening update has found its audience (nobody) before anyone
        # subscribes: an update goes to whoever is subscribed when it is sent.
        await settled(comms(ts_env, incident), timeout=90)
        subscribed = await decide(
            comms(ts_env, incident),
            "subscribe",
            Subscribe(by="bob", channel="email:Support@Example.com"),
            env=ts_env,
            role=ApiRole.VIEWER,
            result_type=CommsView,
        )
        again = await decide(  # the same subscriber twice is one subscriber
            comms(ts_env, incident),
            "subscribe",
            Subscribe(by="bob", channel="email:Support@example.COM"),
            env=ts_env,
            role=ApiRole.VIEWER,
            result_type=CommsView,
        )
        await decide(
            incident, "acknowledge", Acknowledge(by="bob"), env=ts_env, result_type=UpdateResult
        )
        await eventually(lambda: _true(len(mail.to("Support@example.com")) >= 1), what="the update")
        await settled(comms(ts_env, incident), timeout=90)
        acknowledged = (await comms(ts_env, incident).query(CommunicationsWorkflow.view)).updates[0]
    assert subscribed.subscribers == again.subscribers == ["email:Support@example.com"]
    # Only the acknowledged update, and not the opening one sent before anyone
    # subscribed. By Message-ID: an attempt a loaded worker lost mid-send is
    # sent again under the same one (activities/communications.py).
    assert acknowledged.status is IncidentStatus.ACKNOWLEDGED
    assert {r.message["Message-ID"] for r in mail.received} == {f"<{acknowledged.id}@stanch>"}
