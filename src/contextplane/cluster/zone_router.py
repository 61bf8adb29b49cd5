"""The proxy's side of a zone write (RFC 0004 §7, "Writes, a smaller first cut"): the
Produce request frames this broker takes for leaders in other zones, put into one object
of the shared store and named to each leader by ZoneProduce
(broker/handlers/zone_produce.py), so that only the object's key and positions cross
zones, never record bytes.

Frames gather while an object is being written and its leaders answered, as a group
commit gathers writes: one object per round,
`zone-router/<node>/<incarnation>/<seq>-<128 random bits>`,
holding at most ROUND_BYTES_MAX of frames (a larger request goes alone) and the frames of
at most ZONE_PRODUCE_FRAMES_MAX requests (a leader's bound on one call). Objects are
written one after another, the next once the leaders of the one before answered or
ROUND_PATIENCE_S passed, and each leader's calls form their own pipeline: a round's call
to a leader is sent once that leader has answered the previous round's, so a leader
receives one proxy's frames in the order the clients sent them (a producer's in-flight
requests keep their sequence order), and a leader that stops answering holds up only
the requests with frames for it, not the other zones' writes. A request is answered
once every leader it names has answered. The object is deleted once every leader named
in it has answered; one left by a crash in between is deleted by the orphan sweep's age
rule. Frames waiting for their round's object are bounded (QUEUED_BYTES_MAX): past it a
request waits for room, within its own timeout. Once the object is written the frames
live there, not in memory, so their room is freed then: a stopped leader's rounds wait
for its answers without holding the queue every zone writes through. Rounds in flight
are bounded too (ROUNDS_IN_FLIGHT_MAX), and once a call to a leader fails for want of
an answer, the calls queued behind it to that leader fail at once (NOT_LEADER_OR_FOLLOWER:
the client asks Metadata, which names the real leader) rather than each wait the peer
timeout in turn. A leader that answers, but slower than rounds go, is treated the same
once LEADER_CALLS_MAX calls wait on it: a request's frames for it are answered
NOT_LEADER_OR_FOLLOWER (written to it directly) while its frames for other leaders go
on.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from contextplane import limits
from contextplane.cluster.peer_client import PeerUnavailable
from contextplane.protocol.codec import ZONE_PRODUCE_KEY
from contextplane.protocol.error_codes import ErrorCode
from contextplane.storage.orphan_sweep import ZONE_ROUTER_PREFIX

if TYPE_CHECKING:
    from contextplane.clock import Clock
    from contextplane.cluster.peer_client import Peers
    from contextplane.storage.objectstore import ObjectStore

log = logging.getLogger(__name__)

# A round's object: AutoMQ's zone router uploads every 8 MiB (or 250 ms).
ROUND_BYTES_MAX = 8 * 1024 * 1024
# Frames waiting for a round, over every client of this broker.
QUEUED_BYTES_MAX = 64 * 1024 * 1024
# How long the next round waits for the leaders of the one before (it starts sooner
# once they all answered), and the rounds written and not yet answered by every leader
# they name: a stalled leader's rounds stay in flight until the peer timeout, one per
# ROUND_PATIENCE_S at most, so the bound is past what one peer timeout gathers.
ROUND_PATIENCE_S = 0.25
ROUNDS_IN_FLIGHT_MAX = 256
# A leader with this many calls waiting behind its oldest unanswered one is behind (it
# answers, slowly: ~4 s of rounds at ROUND_PATIENCE_S): it is left out of its zone's
# stand-ins like one not reached, so its rounds cannot fill ROUNDS_IN_FLIGHT_MAX and
# hold up the other zones' writes, nor its waiting requests grow this broker's memory.
LEADER_CALLS_MAX = 16
# How long a leader the proxy could not reach is left out of its zone's stand-ins
# (renewed by each failed call).
UNREACHABLE_MS = 10_000
_NOT_IN_TIME = "not answered within the timeout"


@dataclass(frozen=True, slots=True)
class FrameAnswer:
    """A leader's answer to one frame: its Produce response body, or why there is none
    (`error_code` other than NONE; `body` None also for acks=0)."""

    error_code: int
    error_message: str | None = None
    body: bytes | None = None


@dataclass(slots=True)
class _Request:
    frames: dict[int, bytes]  # leader node -> the frame of its partitions
    principal: str
    client_address: str
    answered: asyncio.Future[dict[int, FrameAnswer]]
    size: int = field(init=False)
    replies: dict[int, FrameAnswer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.size = sum(len(frame) for frame in self.frames.values())

    def written(self) -> None:
        """The frames are in the round's object: their bytes are not kept here."""
        self.frames = dict.fromkeys(self.frames, b"")

    def reply(self, leader: int, answer: FrameAnswer) -> None:
        """One leader's answer; the request is answered once every leader's is in."""
        self.replies[leader] = answer
        if len(self.replies) == len(self.frames) and not self.answered.done():
            self.answered.set_result(self.replies)

    def fail(self, code: int, message: str) -> None:
        if not self.answered.done():
            self.answered.set_result(_all(self.frames, code, message))


