"""Which unfinished tunnel handshakes to drop so that a new one gets in.

Anyone on the network can open connections faster than they can be refused,
and each unfinished handshake holds a thread. So there is room for `total`
of them, and when it is full the oldest is dropped: a real peer finishes in
one round trip, long before `total` newer connections push it out, so a
flood only displaces itself. One source address may hold `per_source` of
them, so that a flood from one host displaces its own connections, never a
real peer's on another node. Authenticated links hold no slot.

A peer that has spoken (sent its first bytes) goes after those that have
not: a real peer speaks at once, so a flood of silent connections cannot
push out one of the same address that is halfway through. One that has
proved itself is never dropped: its peer is about to believe it is in.
"""
import collections


class HandshakeSlots:
    def __init__(self, total, per_source):
        self.total = total
        self.per_source = per_source
        self._source_of = collections.OrderedDict()  # key -> source address, oldest first
        self._spoken = set()
        self._verified = set()

    def admit(self, key, source):
        """Take key in; returns the keys dropped to make room for it."""
        dropped = []
        same_source = [old for old, where in self._source_of.items() if where == source]
        if len(same_source) >= self.per_source:
            self._drop_one(same_source, dropped)
        if len(self._source_of) >= self.total:
            self._drop_one(list(self._source_of), dropped)
        self._source_of[key] = source
        return dropped

    def spoke(self, key):
        """key's peer sent its first bytes (callable from any thread)."""
        if key in self._source_of:
            self._spoken.add(key)

    def verified(self, key):
        """key's peer proved it holds the key (callable from any thread)."""
        if key in self._source_of:  # not one dropped meanwhile: no stale entry
            self._verified.add(key)

    def may_drop(self, key):
        return key in self._source_of and key not in self._verified

    def _drop_one(self, keys, dropped):
        """The oldest silent one, else the oldest; never a verified one
        (then there is one more for a moment)."""
        keys = [key for key in keys if key not in self._verified]
        silent = [key for key in keys if key not in self._spoken]
        if keys:
            dropped.append((silent or keys)[0])
            self.release(dropped[-1])

    def release(self, key):
        """key's handshake ended (or was dropped): its slot is free."""
        self._source_of.pop(key, None)
        self._spoken.discard(key)
        self._verified.discard(key)

    def __contains__(self, key):
        return key in self._source_of

    def __len__(self):
        return len(self._source_of)
