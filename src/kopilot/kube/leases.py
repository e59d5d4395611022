"""Leader election through a `coordination.k8s.io/v1` Lease, so two kopilots never both act.

The algorithm is client-go's `leaderelection`, kept small:

- `tick(now)` tries to acquire or renew the lease every `retry_period_s`: it reads the Lease,
  and writes itself as holder (with the read resourceVersion, so a concurrent writer gets a 409
  and loses) if the Lease is free, its own, or expired.
- Expiry is judged on the *local* clock from when this elector last saw the record change, never
  from the holder's `renewTime` (clocks of two machines differ): a record unchanged for
  `lease_duration_s` is expired.
- The leader acts only while its last successful renewal is younger than `renew_deadline_s`
  (< `lease_duration_s`): it stops acting before anybody else may take over, so a leader that
  cannot reach the API server fences itself off in time.
- `release()` (on a clean shutdown) empties the holder so a successor need not wait.

The clock is injected; tests drive it, production uses the wall clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kopilot.kits import clocks
from kopilot.kube import apis, converting, failures

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseSettings:
    namespace: str = "kube-system"
    name: str = "kopilot"
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError(
                "lease timings must satisfy 0 < retry period < renew deadline < lease duration "
                f"(got {self.retry_period_s}, {self.renew_deadline_s}, {self.lease_duration_s})"
            )


class LeaseElector:
    """One candidate in a leader election (see the module docstring)."""

    def __init__(
        self, api: apis.Api, *, identity: str, clock: clocks.Clock, settings: LeaseSettings
    ) -> None:
        self._api = api
        self.identity = identity
        self._clock = clock
        self.settings = settings
        self._renewed_at: float | None = None
        self._observed: tuple[str, str, str] | None = None
        self._observed_at = 0.0
        self._last_try = -float("inf")
        self.transitions = 0
        """How many times this elector became leader."""
        self.last_error: str | None = None

    @property
    def _path(self) -> str:
        s = self.settings
        return f"/apis/coordination.k8s.io/v1/namespaces/{s.namespace}/leases/{s.name}"

    def is_leader(self, now: float | None = None) -> bool:
        """True while the last successful renewal is younger than the renew deadline."""
        t = self._clock.now() if now is None else now
        return (
            self._renewed_at is not None and t - self._renewed_at < self.settings.renew_deadline_s
        )

    def tick(self, now: float | None = None) -> bool:
        """Try to acquire or renew if a retry period has passed; whether this is the leader."""
        t = self._clock.now() if now is None else now
        if t - self._last_try >= self.settings.retry_period_s:
            self._last_try = t
            was = self.is_leader(t)
            if self.try_acquire_or_renew(t) and not was:
                self.transitions += 1
                log.info("%s became the leader (lease %s)", self.identity, self.settings.name)
        return self.is_leader(t)

    def try_acquire_or_renew(self, now: float) -> bool:
        """One attempt; True if this elector holds the lease now."""
        s = self.settings
        try:
            lease = self._api.call("GET", self._path, f"read lease {s.name}")
        except failures.NotFoundError:
            return self._create(now)
        except failures.KubeError as e:
            self.last_error = str(e)
            return False
        spec = lease.get("spec") or {}
        meta = lease.get("metadata") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, str(spec.get("renewTime") or ""), str(meta.get("resourceVersion", "")))
        if record != self._observed:
            self._observed = record
            self._observed_at = now
        duration = float(spec.get("leaseDurationSeconds") or s.lease_duration_s)
        if holder and holder != self.identity and self._observed_at + duration > now:
            self._renewed_at = None
            return False
        new_spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": round(s.lease_duration_s),
            "renewTime": converting.rfc3339(now, micro=True),
            "acquireTime": spec.get("acquireTime") if holder == self.identity else None,
            "leaseTransitions": int(spec.get("leaseTransitions") or 0),
        }
        if holder != self.identity:
            new_spec["acquireTime"] = converting.rfc3339(now, micro=True)
            new_spec["leaseTransitions"] += 1 if holder else 0
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": s.name, "namespace": s.namespace, "resourceVersion": record[2]},
            "spec": new_spec,
        }
        try:
            updated = self._api.call("PUT", self._path, f"renew lease {s.name}", body=body)
        except failures.ConflictError:
            return False  # someone else wrote first: they won this round
        except failures.KubeError as e:
            self.last_error = str(e)
            return False
        self._renewed_at = now
        self._observe(updated, now)
        return True

    def release(self) -> bool:
        """Give the lease up (clean shutdown); True if it was held and is now free."""
        if not self.is_leader():
            return False
        s = self.settings
        try:
            lease = self._api.call("GET", self._path, f"read lease {s.name}")
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return False
            lease["spec"] = {
                **(lease.get("spec") or {}),
                "holderIdentity": None,
                "leaseDurationSeconds": 1,
            }
            self._api.call("PUT", self._path, f"release lease {s.name}", body=lease)
        except failures.KubeError as e:
            self.last_error = str(e)
            return False
        finally:
            self._renewed_at = None
        return True

    def _create(self, now: float) -> bool:
        s = self.settings
        stamp = converting.rfc3339(now, micro=True)
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": s.name, "namespace": s.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": round(s.lease_duration_s),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
        }
        try:
            created = self._api.call(
                "POST",
                f"/apis/coordination.k8s.io/v1/namespaces/{s.namespace}/leases",
                f"create lease {s.name}",
                body=body,
            )
        except failures.KubeError as e:  # 409: another candidate created it first
            self.last_error = str(e)
            return False
        self._renewed_at = now
        self._observe(created, now)
        return True

    def _observe(self, lease: dict[str, Any], now: float) -> None:
        spec = lease.get("spec") or {}
        meta = lease.get("metadata") or {}
        self._observed = (
            spec.get("holderIdentity") or "",
            str(spec.get("renewTime") or ""),
            str(meta.get("resourceVersion", "")),
        )
        self._observed_at = now
