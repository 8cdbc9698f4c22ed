"""HybridQuantumClassifier: the circuit against its closed form, both simulators, arguments, pickling and state dicts."""

from __future__ import annotations

import copy
import io
import pickle
import subprocess
import sys

import pytest
import torch

from lightning_unlearn.models import HybridQuantumClassifier


def _model(**kwargs) -> HybridQuantumClassifier:
    torch.manual_seed(0)
    return HybridQuantumClassifier(**{"layers": 1, **kwargs})


def test_pennylane_is_imported_only_when_a_model_is_built():
    code = "import sys, lightning_unlearn, lightning_unlearn.models, lightning_unlearn.datamodules; print('pennylane' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


@pytest.mark.parametrize("entangler", ["cz_ring", "none"])
def test_circuit_matches_its_closed_form_with_zero_weights(entangler: str):
    """|0> -> RX(a) RY(a) RZ(a): the Bloch vector (0, 0, 1) -> (0, -sin a, cos a) -> (.., .., cos² a); RZ and CZ are
    diagonal, so <Z_i> = cos²(x_i) with zero variational angles, whatever the entangler."""
    model = _model(layers=2, entangler=entangler)
    with torch.no_grad():
        model.quantum.weights.zero_()
    x = torch.tensor([[0.0, 0.4, 1.3, 3.0], [2.2, 0.1, 0.7, 1.6]])
    torch.testing.assert_close(model.quantum(x.double()).float(), torch.cos(x) ** 2, atol=1e-6, rtol=0)


def test_one_layer_cz_ring_equals_no_entangler_and_deeper_circuits_differ():
    """The last CZ ring commutes with the PauliZ readout: at L=1 the entangler cannot change the outputs."""
    x = torch.rand(5, 4) * torch.pi
    for layers, same in ((1, True), (2, False)):
        ring, plain = _model(layers=layers, entangler="cz_ring"), _model(layers=layers, entangler="none")
        plain.load_state_dict(ring.state_dict())
        assert torch.allclose(ring(x), plain(x), atol=1e-6) is same


def test_forward_shapes_gradients_and_head_names():
    model = _model(num_classes=5, hidden=8)
    x = torch.rand(6, 4) * torch.pi
    logits = model(x)
    assert logits.shape == (6, 5) and logits.dtype == torch.float32
    assert torch.equal(model(x.unsqueeze(1)), logits)  # [B, 1, 4] is flattened
    logits.logsumexp(-1).sum().backward()
    assert model.quantum.weights.shape == (1, 4, 3) and model.quantum.weights.grad.abs().sum() > 0
    assert list(dict(model.named_children())) == ["quantum", "penultimate", "head"]


def test_lightning_qubit_adjoint_gradients_equal_default_qubit_backprop():
    x, y = torch.rand(4, 4) * torch.pi, torch.tensor([0, 1, 2, 1])
    grads = []
    for device in ("default.qubit", "lightning.qubit"):
        model = _model(layers=2, device=device)
        assert model.config["diff_method"] == {"default.qubit": "backprop", "lightning.qubit": "adjoint"}[device]
        torch.nn.functional.cross_entropy(model(x), y).backward()
        grads.append(model.quantum.weights.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_state_dict_pickle_deepcopy_and_torch_save_round_trips():
    model = _model(layers=2)
    x = torch.rand(3, 4) * torch.pi
    expected = model(x)
    fresh = HybridQuantumClassifier(layers=2)
    assert not torch.allclose(fresh(x), expected)
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(x), expected)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model)), torch.load(buffer, weights_only=False)):
        torch.testing.assert_close(other(x), expected)
        assert other.quantum is not model.quantum and other.quantum.weights.requires_grad
        with torch.no_grad():
            other.quantum.weights.add_(1.0)  # a copy owns its own circuit weights
        assert not torch.allclose(model.quantum.weights, other.quantum.weights)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layers": 0}, r"`layers` should be an int >= 1, got 0"),
        ({"n_qubits": 2.5}, r"`n_qubits` should be an int >= 1, got 2.5"),
        ({"num_classes": 1}, r"`num_classes` should be an int >= 2, got 1"),
        ({"entangler": "cnot"}, r"`entangler` should be one of \['cz_ring', 'none'\], got 'cnot'"),
        ({"device": "qiskit.aer"}, r"`device` should be one of \['default.qubit', 'lightning.qubit'\], got 'qiskit.aer'"),
        ({"diff_method": "finite"}, r"`diff_method` should be one of \['adjoint', 'backprop', 'best', 'parameter-shift'\]"),
        ({"device": "lightning.qubit", "diff_method": "backprop"}, r"`diff_method`='backprop' needs `device`='default.qubit'"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HybridQuantumClassifier(**kwargs)


def test_wrong_number_of_features_is_refused():
    with pytest.raises(ValueError, match=r"expects 4 features per sample \(one per qubit\), got a batch of shape \(2, 5\)"):
        _model()(torch.rand(2, 5))


def test_retrain_can_reinitialise_the_whole_model():
    from lightning_unlearn.methods.retrain import reinitialize_model

    model = _model(layers=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    reinitialize_model(model)
    after = model.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)
    assert float(after["quantum.weights"].min()) >= 0.0 and float(after["quantum.weights"].max()) < 2 * torch.pi
