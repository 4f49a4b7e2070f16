"""All fixed points of z -> a z + V phi(U z - threshold), checked against independent ground truth.

Ground truth: brute force over all 2^N (ReLU) or 3^N (clipped ReLU) activation patterns; the two
published teacher networks with 17 fixed points each; many random starts of a root finder; hand-made
degenerate networks whose fixed points are known in closed form.
"""

import itertools
from math import comb

import numpy as np
import pytest
import torch
from scipy.optimize import root

from pyro_neurodyn.analysis import fixed_points, latent_map

TOL = 1e-9  # the region membership tolerance of fixed_points (its default)


def brute_force(a, V, U, threshold, clip=None):
    """Fixed points and their stability from every activation pattern (0 below, 1 linear, 2 clipped).

    A pattern's affine system is solved and its solution kept iff it lies in the pattern's closed region
    (distance to each breakpoint >= -TOL relative, as in fixed_points); copies closer than 1e-7 merge.
    """
    R, N = V.shape
    a = np.broadcast_to(np.asarray(a, dtype=float), (R,))
    patterns = np.array(list(itertools.product(range(2 if clip is None else 3), repeat=N)), dtype=np.int8)
    slope = (patterns == 1).astype(float)
    intercept = np.where(patterns == 2, clip if clip is not None else 0.0, 0.0)
    M = np.diag(1 - a) - np.einsum("rn,pn,ns->prs", V, slope, U)
    b = (intercept - slope * threshold) @ V.T
    regular = np.abs(np.linalg.det(M)) > 1e-9
    z = np.linalg.solve(M[regular], b[regular][..., None])[..., 0]
    x, p = z @ U.T - threshold, patterns[regular]
    upper_clip = np.inf if clip is None else clip
    lower = np.where(p == 0, -np.inf, np.where(p == 1, 0.0, upper_clip))
    upper = np.where(p == 0, 0.0, np.where(p == 1, upper_clip, np.inf))
    margin = TOL * np.maximum(1, np.abs(z).max(axis=1))[:, None] * np.linalg.norm(U, axis=1)
    inside = ((x >= lower - margin) & (x <= upper + margin)).all(axis=1)
    points, point_patterns = [], []
    for point, pattern in zip(z[inside], p[inside]):
        if not any(np.abs(point - q).max() < 1e-7 for q in points):
            points.append(point)
            point_patterns.append(pattern)
    points = np.array(points).reshape(-1, R)
    order = np.lexsort(points.T[::-1])
    jacobians = np.diag(a) + np.einsum("rn,pn,ns->prs", V, (np.array(point_patterns).reshape(-1, N) == 1), U)
    stable = np.abs(np.linalg.eigvals(jacobians)).max(axis=-1, initial=0) < 1 if len(points) else np.zeros(0, bool)
    return points[order], stable[order]


