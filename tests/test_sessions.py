"""Several sessions in one Recording, and SRNN and low-rank fits across sessions that recorded different neurons.

Ground truth: a teacher (two regimes that differ only in their rotation direction) seen by three sessions
of ten different neurons each; held-out states are known. The baseline beside the joint fit is the same
union of channels read as one session (pooled starting labels and readout), which is at chance; where each
session has too little data alone, the baseline is each session's own fit. The low-rank
models (an oscillator teacher, the switching low-rank teacher, each seen by three sessions) are scored by
held-out log evidence, their per-session readout start against the pooled one; the sessions' matched latent frames
against the teacher's orientation and against each session's own frame.
"""

import contextlib
import dataclasses
import math
from unittest import mock

import numpy as np
import pyro
import pytest
import torch

from benchmarks import multi_session
from pyro_neurodyn import SRNN, LowRankRNN, SwitchingLowRankRNN
from pyro_neurodyn.data import Recording, gaussian_oscillator_data, rotation_switching_data, switching_lowrank_data
from pyro_neurodyn.estimators import session_frames
from pyro_neurodyn.estimators.principal_subspace import principal_subspace
from pyro_neurodyn.estimators.session_labels import dynamics_signatures
from pyro_neurodyn.estimators.srnn import SESSION_LABEL_STEPS
from pyro_neurodyn.estimators.srnn_start import session_blocks
from pyro_neurodyn.metrics import state_accuracy

pytestmark = pytest.mark.usefixtures("one_thread_fresh_param_store")


def test_from_sessions_puts_each_sessions_channels_side_by_side():
    first = Recording.from_trials([np.ones((5, 2)), np.ones((3, 2))], channel_names=["a", "b"])
    second = Recording.from_trials([2 * np.ones((7, 3))], channel_names=["b", "c", "d"])
    joint = Recording.from_sessions([first, second])
    assert joint.y.shape == (3, 7, 5) and joint.session.tolist() == [0, 0, 1]
    assert joint.channel_names == ("session0/a", "session0/b", "session1/b", "session1/c", "session1/d")
    assert bool(joint.mask[:2, :, 2:].any()) is False and bool(joint.mask[2, :, :2].any()) is False
    assert joint.lengths.tolist() == [5, 3, 7] and bool(joint.mask[1, :3, :2].all()) and not bool(joint.mask[1, 3:].any())
    matched = Recording.from_sessions([first, second], match_channels=True)
    assert matched.channel_names == ("a", "b", "c", "d") and bool(matched.mask[2, :, 1].all())
    with pytest.raises(ValueError, match="sessions is empty"):
        Recording.from_sessions([])
    with pytest.raises(TypeError, match=r"sessions\[1\] must be a Recording"):
        Recording.from_sessions([first, np.ones((3, 2))])


def test_session_blocks_only_for_sessions_with_disjoint_channels():
    first = Recording.from_trials([np.ones((4, 2))] * 2)
    second = Recording.from_trials([np.ones((4, 3))])
    disjoint = Recording.from_sessions([first, second])
    blocks = session_blocks(disjoint.session, disjoint.mask)
    assert [(trials.tolist(), channels.tolist()) for trials, channels in blocks] == [([0, 1], [0, 1]), ([2], [2, 3, 4])]
    shared = Recording.from_sessions([first, first], match_channels=True)
    assert session_blocks(shared.session, shared.mask) is None  # the same channels: one readout block
    assert session_blocks(first.session, first.mask) is None  # one session


