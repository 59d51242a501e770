"""Where does the organism recall its facts? ROME's causal-tracing signature, measured.

    python analyses/selective_amnesia/trace_facts.py [--preset default|tiny] [--organism-seed N]
                                                     [--model DIR] [--prompts rome,qa] [--out DIR]

1. ROME causal tracing (hidden / mlp / attn; the mlp/attn window about a fifth of the depth, ROME's 10
   of 48 layers) on two prompt sets:
   - ``rome``: ROME-style statements, ``facts/{forget,retain}.jsonl`` ("X was born in the city of" -> city);
   - ``qa``: the SemEval QA records as they are (``data/forget_train.jsonl``, ``retain_train``), the
     subject found as the question's named entity; records whose answer starts with a space or digit
     token (SSN, phone, address: the first token is the same for everyone) are left out.
   It prints the AIE by layer for ROME's six token buckets and draws ROME's Figure 2 (bucket x layer
   heat grids of hidden, MLP and attention) for each set, with the shape ROME reports for GPT-2 XL beside.
2. It checks the signature of issue 15: hidden state at the last subject token AIE >= 0.2 in the first
   third of the layers; MLP at the last subject token peak AIE >= 0.1 in the first half, above the MLP
   effect at the last token at the same layers.
3. Attribution patching against exact patching on same-template prompt pairs (a subject swapped for
   another of the same token length): the Pearson correlation of the two grids per site type.

The seed paper (selective amnesia on OLMo-7B) found the facts mediated by the early MLPs (layers 0-5).
ROME (Meng et al. 2022, GPT-2 XL, 48 layers): restoring the hidden state at the last subject token
recovers the answer from the early layers on; MLPs at the last subject token matter in the early-middle
layers (an "early site"); attention at the last token matters late (the "late site"), where the answer
is read out (Geva et al. 2023: subject enrichment by early MLPs, extraction by attention).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import warnings
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

BUCKETS = ("first_subject", "middle_subject", "last_subject", "first_subsequent", "further", "last")
ROME_SHAPE = (
    "ROME, GPT-2 XL (48 layers, window 10):\n"
    "hidden @ last subject token: strong from the first layers,\n  fading by the middle;\n"
    "MLP @ last subject token: peak in the early-middle layers\n  (the early site);\n"
    "attention @ last token: peak in the later layers\n  (the late site, where the answer is read)."
)


def informative(lm, facts) -> tuple[list, int]:
    """Facts whose answer's first token says something about the subject (not a space, digit or mark)."""
    keep = []
    for f in facts:
        ids = lm.tokenizer(" " + str(f.answer).lstrip(), add_special_tokens=False)["input_ids"]
        first = lm.tokenizer.decode(ids[:1]).strip() if ids else ""
        if first and first[0].isalpha():
            keep.append(f)
    return keep, len(facts) - len(keep)


def prompt_sets(folder: Path, which: list[str], lm) -> dict[str, list]:
    """name -> facts: ROME-style statements and SemEval QA records (forget and retain sides)."""
    from workbench.data import read_facts

    out = {}
    for side in ("forget", "retain"):
        if "rome" in which and (folder / "facts" / f"{side}.jsonl").is_file():
            out[f"rome/{side}"] = read_facts(folder / "facts" / f"{side}.jsonl")
        if "qa" in which and (folder / "data" / f"{side}_train.jsonl").is_file():
            facts, dropped = informative(lm, read_facts(folder / "data" / f"{side}_train.jsonl"))
            print(
                f"qa/{side}: {len(facts)} QA records traced, {dropped} with a space/digit first answer token left out"
            )
            out[f"qa/{side}"] = facts
    return out


