"""Data: validation of user arrays, simulators and loaders."""

from .validation import as_inputs, as_state_labels, as_trials, check_count, check_positive

__all__ = ["as_inputs", "as_state_labels", "as_trials", "check_count", "check_positive"]

from .lowrank_teachers import (  # noqa: E402
    LowRankTeacher,
    TeacherData,
    gaussian_oscillator_data,
    load_teacher_npz,
    oscillator_teacher,
    poisson_oscillator_data,
    ring_task_data,
    ring_teacher,
    simulate_teacher_latents,
)

__all__ += [
    "LowRankTeacher",
    "TeacherData",
    "gaussian_oscillator_data",
    "load_teacher_npz",
    "oscillator_teacher",
    "poisson_oscillator_data",
    "ring_task_data",
    "ring_teacher",
    "simulate_teacher_latents",
]

from .eeg import EEG_FILE, EEG_SAMPLING_RATE, load_eeg, random_windows, split_heldout  # noqa: E402

__all__ += ["EEG_FILE", "EEG_SAMPLING_RATE", "load_eeg", "random_windows", "split_heldout"]
