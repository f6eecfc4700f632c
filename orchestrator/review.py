"""Review batching and turning a reviewer's verdicts into per-task decisions. Pure bookkeeping."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .models import TaskId
from .roles import ReviewItem, Verdict


@dataclass(slots=True)
class ReviewQueue:
    """Finished attempts waiting for the reviewer; one batch in flight at a time.

    Batching keeps the frontier model's calls few while results still flow back as they complete:
    whatever finished while a review was running goes out together in the next call.
    """

    max_batch: int = 16
    pending: list[ReviewItem] = field(default_factory=lambda: [])
    in_flight: bool = False

    def add(self, item: ReviewItem) -> None:
        self.pending.append(item)

    def take(self) -> tuple[ReviewItem, ...]:
        """The next batch to send, or () when one is in flight or nothing waits."""
        if self.in_flight or not self.pending:
            return ()
        batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch :]
        self.in_flight = True
        return tuple(batch)

    def done(self) -> None:
        self.in_flight = False

    def retry(self, items: Iterable[ReviewItem]) -> None:
        """Put items whose review failed back at the front, to go out in the next batch."""
        self.pending[:0] = list(items)

    def drain(self) -> list[ReviewItem]:
        """Everything still waiting (the run is stopping)."""
        items, self.pending = self.pending, []
        return items

    def __len__(self) -> int:
        return len(self.pending)


def match_verdicts(
    items: Iterable[ReviewItem], verdicts: Iterable[Verdict]
) -> tuple[list[tuple[ReviewItem, Verdict]], list[ReviewItem]]:
    """Pair each item with its verdict; return the items the reviewer said nothing about apart,
    so they are reviewed again rather than accepted unjudged."""
    by_task: dict[TaskId, Verdict] = {}
    for verdict in verdicts:
        by_task.setdefault(verdict.task_id, verdict)
    judged: list[tuple[ReviewItem, Verdict]] = []
    missing: list[ReviewItem] = []
    for item in items:
        verdict = by_task.get(item.task.id)
        if verdict is None:
            missing.append(item)
        else:
            judged.append((item, verdict))
    return judged, missing
