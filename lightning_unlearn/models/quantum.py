"""A hybrid quantum-classical classifier: a variational quantum circuit (PennyLane) followed by a small MLP head.

The architecture of the study of machine unlearning in hybrid quantum-classical networks: C. Crivoi et al., "Machine
Unlearning for Hybrid Quantum-Classical Neural Networks" (ICPR 2026), arXiv 2512.19253 (code: CrivoiCarla/HQML).

``pennylane`` (the ``quantum`` extra) is imported when a model is built, never at ``import lightning_unlearn``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lightning_unlearn._errors import check_choice, check_int, missing_extra

__all__ = ["DEFAULT_DIFF_METHODS", "ENTANGLERS", "QUANTUM_DEVICES", "HybridQuantumClassifier"]

#: Simulators the model runs on, and the differentiation method each uses by default.
DEFAULT_DIFF_METHODS = {"default.qubit": "backprop", "lightning.qubit": "adjoint"}
QUANTUM_DEVICES = {
    "default.qubit": "PennyLane's Python state-vector simulator; gradients by backpropagation through torch",
    "lightning.qubit": "PennyLane-Lightning's C++ state-vector simulator; gradients by adjoint differentiation",
}
_DIFF_METHODS = {
    "backprop": "differentiate through the simulation (default.qubit only)",
    "adjoint": "adjoint differentiation (lightning.qubit, default.qubit)",
    "parameter-shift": "the parameter-shift rule (any device; 2 circuit runs per parameter)",
    "best": "PennyLane's own choice for the device",
}
ENTANGLERS = {
    "cz_ring": "a CZ gate between neighbouring qubits, closed into a ring, after every variational layer",
    "none": "no entangling gates (a product-state circuit)",
}


class HybridQuantumClassifier(nn.Module):
    """Angle-encoded variational quantum circuit → PauliZ expectations → MLP head, as a plain ``nn.Module``.

    The circuit (Crivoi et al., arXiv 2512.19253): each of the ``n_qubits`` input features ``x_i`` is encoded on qubit
    ``i`` by ``RX(x_i) RY(x_i) RZ(x_i)``; then ``layers`` variational layers each apply ``RX(θ) RY(θ) RZ(θ)`` (three
    trainable angles) to every qubit followed, with ``entangler="cz_ring"``, by ``CZ(i, i+1 mod n)`` on every
    neighbouring pair; the ``n_qubits`` expectations ``<Z_i>`` feed ``penultimate`` (``Linear(n_qubits, hidden)`` +
    ReLU) and ``head`` (``Linear(hidden, num_classes)``). The circuit is ``self.quantum``, a
    ``pennylane.qnn.TorchLayer`` whose one parameter ``weights`` (shape ``[layers, n_qubits, 3]``) trains with the
    rest of the model, so the model checkpoints, restores and unlearns like any classifier
    (:class:`~lightning_unlearn.tasks.ClassificationTask`).

    Inputs are ``[B, n_qubits]`` feature vectors already scaled to an angle range (e.g. ``[0, π]``, as
    :class:`~lightning_unlearn.datamodules.AngleFeaturesDataModule` gives them); a ``[B, 1, n_qubits]`` or other
    shape with ``n_qubits`` values per sample is flattened first.

    **Devices.** ``default.qubit`` differentiates by backpropagation through torch and runs a whole batch as one
    broadcast simulation; ``lightning.qubit`` (C++) uses adjoint differentiation, one circuit per sample. On 4 qubits
    the former is faster (docs/quantum.md has the measurement), so it is the default.

    Pickling (``copy.deepcopy``, ``torch.save(model)``) rebuilds the circuit from the constructor arguments and
    restores its weights: PennyLane's QNode itself is never pickled.

    Args:
        n_qubits: Qubits = input features.
        layers: Variational layers ``L`` (depth), ``>= 1``.
        num_classes: Output classes.
        hidden: Units of the head's hidden layer.
        entangler: ``"cz_ring"`` or ``"none"``.
        device: PennyLane device: ``"default.qubit"`` or ``"lightning.qubit"``.
        diff_method: ``"backprop"``, ``"adjoint"``, ``"parameter-shift"`` or ``"best"``; default: ``"backprop"`` on
            ``default.qubit``, ``"adjoint"`` on ``lightning.qubit``.
    """

    def __init__(
        self,
        n_qubits: int = 4,
        layers: int = 2,
        num_classes: int = 3,
        hidden: int = 16,
        entangler: str = "cz_ring",
        device: str = "default.qubit",
        diff_method: str | None = None,
    ) -> None:
        super().__init__()
        check_int("n_qubits", n_qubits, minimum=1)
        check_int("layers", layers, minimum=1)
        check_int("num_classes", num_classes, minimum=2)
        check_int("hidden", hidden, minimum=1)
        check_choice("entangler", entangler, ENTANGLERS)
        check_choice("device", device, QUANTUM_DEVICES)
        diff_method = DEFAULT_DIFF_METHODS[device] if diff_method is None else diff_method
        check_choice("diff_method", diff_method, _DIFF_METHODS)
        if diff_method == "backprop" and device != "default.qubit":
            raise ValueError(f"`diff_method`='backprop' needs `device`='default.qubit', got device {device!r}; use 'adjoint'.")
        self.config: dict[str, Any] = {
            "n_qubits": n_qubits,
            "layers": layers,
            "num_classes": num_classes,
            "hidden": hidden,
            "entangler": entangler,
            "device": device,
            "diff_method": diff_method,
        }
        self.n_qubits = n_qubits
        self.quantum = _circuit_layer(n_qubits, layers, entangler, device, diff_method)
        self.penultimate = nn.Sequential(nn.Linear(n_qubits, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 1 or x.numel() != x.shape[0] * self.n_qubits:
            raise ValueError(
                f"HybridQuantumClassifier expects {self.n_qubits} features per sample (one per qubit), "
                f"got a batch of shape {tuple(x.shape)}."
            )
        x = x.reshape(x.shape[0], self.n_qubits)
        dtype = self.head.weight.dtype
        expvals = self.quantum(x.to(torch.float64 if self.config["diff_method"] == "backprop" else dtype))
        return self.head(self.penultimate(expvals.to(dtype)))

    def reset_parameters(self) -> None:
        """Re-draw the circuit's angles uniformly in ``[0, 2π)`` (``TorchLayer``'s own initialisation), so that
        :class:`~lightning_unlearn.methods.Retrain` can re-initialise the whole model (the head's ``nn.Linear``
        layers reset themselves)."""
        with torch.no_grad():
            nn.init.uniform_(self.quantum.weights, 0.0, 2 * torch.pi)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items())

    # A QNode holds a device and closures: rebuild the circuit from the arguments instead of pickling it.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        modules = dict(state["_modules"])
        modules["quantum"] = None
        state["_modules"] = modules
        state["_quantum_weights"] = self.quantum.weights.detach().clone()
        state["_quantum_requires_grad"] = self.quantum.weights.requires_grad
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state.pop("_quantum_weights")
        requires_grad = state.pop("_quantum_requires_grad")
        self.__dict__.update(state)
        cfg = self.config
        layer = _circuit_layer(cfg["n_qubits"], cfg["layers"], cfg["entangler"], cfg["device"], cfg["diff_method"])
        with torch.no_grad():
            layer.weights.copy_(weights)
        layer.weights.requires_grad_(requires_grad)
        self._modules["quantum"] = layer.to(weights.device)


def _circuit_layer(n_qubits: int, layers: int, entangler: str, device: str, diff_method: str) -> nn.Module:
    """The variational circuit as a ``pennylane.qnn.TorchLayer`` with one trainable tensor ``weights [L, n, 3]``."""
    try:
        import pennylane as qml
    except ImportError as err:  # pragma: no cover - the quantum extra is part of the test extra
        raise missing_extra("pennylane", "quantum") from err

    dev = qml.device(device, wires=n_qubits)
    if n_qubits > 2:
        pairs = [(i, (i + 1) % n_qubits) for i in range(n_qubits)]
    else:
        pairs = [(0, 1)] if n_qubits == 2 else []

    @qml.qnode(dev, interface="torch", diff_method=diff_method)
    def circuit(inputs, weights):
        for i in range(n_qubits):
            qml.RX(inputs[..., i], wires=i)
            qml.RY(inputs[..., i], wires=i)
            qml.RZ(inputs[..., i], wires=i)
        for layer in range(layers):
            for i in range(n_qubits):
                qml.RX(weights[layer, i, 0], wires=i)
                qml.RY(weights[layer, i, 1], wires=i)
                qml.RZ(weights[layer, i, 2], wires=i)
            if entangler == "cz_ring":
                for a, b in pairs:
                    qml.CZ(wires=[a, b])
        return [qml.expval(qml.PauliZ(i)) for i in range(n_qubits)]

    return qml.qnn.TorchLayer(circuit, {"weights": (layers, n_qubits, 3)})
