"""Simulated annotators for tests and demos: real Label Studio users whose annotations are posted through
the API (``completed_by``), each right with a chosen probability against a truth map."""

from __future__ import annotations

import random
from dataclasses import dataclass

from annotation.client import LSClient
from annotation.labeling_config import CHOICES_NAME
from annotation.users import Annotator, Role, ensure_user
from schemas.taxonomy import TAXONOMY


def choice_result(descriptor: str) -> list[dict]:
    """An annotation ``result`` choosing ``descriptor`` (or PASS)."""
    return [{"from_name": CHOICES_NAME, "to_name": "crop", "type": "choices", "value": {"choices": [descriptor]}}]


def create_annotators(client: LSClient, n: int, role: Role = "crowd", prefix: str = "sim") -> list[Annotator]:
    """``n`` users ``<prefix>1@ferv.local`` ... created (or found) through the API."""
    return [ensure_user(client, f"{prefix}{i + 1}@ferv.local", role) for i in range(n)]


def _truth_descriptor(answer: str, rng: random.Random) -> str:
    """A descriptor for a truth-map answer: a descriptor or PASS as given, an expression as one of its words."""
    names = TAXONOMY.expression_names
    return rng.choice(TAXONOMY.expression(answer).descriptors) if answer in names else answer


def _wrong_descriptor(answer: str, rng: random.Random) -> str:
    """A descriptor of another expression than ``answer``'s (or PASS)."""
    label = TAXONOMY.descriptor_to_expression().get(answer, answer)
    options = [d for e in TAXONOMY.expressions if e.name != label for d in e.descriptors]
    if label != TAXONOMY.pass_label:
        options.append(TAXONOMY.pass_label)
    return rng.choice(options)


@dataclass
class SimulatedAnnotator:
    """One simulated annotator: ``accuracy`` is the chance of answering the truth's expression."""

    user: Annotator
    accuracy: float = 1.0
    seed: int = 0

    def answer(self, clip_id: str, truth: str) -> str:
        rng = random.Random(f"{self.seed}:{self.user.email}:{clip_id}")
        right = rng.random() < self.accuracy
        return _truth_descriptor(truth, rng) if right else _wrong_descriptor(truth, rng)

    def label(self, client: LSClient, tasks: dict[str, int], truth: dict[str, str],
              lead_time_s: float = 4.0) -> dict[str, tuple[int, str]]:
        """Annotate each task (clip_id -> task id) whose clip has a truth; return clip_id -> (annotation id,
        descriptor posted)."""
        posted = {}
        for clip_id, task_id in tasks.items():
            if clip_id not in truth:
                continue
            descriptor = self.answer(clip_id, truth[clip_id])
            ann = client.call("post annotation", client.sdk.annotations.create, task_id,
                              result=choice_result(descriptor), completed_by=self.user.id, lead_time=lead_time_s)
            posted[clip_id] = (ann.id, descriptor)
        return posted


def simulate(client: LSClient, tasks_by_annotator: list[dict[str, int]], truth: dict[str, str],
             accuracies: list[float], seed: int = 0, role: Role = "crowd", prefix: str = "sim"
             ) -> list[tuple[SimulatedAnnotator, dict[str, tuple[int, str]]]]:
    """Create ``len(accuracies)`` annotators and let annotator i label ``tasks_by_annotator[i]``
    (clip_id -> task id, e.g. the tasks of copy project i)."""
    users = create_annotators(client, len(accuracies), role, prefix)
    out = []
    for user, accuracy, tasks in zip(users, accuracies, tasks_by_annotator):
        sim = SimulatedAnnotator(user, accuracy, seed)
        out.append((sim, sim.label(client, tasks, truth)))
    return out
