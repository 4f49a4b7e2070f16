"""Score Pals et al.'s published rank-3 EEG models with this package's evaluation, beside our own fits.

The authors' repository (mackelab/smc_rnns) ships the state dicts of their EEG fits
(``models/sweep_eeg_rs/*_state_dict_rnn.pkl``). Their network is the one of ``LowRankRNN(activation=
"clipped_relu")``; :func:`published_to_lowrank` maps a state dict onto it:

    theirs: z' = A z + n phi(m z, h) + h_z + L_z eps,   y = B^T z + b + diag(exp(R_x / 2)) eps',
            A = exp(-exp(AW)),  L = tril(R, -1) + diag(exp(diag(R) / 2))  (R_z, R_z_t0),
            z_0 ~ N(initial_state, L_t0 L_t0^T);
    ours:   a = A, U = m, V = n, threshold = h (phi(x, h) = relu(x + h) - relu(x) in both), Sigma_x = L_z L_z^T,
            Sigma_1 = L_t0 L_t0^T, mu_1 = initial_state, readout weight B^T, bias b, sigma_x = exp(R_x / 2).

The latent bias ``h_z`` (zero in the shipped fits) rides on one extra unit with ``U`` row 0 and ``threshold = 1``,
whose rate is the constant 1. Each model is then scored three ways:

* the published protocol (:func:`eeg_lowrank.full_recording_scores`): free runs as long as the recording
  from a posterior sample at its start, Hann(15) + z-score, against the WHOLE recording (their models
  were fit to all of it, ours to the first 80 %);
* this package's held-out protocol (as ``eeg_lowrank.py``: the filter over the last 200 training points,
  4 runs of 9640 steps, Hann(15) + z-score, against the last 20 %);
* ``log p(train) / step``: the particle filter's estimate (64 particles) on the first 80 % of the shipped
  (smoothed) recording, per time step.

    python benchmarks/eeg_published_models.py --models PATH/TO/smc_rnns/models/sweep_eeg_rs --fitted eeg_output/model.pt

``--fitted`` adds checkpoints saved by ``eeg_lowrank.py`` to the same table. ``--finetune-epochs E`` then
continues the first published model's fit on the shipped training part with this package's VSMC (the
settings of ``eeg_lowrank.py``, constant learning rate 1e-3) and scores it every ``--finetune-every`` epochs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

import pyro
import torch

from pyro_neurodyn import LowRankRNN
from pyro_neurodyn.data import load_eeg, random_windows, split_heldout

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.eeg_published_models
    import eeg_lowrank
except ImportError:  # pragma: no cover - depends on how it is started
    from benchmarks import eeg_lowrank

PUBLISHED_KEYS = ("transition.AW", "transition.m", "transition.n", "transition.h", "transition.hz", "R_z", "R_z_t0",
                  "R_x", "initial_state", "observation.B", "observation.Bias")


def published_cholesky(raw: torch.Tensor) -> torch.Tensor:
    """The authors' embedding of a full covariance: ``tril(raw, -1) + diag(exp(diag(raw) / 2))``."""
    return torch.tril(raw, -1) + torch.diag_embed(torch.exp(torch.diagonal(raw) / 2))


def published_to_lowrank(state: dict) -> LowRankRNN:
    """A ``LowRankRNN`` (clipped ReLU, N + 1 units, decay held fixed) with the published parameters (module docstring)."""
    missing = [key for key in PUBLISHED_KEYS if key not in state]
    if missing:
        raise ValueError(f"state dict lacks {missing}: not a published low-rank EEG model")
    m, n, hz = state["transition.m"], state["transition.n"], state["transition.hz"].reshape(-1)
    (num_units, rank), obs_dim = m.shape, state["R_x"].numel()
    decay = float(torch.exp(-torch.exp(state["transition.AW"])).reshape(()))
    rnn = LowRankRNN(obs_dim, rank, num_units + 1, activation="clipped_relu", decay=decay, train_decay=False, seed=0)
    model = rnn.model
    with torch.no_grad():
        model.transition.U.copy_(torch.cat([m, torch.zeros(1, rank)]))
        model.transition.V.copy_(torch.cat([n, hz[:, None]], 1))
        model.transition.threshold.copy_(torch.cat([state["transition.h"].reshape(-1), torch.ones(1)]))
        for covariance, raw in ((model.noise, state["R_z"]), (model.initial_noise, state["R_z_t0"])):
            scale_tril = published_cholesky(raw)
            covariance.set_(scale_tril @ scale_tril.T)
        model.initial_mean.copy_(state["initial_state"].reshape(-1))
        model.readout.map.weight.copy_(state["observation.B"].T)
        model.readout.map.bias.copy_(state["observation.Bias"].reshape(-1))
        model.readout.noise.log_scale.copy_(state["R_x"].reshape(-1) / 2)
    return rnn


