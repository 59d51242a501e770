"""SFace, the ArcFace / CosFace heads and UNPG against the official code and hand computation; Proto-Triplet, ICNN.

Reference numbers, torch 2.13 CPU float64, on the seeded embeddings / class weights of ``_face_inputs``
(13 significant digits; we agree to ~1e-16 relative):

- UNPG: Jung-Jun-Uk/UNPG at commit a6f9c1731a68fc035eb8fe8198f5a5c643825a5b,
  ``recognition/models/build.py::HeadAndLoss(4, 3, CrossEntropyLoss(), head, "unpg")`` with the official
  ``recognition/data/head.zoo.yaml`` (s = 64, whisker 1.5), ``num_gpu`` set to 1 (CPU run), the head's
  weight copied in and its margin m set as named (ARCFACE_50: ArcFace m = 0.5; COSFACE_35 / _50:
  ``CosFace`` with m = 0.35 / 0.5).
- SFace: zhongyy/SFace at commit cb5ffb3c4863eecb3abf6a80529daffb05a0e820,
  ``SFace_torch/head/metrics.py::SFaceLoss(4, 3, device_id=None)`` (s 64, k 80, a 0.8, b 1.23), the
  returned ``loss`` (intra mean + inter mean).
"""

from __future__ import annotations

import math

import pytest
import torch

from workbench.losses import (
    ICNNLoss,
    LossShapeError,
    MarginHead,
    ProtoTripletLoss,
    SFaceLoss,
    UNPGLoss,
    arcface_logits,
    cosface_logits,
    icnn_score,
    iqr_filter,
    sface_loss,
    unpg_loss,
)

# fmt: off
UNPG_ARCFACE_50 = 86.1551561731
UNPG_ARCFACE_50_G_EMB = [
    -0.8918809002161, -2.386518803596, 1.123861230483, 3.273157844426, -5.240853182233,
    9.540226026663, 9.366705398038, 2.114481068065, 0.8237793523481, -2.029056789173,
    -1.513647503506, 4.464643217272, 2.363402517688, -0.2664854026858, -1.433186420085,
    1.443184282974, 0.2683813387483, -1.894367983842, -0.07448981610451, -0.6244117548401,
    -1.987134222341, -38.54975784209, -35.09325589622, 1.093884976159, -1.641060762632,
    -2.965427772048, 0.7618653521039, 3.786439434038, -0.241325017961, -0.4850909069465,
    -1.563633974392, 2.572270756868,
]
UNPG_ARCFACE_50_G_W = [
    3.719651602151, 3.797233335512, -3.135205947563, 3.054953152024, -5.33676054754,
    5.129459184818, -4.856305663084, 1.671283946092, 8.696990466899, -2.798440504117,
    4.53435462556, -0.6522946716085,
]
UNPG_COSFACE_50 = 90.05065972154
UNPG_COSFACE_35 = 80.45065972154
UNPG_COSFACE_35_G_EMB = [
    -0.8854706274692, -2.369366024072, 1.115783630644, 3.249632467307, -4.969551507345,
    8.577904870246, 10.02584034449, 3.468413684882, 0.9431675886305, -2.323123816999,
    -1.733018408392, 5.111698517345, 1.556373760432, -0.1882003893213, -1.103181433022,
    0.9208358188939, 0.4104702885781, -2.897301936705, -0.1139269085935, -0.9549936459089,
    -1.968274113846, -38.51190726187, -35.07572992312, 1.113981614018, -1.653368585976,
    -2.98766837468, 0.767579315894, 3.814837551536, -0.3580381034402, -0.7196975672109,
    -2.319861187471, 3.81630943699,
]
UNPG_COSFACE_35_G_W = [
    4.670853543555, 3.395703241853, -2.24388107312, 3.041314736783, -3.615045982957,
    7.932475699565, -7.47701787624, 1.776425707112, 10.12907500613, -3.85576625573,
    5.5822437573, 0.06391364778363,
]
SFACE = 25.80788666356
SFACE_G_EMB = [
    -1.729263678284, 0.188257695883, 0.6507955266324, 0.595180654155, 0.6894746722413,
    -2.445602535197, 1.675097845794, 3.440827439053, 0.943163268932, -2.323120165655,
    -1.733023170485, 5.111716287965, -1.002177595053, 0.02181274838139, -0.5356418389976,
    -0.8239197099931, 2.148350297511, -0.4953921256528, 2.043355428627, -5.185165575327,
    -5.364871350271, -10.76682530582, -4.985368508325, -5.716609568545, -1.368564981535,
    0.5679396724368, 1.156777627289, 1.083643690387, -0.3580381033748, -0.7196975672031,
    -2.319861187626, 3.816309437172,
]
SFACE_G_W = [
    2.821900151634, 3.298482483067, -3.751735000293, 2.608689302235, -4.78704745327,
    -3.239129968787, -6.504218072706, -2.827528772443, 10.12907580771, -3.855765708465,
    5.582243839576, 0.0639124377879,
]
# fmt: on

