"""A fair share of the model slots for every student (issue 39).

Gradio's queue serves each concurrency group first come, first served: a student who clicks
three model buttons (or sends twenty API calls) holds the slots while the class waits. FairQueue
is Gradio's queue with one change, the order of the waiting events of a group (events carry
their browser session's hash): a session's n-th waiting event, counting the events it has
running already in any group, goes behind every other session's events with a smaller count;
among equals, the session whose last event started longest ago goes first, then arrival.
So a session with a job running queues behind other sessions' first jobs, and sessions take
turns. The list is reordered in place where Gradio reads it, so the position and the estimated
wait Gradio shows each student follow the true order. Nothing is refused or dropped, and the
slots are never left idle while anything waits. One session may have at most
MAX_WAITING_PER_SESSION events waiting: a further one is refused at once (HTTP 503, "queue_full",
the message names the limit), so one client cannot fill the queue the class shares.

This subclasses gradio.queueing.Queue (gradio 6.31): get_events() (which picks what starts next)
and push() (which adds an event) are Gradio's own, called after the reorder."""
from __future__ import annotations

import math
import time
from collections import Counter

import gradio as gr
from gradio import queueing

MAX_REMEMBERED = 4096  # sessions whose last start is remembered (the oldest are forgotten first)
MAX_WAITING_PER_SESSION = 8  # events one browser session may have waiting, over every group


class FairQueue(queueing.Queue):
    """Gradio's queue, waiting events ordered per session (see the module doc)."""

    last_start: dict[str, float]  # session hash -> when its last event started (time.monotonic)

    def _running(self) -> Counter:
        """Events running now, per session, in every group."""
        return Counter(e.session_hash for job in self.active_jobs if job for e in job)

    def _reorder(self, waiting: list, running: Counter) -> None:
        """Put `waiting` (one group's list, in place) in the fair order."""
        if len(waiting) < 2:
            return
        last = getattr(self, "last_start", {})
        seen: Counter = Counter()
        keyed = []
        for event in sorted(waiting, key=lambda e: e.enqueue_time):
            s = event.session_hash
            keyed.append(((running[s] + seen[s], last.get(s, -math.inf), event.enqueue_time), event))
            seen[s] += 1
        keyed.sort(key=lambda pair: pair[0])
        waiting[:] = [event for _, event in keyed]

    def get_events(self):
        """Gradio's pick of the next events to start, after the groups with a free slot are put in
        the fair order; remembers when each session last started one."""
        running = None
        for group in self.event_queue_per_concurrency_id.values():
            free = group.concurrency_limit is None or group.current_concurrency < group.concurrency_limit
            if free and len(group.queue) > 1:
                running = self._running() if running is None else running
                self._reorder(group.queue, running)
        picked = super().get_events()
        if picked:
            self._remember([e.session_hash for e in picked[0]])
        return picked

    def _remember(self, sessions: list[str]) -> None:
        if not hasattr(self, "last_start"):
            self.last_start = {}
        now = time.monotonic()
        for s in sessions:
            self.last_start.pop(s, None)  # re-inserted last: the dict stays in start order
            self.last_start[s] = now
        while len(self.last_start) > MAX_REMEMBERED:
            self.last_start.pop(next(iter(self.last_start)))

    async def push(self, body, request, username):
        """Gradio's push; then the new event's group is put in the fair order at once, and every
        waiting student of that group is sent the position that order gives."""
        waiting = self._waiting_of(body.session_hash)
        if waiting >= MAX_WAITING_PER_SESSION:
            return (False, f"this session already has {waiting} requests waiting (the limit is "
                           f"{MAX_WAITING_PER_SESSION}): wait for one to finish, then try again.", "queue_full")
        result = await super().push(body, request, username)
        event = self.event_ids_to_events.get(result[1]) if result[0] and isinstance(result[1], str) else None
        group = self.event_queue_per_concurrency_id.get(event.concurrency_id) if event is not None else None
        if group is not None and event in group.queue and len(group.queue) > 1:
            async with self.delete_lock:
                self._reorder(group.queue, self._running())
            self.broadcast_estimations(event.concurrency_id)
        return result


    def _waiting_of(self, session: str | None) -> int:
        """Events of `session` waiting (not yet started) in any group; 0 for a call with no session."""
        if session is None:
            return 0
        return sum(e.session_hash == session for g in self.event_queue_per_concurrency_id.values() for e in g.queue)


def make_fair(demo: gr.Blocks) -> None:
    """Give `demo` (after demo.queue(...)) the fair order: its queue object becomes a FairQueue,
    keeping every setting and the state Gradio gave it."""
    demo._queue.__class__ = FairQueue