def random_network(seed, N, R, gain=3.0):
    """A random low-rank network; gain ~ 3 gives several fixed points (checked in the tests)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.3, 0.95, size=R)
    return a, gain * rng.normal(size=(R, N)) / np.sqrt(N), rng.normal(size=(N, R)), 0.5 * rng.normal(size=N)


def assert_same_points(result, expected_points, expected_stable=None):
    assert result.points.shape == expected_points.shape, (result.points, expected_points)
    np.testing.assert_allclose(result.points, expected_points, atol=1e-8, rtol=1e-8)
    if expected_stable is not None:
        np.testing.assert_array_equal(result.stable, expected_stable)


# ------------------------------------------------------------------ brute force, random networks
# Seeds of random networks with several fixed points (most random ReLU networks have 0 or 1).
@pytest.mark.parametrize("R, seed", [(1, 1), (1, 10), (2, 0), (2, 1), (3, 1), (3, 4)])
def test_relu_matches_brute_force_over_all_patterns(R, seed):
    a, V, U, threshold = random_network(seed, N=12, R=R)
    expected, stable = brute_force(a, V, U, threshold)
    result = fixed_points(a, V, U, threshold)
    assert len(expected) >= 2  # a network with several fixed points: the comparison is informative
    assert_same_points(result, expected, stable)
    assert result.continua == () and np.all(result.residuals < 1e-12)
    assert result.num_regions == sum(comb(12, i) for i in range(R + 1))  # general position (Zaslavsky)
    assert result.num_solves == 2**R * comb(12, R)  # one R x R solve per vertex and local region


@pytest.mark.parametrize("R, N, seed", [(1, 12, 3), (2, 12, 0), (3, 10, 2)])
def test_clipped_relu_matches_brute_force_over_all_patterns(R, N, seed):
    a, V, U, threshold = random_network(seed, N=N, R=R, gain=4.0)
    clip = np.random.default_rng(R).uniform(0.5, 2.0, size=N)
    expected, stable = brute_force(a, V, U, threshold, clip)
    result = fixed_points(a, V, U, threshold, "clipped_relu", clip=clip)
    assert len(expected) >= 2
    assert_same_points(result, expected, stable)
    # 2N hyperplanes, parallel in pairs, otherwise in general position: a region per independent subset
    # of at most R hyperplanes taking at most one per unit
    assert result.num_regions == sum(comb(N, i) * 2**i for i in range(R + 1))


def test_many_small_random_networks_match_brute_force():
    total = 0
    for seed in range(24):
        R, activation = 1 + seed % 3, ("relu", "clipped_relu")[seed // 3 % 2]
        a, V, U, threshold = random_network(100 + seed, N=8, R=R, gain=4.0)
        clip = 1.0 if activation == "clipped_relu" else None
        expected, stable = brute_force(a, V, U, threshold, clip)
        assert_same_points(fixed_points(a, V, U, threshold, activation, clip=1.0), expected, stable)
        total += len(expected)
    assert total >= 30


def test_patterns_jacobians_and_stability_are_those_of_the_points():
    a, V, U, threshold = random_network(0, N=12, R=2)
    result = fixed_points(a, V, U, threshold)
    assert len(result.points) == 3
    x = result.points @ U.T - threshold
    np.testing.assert_array_equal(result.patterns, (x > 0).astype(np.int8))
    for point, jacobian, radius, stable in zip(result.points, result.jacobians, result.spectral_radius, result.stable):
        step = 1e-7 * np.eye(2)  # finite differences inside the region (no boundary within 1e-7 here)
        numeric = np.stack([(latent_map(point + e, a, V, U, threshold) - latent_map(point - e, a, V, U, threshold)) / 2e-7 for e in step], 1)
        np.testing.assert_allclose(jacobian, numeric, atol=1e-6)
        assert radius == pytest.approx(np.abs(np.linalg.eigvals(jacobian)).max())
        assert stable == (radius < 1)
    assert not result.on_boundary.any() and not result.on_continuum.any()


# ------------------------------------------------------------------ the published teachers
TEACHERS = [("lowrank_teacher_reach_rnn.npz", 1831), ("lowrank_teacher_reach_rnn_128.npz", 8257)]


def teacher(path):
    """The mapping of ../shared/data/README.md: a = 1 - dt/tau, U = m, V = n dt / (tau N), threshold = -b_rec."""
    data = np.load(path)
    N, ratio = data["m"].shape[0], float(data["dt"] / data["tau"])
    return 1 - ratio, data["n"].astype(float) * ratio / N, data["m"].astype(float), -data["b_rec"].astype(float)


@pytest.mark.parametrize("name, regions", TEACHERS)
def test_published_teachers_have_17_fixed_points(shared_data_path, name, regions):
    a, V, U, threshold = teacher(shared_data_path(name))
    result = fixed_points(a, V, U, threshold)
    assert len(result.points) == 17
    assert result.num_regions == regions
    assert result.continua == () and not result.on_boundary.any()
    assert np.all(result.residuals < 1e-12)


def root_finder_points(a, V, U, threshold, starts, rng):
    """Roots of F(z) - z from many random starts (scipy's hybrid Powell method)."""
    R = V.shape[0]
    found = []
    for start in rng.normal(size=(starts, R)) * 3 * max(1.0, np.abs(threshold).max()):
        solution = root(lambda z: latent_map(z, a, V, U, threshold) - z, start, method="hybr")
        residual = np.abs(latent_map(solution.x, a, V, U, threshold) - solution.x).max()
        if solution.success and residual < 1e-10:
            found.append(solution.x)
    return np.array(found).reshape(-1, R)


@pytest.mark.parametrize("network", ["teacher_60", "random_R3"])
def test_root_finder_never_finds_a_point_the_exact_method_misses(shared_data_path, network):
    if network == "teacher_60":
        a, V, U, threshold = teacher(shared_data_path("lowrank_teacher_reach_rnn.npz"))
    else:
        a, V, U, threshold = random_network(3, N=30, R=3)
    exact = fixed_points(a, V, U, threshold).points
    found = root_finder_points(a, V, U, threshold, starts=150, rng=np.random.default_rng(0))
    assert len(found) >= 10  # the baseline does find roots, so the check below can fail
    distance = np.abs(found[:, None, :] - exact[None]).max(axis=-1).min(axis=1)
    assert distance.max() < 1e-6


# ------------------------------------------------------------------ degenerate arrangements
def test_duplicated_and_opposite_units_match_brute_force():
    a, V, U, threshold = random_network(1, N=6, R=2)
    U = np.concatenate([U, U[:2], -U[2:3]])  # two exact duplicates and one reversed copy (-U_i, -threshold_i)
    threshold = np.concatenate([threshold, threshold[:2], -threshold[2:3]])
    V = np.concatenate([V, 0.7 * V[:, :3]], axis=1)
    expected, stable = brute_force(a, V, U, threshold)
    result = fixed_points(a, V, U, threshold)
    assert len(expected) >= 2
    assert_same_points(result, expected, stable)
    assert result.num_regions == sum(comb(6, i) for i in range(3))  # the copies add no hyperplane


def test_parallel_units_without_any_vertex_match_brute_force():
    """rank(U) = 1 < R = 2: all hyperplanes are parallel lines, the regions are strips."""
    rng = np.random.default_rng(4)
    N = 8
    U = np.outer(rng.normal(size=N), [1.0, -2.0])
    a, V, threshold = np.array([0.5, 0.8]), 2.5 * rng.normal(size=(2, N)) / np.sqrt(N), rng.normal(size=N)
    for activation, clip in (("relu", None), ("clipped_relu", 1.5)):
        expected, stable = brute_force(a, V, U, threshold, clip)
        result = fixed_points(a, V, U, threshold, activation, clip=clip or 1.0)
        assert len(expected) >= 1
        assert_same_points(result, expected, stable)
        assert result.num_regions == (N if clip is None else 2 * N) + 1


def test_rank_deficient_and_zero_units_in_R3_match_brute_force():
    rng = np.random.default_rng(1)
    N = 9
    U = np.outer(rng.normal(size=N), rng.normal(size=3)) + np.outer(rng.normal(size=N), rng.normal(size=3))  # rank 2
    U[0] = 0.0  # a unit whose pre-activation -threshold_0 is constant
    a, V, threshold = np.array([0.5, 0.7, 0.9]), 3 * rng.normal(size=(3, N)) / np.sqrt(N), rng.normal(size=N)
    expected, stable = brute_force(a, V, U, threshold, clip=None)
    result = fixed_points(a, V, U, threshold)
    assert len(expected) >= 2
    assert_same_points(result, expected, stable)


@pytest.mark.parametrize("activation", ["relu", "clipped_relu"])
def test_more_than_R_hyperplanes_through_one_point_match_brute_force(activation):
    """Units whose hyperplanes all pass through the origin (threshold = 0) or through (1, 1), plus generic ones."""
    rng = np.random.default_rng(8)
    U = np.array([[1, 0], [0, 1], [1, 1], [1, -1], [2, 1], [1, 0.5], [0.3, -1], [-1, 2]], dtype=float)
    threshold = np.array([0, 0, 0, 0, 3, 1.5, -0.7, 1.0])
    a, V = np.array([0.6, 0.4]), 1.5 * rng.normal(size=(2, 8))
    clip = 1.0 if activation == "clipped_relu" else None
    expected, stable = brute_force(a, V, U, threshold, clip)
    result = fixed_points(a, V, U, threshold, activation, clip=clip or 1.0)
    assert len(expected) >= 2
    assert_same_points(result, expected, stable)


def test_more_than_R_planes_through_one_point_and_a_shared_line_in_R3():
    U = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [1, 2, 3], [1, -1, 0], [1, 1, 0], [0.5, 0.2, -1]])
    threshold = np.array([0, 0, 0, 0, 0, 0, 0, 0.3])  # 7 planes through 0; 4 of them share the z-axis
    a, V = np.array([0.6, 0.4, 0.5]), 1.2 * np.random.default_rng(9).normal(size=(3, 8))
    expected, stable = brute_force(a, V, U, threshold)
    result = fixed_points(a, V, U, threshold)
    assert len(expected) >= 2
    assert_same_points(result, expected, stable)