TOL = {"rtol": 1e-10, "atol": 1e-12}
FACE_LABELS = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])


def _face_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(23)
    emb = torch.randn(8, 4, generator=g, dtype=torch.float64)
    return emb.requires_grad_(True), torch.randn(3, 4, generator=g, dtype=torch.float64)


def _with_weight(module: torch.nn.Module, weight: torch.Tensor) -> torch.nn.Module:
    module = module.double()
    with torch.no_grad():
        module.weight.copy_(weight)
    return module


@pytest.mark.parametrize(
    ("head", "m", "value", "g_emb", "g_w"),
    [
        ("arcface", None, UNPG_ARCFACE_50, UNPG_ARCFACE_50_G_EMB, UNPG_ARCFACE_50_G_W),
        ("cosface", None, UNPG_COSFACE_35, UNPG_COSFACE_35_G_EMB, UNPG_COSFACE_35_G_W),
        ("cosface", 0.5, UNPG_COSFACE_50, None, None),
    ],
)
def test_unpg_matches_official_head_and_loss(head, m, value, g_emb, g_w):
    emb, weight = _face_inputs()
    loss = _with_weight(UNPGLoss(4, 3, head=head, m=m), weight)
    out = loss(emb, FACE_LABELS)
    torch.testing.assert_close(out, torch.tensor(value, dtype=torch.float64), **TOL)
    if g_emb is not None:
        out.backward()
        torch.testing.assert_close(emb.grad.flatten(), torch.tensor(g_emb, dtype=torch.float64), **TOL)
        torch.testing.assert_close(loss.weight.grad.flatten(), torch.tensor(g_w, dtype=torch.float64), **TOL)


def test_sface_matches_official():
    emb, weight = _face_inputs()
    loss = _with_weight(SFaceLoss(4, 3), weight)
    out = loss(emb, FACE_LABELS)
    torch.testing.assert_close(out, torch.tensor(SFACE, dtype=torch.float64), **TOL)
    out.backward()
    torch.testing.assert_close(emb.grad.flatten(), torch.tensor(SFACE_G_EMB, dtype=torch.float64), **TOL)
    torch.testing.assert_close(
        loss.weight.grad.flatten(), torch.tensor(SFACE_G_W, dtype=torch.float64), **TOL
    )


def test_margin_heads():
    cos = torch.tensor([[0.8, 0.1, -0.3], [0.2, 0.5, 0.6]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    expected_cos = cos.clone()
    expected_cos[0, 0], expected_cos[1, 2] = 0.8 - 0.35, 0.6 - 0.35
    torch.testing.assert_close(cosface_logits(cos, y), expected_cos)
    expected_arc = cos.clone()
    expected_arc[0, 0], expected_arc[1, 2] = math.cos(math.acos(0.8) + 0.5), math.cos(math.acos(0.6) + 0.5)
    torch.testing.assert_close(arcface_logits(cos, y), expected_arc)
    assert MarginHead(4, 3, "cosface").m == 0.35 and MarginHead(4, 3).m == 0.5
    assert UNPGLoss(4, 3, head="cosface", m=0.5).m == 0.5
    with pytest.raises(ValueError, match="arcface"):
        MarginHead(4, 3, "sphereface")
    with pytest.raises(LossShapeError, match="dims"):
        MarginHead(4, 3)(torch.randn(2, 5), torch.tensor([0, 1]))


def _sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_sface_fixed_value_by_hand():
    cos = [[0.8, 0.1, -0.3], [0.2, 0.5, 0.6]]
    labels = [0, 2]
    s, k, a, b = 64.0, 80.0, 0.8, 1.23
    per = []
    for row, y in zip(cos, labels):
        intra = -_sig(k * (math.acos(row[y]) - a)) * s * row[y]
        inter = sum(_sig(-k * (math.acos(c) - b)) * s * c for j, c in enumerate(row) if j != y)
        per.append(intra + inter)
    got = sface_loss(torch.tensor(cos, dtype=torch.float64), torch.tensor(labels))
    assert got.item() == pytest.approx(sum(per) / 2, rel=1e-12)


def test_sface_gradient_uses_stopped_weights():
    cos = torch.tensor([[0.3, 0.9, -0.2]], dtype=torch.float64, requires_grad=True)
    sface_loss(cos, torch.tensor([1])).backward()
    w_y = _sig(80 * (math.acos(0.9) - 0.8))
    w_0, w_2 = _sig(-80 * (math.acos(0.3) - 1.23)), _sig(-80 * (math.acos(-0.2) - 1.23))
    expected = torch.tensor([[64 * w_0, -64 * w_y, 64 * w_2]], dtype=torch.float64)
    torch.testing.assert_close(cos.grad, expected)


def test_sface_module_shapes():
    loss = SFaceLoss(embedding_size=4, num_classes=3)
    assert loss(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])).shape == ()
    with pytest.raises(LossShapeError):
        loss(torch.randn(5, 4), torch.tensor([0, 1, 2]))


