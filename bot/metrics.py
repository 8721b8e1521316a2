"""Prometheus metrics, in a registry per app so tests and several apps in one process stay apart."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("cardbot_http_requests", "HTTP requests", ["endpoint", "method", "status"], registry=self.registry)
        self.latency = Histogram(
            "cardbot_http_request_seconds",
            "HTTP request latency",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 4, 5, 10),
            registry=self.registry,
        )
        self.messages = Counter("cardbot_messages", "WeChat pushes handled", ["kind"], registry=self.registry)
        self.handler_errors = Counter("cardbot_handler_errors", "Handler exceptions", ["handler"], registry=self.registry)
        self.dedup_hits = Counter("cardbot_dedup_hits", "Retried pushes answered from dedup", registry=self.registry)
        self.late_replies = Counter("cardbot_late_replies", "Replies sent later as customer-service messages", registry=self.registry)
        self.notices = Counter("cardbot_notices", "Notices by outcome", ["kind", "outcome"], registry=self.registry)
        self.credits = Counter("cardbot_credits", "Credits delivered to the card system", ["kind"], registry=self.registry)
        self.credit_waits = Counter("cardbot_credit_waits", "Credit deliveries left pending, by reason", ["why"], registry=self.registry)
