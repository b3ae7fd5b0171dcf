"""Work claims: leases in the store, so two runs at once (two `topics run`, or one beside `dagster dev`)
never pay for the same LLM work twice.

A run claims what it is about to do (the traces it facets, the map it generates) in one transaction;
what another live run holds is skipped and reported. A heartbeat renews the claims while the work
goes on; they are released when it ends, lapse CLAIM_TTL_S after a crashed owner's last heartbeat,
and are taken over at once from an owner on this host whose process is gone (a killed run).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterable

from .store import Store

CLAIM_TTL_S = 120.0
HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parts(owner: str) -> tuple[str, str]:
    """(host, pid) of an owner "host:pid:nonce"."""
    parts = owner.rsplit(":", 2)
    return (parts[0], parts[1]) if len(parts) == 3 else (owner, "")


def owner_is_dead(owner: str) -> bool:
    """An owner on this host whose process no longer exists (other hosts' owners lapse by expiry)."""
    host, pid = _parts(owner)
    return host == HOST and pid.isdigit() and not pid_alive(int(pid))


def describe(owner: str) -> str:
    host, pid = _parts(owner)
    return f"process {pid} on {host}"


def holders(store: Store, kind: str) -> dict[tuple[str, str], str]:
    """What runs hold now, (project, item) -> 'process 123 on host' (a killed run's claims left out)."""
    return {k: describe(o) for k, o in store.live_claims(kind).items() if not owner_is_dead(o)}


class Claim:
    """Claims `items` ((project, item) pairs) of `kind` on entry; `held` is what this run may do,
    `busy` what another live run is doing ({pair: owner}). Released on exit."""

    def __init__(self, store: Store, kind: str, items: Iterable[tuple[str, str]], ttl_s: float = CLAIM_TTL_S):
        self.store, self.kind, self.ttl_s = store, kind, ttl_s
        self.items = list(dict.fromkeys(items))
        self.owner = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held: set[tuple[str, str]] = set()
        self.busy: dict[tuple[str, str], str] = {}
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> Claim:
        self.busy = self.store.claim_work(self.kind, self.items, self.owner, self.ttl_s, is_dead=owner_is_dead)
        self.held = set(self.items) - set(self.busy)
        if self.held:
            self._beat = threading.Thread(target=self._heartbeat, name=f"claim-{self.kind}", daemon=True)
            self._beat.start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.store.renew_claims(self.kind, self.owner, self.ttl_s)
            except Exception:  # noqa: BLE001 - a missed beat only shortens the lease; the next one tries again
                pass

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        if self.held:
            self.store.release_claims(self.kind, self.owner)

    def holders(self) -> str:
        """Who holds what this claim did not get: 'process 123 on host, ...' ('' when nothing is busy)."""
        return ", ".join(sorted({describe(o) for o in self.busy.values()}))

    def busy_note(self, what: str) -> str | None:
        """'3 traces skipped: another run is working on them (process 123 on host)', or None."""
        if not self.busy:
            return None
        return f"{len(self.busy)} {what} skipped: another run is working on them ({self.holders()})"
