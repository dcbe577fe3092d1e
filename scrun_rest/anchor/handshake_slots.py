"""Which unfinished tunnel handshakes to drop so that a new one gets in.

Anyone on the network can open connections faster than they can be refused,
and each unfinished handshake holds a thread. So there is room for `total`
of them, and when it is full the oldest is dropped: a real peer finishes in
one round trip, long before `total` newer connections push it out, so a
flood only displaces itself. One source address may hold `per_source` of
them, so that a flood from one host displaces its own connections, never a
real peer's on another node. Authenticated links hold no slot.
"""
import collections


class HandshakeSlots:
    def __init__(self, total, per_source):
        self.total = total
        self.per_source = per_source
        self._source_of = collections.OrderedDict()  # key -> source address, oldest first

    def admit(self, key, source):
        """Take key in; returns the keys dropped to make room for it."""
        dropped = []
        same_source = [old for old, where in self._source_of.items() if where == source]
        if len(same_source) >= self.per_source:
            dropped.append(same_source[0])
            self.release(same_source[0])
        if len(self._source_of) >= self.total:
            oldest = next(iter(self._source_of))
            dropped.append(oldest)
            self.release(oldest)
        self._source_of[key] = source
        return dropped

    def release(self, key):
        """key's handshake ended (or was dropped): its slot is free."""
        self._source_of.pop(key, None)

    def __contains__(self, key):
        return key in self._source_of

    def __len__(self):
        return len(self._source_of)
