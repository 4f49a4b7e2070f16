"""Data: validation of user arrays, simulators and loaders."""

from .lorenz import LorenzData, switching_lorenz
from .lowrank_teachers import (
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
from .validation import as_inputs, as_state_labels, as_trials, check_count, check_positive

__all__ = [
    "LorenzData",
    "LowRankTeacher",
    "TeacherData",
    "as_inputs",
    "as_state_labels",
    "as_trials",
    "check_count",
    "check_positive",
    "gaussian_oscillator_data",
    "load_teacher_npz",
    "oscillator_teacher",
    "poisson_oscillator_data",
    "ring_task_data",
    "ring_teacher",
    "simulate_teacher_latents",
    "switching_lorenz",
]

from .switching_lowrank_teacher import (  # noqa: E402
    SwitchingLowRankData,
    SwitchingLowRankTeacher,
    switching_lowrank_data,
    switching_lowrank_teacher,
)

__all__ += ["SwitchingLowRankData", "SwitchingLowRankTeacher", "switching_lowrank_data", "switching_lowrank_teacher"]

from .eeg import EEG_FILE, EEG_SAMPLING_RATE, load_eeg, random_windows, save_eeg_as_nwb, split_heldout  # noqa: E402

__all__ += ["EEG_FILE", "EEG_SAMPLING_RATE", "load_eeg", "random_windows", "save_eeg_as_nwb", "split_heldout"]

from .dynamics_switching import (  # noqa: E402
    SwitchingDynamicsData,
    limit_cycle_switching_data,
    recurrent_switching_data,
    rotation_switching_data,
)

__all__ += ["SwitchingDynamicsData", "limit_cycle_switching_data", "recurrent_switching_data", "rotation_switching_data"]

from .nwb import load_nwb, load_nwb_sessions  # noqa: E402
from .recording import Recording  # noqa: E402

__all__ += ["Recording", "load_nwb", "load_nwb_sessions"]