class Unreachable:
    """Leaders this proxy's last call could not reach (refused, reset, timed out), each
    for UNREACHABLE_MS. Meanwhile Metadata names the real leader for their partitions to
    this zone's clients and Produce no longer hands them on (broker/zone_proxy.py), so a
    client writes across zones rather than loop on NOT_LEADER_OR_FOLLOWER while the
    leader's heartbeat to the database still shows it live."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._until: dict[int, int] = {}
        self.generation = 0  # changes whenever the set does (Metadata's cache keys on it)

    def mark(self, node: int) -> None:
        if node not in self._until:
            self.generation += 1
            log.warning("zone router: node %d not reachable; its partitions go direct", node)
        self._until[node] = self._clock.monotonic_ms() + UNREACHABLE_MS

    def nodes(self) -> frozenset[int]:
        if self._until:
            now = self._clock.monotonic_ms()
            for node in [n for n, until in self._until.items() if until <= now]:
                del self._until[node]
                self.generation += 1
        return frozenset(self._until)


class ZoneRouter:
    def __init__(
        self,
        objects: ObjectStore,
        peers: Peers,
        node_id: int,
        incarnation: Callable[[], int],
        clock: Clock,
    ) -> None:
        self._objects = objects
        self._peers = peers
        self.unreachable = Unreachable(clock)
        self._node_id = node_id
        self._incarnation = incarnation
        self._queue: list[_Request] = []
        self._queued_bytes = 0
        self._room = asyncio.Condition()
        self._rounds: asyncio.Task[None] | None = None
        self._in_flight = asyncio.Semaphore(ROUNDS_IN_FLIGHT_MAX)
        # Each leader's last call: the next round's call to it waits for that one.
        self._tails: dict[int, asyncio.Task[None]] = {}
        self._calls: dict[int, int] = {}  # each leader's calls not yet answered
        self._finishing: set[asyncio.Task[None]] = set()
        self._sequence = 0
        # What tests and operators read: objects written, frames handed over.
        self.objects_written = 0
        self.frames_sent = 0

    async def hand_over(
        self, frames: dict[int, bytes], principal: str, client_address: str, timeout_s: float
    ) -> Awaitable[dict[int, FrameAnswer]]:
        """Queue the frames (waiting for room, within `timeout_s`) and return what answers
        them: each leader's answer to its frame, a leader that could not be reached in
        time REQUEST_TIMED_OUT, a failed object write KAFKA_STORAGE_ERROR. The caller
        awaits the queueing itself, so a client's connection reads no further requests
        while the queue is full (acks=0 ones included: nothing else bounds those)."""
        for leader in frames:
            if self._calls.get(leader, 0) >= LEADER_CALLS_MAX:
                self.unreachable.mark(leader)
        # The frames for a leader not reached (or behind) are answered at once: the client
        # asks Metadata again, which names the real leader; the others are handed over.
        refused = {
            leader: FrameAnswer(
                ErrorCode.not_leader_or_follower,
                f"node {leader} is not reachable from this zone's broker",
            )
            for leader in self.unreachable.nodes().intersection(frames)
        }
        frames = {leader: frame for leader, frame in frames.items() if leader not in refused}
        if not frames:
            return _answered(refused)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        request = _Request(frames, principal, client_address, loop.create_future())
        try:
            async with asyncio.timeout_at(deadline):
                async with self._room:
                    await self._room.wait_for(
                        lambda: (
                            self._queued_bytes == 0
                            or self._queued_bytes + request.size <= QUEUED_BYTES_MAX
                        )
                    )
                    self._queue.append(request)
                    self._queued_bytes += request.size
        except TimeoutError:
            return _answered(_all(frames, ErrorCode.request_timed_out, _NOT_IN_TIME) | refused)
        if self._rounds is None or self._rounds.done():
            self._rounds = asyncio.create_task(self._run_rounds())
        return _answer(request, deadline, refused)

    async def _run_rounds(self) -> None:
        while self._queue:
            taken: list[_Request] = []
            size = 0
            # At most one frame per request and leader: a leader refuses a call naming
            # more than ZONE_PRODUCE_FRAMES_MAX (acks=0 floods gather that many).
            while (
                self._queue
                and len(taken) < limits.ZONE_PRODUCE_FRAMES_MAX
                and (not taken or size + self._queue[0].size <= ROUND_BYTES_MAX)
            ):
                request = self._queue.pop(0)
                taken.append(request)
                size += request.size
            await self._in_flight.acquire()
            try:
                key, calls = await self._start_round(taken)
            except Exception as exc:  # noqa: BLE001 - answered, never left waiting
                log.warning("zone router round failed: %r", exc)
                key, calls = None, []
                for request in taken:
                    request.fail(ErrorCode.unknown_server_error, repr(exc))
            finally:
                await self._release(size)
            finishing = asyncio.create_task(self._finish_round(taken, key, calls))
            self._finishing.add(finishing)
            finishing.add_done_callback(self._finishing.discard)
            if calls:
                # Requests gather while the leaders answer (a group commit); one that
                # stops answering holds the next round back only this long.
                await asyncio.wait(calls, timeout=ROUND_PATIENCE_S)

    async def _start_round(
        self, taken: list[_Request]
    ) -> tuple[str | None, list[asyncio.Task[None]]]:
        """Write one object for `taken` and start one ZoneProduce per leader, each after
        that leader's previous call."""
        self._sequence += 1
        # The secret part: only this broker and the leaders it names the object to ever
        # see the key, so no client can name an object whose frames it did not send
        # (ZoneProduce trusts the principal the call names for them).
        secret = secrets.token_hex(16)
        key = f"{ZONE_ROUTER_PREFIX}{self._node_id}/{self._incarnation()}/{self._sequence}-{secret}"
        parts: list[bytes] = []
        by_leader: dict[int, list[tuple[_Request, dict[str, Any]]]] = {}
        position = 0
        for request in taken:
            for leader, frame in request.frames.items():
                entry = {
                    "position": position,
                    "size": len(frame),
                    "principal": request.principal,
                    "client_address": request.client_address,
                }
                by_leader.setdefault(leader, []).append((request, entry))
                parts.append(frame)
                position += len(frame)
        try:
            await self._objects.put(key, parts)
        except OSError as exc:
            for request in taken:
                request.fail(ErrorCode.kafka_storage_error, f"{key}: {exc}")
            return None, []
        finally:
            parts.clear()
            for request in taken:
                request.written()
        self.objects_written += 1
        calls = []
        for leader, entries in by_leader.items():
            call = asyncio.create_task(
                self._call_after(self._tails.get(leader), leader, key, entries)
            )
            self._tails[leader] = call
            self._calls[leader] = self._calls.get(leader, 0) + 1
            call.add_done_callback(functools.partial(self._forget_tail, leader))
            calls.append(call)
        return key, calls

    def _forget_tail(self, leader: int, call: asyncio.Task[None]) -> None:
        if self._tails.get(leader) is call:
            del self._tails[leader]
        self._calls[leader] -= 1
        if not self._calls[leader]:
            del self._calls[leader]

    async def _release(self, size: int) -> None:
        async with self._room:
            self._queued_bytes -= size
            self._room.notify_all()

    async def _finish_round(
        self, taken: list[_Request], key: str | None, calls: list[asyncio.Task[None]]
    ) -> None:
        """Once every leader of the round answered: the object deleted."""
        try:
            await asyncio.gather(*calls, return_exceptions=True)
            for request in taken:  # a call that failed unexpectedly answered nobody
                request.fail(ErrorCode.unknown_server_error, "the hand-over failed")
            if key is not None:
                try:
                    await self._objects.delete(key)
                except OSError as exc:  # the orphan sweep's age rule deletes it later
                    log.info("zone router object %s not deleted: %s", key, exc)
        finally:
            self._in_flight.release()

    async def _call_after(
        self,
        previous: asyncio.Task[None] | None,
        leader: int,
        key: str,
        entries: list[tuple[_Request, dict[str, Any]]],
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # its outcome is its own requests' business
        try:
            if leader in self.unreachable.nodes():
                # A call before this one went unanswered: this one would wait as long.
                message = f"node {leader} did not answer this zone's broker"
                result = [FrameAnswer(ErrorCode.not_leader_or_follower, message)] * len(entries)
            else:
                result = await self._call(leader, key, entries)
        except Exception as exc:  # noqa: BLE001 - answered, never left waiting
            log.warning("zone produce to node %d failed: %r", leader, exc)
            result = [FrameAnswer(ErrorCode.unknown_server_error, repr(exc))] * len(entries)
        for (request, _), answer in zip(entries, result, strict=True):
            request.reply(leader, answer)

    async def _call(
        self, leader: int, key: str, entries: list[tuple[_Request, dict[str, Any]]]
    ) -> list[FrameAnswer]:
        frames = [entry for _, entry in entries]
        failed: FrameAnswer | None = None
        try:
            answer = await self._peers.request(
                leader,
                ZONE_PRODUCE_KEY,
                0,
                # The leader trims a large answer's messages; what stays is bounded by
                # the frames' own size (limits.py).
                response_bytes_max=limits.PEER_RESPONSE_BYTES_MAX
                + limits.ZONE_PRODUCE_ANSWER_PER_FRAME_BYTE * sum(f["size"] for f in frames),
                timeout=int(limits.PEER_REQUEST_TIMEOUT_S * 1000),
                object_key=key,
                frames=frames,
            )
        except PeerUnavailable as exc:
            self.unreachable.mark(leader)
            failed = FrameAnswer(ErrorCode.not_leader_or_follower, str(exc))
        else:
            if answer.error_code != ErrorCode.none or len(answer.frames) != len(frames):
                message = answer.error_message or f"{len(answer.frames)} answers"
                failed = FrameAnswer(answer.error_code or ErrorCode.unknown_server_error, message)
        self.frames_sent += len(frames)
        if failed is not None:
            return [failed] * len(frames)
        return [FrameAnswer(f.error_code, f.error_message, f.body) for f in answer.frames]


async def _answer(
    request: _Request, deadline: float, refused: dict[int, FrameAnswer]
) -> dict[int, FrameAnswer]:
    try:
        async with asyncio.timeout_at(deadline):
            return await asyncio.shield(request.answered) | refused
    except TimeoutError:
        return _all(request.frames, ErrorCode.request_timed_out, _NOT_IN_TIME) | refused


async def _answered(answers: dict[int, FrameAnswer]) -> dict[int, FrameAnswer]:
    return answers


def _all(frames: dict[int, bytes], code: int, message: str) -> dict[int, FrameAnswer]:
    return {leader: FrameAnswer(code, message) for leader in frames}
