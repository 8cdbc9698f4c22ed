"""The deletion request at one client: its settings, their trip through a ConfigRecord, and the client-side split."""

from __future__ import annotations

import pytest
import torch
from federated_toys import TINY

from lightning_unlearn.benchmarking import b8
from lightning_unlearn.federated.client import Request, client_data, client_part, forgotten_class, message_data, request_split

FEDERATION = b8.federation_for(TINY, "dirichlet", 0)
LABELS = torch.tensor([3, 1, 3, 0, 3, 1, 2, 2, 3, 0])


def test_a_class_request_removes_exactly_that_class():
    retain, forget = request_split(LABELS, Request("class", forget_class=3))
    assert forget.tolist() == [0, 2, 4, 8] and bool((LABELS[retain] != 3).all())
    assert sorted(torch.cat([retain, forget]).tolist()) == list(range(10))
    # 'largest' is the client's most frequent class (3 here), resolved from its own labels
    assert torch.equal(request_split(LABELS, Request("class", forget_class="largest"))[1], forget)


def test_a_samples_request_is_a_seeded_disjoint_fraction():
    labels = torch.arange(200) % 7
    retain, forget = request_split(labels, Request("samples", forget_fraction=0.25, seed=5))
    assert len(forget) == 50 and len(retain) == 150
    assert not set(retain.tolist()) & set(forget.tolist()) and sorted(torch.cat([retain, forget]).tolist()) == list(range(200))
    assert torch.equal(request_split(labels, Request("samples", forget_fraction=0.25, seed=5))[1], forget)
    assert not torch.equal(request_split(labels, Request("samples", forget_fraction=0.25, seed=6))[1], forget)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "shard"}, r"`request` should be one of \['class', 'client', 'samples'\], got 'shard'"),
        ({"kind": "class", "forget_class": None}, r"`forget_class` should be a class id \(an int >= 0\) or 'largest' for request='class', got None"),
        ({"kind": "class", "forget_class": "cats"}, r"`forget_class` should be .* got 'cats'"),
        ({"kind": "samples", "forget_fraction": 1.0}, r"`forget_fraction` should be a number in \(0, 1\) for request='samples', got 1.0"),
        ({"kind": "samples", "forget_fraction": 0}, r"`forget_fraction` should be a number in \(0, 1\) .* got 0"),
        ({"kind": "samples"}, r"`forget_fraction` .* got None"),
    ],
)
def test_bad_requests_name_the_setting(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Request(**kwargs)


def test_requests_that_delete_nothing_or_everything_are_refused():
    with pytest.raises(ValueError, match=r"`forget_class` should be a class present at client 0 \(it holds \[0, 1, 2, 3\]\), got 7"):
        request_split(LABELS, Request("class", forget_class=7))
    with pytest.raises(ValueError, match="that is the request 'client'"):
        request_split(torch.full((5,), 4), Request("class", forget_class=4))
    with pytest.raises(ValueError, match=r"`forget_fraction` 0.01 of client 0's 10 samples selects 0"):
        request_split(LABELS, Request("samples", forget_fraction=0.01))


@pytest.mark.parametrize("request_", [Request("class", 1, forget_class="largest", seed=3), Request("samples", 2, forget_fraction=0.3, seed=4), Request()])
def test_the_request_travels_in_the_config_record_and_the_client_splits_its_own_data(request_):
    pytest.importorskip("flwr")
    from flwr.app import ConfigRecord

    record = ConfigRecord({**FEDERATION.to_config(), **request_.to_config(), "requester-part": "retain"})
    assert Request.from_config(record) == request_
    # only settings travel: strings and numbers, no index array
    assert all(isinstance(v, (int, float, str)) for v in record.values())
    whole = client_data(FEDERATION, request_.client)
    kept = message_data(record, request_.client)
    if request_.kind == "client":
        assert "request" not in record and len(kept) == len(whole)  # a client-leaving request's messages are unchanged
        return
    forget = message_data(ConfigRecord({**record, "requester-part": "forget"}), request_.client)
    assert len(kept) + len(forget) == len(whole) and len(forget) > 0
    # the union is the client's data: every image of the client is in exactly one part
    def images(data):
        return {x.numpy().tobytes() + bytes([int(y)]) for x, y in zip(*data.tensors)}

    rows, parts = images(whole), [images(kept), images(forget)]
    assert len(rows) == len(whole) and parts[0] | parts[1] == rows and not parts[0] & parts[1]
    if request_.kind == "class":
        c = forgotten_class(FEDERATION, request_)
        assert bool((forget.tensors[1] == c).all()) and bool((kept.tensors[1] != c).all())
    # every other client uses all of its data, whatever part the message names
    other = (request_.client + 1) % FEDERATION.num_clients
    assert len(message_data(record, other)) == len(client_data(FEDERATION, other))


def test_parts_are_checked():
    with pytest.raises(ValueError, match=r"`part` should be one of \['all', 'forget', 'retain'\], got 'some'"):
        client_part(FEDERATION, 0, Request("class", forget_class="largest"), "some")
