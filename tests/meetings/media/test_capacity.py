"""The media plane's peer limit holds under a burst of offers (issue 10, item 4): every offer's slot is taken
before anything is awaited, so parallel joins cannot slip past `max_peers` together."""

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


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
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
