"""`referral.created` (Referrals) -> the referrer's `metadata.referrals`, sanitised."""

from __future__ import annotations

from faust.types import StreamT

from agents.pipeline import consume
from core_app import topics
from core_app.app import app
from core_app.domain.events import ReferralCreated
from core_app.stream_topics import referral_created


@app.agent(referral_created, name="referral-created")
async def referral_created_agent(stream: StreamT) -> None:
    await consume(stream, topics.REFERRAL_CREATED, ReferralCreated.parse, app.components)