def test_dynamics_signatures_see_through_a_change_of_coordinates_and_its_orientation():
    """The eigenvalue part of a signature is unchanged by a linear change of coordinates; mirror-image regimes
    share it and differ in the sign of their rotation rate, which a reflected frame flips; regimes of
    different speed differ in it."""
    def rotations(angles, transform, steps=400):
        x, path, labels = torch.tensor([1.0, 0.0]), [], []
        for t in range(steps):
            k = (t // 100) % len(angles)
            c, s = math.cos(angles[k]), math.sin(angles[k])
            x = 0.99 * torch.tensor([[c, -s], [s, c]]) @ x + 0.01 * torch.randn(2)
            path.append(transform @ x)
            labels.append(k)
        return torch.stack(path)[None].double(), torch.tensor(labels)[None]

    torch.manual_seed(0)
    within = torch.ones(1, 400, dtype=torch.bool)
    mirror = dynamics_signatures(*rotations([0.3, -0.3], torch.eye(2)), within, 2)
    np.testing.assert_allclose(mirror[0, :4], mirror[1, :4], atol=0.02)
    assert mirror[0, 4] > 0.2 and mirror[1, 4] < -0.2  # counter-clockwise, then clockwise, in this frame
    reflected = dynamics_signatures(*rotations([0.3, -0.3], torch.tensor([[1.0, 0.0], [0.0, -1.0]])), within, 2)
    np.testing.assert_allclose(reflected[:, 4], -mirror[:, 4], atol=0.02)
    skewed = dynamics_signatures(*rotations([0.3, 0.1], torch.tensor([[2.0, 0.5], [0.0, 0.3]])), within, 2)
    plain = dynamics_signatures(*rotations([0.3, 0.1], torch.eye(2)), within, 2)
    np.testing.assert_allclose(skewed[:, :4], plain[:, :4], atol=0.02)
    assert np.linalg.norm(plain[0, :4] - plain[1, :4]) > 0.2


def three_sessions(y: torch.Tensor, train: int, test: int, neurons: int) -> tuple[Recording, Recording]:
    """Train and test Recordings of 3 sessions of ``y (3 (train + test), T, 3 neurons)``: session s records neurons
    ``[s neurons, (s + 1) neurons)`` on trials ``[s (train + test), (s + 1) (train + test))``, its first ``train``
    for training."""
    per_session = train + test
    trains, tests = [], []
    for s in range(3):
        part = y[s * per_session : (s + 1) * per_session, :, s * neurons : (s + 1) * neurons]
        trains.append(Recording.from_trials(list(part[:train])))
        tests.append(Recording.from_trials(list(part[train:])))
    return Recording.from_sessions(trains), Recording.from_sessions(tests)


def sessions_of_a_teacher(seed: int, train: int = 4, test: int = 3, neurons: int = 10, num_steps: int = 200):
    """Train and test Recordings of 3 sessions (disjoint neurons of one teacher, disjoint trials), test states."""
    per_session = train + test
    data = rotation_switching_data(3 * per_session, num_steps, 3 * neurons, seed=seed)
    states = [data.states[s * per_session : (s + 1) * per_session][train:] for s in range(3)]
    return (*three_sessions(data.y, train, test, neurons), states)


def test_a_joint_fit_with_matched_session_labels_finds_the_shared_regimes():
    train, test, states = sessions_of_a_teacher(seed=0)

    def accuracies(model):
        return [state_accuracy(states[s], model.most_likely_states(test[test.session == s])) for s in range(3)]

    # Both fits hold their labels for all 400 steps, so the two label sets are what differs. (With fit's default
    # 200-step warm-up the ELBO alone then sorted out the pooled reading's wrong labels on data seeds 0 and 4:
    # 0.93-1.00 per session.)
    options = dict(num_steps=400, label_steps=400, progress=False)
    joint = accuracies(SRNN(2, 2, 30, seed=0).fit(train, init="arhmm", **options))  # labels per session, matched
    pooled = accuracies(SRNN(2, 2, 30, seed=0).fit(dataclasses.replace(train, session=None), **options))
    # measured over data seeds 0, 3, 4 (python benchmarks/multi_session.py's setting at this size): joint fit
    # 0.998-1.000 per session, the pooled reading 0.51-0.70; the bounds leave 0.05 and 0.15 to spare. Before the
    # per-session labels were matched on the signed rotation rate one seed's session sat at 0.74: the check bites.
    assert min(joint) >= 0.95, f"joint fit {joint}; the union read as one session: {pooled}"
    assert max(pooled) < 0.85, f"the pooled baseline is expected to fail on this data: {pooled}"


def test_arhmm_labels_of_sessions_read_as_one_do_not_break_on_the_filled_channels():
    """The union of sessions of different neurons read as one session: most channels of a row are fills of missing
    entries, and the full-covariance ARHMM's M step summed in float32 lost positive definiteness there
    (data seed 3: a LinAlgError in the Cholesky factor before any SVI step)."""
    train, _, _ = sessions_of_a_teacher(seed=3)
    model = SRNN(2, 2, 30, seed=0).fit(dataclasses.replace(train, session=None), num_steps=1, filter_steps=0, progress=False)
    assert np.isfinite(model.losses).all()


def data_limited_accuracies(seed: int) -> dict:
    """Held-out state accuracy per session of the joint fit and of each session's own fit, data seed 0 of
    benchmarks/multi_session.py's data-limited setting (``DATA_LIMITED``), model and fit seed ``seed``. Also
    ``measure`` for ``python benchmarks/quality_spread.py tests/test_sessions.py --function data_limited_accuracies
    --seeds 0 1 2 --threads 1 --kernels native default``."""
    joint, single, _, _ = multi_session.joint_and_single(0, **multi_session.DATA_LIMITED, fit_seed=seed)
    return {**{f"joint{s}": a for s, a in enumerate(joint)}, **{f"single{s}": a for s, a in enumerate(single)}}


def test_sessions_that_each_saw_too_little_learn_the_shared_dynamics_together():
    """Every session sees both regimes, but only 2 training trials of 100 steps through 5 noisy neurons: alone, a
    session may not learn the dynamics; the joint fit has three times the data for them (same SVI steps, labels)."""
    numbers = data_limited_accuracies(0)
    joint, single = [numbers[f"joint{s}"] for s in range(3)], [numbers[f"single{s}"] for s in range(3)]
    # measured (python benchmarks/multi_session.py's data-limited command, data seeds 0-4, fit seeds 0-2, one
    # thread): on data seed 0 the joint fit labels every session at 0.939-0.991, session 0 alone at 0.504-0.525
    # (its own fit fails with every fit seed, also with labels for all steps: 0.541, 0.546), so the worst
    # session gains 0.41-0.48. Over all 15 runs the joint fit reached >= 0.939 in every session in 14 and fell to
    # chance in one (data seed 2, fit seed 2); single-session fits >= 0.95 in 26 of 45. With scalar kernels
    # (quality_spread command above) fit seeds 0 and 1 agree within 0.02, but fit seed 2's joint fit lost session
    # 0 (0.546): the joint fit can fail too. This test's fit seed 0: joint 0.979-0.99, single 0.509-0.526 in
    # session 0 with both kernel sets. The bounds leave 0.09 and 0.16 to spare.
    assert min(joint) >= 0.85, f"joint fit {joint}; each session alone {single}"
    assert min(joint) >= min(single) + 0.25, f"joint fit {joint} is expected to beat the worst single-session fit: {single}"


def test_auto_init_labels_sessions_of_different_channels_for_a_warm_up_only():
    """``init="auto"`` on sessions of different channels is ``init="arhmm"`` (per-session labels, matched) with
    ``label_steps=SESSION_LABEL_STEPS``: the same fit, loss for loss, across the step where the labels stop."""
    train, _, _ = sessions_of_a_teacher(seed=0, train=2, test=1, num_steps=40)
    steps = SESSION_LABEL_STEPS + 3
    auto = SRNN(2, 2, 30, seed=0).fit(train, num_steps=steps, filter_steps=0, progress=False)
    explicit = SRNN(2, 2, 30, seed=0).fit(train, num_steps=steps, filter_steps=0, init="arhmm", label_steps=SESSION_LABEL_STEPS, progress=False)
    always = SRNN(2, 2, 30, seed=0).fit(train, num_steps=steps, filter_steps=0, init="arhmm", progress=False)
    assert auto.losses == explicit.losses
    assert auto.losses[:SESSION_LABEL_STEPS] == always.losses[:SESSION_LABEL_STEPS] and auto.losses[-1] != always.losses[-1]


def single_regime_segments(data, trials, state: int, min_length: int = 40) -> list:
    """``(trial, start, stop)`` of the runs of ``state`` at least ``min_length`` steps long in ``trials``."""
    runs = []
    for b in trials:
        states = data.states[b].tolist()
        start = 0
        for t in range(1, len(states) + 1):
            if t == len(states) or states[t] != states[start]:
                if states[start] == state and t - start >= min_length:
                    runs.append((b, start, t))
                start = t
    return runs


def test_sessions_that_saw_different_regimes_learn_them_together_and_not_alone():
    """Session 0 trained only on stretches of regime 0, session 1 only on regime 1, session 2 on whole trials
    (ragged trials, disjoint neurons); tested on whole trials of each. Alone, sessions 0 and 1 cannot know
    the regime they never saw; the joint fit learns it from the others."""
    data, neurons = rotation_switching_data(60, 200, 30, seed=0), 10
    trains, tests, states = [], [], []
    for s, regime in enumerate([0, 1, None]):
        columns = slice(s * neurons, (s + 1) * neurons)
        trials = range(12 * s, 12 * s + 12)
        if regime is None:
            arrays = [data.y[b, :, columns].numpy() for b in list(trials)[:4]]
        else:
            arrays = [data.y[b, a:e, columns].numpy() for b, a, e in single_regime_segments(data, trials, regime)[:8]]
        trains.append(Recording.from_trials(arrays))
        tests.append(Recording.from_trials(list(data.y[40 + 6 * s : 46 + 6 * s, :, columns])))
        states.append(data.states[40 + 6 * s : 46 + 6 * s])
    joint = SRNN(2, 2, 30, seed=0).fit(Recording.from_sessions(trains), num_steps=400, progress=False)  # init="auto": 50 label steps
    wide = Recording.from_sessions(tests)
    together = [state_accuracy(states[s], joint.most_likely_states(wide[wide.session == s])) for s in range(3)]
    alone = [state_accuracy(states[s], SRNN(2, 2, neurons, seed=0).fit(trains[s], num_steps=400, label_steps=400, progress=False).most_likely_states(tests[s]))
             for s in range(2)]  # fmt: skip
    # measured over data seeds 0-2 (this test is seed 0): joint fit 0.998-1.000 in every session (0.999-1.000 with no
    # labels at all, the default before the 50-step warm-up); sessions 0 and 1 alone, held to their own labels for
    # the whole fit, 0.53-0.69 (their K = 2 states split the one regime they saw); the bounds leave 0.05 and 0.11 to
    # spare. With fit's default 200-step label warm-up instead, a session alone scored 0.53-0.94 (0.94 on data seed 1):
    # the ELBO alone sometimes gives the second state to the regime the session never saw.
    assert min(together) >= 0.95, f"joint fit {together}; each session alone {alone}"
    assert max(alone) <= 0.8, f"a session that saw one regime is not expected to label both alone: {alone}"


def lowrank_start_evidence(data_seed: int) -> dict:
    """Held-out log evidence per observed entry (nats; 64 particles) of the low-rank models after the same short
    fit from the per-session start and from the pooled one (the union read as one session), on teachers seen by
    3 sessions of 10 different neurons (6 training and 3 held-out trials each): ``LowRankRNN`` on the Gaussian
    oscillator (50 steps, 5 VSMC steps), ``SwitchingLowRankRNN`` on the switching teacher (80 steps, 10
    collapsed steps). Also ``measure`` for ``python benchmarks/quality_spread.py tests/test_sessions.py --function
    lowrank_start_evidence --seeds 0 1 2 3 4 --threads 1``."""
    numbers = {}
    oscillator = gaussian_oscillator_data(27, 50, num_units=30, seed=data_seed).y
    switching = switching_lowrank_data(27, 80, seed=data_seed, obs_dim=30).y
    for name, y, fit in (
        ("lowrank", oscillator, short_lowrank_fit),
        ("switching", switching, lambda rec: SwitchingLowRankRNN(30, 2, 2, 8, seed=0).fit(rec, "collapsed", num_steps=10, seed=0)),
    ):  # fmt: skip
        train, test = three_sessions(y, 6, 3, 10)
        for start, recording in (("per_session", train), ("pooled", dataclasses.replace(train, session=None))):
            pyro.clear_param_store()
            numbers[f"{name}_{start}"] = evidence_per_entry(fit(recording), test)
    return numbers


def short_lowrank_fit(train: Recording, num_steps: int = 5) -> LowRankRNN:
    """``LowRankRNN(30, 2, 30)`` fit ``num_steps`` VSMC steps (8 particles, batches of 18): the short fit whose starts
    :func:`lowrank_start_evidence` and :func:`session_frames_evidence` compare."""
    return LowRankRNN(30, 2, 30, seed=0).fit(train, num_particles=8, num_steps=num_steps, batch_size=18, lr=1e-2, seed=0, progress=False)


def evidence_per_entry(model, test: Recording) -> float:
    """Held-out log evidence of ``test`` per observed entry (nats; 64 particles, seed 0)."""
    return float(model.log_evidence(test, num_particles=64, seed=0).sum() / test.mask.sum())


def test_the_low_rank_models_start_each_sessions_readout_at_its_own_principal_subspace():
    """Per session, every session's readout rows start at the top directions of its own neurons; pooled (the union
    read as one session), the sessions' blocks of the covariance compete for the R = 2 directions and one session's
    rows start at zero (data seeds 0-4: every time; the other two got one direction each)."""
    train, _ = three_sessions(gaussian_oscillator_data(27, 50, num_units=30, seed=0).y, 6, 3, 10)
    rnn = LowRankRNN(30, 2, 30, seed=0).initialize_from_data(train)
    weight = rnn.model.readout.map.weight.detach()  # (30, 2)
    for s in range(3):
        rows = weight[10 * s : 10 * (s + 1)]
        torch.testing.assert_close(rows.T @ rows, torch.eye(2), atol=1e-4, rtol=0)  # orthonormal columns of its own
        part = train[train.session == s]
        own = part.y[..., 10 * s : 10 * (s + 1)].reshape(-1, 10)
        top = torch.linalg.svd(own - own.mean(0), full_matrices=False).Vh[:2]  # its data's top-2 directions
        assert torch.linalg.svdvals(top @ rows).min() > 0.999
    switching = SwitchingLowRankRNN(30, 2, 2, 8, seed=0).initialize_from_data(train)
    torch.testing.assert_close(switching.module.emission.mapping.weight.detach(), weight)  # the same subspaces
    pooled = LowRankRNN(30, 2, 30, seed=0).initialize_from_data(dataclasses.replace(train, session=None)).model.readout.map.weight.detach()
    assert min(float(pooled[10 * s : 10 * (s + 1)].norm()) for s in range(3)) < 1e-3


def test_the_per_session_start_of_the_low_rank_models_beats_the_pooled_start():
    """Held-out log evidence per observed entry after the same short fit (:func:`lowrank_start_evidence`), data seed
    0. Measured over data seeds 0-4 with native, AVX2 and scalar kernels (15 runs, 1 thread; the command in
    :func:`lowrank_start_evidence`), with matched session frames (:mod:`~pyro_neurodyn.estimators.session_frames`):
    LowRankRNN per-session start 0.730-0.756 nats, pooled -1.42 to -0.44; SwitchingLowRankRNN per-session
    0.491-0.751 (seed 3's short fit at 0.49; before the frames were matched 0.663-0.768), pooled -7e13 to 0.18 (the
    particle estimate under a mis-started model is erratic). The smallest gap of a run was 0.48 nats: the bound,
    0.25, leaves half of it; the per-session floor, 0.55, is 0.18 below the lowest run of seed 0 (0.730-0.751)."""
    numbers = lowrank_start_evidence(0)
    for name in ("lowrank", "switching"):
        per_session, pooled = numbers[f"{name}_per_session"], numbers[f"{name}_pooled"]
        assert per_session > pooled + 0.25, f"{name}: per-session start {per_session:.3f} nats per entry, pooled start {pooled:.3f}"
        assert per_session > 0.55, f"{name}: per-session start {per_session:.3f} nats per entry (pooled: {pooled:.3f})"


def own_frames():
    """A context in which the per-session start keeps each session's own principal-component frame (the baseline)."""
    return mock.patch.object(session_frames, "matched_frames", lambda directions, latents, steps, blocks: directions)


def test_frame_map_recovers_an_orthogonal_change_of_frame_of_linear_dynamics():
    """Noise-free views of one linear latent path (real distinct eigenvalues, non-normal: the orthogonal maps that
    commute with A are +-I, the documented ambiguity) through a rotation and through a reflection: frame_map returns
    the map back to the reference's frame, up to that sign."""
    generator = torch.Generator().manual_seed(0)
    dynamics = torch.tensor([[0.95, 0.3], [0.0, 0.7]], dtype=torch.float64)
    x = [torch.randn(5, 2, dtype=torch.float64, generator=generator)]
    for _ in range(99):
        x.append(x[-1] @ dynamics.T + 0.3 * torch.randn(5, 2, dtype=torch.float64, generator=generator))
    x = torch.stack(x, 1)  # (5 trials, 100, 2)
    turn = torch.tensor([[math.cos(2.0), -math.sin(2.0)], [math.sin(2.0), math.cos(2.0)]], dtype=torch.float64)
    for change in (turn, turn @ torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))):  # x^_s = x change^T
        back = session_frames.frame_map(x @ change.T, None, x, None)  # expected: change^-1 = change^T, or its negative
        error = min(float((back - change.T).norm()), float((back + change.T).norm()))
        assert error < 1e-6, f"frame map {back.tolist()} vs the true {change.T.tolist()} (up to sign): {error:.2e}"
    with pytest.raises(ValueError, match="latents must be finite latents"):
        session_frames.frame_map(x[..., :1], None, x, None)
    with pytest.raises(ValueError, match="more than R"):
        session_frames.frame_map(x[:1, :3], None, x, None)