def score(rnn: LowRankRNN, recording: torch.Tensor, runs: int, seed: int) -> dict:
    """The three scores of the module docstring for one model."""
    train, heldout = split_heldout(recording, 0.2)
    args = eeg_lowrank.parse_args(["--diagnose", "--seed", str(seed)])
    generated = eeg_lowrank.generate_from_filtered_state(rnn, train, args, args.chunks * heldout.shape[0]).double().numpy()
    held_out = eeg_lowrank.evaluate(heldout.double().numpy(), eeg_lowrank.authors_smoothing(generated), seed)
    log_p = float(rnn.log_evidence(train[None], num_particles=64, seed=seed).mean()) / train.shape[0]
    transition, noise = rnn.model.transition, rnn.model.noise.matrix().detach()
    return {
        "published_protocol": eeg_lowrank.full_recording_scores(rnn, recording, runs, seed),
        "held_out_protocol": held_out._asdict(),
        "log_p_train_per_step": log_p,
        "decay": float(transition.a.detach()),
        "latent_noise_sd": torch.linalg.eigvalsh(noise).sqrt().tolist(),
        "readout_noise_sd_mean": float(rnn.model.readout.noise.std().detach().mean()),
    }


def finetune(rnn: LowRankRNN, recording: torch.Tensor, epochs: int, every: int, runs: int, seed: int) -> list[dict]:
    """Fit ``rnn`` on, as ``eeg_lowrank.py`` does, 500 windows of T = 50 from the training part (10
    particles, batches of 10, lr 1e-3), scoring it before and every ``every`` epochs."""
    windows = random_windows(split_heldout(recording, 0.2)[0], 500, 50, seed=seed)
    history = [{"epoch": 0, **score(rnn, recording, runs, seed)}]
    done = 0
    while done < epochs:
        chunk = min(every, epochs - done)
        done += chunk
        rnn.fit(windows, num_particles=10, epochs=chunk, batch_size=10, lr=1e-3, lr_end=1e-3, init_from_data=False,
                seed=seed + done, progress=False)
        history.append({"epoch": done, **score(rnn, recording, runs, seed)})
    return history


def print_row(name: str, row: dict) -> None:
    full, held = row["published_protocol"], row["held_out_protocol"]
    print(f"| {name} | {full['d_stsp']:.2f} ({full['d_stsp_dropping_underflow']:.2f}) | {full['d_h']:.3f} "
          f"| {held['d_stsp']:.2f} | {held['d_h']:.3f} | {row['log_p_train_per_step']:.2f} |", flush=True)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="folder with the published *_state_dict_rnn.pkl files")
    parser.add_argument("--limit", type=int, default=None, help="score only the first published models (sorted by name)")
    parser.add_argument("--fitted", type=Path, nargs="*", default=[], help="checkpoints of eeg_lowrank.py to score alongside")
    parser.add_argument("--finetune-epochs", type=int, default=0, help="fine-tune the first published model this long (0: no)")
    parser.add_argument("--finetune-every", type=int, default=15, help="epochs between scores while fine-tuning")
    parser.add_argument("--runs", type=int, default=3, help="free runs per model in the published protocol")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="write the scores here as JSON (never overwrites)")
    parser.add_argument("--recording-steps", type=int, default=None, help="use only the first points of the recording (tests)")
    args = parser.parse_args(argv)
    if args.models is None and not args.fitted:
        parser.error("give --models and/or --fitted")
    if args.finetune_epochs and args.models is None:
        parser.error("--finetune-epochs needs --models")
    for name in ("runs", "finetune_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.finetune_epochs < 0:
        parser.error("--finetune-epochs must be >= 0")
    if args.output is not None and args.output.exists():
        parser.error(f"--output {args.output} exists; choose a new file")
    torch.set_num_threads(1)
    pyro.enable_validation(False)
    files = sorted(args.models.glob("*_state_dict_rnn.pkl"))[: args.limit] if args.models else []
    if args.models and not files:
        parser.error(f"no *_state_dict_rnn.pkl in {args.models}")
    recording = load_eeg()[: args.recording_steps]
    results = {}
    print("| model | published protocol: D_stsp (dropping underflow) | D_H | held-out: D_stsp | D_H | log p(train)/step |")
    print("|---|---|---|---|---|---|")
    for path in files + list(args.fitted):
        rnn = published_to_lowrank(torch.load(path, weights_only=True, map_location="cpu")) if path in files else LowRankRNN.load(path)
        results[str(path)] = score(rnn, recording, args.runs, args.seed)
        print_row(path.name[:40], results[str(path)])
    if args.finetune_epochs:
        rnn = published_to_lowrank(torch.load(files[0], weights_only=True, map_location="cpu"))
        results["finetune"] = {"model": str(files[0]), "history": finetune(rnn, recording, args.finetune_epochs,
                                                                            args.finetune_every, args.runs, args.seed)}
        for row in results["finetune"]["history"]:
            print_row(f"{files[0].name[:24]}, fine-tuned {row['epoch']} epochs", row)
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
