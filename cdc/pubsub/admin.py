"""Idempotent creation and deletion of the topics and subscriptions."""

from __future__ import annotations

from datetime import timedelta

from google.cloud import pubsub_v1  # type: ignore[attr-defined]
from google.pubsub_v1 import Subscription

from cdc.errors import AlreadyExists, SinkMisconfigured
from cdc.google_deadlines import call_options
from cdc.google_errors import google_boundary
from cdc.settings import Settings

MAX_DELIVERY_ATTEMPTS = 10
# A message delivered to a consumer that died comes back after this. The consumers
# extend what they hold to it every third of it (cdc/pubsub/pulling.py).
ACK_DEADLINE_S = 30
# Redelivery of a nacked or expired message waits this long, doubling from the
# minimum to the maximum: a consumer that keeps dying (or a bug that keeps
# nacking) spends its delivery attempts over about an hour, not in a minute.
# A running consumer spends none during an outage: it holds what it pulled and
# retries in process (consumers/runner.py).
RETRY_MIN_BACKOFF_S = 10
RETRY_MAX_BACKOFF_S = 600


class PubSubAdmin:
    """Creates what ``cdc setup`` needs on Pub/Sub; every call is idempotent.

    It logs nothing: it returns what it did, and ``cdc setup`` prints that once."""

    def __init__(self, settings: Settings) -> None:
        self.project = settings.require_project()
        self.settings = settings
        with google_boundary("connecting to Pub/Sub"):
            self.publisher = pubsub_v1.PublisherClient()
            self.subscriber = pubsub_v1.SubscriberClient()

    def topic_path(self, name: str) -> str:
        return f"projects/{self.project}/topics/{name}"

    def subscription_path(self, name: str) -> str:
        return f"projects/{self.project}/subscriptions/{name}"

    def ensure_topic(self, name: str) -> bool:
        """True when it was created now."""
        try:
            with google_boundary(f"creating topic {name}"):
                self.publisher.create_topic(name=self.topic_path(name), **call_options())
        except AlreadyExists:
            return False
        return True

    def ensure_subscription(self, name: str, topic: str, *, ordered: bool,
                            dead_letter_topic: str | None = None) -> bool:
        request: dict[str, object] = {
            "name": self.subscription_path(name),
            "topic": self.topic_path(topic),
            "ack_deadline_seconds": ACK_DEADLINE_S,
            "enable_message_ordering": ordered,
        }
        if dead_letter_topic:
            request["dead_letter_policy"] = self._dead_letter_policy(dead_letter_topic)
            request["retry_policy"] = RETRY_POLICY
        try:
            with google_boundary(f"creating subscription {name}"):
                self.subscriber.create_subscription(request=request, **call_options())
        except AlreadyExists:
            return False
        return True

    def ensure_all(self) -> list[str]:
        """Topic, dead-letter topic, and the four subscriptions. Returns what was done."""
        s = self.settings
        created = []
        for topic in (s.topic, s.dead_letter_topic):
            if self.ensure_topic(topic):
                created.append(f"topic {topic}")
        subs = [
            (s.firestore_subscription, s.topic, True, s.dead_letter_topic),
            (s.audit_subscription, s.topic, True, s.dead_letter_topic),
            # unordered: the roster holds messages for an interval, and applies by version
            (s.roster_subscription, s.topic, False, s.dead_letter_topic),
            (s.dead_letter_subscription, s.dead_letter_topic, False, None),
        ]
        for name, topic, ordered, dlq in subs:
            if self.ensure_subscription(name, topic, ordered=ordered, dead_letter_topic=dlq):
                created.append(f"subscription {name}")
            else:
                created += self.align_subscription(name, ordered=ordered, dead_letter_topic=dlq)
        return created

    def align_subscription(self, name: str, *, ordered: bool,
                           dead_letter_topic: str | None) -> list[str]:
        """Give an existing subscription the settings ``cdc setup`` creates it with.

        Subscriptions made before the ack deadline was 30 s have 60 s: what a
        killed consumer held would come back only after that. One made by hand,
        or before the dead-letter policy, would redeliver a poison event
        forever; one without the retry policy redelivers at once, so a
        consumer that keeps dying spends its ten attempts in a minute. Ordering
        cannot be changed in place: a subscription that lacks it is refused.
        Returns what was changed now.
        """
        path = self.subscription_path(name)
        with google_boundary(f"reading subscription {name}"):
            current = self.subscriber.get_subscription(subscription=path, **call_options())
        if ordered and not current.enable_message_ordering:
            raise SinkMisconfigured(
                f"subscription {name} exists without message ordering",
                hint=f"ordering cannot be turned on in place: stop its consumer, delete it "
                     f"(gcloud pubsub subscriptions delete {name}), run `cdc setup` again, "
                     f"then `cdc backfill` to resync what it held")
        update: dict[str, object] = {"name": path}
        changes = []
        if current.ack_deadline_seconds != ACK_DEADLINE_S:
            update["ack_deadline_seconds"] = ACK_DEADLINE_S
            changes.append(f"ack deadline of subscription {name} set to {ACK_DEADLINE_S} s")
        if dead_letter_topic and not self._has_policy(current, dead_letter_topic):
            update["dead_letter_policy"] = self._dead_letter_policy(dead_letter_topic)
            changes.append(f"dead-letter policy of subscription {name} set to "
                           f"{MAX_DELIVERY_ATTEMPTS} attempts -> {dead_letter_topic}")
        if dead_letter_topic and not _has_retry_policy(current):
            update["retry_policy"] = RETRY_POLICY
            changes.append(f"retry policy of subscription {name} set to {RETRY_TEXT}")
        if changes:
            self._update(name, update)
        return changes

    def _update(self, name: str, subscription: dict[str, object]) -> None:
        paths = [field for field in subscription if field != "name"]
        with google_boundary(f"updating subscription {name}"):
            self.subscriber.update_subscription(request={
                "subscription": subscription, "update_mask": {"paths": paths}},
                **call_options())

    def _dead_letter_policy(self, dead_letter_topic: str) -> dict[str, object]:
        return {"dead_letter_topic": self.topic_path(dead_letter_topic),
                "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS}

    def _has_policy(self, subscription: Subscription, dead_letter_topic: str) -> bool:
        policy = subscription.dead_letter_policy
        return bool(policy.dead_letter_topic == self.topic_path(dead_letter_topic)
                    and policy.max_delivery_attempts == MAX_DELIVERY_ATTEMPTS)

    def planned(self) -> list[str]:
        s = self.settings
        return [
            f"create topic {s.topic} (if missing)",
            f"create topic {s.dead_letter_topic} (if missing)",
            f"create ordered subscription {s.firestore_subscription} with dead-letter policy "
            f"({MAX_DELIVERY_ATTEMPTS} attempts -> {s.dead_letter_topic})",
            f"create ordered subscription {s.audit_subscription} with dead-letter policy",
            f"create subscription {s.roster_subscription} (unordered) with dead-letter policy",
            f"create subscription {s.dead_letter_subscription} on {s.dead_letter_topic}",
            f"give the three a retry policy ({RETRY_TEXT})",
            f"give existing subscriptions an ack deadline of {ACK_DEADLINE_S} s, the "
            "dead-letter policy and the retry policy (if different)",
        ]


RETRY_POLICY = {"minimum_backoff": {"seconds": RETRY_MIN_BACKOFF_S},
                "maximum_backoff": {"seconds": RETRY_MAX_BACKOFF_S}}
RETRY_TEXT = f"exponential backoff {RETRY_MIN_BACKOFF_S}-{RETRY_MAX_BACKOFF_S} s"


def _has_retry_policy(subscription: Subscription) -> bool:
    policy = subscription.retry_policy
    return bool(_seconds(policy.minimum_backoff) == RETRY_MIN_BACKOFF_S
                and _seconds(policy.maximum_backoff) == RETRY_MAX_BACKOFF_S)


def _seconds(value: object) -> float:
    """A Duration as proto-plus gives it (a timedelta), in seconds; 0 when unset."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return 0.0