def session_frame_orientations(y: torch.Tensor, readout: torch.Tensor, own: bool) -> list:
    """Whether each of sessions 1 and 2 (of :func:`three_sessions` of ``y``, 6 training trials) sees the teacher's
    latent in the orientation of session 0's frame: ``det(G_s G_0^-1) > 0``, ``G_s = P_s^T W_s`` from its start's
    readout rows ``P_s`` and the teacher's ``readout (D, R)`` rows ``W_s``."""
    train, _ = three_sessions(y, 6, 3, 10)
    blocks = session_blocks(train.session, train.mask)
    with own_frames() if own else contextlib.nullcontext():
        directions = principal_subspace(train.y.double(), 2, train.mask.any(-1), blocks).directions
    frames = [directions[channels].T @ readout[channels].double() for _, channels in blocks]
    return [bool(torch.det(frames[s] @ torch.linalg.inv(frames[0])) > 0) for s in (1, 2)]


def reflected_session(data, session: int = 1):
    """The oscillator data of :func:`three_sessions` with session ``session``'s neurons reading the teacher's latent
    reflected (second coordinate negated): ``(y, readout)``."""
    y, readout, rows, channels = data.y.clone(), data.teacher.U.clone(), slice(9 * session, 9 * session + 9), slice(10 * session, 10 * session + 10)
    y[rows, :, channels] -= 2 * data.latents[rows, :, 1:2] * readout[channels, 1]
    readout[channels, 1] = -readout[channels, 1]
    return y, readout