def test_fixed_points_exactly_on_a_boundary_are_found_once():
    """F(z) = z/2 + min(max(2z - 1, 0), 1)/2: fixed points 0 (inactive) and 1, exactly at the clip
    breakpoint 2z - 1 = 1, which both the linear and the clipped region's systems give."""
    result = fixed_points(0.5, [[0.5]], [[2.0]], [1.0], "clipped_relu", clip=1.0)
    np.testing.assert_allclose(result.points, [[0.0], [1.0]], atol=1e-12)
    np.testing.assert_array_equal(result.on_boundary, [False, True])
    # and at a vertex of many hyperplanes: every region around the origin has it as its solution
    U = np.array([[1, 0], [0, 1], [1, 1], [1, -1]], dtype=float)
    result = fixed_points([0.5, 0.5], 0.1 * np.ones((2, 4)), U, np.zeros(4))
    np.testing.assert_allclose(result.points, [[0.0, 0.0]], atol=1e-12)
    assert result.on_boundary.all()


def test_singular_region_reports_a_ray_of_fixed_points():
    """F(z) = z/2 + relu(z)/2 is the identity for z >= 0: the active region holds the ray [0, inf)."""
    result = fixed_points(0.5, [[0.5]], [[1.0]], [0.0])
    assert len(result.continua) == 1
    ray = result.continua[0]
    assert ray.pattern.tolist() == [1] and ray.touches_interior and ray.directions.shape == (1, 1)
    for t in (0.0, 1.0, 10.0):
        z = ray.anchor + t * np.abs(ray.directions[0])
        np.testing.assert_allclose(latent_map(z, 0.5, [[0.5]], [[1.0]], [0.0]), z)
    np.testing.assert_allclose(result.points, [[0.0]])  # the inactive region's solution, the ray's end
    assert result.on_continuum.tolist() == [True]


