"""An independent Kalman filter in numpy (float64): the exact log-likelihood of a linear-Gaussian model.

    z_0 ~ N(m0, P0),   z_t = A z_{t-1} + c + N(0, Q),   y_t = C z_t + d + N(0, R)

Written from the textbook recursions (predict, then condition on y_t) with no code shared with the
package, to serve as ground truth for the particle filters.
"""

from __future__ import annotations

import numpy as np


def kalman_filter(y, m0, P0, A, c, Q, C, d, R, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """``(log p(y_{0:T-1}) (B,), filtered means E[z_t | y_{0:t}] (B, T, R))`` for ``y`` ``(B, T, D)``.

    With ``mask`` ``(B, T, D)`` bool (True = observed) each step conditions on its observed entries only
    (the rows of C, d, R of those channels); a step with none is a pure prediction."""
    y = np.asarray(y, dtype=np.float64)
    observed_all = np.ones(y.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    m0, P0, A, c, Q, C, d, R = (np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (m0, P0, A, c, Q, C, d, R))
    P0, A, Q, C, R = (np.atleast_2d(x) for x in (P0, A, Q, C, R))
    num_trials, num_steps, _ = y.shape
    log_likelihood = np.zeros(num_trials)
    means = np.zeros((num_trials, num_steps, m0.shape[0]))
    for b in range(num_trials):
        mean, cov = m0, P0
        for t in range(num_steps):
            if t > 0:  # predict
                mean = A @ mean + c
                cov = A @ cov @ A.T + Q
            observed = observed_all[b, t]
            if observed.any():
                C_o, d_o, R_o = C[observed], d[observed], R[np.ix_(observed, observed)]
                innovation_cov = C_o @ cov @ C_o.T + R_o
                innovation = y[b, t, observed] - (C_o @ mean + d_o)
                sign, logdet = np.linalg.slogdet(innovation_cov)
                assert sign > 0
                log_likelihood[b] += -0.5 * (observed.sum() * np.log(2 * np.pi) + logdet + innovation @ np.linalg.solve(innovation_cov, innovation))
                gain = cov @ C_o.T @ np.linalg.inv(innovation_cov)  # condition on the observed part of y_t
                mean = mean + gain @ innovation
                cov = cov - gain @ C_o @ cov
            cov = 0.5 * (cov + cov.T)
            means[b, t] = mean
    return log_likelihood, means


def kalman_log_likelihood(y, m0, P0, A, c, Q, C, d, R) -> np.ndarray:
    """``log p(y_{0:T-1})`` per trial for ``y`` ``(B, T, D)``."""
    return kalman_filter(y, m0, P0, A, c, Q, C, d, R)[0]


def lowrank_kalman_parameters(model) -> dict:
    """The Kalman-filter matrices of a ``LowRankRNNModel`` with identity activation and a Gaussian readout.

    With phi(x, b) = x - b (b the thresholds) the latent map is linear, ``z' = (a I + V U) z - V b``; the readout is
    ``y = C z + d`` (``C = W`` affine, ``C = diag(g) U`` one-to-one). No inputs.
    """
    import torch

    with torch.no_grad():
        transition = model.transition
        assert transition.activation == "identity"
        a, V, U, threshold = transition.a, transition.V, transition.U, transition.threshold
        form = model.readout_linear_form(None)
        params = dict(
            m0=model.initial_mean,
            P0=model.initial_noise.matrix(),
            A=a * torch.eye(U.shape[1]) + V @ U,
            c=-(V @ threshold),
            Q=model.noise.matrix(),
            C=form.weight,
            d=form.bias,
            R=torch.diag_embed(form.variance),
        )
        return {k: v.double().numpy() for k, v in params.items()}


def kalman_smoother(y, m0, P0, A, c, Q, C, d, R) -> tuple[np.ndarray, np.ndarray]:
    """Rauch-Tung-Striebel smoother: ``(E[z_t | y_{0:T-1}] (B, T, R), Cov[z_t | y_{0:T-1}] (B, T, R, R))``.

    Forward pass as :func:`kalman_filter`; backward ``J = P_t|t A^T P_t+1|t^{-1}``,
    ``m_t|T = m_t|t + J (m_t+1|T - m_t+1|t)``, ``P_t|T = P_t|t + J (P_t+1|T - P_t+1|t) J^T``.
    """
    y = np.asarray(y, dtype=np.float64)
    m0, P0, A, c, Q, C, d, R = (np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (m0, P0, A, c, Q, C, d, R))
    P0, A, Q, C, R = (np.atleast_2d(x) for x in (P0, A, Q, C, R))
    num_trials, num_steps, _ = y.shape
    means = np.zeros((num_trials, num_steps, m0.shape[0]))
    covs = np.zeros((num_trials, num_steps, m0.shape[0], m0.shape[0]))
    for b in range(num_trials):
        filtered, predicted = [], []
        mean, cov = m0, P0
        for t in range(num_steps):
            if t > 0:
                mean, cov = A @ mean + c, A @ cov @ A.T + Q
            predicted.append((mean, cov))
            gain = cov @ C.T @ np.linalg.inv(C @ cov @ C.T + R)
            mean, cov = mean + gain @ (y[b, t] - C @ mean - d), cov - gain @ C @ cov
            filtered.append((mean, cov))
        means[b, -1], covs[b, -1] = filtered[-1]
        for t in range(num_steps - 2, -1, -1):
            (mean_f, cov_f), (mean_p, cov_p) = filtered[t], predicted[t + 1]
            gain = cov_f @ A.T @ np.linalg.inv(cov_p)
            means[b, t] = mean_f + gain @ (means[b, t + 1] - mean_p)
            covs[b, t] = cov_f + gain @ (covs[b, t + 1] - cov_p) @ gain.T
    return means, covs
