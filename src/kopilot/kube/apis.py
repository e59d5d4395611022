"""A thin raw-JSON layer over the official client: paths in, dicts out, errors classified.

The official client handles the kubeconfig or in-cluster config, TLS and authentication (its
`ApiClient`); kopilot builds the requests itself so that every object stays raw JSON (fast, and
the same across client versions) and every failure becomes a `kopilot.kube.failures` error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from kopilot.kube import failures, retrying
from kopilot.model import errors

MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"
Timeout = float | tuple[float, float]


class Api:
    """Requests to one API server through an official-client `ApiClient`, retried by `retrier`."""

    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        retrier: retrying.Retrier,
        *,
        timeout_s: float = 30.0,
    ) -> None:
        self.client = api_client
        self.retrier = retrier
        self.timeout_s = timeout_s

    def raw(
        self,
        method: str,
        path: str,
        what: str,
        *,
        query: Mapping[str, str | int | bool] | None = None,
        body: object = None,
        content_type: str = JSON,
        timeout: Timeout | None = None,
    ) -> Any:
        """One request, not retried; the urllib3 response (unread: stream it or read `.data`)."""
        headers = {"Accept": JSON}
        if body is not None:
            headers["Content-Type"] = content_type
        params = [(k, _text(v)) for k, v in (query or {}).items()]
        method_, url, headers_, body_, _ = self.client.param_serialize(
            method=method,
            resource_path=path,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.client.call_api(
                method_,
                url,
                header_params=headers_,
                body=body_,
                _request_timeout=timeout if timeout is not None else self.timeout_s,
            )
        except Exception as exc:
            try:
                raise failures.classify(exc, what) from exc
            except TypeError:
                raise exc from None
        if not 200 <= response.status <= 299:
            data = response.response.data or b""
            raise failures.from_response(
                response.status,
                data,
                what,
                retry_after=response.response.headers.get("Retry-After"),
            )
        return response.response

    def call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        query: Mapping[str, str | int | bool] | None = None,
        body: object = None,
        content_type: str = JSON,
        conflicts: bool = False,
    ) -> dict[str, Any]:
        """One request, retried on temporary failures; the response body as a dict."""

        def once() -> dict[str, Any]:
            response = self.raw(
                method, path, what, query=query, body=body, content_type=content_type
            )
            data = response.data
            parsed = json.loads(data) if data else {}
            return parsed if isinstance(parsed, dict) else {}

        return self.retrier.call(what, once, conflicts=conflicts)

    def get(self, path: str, what: str, **query: str | int | bool) -> dict[str, Any]:
        return self.call("GET", path, what, query=query)

    def patch(self, path: str, body: object, what: str) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386)."""
        return self.call("PATCH", path, what, body=body, content_type=MERGE_PATCH)

    def post(self, path: str, body: object, what: str) -> dict[str, Any]:
        return self.call("POST", path, what, body=body)


def client_for(
    kubeconfig: Path | None, *, context: str | None = None, in_cluster: bool = False
) -> k8s_client.ApiClient:
    """An official-client `ApiClient`: from `kubeconfig` (or the default kubeconfig) and its
    `context`, or from the pod's service account when `in_cluster` and no kubeconfig is given.
    InvalidInputError when the configuration cannot be loaded."""
    try:
        if in_cluster and kubeconfig is None:
            cfg = k8s_client.Configuration()
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            return k8s_client.ApiClient(cfg)
        client: k8s_client.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig) if kubeconfig is not None else None, context=context
        )
        return client
    except (k8s_config.ConfigException, OSError, ValueError) as e:
        raise errors.InvalidInputError(f"cannot load the cluster configuration: {e}") from e


def _text(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
