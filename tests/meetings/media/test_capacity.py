"""The media plane's limits hold under a burst of offers (issue 10, item 4): every offer's slot is taken
before anything is awaited, so parallel joins cannot slip past `max_peers` together, nor one participant
past its three connections."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from recordkit.config import MediaSettings
from tests.meetings.media.sdp import offer_sdp
from tests.support.media import Setup, ThreadServer, serve_in_thread

OFFERS = 70
MAX_PEERS = 64


@pytest.fixture
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    """A server of its own for each test: the peers a test leaves stay until their join timeout."""
    with serve_in_thread(tmp_path_factory.mktemp("capacity") / "data", MediaSettings(max_peers=MAX_PEERS)) as server:
        yield server


async def test_seventy_parallel_offers_make_exactly_sixty_four_peers(served: ThreadServer) -> None:
    setup = Setup(served.base_url)
    app_id, meeting_id = setup.meeting()
    tokens = [setup.participant(app_id, meeting_id, f"P{index}")["token"] for index in range(OFFERS)]
    setup.close()
    body = {"type": "offer", "sdp": offer_sdp(("audio", "sendrecv", ("opus",)))}
    async with httpx.AsyncClient(base_url=served.base_url, timeout=60) as http:
        answers = await asyncio.gather(
            *(
                http.post(f"/meet/{meeting_id}/offer", json=body, headers={"Authorization": f"Bearer {token}"})
                for token in tokens
            )
        )
    peers = served.services.media.peer_count
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * MAX_PEERS + [503] * (OFFERS - MAX_PEERS), statuses
    assert peers == MAX_PEERS
    refused = next(answer for answer in answers if answer.status_code == 503)
    assert refused.json()["error"]["message"] == "Server is at capacity, try again later"


async def test_one_participant_holds_at_most_three_connections(served: ThreadServer) -> None:
    setup = Setup(served.base_url)
    app_id, meeting_id = setup.meeting()
    who = setup.participant(app_id, meeting_id, "Tabs")
    setup.close()
    body = {"type": "offer", "sdp": offer_sdp(("audio", "sendrecv", ("opus",)))}
    headers = {"Authorization": f"Bearer {who['token']}"}
    async with httpx.AsyncClient(base_url=served.base_url, timeout=60) as http:
        offers = (http.post(f"/meet/{meeting_id}/offer", json=body, headers=headers) for _ in range(5))
        answers = await asyncio.gather(*offers)
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 200, 200, 409, 409], statuses
    refused = next(answer for answer in answers if answer.status_code == 409)
    assert refused.json()["error"]["message"] == f"Participant {who['id']} already has 3 connections"
