"""`referral.created` (Referrals) -> the referrer's `metadata.referrals`, sanitised."""

from __future__ import annotations

from faust.types import StreamT

from agents.pipeline import batch_handler, consume
from core_app import batch_delivery, topics
from core_app.app import app
from core_app.domain.events import ReferralCreated
from core_app.stream_topics import referral_created


@app.agent(referral_created, name="referral-created")
async def referral_created_agent(stream: StreamT) -> None:
    await consume(stream, topics.REFERRAL_CREATED, ReferralCreated.parse, app.components)


# Its records come in batches past the agent's stream (D234); the agent serves when that is off.
batch_delivery.route(
    topics.REFERRAL_CREATED,
    batch_handler(topics.REFERRAL_CREATED, ReferralCreated.parse, lambda: app.components),
)