def test_matched_session_frames_share_the_teachers_orientation():
    """Ground truth: the sessions' starting frames after matching see the teacher's latent in session 0's orientation
    (data seeds 0-4 here; measured 20 of 20 sessions over seeds 0-9 for both teachers). Their own principal-component
    frames: 5 of 20 on the switching teacher and 10 of 20 on the oscillator with session 1 reflected (the
    reflected session in every seed) -- the check bites."""
    for seed in range(5):
        switching = switching_lowrank_data(27, 80, seed=seed, obs_dim=30)
        reflected = reflected_session(gaussian_oscillator_data(27, 50, num_units=30, seed=seed))
        for name, (y, readout) in (("switching", (switching.y, switching.teacher.C)), ("reflected oscillator", reflected)):
            matched, own = session_frame_orientations(y, readout, False), session_frame_orientations(y, readout, True)
            assert all(matched), f"{name}, data seed {seed}: matched frames agree {matched}, own frames {own}"
        assert not own[0], "the reflected session's own frame is expected to be reflected"


def test_matching_session_frames_leaves_the_predictions_unchanged():
    """Float64: every session's readout rows stay orthonormal and span its own principal subspace, and the latents
    times the rows (the predicted observations) are those of its own frame."""
    y, _ = reflected_session(gaussian_oscillator_data(27, 50, num_units=30, seed=0))
    train, _ = three_sessions(y, 6, 3, 10)
    blocks, m = session_blocks(train.session, train.mask), train.y.double()
    with own_frames():
        own = principal_subspace(m, 2, train.mask.any(-1), blocks)
    matched = principal_subspace(m, 2, train.mask.any(-1), blocks)
    for trials, channels in blocks:
        rows = matched.directions[channels]
        torch.testing.assert_close(rows.T @ rows, torch.eye(2, dtype=torch.float64), atol=1e-10, rtol=0)  # float64 round-off of eigh, expm
        predicted = [subspace.project(m)[trials] @ subspace.directions[channels].T for subspace in (matched, own)]
        torch.testing.assert_close(predicted[0], predicted[1], atol=1e-10, rtol=0)
    assert not torch.equal(matched.directions, own.directions)  # a session's frame was changed (the reflected one)


