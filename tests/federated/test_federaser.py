"""FedEraser's calibration against its closed form on tiny tensors."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.federated.federaser import calibrate, calibrated_step


def test_calibration_keeps_the_stored_length_and_the_new_direction_per_layer():
    old = {"w": torch.tensor([3.0, 4.0]), "b": torch.tensor([0.0, 2.0])}  # norms 5 and 2
    new = {"w": torch.tensor([0.0, 0.5]), "b": torch.tensor([-1.0, 0.0])}
    out = calibrate(old, new)
    torch.testing.assert_close(out["w"], torch.tensor([0.0, 5.0]))
    torch.testing.assert_close(out["b"], torch.tensor([-2.0, 0.0]))


def test_a_zero_calibration_update_gives_zero():
    out = calibrate({"w": torch.tensor([1.0, 1.0])}, {"w": torch.zeros(2)})
    torch.testing.assert_close(out["w"], torch.zeros(2))


def test_calibrated_step_is_the_weighted_mean_of_calibrated_updates():
    rebuilt = {"w": torch.tensor([1.0, 1.0])}
    old = [{"w": torch.tensor([2.0, 0.0])}, {"w": torch.tensor([0.0, 6.0])}]
    new = [{"w": torch.tensor([0.0, 1.0])}, {"w": torch.tensor([-1.0, 0.0])}]
    out = calibrated_step(rebuilt, old, new, [1.0, 3.0])
    # calibrated: [0, 2] and [-6, 0]; shares 1/4 and 3/4 -> [-4.5, 0.5]; plus the rebuilt model.
    torch.testing.assert_close(out["w"], torch.tensor([-3.5, 1.5]))


def test_calibrated_step_needs_one_entry_per_client():
    with pytest.raises(ValueError, match="one entry per remaining client"):
        calibrated_step({"w": torch.zeros(1)}, [{"w": torch.zeros(1)}], [], [1.0])
