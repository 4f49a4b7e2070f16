"""Metrics of the field: state recovery, reconstruction, forecasting, attractor geometry, spectra, spikes."""

from .forecasting import ForecastScores, k_step_forecast, prediction_error
from .neural_statistics import (
    band_power,
    fano_factor,
    interspike_intervals,
    lag_autocorrelation,
    mean_rate,
    population_autocorrelation,
    trial_rates,
)
from .reconstruction import mean_squared_error, r2_score
from .spectral import PowerSpectrum, power_spectrum_distance, smoothed_power_spectrum
from .spikes import bits_per_spike, co_smoothing_bits_per_spike
from .state_space_divergence import KLEstimate, gaussian_mixture_kl, histogram_kl, state_space_divergence
from .states import balanced_state_error, confusion_matrix, match_states, state_accuracy

__all__ = [
    "balanced_state_error",
    "confusion_matrix",
    "match_states",
    "state_accuracy",
    "mean_squared_error",
    "r2_score",
    "ForecastScores",
    "k_step_forecast",
    "prediction_error",
    "KLEstimate",
    "gaussian_mixture_kl",
    "histogram_kl",
    "state_space_divergence",
    "PowerSpectrum",
    "power_spectrum_distance",
    "smoothed_power_spectrum",
    "bits_per_spike",
    "co_smoothing_bits_per_spike",
    "band_power",
    "fano_factor",
    "interspike_intervals",
    "lag_autocorrelation",
    "mean_rate",
    "population_autocorrelation",
    "trial_rates",
]
