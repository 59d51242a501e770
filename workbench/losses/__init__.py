"""Classical vision and metric-learning losses: a companion module that imports nothing else of workbench.

Families (one file each): classification (spherical Z-loss, log-Z, comp-sum), robust (LDR-KL, ALDR-KL,
EnsLoss), metric (PML-compatible contrastive/triplet/multi-similarity/Proxy-Anchor/normalised softmax and
Metrix), face (SFace, ArcFace/CosFace heads, UNPG), fewshot (Proto-Triplet, ICNN), contrastive
(InfoNCE/NT-Xent, hardness weights, TempNet DRO, AMCL), isogclr (bimodal and unimodal iSogCLR),
hyperbolic (Poincaré ops, Hyp-PC, Hyp-CE), distillation (KD, dual-head KD), representation (RankMe,
Cauchy-Schwarz IB), probabilistic (APRE, DEPICT, SFDA, PULASki; Betti matching left out, see that
module), trajectory (ADE/FDE, JADE/JFDE, collisions), aggregate (bag / instance / interpolating),
calibration (CA loss, ECE). Shape errors raise :class:`LossShapeError`.

What each loss was checked against (tests under ``tests/unit/losses``). "Official" means the paper's
own code, run on seeded inputs (torch 2.13, CPU, float64 unless said) with only the glue needed to run
it on CPU; the numbers are written into the tests with the repository, commit and function. "Tolerance"
is what the test asserts; the agreement measured was ~1e-14 relative or better in every official case.

Official code (values and gradients, stateful losses over several steps):

- LDR-KL — Optimization-AI/ICML2023_LDR @732fc85, ``loss.py::LDRLoss_V1``: rtol 1e-10.
- ALDR-KL — same commit, ``ALDRLoss_V1`` (also ``softplus=True``), values, gradients and stored
  temperatures over 3 steps: rtol 1e-10.
- EnsLoss — statmlben/ensLoss @fd37682, ``losses.py::ensLoss`` (binary; one-vs-rest by flattening):
  float64 rtol 1e-12, float32 rtol 1e-6 (value) and 1e-12 (gradient).
- SFace — zhongyy/SFace @cb5ffb3, ``SFace_torch/head/metrics.py::SFaceLoss``: rtol 1e-10.
- UNPG with ArcFace / CosFace, :class:`MarginHead` — Jung-Jun-Uk/UNPG @a6f9c17,
  ``recognition/models/build.py::HeadAndLoss`` with ``head.zoo.yaml`` (ArcFace, CosFace m 0.35 and
  0.5): rtol 1e-10; the CosFace margin also equals zhongyy/SFace's ``CosFace`` head exactly.
- iSogCLR (:class:`ISogCLRLoss`) — zhqiu/TempNet @3559645, ``Bimodal_CL/models/losses.py::iSogCLR_Loss``,
  4 steps over 2 epochs: rtol 1e-10.
- Unimodal iSogCLR (:class:`UnimodalISogCLRLoss`) — Optimization-AI/LibAUC @812f98f,
  ``libauc/losses/contrastive.py::GCLoss_v1(enable_isogclr=True)``, 4 steps: rtol 1e-10.
- TempNet DRO — zhqiu/TempNet @3559645, ``iSogCLR_TempNet_Loss`` at epoch 0 (gradients in the features
  and temperatures; its value is a surrogate): rtol 1e-10.
- Hyp-PC, Hyp-CE, :class:`ToPoincare`, :class:`HyperbolicMLR` — Kartik-3004/hyp-oc @f3345b2,
  ``loss.py::TPC_loss_hyp``, ``hyptorch/nn.py::ToPoincare`` and ``HyperbolicMLR`` with cross-entropy,
  including the Riemannian gradient: rtol 1e-10.

Reference library (official code not run): contrastive, triplet-margin, multi-similarity, Proxy-Anchor
and normalised-softmax losses equal pytorch-metric-learning 2.9 (installed; compared at test time,
``torch.testing`` float64 defaults, rtol 1e-7).

Not compared with official code (not searched for in issue 19; checked by hand computation, limits or
identities, and float64 gradcheck): spherical Z-loss, log-Z, comp-sum and smooth adversarial comp-sum,
GCE, MAE, Metrix, Proto-Triplet, ICNN, NT-Xent, InfoNCE, hardness weights, AMCL (no official code; its
temperature parametrisation is ours), KD, BinaryKLNorm and dual-head KD, RankMe, Cauchy-Schwarz
divergences and CS-IB, APRE, DEPICT, SFDA, PULASki, the trajectory metrics, the aggregate losses, the
CA loss and ECE.
"""

from __future__ import annotations

