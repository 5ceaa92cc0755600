"""A participant in a process of its own, for tests that kill it: joins, prints `joined <peer_id>`, waits.

python -m tests.meetings.media.bot_process SERVER_URL MEETING_ID TOKEN
"""

from __future__ import annotations

import asyncio
import sys

from recordkit.bot.client import connect
from tests.support.media import CounterVideoTrack, ToneTrack


async def main(server_url: str, meeting_id: str, token: str) -> None:
    peer = await connect(
        server_url, meeting_id, token, audio=ToneTrack(), video=CounterVideoTrack(), receive_audio=1, receive_video=1
    )
    print("joined", peer.peer_id, flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
