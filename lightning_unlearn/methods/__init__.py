"""Unlearning methods: one file per method (one paper), all registered in :data:`METHODS`.

Adding a method:

1. Create ``methods/<name>.py`` with a class decorated ``@register_method(name="<name>")``
   subclassing :class:`UnlearningMethod` (never another method); override :meth:`forget_loss`
   and, only if needed, ``retain_loss``, ``regularizer``,
   ``prepare(model, task, forget_loader, retain_loader)``, ``before_optimizer_step(model)`` (gradient edits) or
   ``on_run_end(model, task)`` (a last edit when the run ends).
2. Take the base arguments last, in this order, and pass them to ``super().__init__``:
   ``forget_weight, retain_weight, retain_loss, mask, seed``. Declare the method's own tensors and
   modules once (``self.add_state("centroid", None)``, ``self.register_module("projector", None)``,
   in ``__init__``; fill them in ``prepare``): the base moves, checkpoints and optimises them. Set
   ``needs_reference`` as a plain attribute (on the class, or in ``__init__``).
3. Name the paper (title, authors, venue, arXiv id) in the docstring, map its symbols to the
   arguments, and type and document every argument (``--help`` shows them).
4. Import it below; add ``tests/methods/test_<name>.py`` checking the loss against the closed
   form; add ``configs/<benchmark>/<name>.yaml``. The shared matrix in
   ``tests/methods/test_matrix.py`` picks it up automatically.
"""

from lightning_unlearn.methods.adaprob import AdaProb, refine_probabilities
from lightning_unlearn.methods.adv_uniform import AdvUniform, fgsm_toward_uniform, uniform_kl
from lightning_unlearn.methods.asu import ASU, smoothed_attention
from lightning_unlearn.methods.bad_teacher import BadTeacher, random_teacher
from lightning_unlearn.methods.base import (
    METHODS,
    LossOutput,
    NonFiniteLossError,
    RetainLoss,
    StepContext,
    UnlearningMethod,
    register_method,
)
from lightning_unlearn.methods.certified import Certified, clip_and_noise
from lightning_unlearn.methods.cf_k import CFk
from lightning_unlearn.methods.esd import ESD, esd_target
from lightning_unlearn.methods.eu_k import EUk, reinitialize_layers
from lightning_unlearn.methods.feature_replacement import FeatureReplacement, unlikelihood_loss
from lightning_unlearn.methods.finetune import FineTune
from lightning_unlearn.methods.fisher import FisherForgetting, fisher_noise_variance, forgotten_classes
from lightning_unlearn.methods.grad_diff import GradDiff
from lightning_unlearn.methods.gradient_ascent import GradientAscent
from lightning_unlearn.methods.idk import IDK_ANSWERS, IdK, IdkAnswers, alternative_batch
from lightning_unlearn.methods.idk_dpo import IdKDPO, dpo_loss
from lightning_unlearn.methods.influence import InfluenceUnlearning, fisher_inverse_vector_product
from lightning_unlearn.methods.jit import JiT, lipschitz_loss
from lightning_unlearn.methods.l1_sparse import L1Sparse
from lightning_unlearn.methods.lca import LCA, complement_kl
from lightning_unlearn.methods.masks import LastLayersMask, ParameterMask, RegexMask, SaliencyMask, last_layers
from lightning_unlearn.methods.neggrad_plus import NegGradPlus
from lightning_unlearn.methods.npo import NPO, npo_loss
from lightning_unlearn.methods.pmc import PMC
from lightning_unlearn.methods.qmul import QMUL, most_similar_other_class
from lightning_unlearn.methods.random_label import RandomLabel
from lightning_unlearn.methods.razor import RAZOR
from lightning_unlearn.methods.razor_diffusion import RAZORDiffusion
from lightning_unlearn.methods.reasoners import ModelReasoner, ReasoningTarget, TemplateReasoner
from lightning_unlearn.methods.retrain import Retrain
from lightning_unlearn.methods.rmu import RMU, rmu_control_vector
from lightning_unlearn.methods.roka import ROKA
from lightning_unlearn.methods.salun import SalUn
from lightning_unlearn.methods.salun_diffusion import SalUnDiffusion
from lightning_unlearn.methods.scrub import SCRUB
from lightning_unlearn.methods.scrub_r import SCRUBR, per_class_errors, rewind_target
from lightning_unlearn.methods.simnpo import SimNPO, simnpo_loss
from lightning_unlearn.methods.spare import SPARE
from lightning_unlearn.methods.ssd import SSD, adaptive_alpha, dampening_factor
from lightning_unlearn.methods.stake_the_points import StakeThePoints
from lightning_unlearn.methods.tru import TRU
from lightning_unlearn.methods.tru_rec import TRURec
from lightning_unlearn.methods.unsir import UNSIR, learn_error_maximizing_noise

__all__ = [
    "ASU",
    "ESD",
    "IDK_ANSWERS",
    "LCA",
    "METHODS",
    "NPO",
    "PMC",
    "QMUL",
    "RAZOR",
    "RAZORDiffusion",
    "RMU",
    "ROKA",
    "SCRUB",
    "SCRUBR",
    "SSD",
    "SPARE",
    "TRU",
    "TRURec",
    "UNSIR",
    "AdaProb",
    "AdvUniform",
    "BadTeacher",
    "CFk",
    "Certified",
    "EUk",
    "FeatureReplacement",
    "FineTune",
    "FisherForgetting",
    "GradDiff",
    "GradientAscent",
    "IdK",
    "IdKDPO",
    "IdkAnswers",
    "InfluenceUnlearning",
    "JiT",
    "L1Sparse",
    "LastLayersMask",
    "LossOutput",
    "ModelReasoner",
    "NegGradPlus",
    "NonFiniteLossError",
    "ParameterMask",
    "RandomLabel",
    "ReasoningTarget",
    "RegexMask",
    "RetainLoss",
    "Retrain",
    "SalUn",
    "SaliencyMask",
    "SalUnDiffusion",
    "SimNPO",
    "StakeThePoints",
    "StepContext",
    "TemplateReasoner",
    "UnlearningMethod",
    "adaptive_alpha",
    "alternative_batch",
    "clip_and_noise",
    "complement_kl",
    "dampening_factor",
    "dpo_loss",
    "fgsm_toward_uniform",
    "esd_target",
    "fisher_inverse_vector_product",
    "fisher_noise_variance",
    "forgotten_classes",
    "last_layers",
    "learn_error_maximizing_noise",
    "lipschitz_loss",
    "most_similar_other_class",
    "npo_loss",
    "per_class_errors",
    "random_teacher",
    "refine_probabilities",
    "register_method",
    "reinitialize_layers",
    "rewind_target",
    "rmu_control_vector",
    "simnpo_loss",
    "smoothed_attention",
    "uniform_kl",
    "unlikelihood_loss",
]
