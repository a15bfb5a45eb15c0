"""Every reader of an interaction id agrees with the ingress that makes them."""

from __future__ import annotations

import uuid

import pytest

from schemas.events import INTERACTION_ID
from services.console.queries import InvalidQuery, get_interaction
from services.ingress.ids import new_interaction_id
from services.logger.columns import Unusual
from services.logger.columns import uuid as stored_uuid


def test_the_ingress_ids_and_every_uuid_text_match_the_pattern() -> None:
    for interaction_id in [new_interaction_id() for _ in range(1000)] + [str(uuid.uuid4()), str(uuid.uuid1())]:
        assert INTERACTION_ID.fullmatch(interaction_id), interaction_id
        assert get_interaction(interaction_id)[1] == {"id": interaction_id}
        assert stored_uuid(interaction_id) == interaction_id


@pytest.mark.parametrize(
    "text",
    ["not-a-uuid", str(uuid.uuid4()) + "\n", str(uuid.uuid4()) + "x", "x" + str(uuid.uuid4()), uuid.uuid4().hex, ""],
)
def test_what_is_not_an_interaction_id_is_refused(text: str) -> None:
    assert INTERACTION_ID.fullmatch(text) is None
    with pytest.raises(InvalidQuery):
        get_interaction(text)
    with pytest.raises(Unusual):
        stored_uuid(text)