from ._common import LossShapeError
from .aggregate import (
    AggregateLoss,
    bag_level_loss,
    instance_level_loss,
    interpolating_loss,
)
from .calibration import (
    CALoss,
    TemperatureScaler,
    ca_loss,
    correctness_from_views,
    expected_calibration_error,
)
from .classification import (
    CompSumLoss,
    GCELoss,
    LogZLoss,
    MAELoss,
    SmoothAdversarialCompSumLoss,
    SphericalZLoss,
    comp_sum_loss,
    log_z_loss,
    smooth_adversarial_comp_sum_loss,
    spherical_z_loss,
)
from .contrastive import (
    AMCLLoss,
    InfoNCELoss,
    NTXentLoss,
    TempNetDROLoss,
    hardness_weights,
    info_nce_loss,
    nt_xent_loss,
    tempnet_dro_loss,
)
from .distillation import (
    BinaryKLNormLoss,
    DualHeadKDLoss,
    binary_kl_norm,
    kd_loss,
)
from .face import (
    MarginHead,
    SFaceLoss,
    UNPGLoss,
    arcface_logits,
    cosface_logits,
    iqr_filter,
    negative_pair_similarities,
    sface_loss,
    sface_weights,
    unpg_loss,
)
from .fewshot import (
    ICNNLoss,
    ProtoTripletLoss,
    icnn_score,
    proto_triplet_loss,
)
from .hyperbolic import (
    HypCELoss,
    HyperbolicMLR,
    HypPCLoss,
    ToPoincare,
    expmap,
    expmap0,
    logmap0,
    mobius_add,
    poincare_distance,
    project,
)
from .isogclr import ISogCLRLoss, UnimodalISogCLRLoss
from .metric import (
    ContrastiveLoss,
    MetrixLoss,
    MultiSimilarityLoss,
    NormalizedSoftmaxLoss,
    ProxyAnchorLoss,
    TripletMarginLoss,
    pairwise_l2,
)
from .probabilistic import (
    APRELoss,
    DEPICTLoss,
    PULASkiLoss,
    SFDALoss,
    apre_loss,
    depict_loss,
    depict_targets,
    sfda_loss,
    sinkhorn_divergence,
)
from .representation import (
    CSIBLoss,
    conditional_cs_divergence,
    cs_divergence,
    cs_qmi,
    gaussian_gram,
    rankme,
)
from .robust import (
    ALDRKLLoss,
    EnsLoss,
    LDRKLLoss,
    ensloss,
    ensloss_derivatives,
    ldr_kl_loss,
    normalize_scores,
)
from .trajectory import (
    JointMinADELoss,
    MinADELoss,
    ade,
    collision_rate,
    fde,
    jade,
    jfde,
    min_ade,
    min_fde,
    per_agent_min_ade,
)

__all__ = [
    "ALDRKLLoss",
    "AMCLLoss",
    "APRELoss",
    "AggregateLoss",
    "BinaryKLNormLoss",
    "CALoss",
    "CSIBLoss",
    "CompSumLoss",
    "ContrastiveLoss",
    "DEPICTLoss",
    "DualHeadKDLoss",
    "EnsLoss",
    "GCELoss",
    "HypCELoss",
    "HypPCLoss",
    "HyperbolicMLR",
    "ICNNLoss",
    "ISogCLRLoss",
    "InfoNCELoss",
    "JointMinADELoss",
    "LDRKLLoss",
    "LogZLoss",
    "LossShapeError",
    "MAELoss",
    "MarginHead",
    "MetrixLoss",
    "MinADELoss",
    "MultiSimilarityLoss",
    "NTXentLoss",
    "NormalizedSoftmaxLoss",
    "PULASkiLoss",
    "ProtoTripletLoss",
    "ProxyAnchorLoss",
    "SFDALoss",
    "SFaceLoss",
    "SmoothAdversarialCompSumLoss",
    "SphericalZLoss",
    "TempNetDROLoss",
    "TemperatureScaler",
    "ToPoincare",
    "TripletMarginLoss",
    "UNPGLoss",
    "UnimodalISogCLRLoss",
    "ade",
    "apre_loss",
    "arcface_logits",
    "bag_level_loss",
    "binary_kl_norm",
    "ca_loss",
    "collision_rate",
    "comp_sum_loss",
    "conditional_cs_divergence",
    "correctness_from_views",
    "cosface_logits",
    "cs_divergence",
    "cs_qmi",
    "depict_loss",
    "depict_targets",
    "ensloss",
    "ensloss_derivatives",
    "expected_calibration_error",
    "expmap",
    "expmap0",
    "fde",
    "gaussian_gram",
    "hardness_weights",
    "icnn_score",
    "info_nce_loss",
    "instance_level_loss",
    "interpolating_loss",
    "iqr_filter",
    "jade",
    "jfde",
    "kd_loss",
    "ldr_kl_loss",
    "log_z_loss",
    "logmap0",
    "min_ade",
    "min_fde",
    "mobius_add",
    "negative_pair_similarities",
    "normalize_scores",
    "nt_xent_loss",
    "pairwise_l2",
    "per_agent_min_ade",
    "poincare_distance",
    "project",
    "proto_triplet_loss",
    "rankme",
    "sface_loss",
    "sface_weights",
    "sfda_loss",
    "sinkhorn_divergence",
    "smooth_adversarial_comp_sum_loss",
    "spherical_z_loss",
    "tempnet_dro_loss",
    "unpg_loss",
]