def test_singular_region_reports_a_segment_of_fixed_points():
    """A clipped unit reading and driving z_1 exactly cancels the decay on 0 < z_1 < c: the segment
    [0, c] x {0} consists of fixed points; its ends are found as points by the neighbouring regions."""
    c = 2.0
    a, V, U, threshold = [0.5, 0.5], [[0.5], [0.0]], [[1.0, 0.0]], [0.0]
    result = fixed_points(a, V, U, threshold, "clipped_relu", clip=c)
    assert len(result.continua) == 1
    segment = result.continua[0]
    np.testing.assert_allclose(np.abs(segment.directions), [[1.0, 0.0]], atol=1e-12)
    assert segment.pattern.tolist() == [1] and segment.touches_interior
    assert 0 <= segment.anchor[0] <= c and abs(segment.anchor[1]) < 1e-12
    np.testing.assert_allclose(result.points, [[0.0, 0.0], [c, 0.0]], atol=1e-12)
    assert result.on_continuum.all() and result.on_boundary.all()


def test_identity_map_is_one_continuum_per_region():
    """a = 1, V = 0: every point is fixed; each region is reported as a full-dimensional continuum."""
    U = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    result = fixed_points(1.0, np.zeros((2, 3)), U, np.array([0.0, 0.0, 1.0]))
    assert len(result.points) == 0
    assert len(result.continua) == result.num_regions == 7
    assert all(part.directions.shape == (2, 2) and part.touches_interior for part in result.continua)
    assert len({tuple(part.pattern) for part in result.continua}) == 7


# ------------------------------------------------------------------ inputs
def test_torch_inputs_and_scalar_or_vector_decay_give_the_same_result():
    a, V, U, threshold = random_network(0, N=12, R=2)
    expected = fixed_points(a, V, U, threshold)
    as_torch = fixed_points(*(torch.as_tensor(x) for x in (a, V, U, threshold)))
    np.testing.assert_array_equal(as_torch.points, expected.points)
    scalar = fixed_points(0.7, V, U, threshold)
    np.testing.assert_array_equal(scalar.points, fixed_points(np.full(2, 0.7), V, U, threshold).points)


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"U": np.zeros((5, 2, 1))}, ValueError, r"U must be a non-empty 2-D array \(N, R\)"),
        ({"V": np.zeros((2, 4))}, ValueError, r"V must have shape \(R, N\) = \(2, 5\)"),
        ({"threshold": np.zeros(4)}, ValueError, r"threshold must have shape \(N,\) = \(5,\)"),
        ({"a": np.zeros(3)}, ValueError, r"a must be a scalar or have shape \(R,\) = \(2,\)"),
        ({"threshold": np.array([0, 0, np.nan, 0, 0])}, ValueError, "threshold contains 1 NaN or infinite"),
        ({"V": np.full((2, 5), np.inf)}, ValueError, "V contains 10 NaN or infinite"),
        ({"activation": "tanh"}, ValueError, "activation must be one of"),
        ({"activation": "clipped_relu", "clip": 0.0}, ValueError, "clip must be > 0"),
        ({"activation": "clipped_relu", "clip": np.ones(3)}, ValueError, r"clip must be a scalar or have shape \(N,\)"),
        ({"tol": -1.0}, ValueError, "tol must be finite and > 0"),
        ({"U": [["a", "b"]] * 5}, TypeError, "U must be numeric"),
    ],
)
def test_bad_inputs_are_rejected_with_a_clear_error(change, error, message):
    arguments = dict(a=0.5, V=np.ones((2, 5)), U=np.ones((5, 2)), threshold=np.zeros(5))
    arguments.update(change)
    with pytest.raises(error, match=message):
        fixed_points(**arguments)