def signature(res) -> dict[str, float]:
    """Issue 15's goal figures of one trace result, and the same read at every subject bucket."""
    L = res.n_layers
    third, half = max(1, -(-L // 3)), max(1, -(-L // 2))
    hid, _ = res.aie("hidden").row("last_subject")
    mlp, _ = res.aie("mlp").row("last_subject")
    mlp_last, _ = res.aie("mlp").row("last")
    peak = int(torch.argmax(mlp))
    out = {
        "hidden_last_subject_max_first_third": float(hid[:third].max()),
        "mlp_last_subject_peak": float(mlp[peak]),
        "mlp_last_subject_peak_layer": peak,
        "mlp_peak_in_first_half": float(peak < half),
        "mlp_last_token_at_peak": float(mlp_last[peak]),
        "goal_hidden": float(hid[:third].max() >= 0.2),
        "goal_mlp": float(mlp[peak] >= 0.1 and peak < half and mlp[peak] > mlp_last[peak]),
    }
    # where the subject's early site is, when it is not at the last subject token
    best = max(
        ((b, int(i), float(res.aie("mlp").row(b)[0][i])) for b in BUCKETS[:3] for i in range(half)),
        key=lambda x: -1.0 if math.isnan(x[2]) else x[2],
    )
    hidden_any = max(float(res.aie("hidden").row(b)[0][:third].nan_to_num(-1).max()) for b in BUCKETS[:3])
    out.update(
        subject_mlp_bucket=best[0],
        subject_mlp_layer=best[1],
        subject_mlp_peak=best[2],
        subject_mlp_last_token_at_peak=float(mlp_last[best[1]]),
        subject_hidden_max_first_third=hidden_any,
    )
    return out


def plot_signature(results: dict, path: Path) -> None:
    """ROME's Figure 2 for every prompt set: AIE heat grids (bucket x layer) of hidden, MLP and attention."""
    from matplotlib.figure import Figure

    from workbench.io import write_bytes

    names = list(results)
    kinds = ("hidden", "mlp", "attn")
    fig = Figure(figsize=(3.4 * len(kinds) + 3.2, 2.9 * len(names) + 0.6))
    grid = fig.add_gridspec(len(names), len(kinds) + 1, width_ratios=[1] * len(kinds) + [0.95], hspace=0.45)
    cmaps = {"hidden": "Purples", "mlp": "Greens", "attn": "Reds"}
    for r, name in enumerate(names):
        res = results[name]
        for c, kind in enumerate(kinds):
            ax = fig.add_subplot(grid[r, c])
            aie = res.aie(kind).mean.nan_to_num(0.0).numpy()
            im = ax.pcolormesh(aie, cmap=cmaps[kind], vmin=min(0.0, float(aie.min())))
            ax.invert_yaxis()
            ax.set_yticks([i + 0.5 for i in range(len(BUCKETS))])
            ax.set_yticklabels(BUCKETS if c == 0 else [], fontsize=6)
            ax.set_xticks([i + 0.5 for i in range(res.n_layers)])
            ax.set_xticklabels(range(res.n_layers), fontsize=6)
            ax.set_title(
                f"{name}: {kind}" + ("" if kind == "hidden" else f" (window {res.window})"), fontsize=8
            )
            fig.colorbar(im, ax=ax).ax.tick_params(labelsize=6)
    ax = fig.add_subplot(grid[:, len(kinds)])
    ax.axis("off")
    ax.text(0.0, 0.98, ROME_SHAPE, va="top", fontsize=7, family="monospace", wrap=True)
    fig.suptitle("Average indirect effect on p(answer) by token bucket and layer (ROME, Fig. 2)", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=120)
    write_bytes(path, buf.getvalue())


def trace_split(lm, facts, args, out: Path, name: str):
    """Trace one fact set, save the run folder and figures, print the summary; returns the result."""
    from workbench.tracing import causal_trace
    from workbench.tracing.plots import plot_aie, plot_fact

    res = causal_trace(
        lm,
        facts,
        samples=args.samples,
        noise=args.noise,
        window=args.window,
        seed=args.seed,
        keep_unknown=args.keep_unknown,
        progress=True,
    )
    folder = out / name
    res.save(folder)
    print(
        f"\n## {name}: {len(res.facts)} facts traced, {len(res.skipped)} skipped as unknown "
        f"(sigma {res.sigma:.4g}, noise {res.noise} sigma, window {res.window})"
    )
    if not res.facts:
        return res
    plot_aie(res, folder / "aie.png")
    for f in res.facts[: args.figures]:
        plot_fact(f, folder / "figures" / f"fact{f.index}.png", window=res.window)
    clean = sum(f.clean_score for f in res.facts) / len(res.facts)
    low = sum(f.corrupted_score for f in res.facts) / len(res.facts)
    print(f"mean p(answer): clean {clean:.3f}, corrupted {low:.3f}")
    print("| kind @ bucket | " + " | ".join(f"L{i}" for i in range(res.n_layers)) + " | peak |")
    print("|---" * (res.n_layers + 2) + "|")
    for kind in res.kinds:
        aie = res.aie(kind)
        for bucket in BUCKETS:
            m, c = aie.row(bucket)
            if torch.isnan(m).all():
                continue
            cells = " | ".join(f"{float(a):+.3f}±{float(b):.3f}" for a, b in zip(m, c))
            print(f"| {kind} @ {bucket} | {cells} | {int(torch.argmax(m.nan_to_num(-1)))} |")
    sig = signature(res)
    print(
        f"signature: hidden@last_subject max over the first third {sig['hidden_last_subject_max_first_third']:.3f} "
        f"(goal >= 0.2: {'met' if sig['goal_hidden'] else 'missed'}); MLP@last_subject peak "
        f"{sig['mlp_last_subject_peak']:.3f} at layer {sig['mlp_last_subject_peak_layer']} vs MLP@last "
        f"{sig['mlp_last_token_at_peak']:.3f} there (goal >= 0.1 in the first half, above the last token: "
        f"{'met' if sig['goal_mlp'] else 'missed'})"
    )
    print(
        f"top MLP layers (AIE at the last subject token): {res.top_layers('mlp')}; peak MLP block: {res.peak_block('mlp')}"
    )
    return res


def atp_vs_exact(lm, facts: list[dict], max_pairs: int) -> None:
    """Pearson correlation of AtP and exact patching per site type, pooled over same-length pairs."""
    from workbench.tracing import attribution_patch, patch

    pairs = []
    for a in facts:
        for b in facts:
            same = a["prompt"].replace(a["subject"], "") == b["prompt"].replace(b["subject"], "")
            if a is not b and a["subject"] != b["subject"] and same:
                if len(lm.tokenizer(a["prompt"])["input_ids"]) == len(lm.tokenizer(b["prompt"])["input_ids"]):
                    pairs.append((a["prompt"], b["prompt"]))
    pairs = pairs[:max_pairs]
    if not pairs:
        print("\nno same-template pair of equal token length; AtP comparison skipped")
        return
    sites = ["resid_pre", "attn", "mlp", "heads"]
    exact = {s: [] for s in sites}
    approx = {s: [] for s in sites}
    for clean, corrupted in pairs:
        try:
            e = patch(lm, clean, corrupted, sites=sites, progress=False)
        except Exception as err:  # the two runs may predict the same token: no logit difference to patch
            print(f"  skip pair ({err})")
            continue
        a = attribution_patch(lm, clean, corrupted, sites=sites, answers=e.answers)
        for s in sites:
            exact[s].append((e.scores[s] - e.corrupted).flatten())
            approx[s].append((a.scores[s] - a.corrupted).flatten())
    print(f"\n## AtP vs exact patching (denoising, logit difference), {len(exact['mlp'])} prompt pairs")
    print("| site | cells | Pearson r | max abs error |")
    print("|---|---|---|---|")
    for s in sites:
        if not exact[s]:
            continue
        x, y = torch.cat(exact[s]), torch.cat(approx[s])
        r = float(torch.corrcoef(torch.stack([x, y]))[0, 1])
        print(f"| {s} | {len(x)} | {r:.3f} | {float((x - y).abs().max()):.3f} |")


def main(argv: list[str] | None = None) -> int:
    """Run the tracing and AtP analyses on the organism."""
    from bench_trace import find_model

    from workbench.models import load

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default")
    p.add_argument("--organism-seed", type=int, default=0, help="the organism's seed (built if not cached)")
    p.add_argument(
        "--model", default=None, help="a model folder with facts/ and data/ (default: the organism)"
    )
    p.add_argument(
        "--prompts", default="rome,qa", help="prompt sets: rome (statements), qa (SemEval QA records)"
    )
    p.add_argument("--out", default="runs/selective_amnesia/trace_facts")
    p.add_argument("--samples", type=int, default=10)
    p.add_argument("--noise", type=float, default=3.0)
    p.add_argument("--window", type=int, default=None, help="mlp/attn window (default: a fifth of the depth)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise draws")
    p.add_argument("--max-facts", type=int, default=40, help="facts per prompt set (the first N)")
    p.add_argument("--keep-unknown", action="store_true")
    p.add_argument("--figures", type=int, default=6)
    p.add_argument("--pairs", type=int, default=8, help="prompt pairs for the AtP comparison")
    args = p.parse_args(argv)
    if args.model:
        folder, what = args.model, args.model
    elif args.organism_seed:
        from workbench.organism import build

        org = build(args.preset, seed=args.organism_seed)
        folder, what = str(org.path), f"organism {org.path.name}"
    else:
        folder, what = find_model(args.preset)
    lm = load(folder)
    out = Path(args.out)
    print(f"# Tracing the organism's facts\nmodel: {what} ({lm.n_layers} layers, d={lm.d_model})")
    sets = prompt_sets(Path(folder), args.prompts.split(","), lm)
    if not sets:
        print("this model has no facts/ or data/ folder; pass an organism")
        return 1
    results = {}
    for name, facts in sets.items():
        res = trace_split(lm, facts[: args.max_facts], args, out, name)
        if res.facts:
            results[name] = res
    summary = {name: signature(res) for name, res in results.items()}
    from workbench.io import write_json

    write_json(out / "signature.json", summary)
    if results:
        plot_signature(results, out / "signature.png")
    rome = [f for name, facts in sets.items() if name.startswith("rome") for f in facts]
    atp_vs_exact(lm, [{"prompt": f.prompt, "subject": f.subject} for f in rome], args.pairs)
    print(f"\nrun folders and figures under {out} (signature.png: ROME's Figure 2 for every prompt set)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
