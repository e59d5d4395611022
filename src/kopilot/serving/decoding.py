"""The decode pool: images are decoded on a few threads of their own, never on asyncio's default
pool (sized from the host's CPUs, shared with everything else that calls `to_thread`).

A request waits for one of `threads` slots on an asyncio semaphore before its decode is handed
to the pool, so at most `threads` decodes hold pixels at once, the pool's own queue stays empty,
and a request cancelled while waiting leaves nothing behind. Together with the per-image cost
check (`preprocessing.decode_cost`) this bounds the memory decoding can take.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools

from kopilot.serving import preprocessing, settings


class DecodePool:
    """Decodes and letterboxes request images on `threads` threads; use from one event loop."""

    def __init__(self, *, threads: int, limits: settings.LimitSettings) -> None:
        if threads < 1:
            raise ValueError(f"the decode pool needs at least one thread, not {threads}")
        self.threads = threads
        self._limits = limits
        self._slots = asyncio.Semaphore(threads)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="kopilot-decode"
        )
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Requests waiting for a decode slot."""
        return self._waiting

    async def prepare(
        self, data: bytes, *, height: int, width: int, jpeg_draft: bool
    ) -> preprocessing.PreparedImage:
        """`preprocessing.prepare` with this server's limits, once a slot is free."""
        job = functools.partial(
            preprocessing.prepare,
            data,
            height=height,
            width=width,
            max_pixels=self._limits.max_image_pixels,
            jpeg_draft=jpeg_draft,
            max_side=self._limits.max_image_side,
            max_decode_bytes=self._limits.max_decode_bytes,
            formats=self._limits.image_formats,
        )
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, job)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Finish the decodes running now and stop the threads."""
        self._executor.shutdown(wait=True)