def session_frames_evidence(data_seed: int, num_steps: int = 5) -> dict:
    """Held-out log evidence per observed entry (nats; 64 particles) of ``LowRankRNN`` fit ``num_steps`` VSMC steps on
    the oscillator with session 1 reflected (:func:`reflected_session`; the fit of :func:`lowrank_start_evidence`),
    from matched session frames (the default) and from each session's own frame. ``python
    benchmarks/quality_spread.py tests/test_sessions.py --function session_frames_evidence --seeds 0 1 2 3 4 --threads 1``."""
    train, test = three_sessions(reflected_session(gaussian_oscillator_data(27, 50, num_units=30, seed=data_seed))[0], 6, 3, 10)
    numbers = {}
    for frames in ("matched", "own"):
        pyro.clear_param_store()
        with own_frames() if frames == "own" else contextlib.nullcontext():
            model = short_lowrank_fit(train, num_steps)
        numbers[frames] = evidence_per_entry(model, test)
    return numbers


def test_matched_session_frames_undo_a_reflected_session():
    """A session whose neurons see the oscillator reflected: the shared dynamics cannot turn both ways, and a short fit
    from its own frame does not undo the reflection through the readout (nor do 100 steps: README). Measured over
    data seeds 0-4 (:func:`session_frames_evidence`, 1 thread, native kernels): matched 0.730-0.757 nats per entry,
    own frames 0.620-0.663 (gaps 0.076-0.130; seed 0: 0.730 and 0.634). The bound, a gap of 0.035, leaves half of the
    smallest."""
    numbers = session_frames_evidence(0)
    assert numbers["matched"] > numbers["own"] + 0.035, f"matched frames {numbers['matched']:.3f} nats per entry, own frames {numbers['own']:.3f}"