def test_iqr_filter_drops_outliers_like_official_quartiles():
    vals = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.25, 0.15, 5.0])
    kept = iqr_filter(vals, 1.5)
    # sorted: 0, .1, .15, .2, .25, .3, 5 ; Q1 = s[int(1.75)] = .1, Q3 = s[int(5.25)] = .3
    torch.testing.assert_close(kept, torch.tensor([0.0, 0.1, 0.15, 0.2, 0.25, 0.3]))


def test_unpg_fixed_value_by_hand():
    emb = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    mc = torch.tensor([[0.5, 0.1], [0.4, -0.2], [0.0, 0.3], [0.2, 0.6]], dtype=torch.float64)
    # negative pairs (0,2), (0,3), (1,2), (1,3): cosines 0, -0.6, 0.6, 0 ; sorted -0.6, 0, 0, 0.6
    # Q1 = s[1] = 0, Q3 = s[3] = 0.6, IQR = 0.6, whisker 1.5 -> keep [-0.9, 1.5]: all four
    extra = [-0.6, 0.0, 0.0, 0.6]
    total = 0.0
    for row, y in zip(mc.tolist(), labels.tolist()):
        logits = [64 * v for v in row + extra]
        m = max(logits)
        total += -(logits[y] - m - math.log(sum(math.exp(v - m) for v in logits)))
    got = unpg_loss(mc, emb, labels)
    assert got.item() == pytest.approx(total / 4, rel=1e-10)


def test_unpg_module_uses_arcface_margin():
    loss = UNPGLoss(embedding_size=3, num_classes=4).double()
    emb, labels = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0, 1])
    mc = loss.margin_cosine(emb, labels)
    cos = torch.nn.functional.normalize(emb, dim=1) @ torch.nn.functional.normalize(loss.weight, dim=1).t()
    rows = torch.arange(6)
    torch.testing.assert_close(mc[rows, labels], torch.cos(torch.acos(cos[rows, labels]) + 0.5))
    off = torch.ones_like(cos, dtype=torch.bool)
    off[rows, labels] = False
    torch.testing.assert_close(mc[off], cos[off])
    assert torch.isfinite(loss(emb, labels))


def test_proto_triplet_by_hand():
    queries = torch.tensor([[0.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    protos = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]], dtype=torch.float64)
    q_lab, p_lab = torch.tensor([0, 2]), torch.tensor([0, 1, 2])
    d = lambda a, b: math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)) + 1e-6)  # noqa: E731
    l0 = max(0.0, d([0, 0], [1, 0]) - min(d([0, 0], [0, 2]), d([0, 0], [3, 1])) + 0.5)
    l1 = max(0.0, d([3, 0], [3, 1]) - min(d([3, 0], [1, 0]), d([3, 0], [0, 2])) + 0.5)
    got = ProtoTripletLoss()(queries, q_lab, protos, p_lab)
    assert got.item() == pytest.approx((l0 + l1) / 2, rel=1e-12)


def test_icnn_rewards_separated_classes():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[10.0, 0.0], [0.0, 10.0], [-10.0, 0.0]], dtype=torch.float64)
    labels = torch.arange(3).repeat_interleave(6)
    tight = centres[labels] + 0.1 * torch.randn(18, 2, generator=g, dtype=torch.float64)
    score_tight = icnn_score(tight, labels)
    shuffled = labels[torch.randperm(18, generator=g)]
    score_mixed = icnn_score(tight, shuffled)
    assert score_tight > 0.95
    assert score_mixed < score_tight - 0.2
    loss = ICNNLoss()
    assert loss(tight, labels) < loss(tight, shuffled)
    with pytest.raises(LossShapeError, match="reference points"):
        icnn_score(tight[:2], labels[:2])
